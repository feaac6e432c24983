"""Progress that behaves: a bar on a terminal (or in a notebook), a few plain lines in a log.

A progress bar redraws itself with carriage returns, ten times a second: on a terminal that
is one line that moves; in a log file (a batch job, ``nohup``, CI, ``2> log``) it is
hundreds of updates glued into one line. tqdm has no mode for files (``disable=None``
only turns the bar off, tqdm#750), nor has dask's ``ProgressBar``, and click's shows its
label once and nothing after. So when the output is not a terminal, xcrop writes plain
lines instead: one per tenth of the work done, and at most one per ``interval`` seconds
for work whose total is not known in advance.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from dask.callbacks import Callback

__all__ = ["Progress", "DaskProgress", "is_interactive"]


def _stream(file: IO[str] | None) -> IO[str]:
    return sys.stderr if file is None else file


def is_interactive(file: IO[str] | None = None) -> bool:
    """Whether a redrawn bar can be shown: ``file`` (default stderr) is a terminal, or the
    code runs in a Jupyter kernel (tqdm draws a widget there)."""
    try:
        if _stream(file).isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    ipython = get_ipython() if get_ipython else None
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def _seconds(t: float) -> str:
    if t < 60:
        return f"{t:.1f} s"
    minutes, seconds = divmod(round(t), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """Units of work done out of ``total``, shown as a tqdm bar when the output is
    interactive, else as plain lines: one each time another tenth of ``total`` is done
    (at most ten), such as ``writing togo.zarr: 8/16 blocks (50%), 12.0 s, about 12.0 s
    left``, and one more if the work ends short of ``total`` (``..., done``).

    Use it as a context manager, with ``update(n)``, like tqdm.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        *,
        disable: bool = False,
        file: IO[str] | None = None,
    ) -> None:
        self.total, self.desc, self.unit, self.n = int(total), desc, unit, 0
        self._file, self._bar, self._shown = _stream(file), None, 0
        self._start = time.perf_counter()
        self._disabled = disable or self.total <= 0
        if not self._disabled and is_interactive(self._file):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=file)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(failed=kind is not None)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._disabled:
            return
        if self._bar is not None:
            self._bar.update(n)
        elif 10 * self.n // self.total > 10 * self._shown // self.total:  # another tenth
            self._line()

    def close(self, failed: bool = False) -> None:
        """End the bar; in a log, a last line if the work ended before ``total`` (early
        stopping) or after the last line, unless it failed (its error follows)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif not self._disabled and not failed:
            if self.n < self.total:
                self._line(end=True)
            elif self.n != self._shown:
                self._line()
        self._disabled = True

    def _line(self, end: bool = False) -> None:
        elapsed = time.perf_counter() - self._start
        done = min(self.n, self.total)
        text = (
            f"{self.desc}: {done}/{self.total} {self.unit}s ({100 * done // self.total}%), "
            f"{_seconds(elapsed)}"
        )
        if end:
            text += ", done"
        elif 0 < done < self.total:
            text += f", about {_seconds(elapsed * (self.total - done) / done)} left"
        self._file.write(text + "\n")
        self._file.flush()
        self._shown = self.n


class DaskProgress(Callback):
    """Progress of the dask computations run inside a ``with`` block on the local
    schedulers: dask's own ``ProgressBar`` when the output is interactive (computations
    of ``minimum`` seconds or more), else a plain line after ``interval`` seconds, then
    at gaps that double (20, 40, 80 ... s) up to 5 minutes, and one at the end if any
    was written: 4 lines for a job of 90 s, 5 for 5 minutes, 10 for half an hour.
    """

    def __init__(
        self, desc: str, *, minimum: float = 2.0, interval: float = 10.0, file=None
    ) -> None:
        super().__init__()
        self.desc, self._file, self._interval = desc, _stream(file), interval
        self._bar = None
        if is_interactive(self._file):
            from dask.diagnostics import ProgressBar

            self._bar = ProgressBar(minimum=minimum, out=self._file)
        self._done = self._tasks = self._lines = 0
        self._began = self._due = 0.0
        self._gap = interval

    def __enter__(self) -> DaskProgress:
        if self._bar is not None:
            self._bar.__enter__()
            return self
        self._began = time.perf_counter()
        self._due, self._gap = self._began + self._interval, self._interval
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            return
        super().__exit__(*exc)
        if self._lines:
            elapsed = _seconds(time.perf_counter() - self._began)
            self._write(f"{self.desc}: {self._done} tasks done, {elapsed}")

    def _start_state(self, dsk, state) -> None:
        self._tasks += sum(len(state[k]) for k in ("ready", "waiting", "running"))

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        self._done += 1
        now = time.perf_counter()
        if now >= self._due:
            self._write(
                f"{self.desc}: {self._done} of {self._tasks} tasks done, "
                f"{_seconds(now - self._began)}"
            )
            self._gap = min(2 * self._gap, 300.0)
            self._due = now + self._gap

    def _write(self, text: str) -> None:
        self._file.write(text + "\n")
        self._file.flush()
        self._lines += 1
