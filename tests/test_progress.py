"""Progress: a bar on a terminal, a few plain lines in a log (a file or a pipe)."""

from __future__ import annotations

import io
import time

import dask
import dask.array as da
import pytest

from xcrop._progress import DaskProgress, Progress, is_interactive


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_per_tenth_and_no_carriage_return():
    log = io.StringIO()
    with Progress(1000, "writing togo.zarr", "block", file=log) as bar:
        for _ in range(1000):
            bar.update()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 10
    assert lines[0].startswith("writing togo.zarr: 100/1000 blocks (10%), ")
    assert "left" in lines[0] and "left" not in lines[-1]
    assert lines[-1].startswith("writing togo.zarr: 1000/1000 blocks (100%), ")


def test_a_small_total_gets_a_line_per_unit_and_an_early_end_says_where():
    log = io.StringIO()
    with Progress(3, "writing", "block", file=log) as bar:
        bar.update(3)
    (line,) = log.getvalue().splitlines()
    assert line.startswith("writing: 3/3 blocks (100%), ")
    log = io.StringIO()
    with Progress(200, "training", "epoch", file=log) as bar:  # early stopping at 37
        for _ in range(37):
            bar.update()
    lines = log.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "training: 20/200 epochs (10%)",
        "training: 37/200 epochs (18%)",
    ]
    assert lines[-1].endswith(", done")
    log = io.StringIO()
    with pytest.raises(ZeroDivisionError), Progress(10, "writing", "block", file=log) as bar:
        bar.update(5)
        1 / 0  # noqa: B018
    assert log.getvalue().splitlines()[-1].startswith("writing: 5/10 blocks (50%)")  # no more


def test_a_terminal_gets_a_tqdm_bar():
    tty = Terminal()
    assert is_interactive(tty) and not is_interactive(io.StringIO())
    with Progress(5, "writing", "block", file=tty) as bar:
        bar.update(5)
    assert "\r" in tty.getvalue() and "5/5" in tty.getvalue()


def test_disabled_or_empty_progress_writes_nothing():
    log = io.StringIO()
    with Progress(5, "writing", file=log, disable=True) as bar:
        bar.update(5)
    with Progress(0, "writing", file=log) as bar:
        pass
    assert log.getvalue() == ""


def test_dask_progress_in_a_log_writes_lines_at_doubling_gaps():
    def slow(block):
        time.sleep(0.002)
        return block + 1

    x = da.ones((64, 64), chunks=8).map_blocks(slow)
    quiet = io.StringIO()
    with DaskProgress("summing", file=quiet):  # done before the first line is due
        x.sum().compute(scheduler="sync")
    assert quiet.getvalue() == ""
    log = io.StringIO()
    with DaskProgress("summing", interval=0.001, file=log) as progress:
        for _ in range(2):  # 2 x 64 tasks of 2 ms: lines after 1, 3, 7, 15 ... ms
            x.sum().compute(scheduler="sync")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 3 <= len(lines) <= 14, lines
    assert all(" tasks done, " in line for line in lines)
    assert progress._done == progress._tasks  # every task of both computations
    assert lines[-1].startswith(f"summing: {progress._done} tasks done, ")


def test_dask_progress_on_a_terminal_is_dasks_bar():
    tty = Terminal()
    with DaskProgress("summing", minimum=0, file=tty):
        dask.compute(da.ones(10, chunks=2).sum(), scheduler="sync")
    assert "\r[" in tty.getvalue() and "100% Completed" in tty.getvalue()
