"""The docs' numbers come from runs, not hand copies.

The tables of docs/experiment.md are fragments that ``benchmarks/docs_fragments.py``
writes from a ``make demo`` folder; the archive table of docs/simulation.md and
docs/performance.md is written by ``benchmarks/bench_archive.py``. Here the demo runs
once, in full (seeded, one torch thread: the same commit prints the same tables), and
the fragments it makes must be the committed ones. Tables with numbers that no command
writes must say so, with a reason, on the line before them.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import docs_fragments  # noqa: E402

#: The pages whose tables are measurements, and the hand-written tables each keeps (with
#: ``<!-- hand-written: why -->`` before them): changing a number here is a decision.
PAGES = {"docs/experiment.md": 0, "docs/performance.md": 1, "docs/simulation.md": 2}
HAND_WRITTEN = re.compile(r"<!--\s*hand-written:\s*(\S.*?)\s*-->")
INCLUDE = re.compile(r'^\s*--8<--\s+"([^"]+)"\s*$')


def tables(path: Path) -> list[tuple[int, list[str], str | None]]:
    """The page's Markdown tables outside includes: (first line, rows, the reason of a
    ``hand-written`` marker before it, if any)."""
    lines = path.read_text().splitlines()
    found, i, reason = [], 0, None
    while i < len(lines):
        text = lines[i].strip()
        marker = HAND_WRITTEN.fullmatch(text)
        if marker:
            reason = marker[1]
        elif text.startswith("|"):
            start = i
            while i < len(lines) and lines[i].strip().startswith("|"):
                i += 1
            found.append((start + 1, [row.strip() for row in lines[start:i]], reason))
            reason = None
            continue
        elif text:
            reason = None
        i += 1
    return found


def has_numbers(rows: list[str]) -> bool:
    """Whether a table's body holds a number outside inline code (`--size 1024`)."""
    body = [re.sub(r"`[^`]*`", "", row) for row in rows[2:]]
    return any(re.search(r"\d", row) for row in body)


@pytest.mark.parametrize("page", PAGES)
def test_tables_with_numbers_are_generated_or_say_why_not(page):
    hand = []
    for line, rows, reason in tables(ROOT / page):
        if has_numbers(rows):
            assert reason, f"{page}:{line}: a table of numbers written by hand: include the " \
                "fragment of the command that measures it, or say why not with " \
                "<!-- hand-written: why --> on the line before it"  # fmt: skip
            hand.append(f"{line} ({reason})")
    assert len(hand) == PAGES[page], hand


def test_table_markers_are_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "| a | b |\n|---|---|\n| x | 1 |\n\n<!-- hand-written: the paper's -->\n"
        "| a | b |\n|---|---|\n| y | 2 |\n\ntext\n\n| a |\n|---|\n| `--n 3` |\n"
    )
    found = tables(page)
    assert [(line, reason) for line, _, reason in found] == [
        (1, None),
        (6, "the paper's"),
        (12, None),
    ]
    assert [has_numbers(rows) for _, rows, _ in found] == [True, True, False]


def test_every_fragment_is_committed_included_and_names_its_command():
    experiment = (ROOT / "docs" / "experiment.md").read_text()
    included = {INCLUDE.match(line)[1] for line in experiment.splitlines() if INCLUDE.match(line)}
    for name in docs_fragments.FRAGMENTS:
        path = docs_fragments.OUT / name
        assert path.exists(), f"{path}: run benchmarks/docs_fragments.py --demo xcrop-demo"
        first = path.read_text().splitlines()[0]
        assert first.startswith("<!-- generated: `xcrop demo --out xcrop-demo`"), first
        assert "benchmarks/docs_fragments.py" in first
        assert str(path.relative_to(ROOT)) in included, f"docs/experiment.md does not show {name}"
    for path in sorted(docs_fragments.OUT.glob("*.md")):  # single_vs_multi.md too
        assert path.read_text().startswith("<!-- generated: `"), f"{path}: names no command"
        assert str(path.relative_to(ROOT)) in included, f"docs/experiment.md does not show {path}"
    archive = ROOT / "benchmarks" / "results" / "archive.md"
    assert "benchmarks/bench_archive.py" in archive.read_text().splitlines()[0]
    for page in ("simulation.md", "performance.md"):
        assert '--8<-- "benchmarks/results/archive.md"' in (ROOT / "docs" / page).read_text()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``xcrop demo --out DIR`` in full, once (several minutes on 2 cores), as ``make demo``
    runs it: the demo preset, seed 0, a real STAC API when rustac is installed.

    ``XCROP_DEMO_FOLDER=xcrop-demo`` compares the folder of a demo already run by this
    commit instead (after ``make demo``: seconds instead of minutes)."""
    if os.environ.get("XCROP_DEMO_FOLDER"):
        return Path(os.environ["XCROP_DEMO_FOLDER"]), 0.0
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from xcrop._demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "xcrop-demo"
    start = time.perf_counter()
    run_demo("demo", out=out, log=lambda line: None)
    return out, time.perf_counter() - start


def test_the_demo_prints_the_tables_the_docs_show(demo_run, capsys):
    folder, seconds = demo_run
    made = docs_fragments.fragments(folder)
    # on this machine the tables are byte for byte the same run after run; another CPU's
    # float kernels may move a rounded score by 0.01, which is not a stale page
    diffs = docs_fragments.differences(made, docs_fragments.OUT, tolerance=0.0101)
    with capsys.disabled():
        ran = f"ran in {seconds:.0f} s" if seconds else "given by XCROP_DEMO_FOLDER"
        print(f"\nxcrop demo {ran}; {len(diffs)} of the deterministic fragments differ")
    assert not diffs, (
        "The demo's tables differ from those the docs include: if the change is meant, run "
        "`make demo` and `.venv/bin/python benchmarks/docs_fragments.py --demo xcrop-demo`, "
        "check the pages' text against the new numbers, and commit both.\n"
        + "".join(diffs.values())
    )
    assert made["time.md"].startswith("<!-- generated: `xcrop demo --out xcrop-demo`")


@pytest.mark.parametrize("name", ["load", "composite", "predict", "memory", "inference_path"])
def test_performance_tables_are_the_benchmarks_files(name):
    """performance.md's measured tables are the files the benchmarks write with
    --markdown, each naming the command that wrote it."""
    path = ROOT / "benchmarks" / "results" / f"{name}.md"
    first = path.read_text().splitlines()[0]
    assert "benchmarks/bench_" in first and f"--markdown benchmarks/results/{name}.md" in first
    page = (ROOT / "docs" / "performance.md").read_text()
    assert f'--8<-- "benchmarks/results/{name}.md"' in page


def test_differences_allow_the_last_digit_only_where_asked(tmp_path):
    """The comparison the demo test uses: a score one in its last digit off passes with
    the tolerance, a count or a score 0.02 off does not; without it, any change fails."""
    committed = "| method | AUC | n |\n|---|---|---|\n| lstm | 0.91 | 283 |\n"
    (tmp_path / "metrics.md").write_text(committed)

    def diff(text, tolerance):
        return docs_fragments.differences({"metrics.md": text}, tmp_path, tolerance)

    assert not diff(committed, 0.0)
    assert not diff(committed.replace("0.91", "0.92"), 0.0101)
    assert diff(committed.replace("0.91", "0.92"), 0.0)
    assert diff(committed.replace("0.91", "0.93"), 0.0101)
    assert diff(committed.replace("283", "284"), 0.0101)
    assert diff(committed.replace("lstm", "svm"), 0.0101)
