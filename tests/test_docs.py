"""The documentation: the site builds with warnings as errors, API reference included, and
the Python blocks of the quickstart and the user guide run as written, offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The pages whose ```python blocks are executed, in order, one namespace per page.
EXECUTED = (
    "README.md",
    "docs/index.md",
    "docs/quickstart.md",
    "docs/loading.md",
    "docs/compositing.md",
    "docs/sampling.md",
    "docs/training.md",
    "docs/predicting.md",
    "docs/evaluation.md",
    "docs/output.md",
    "docs/area.md",
    "docs/scale.md",
    "docs/simulation.md",
)
#: Blocks marked ``<!-- not run: why -->`` on the line before them, per page: changing
#: this number is a decision, not an accident.
NOT_RUN = {"README.md": 1, "docs/index.md": 1, "docs/scale.md": 1}
#: Pages with Python blocks that are not executed yet, and why (none now).
NOT_EXECUTED: dict[str, str] = {}
MARKER = re.compile(r"<!--\s*not run:\s*(\S.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    line: int  # of the first line of code in the page (1-based)
    code: str
    not_run: str | None  # the reason given by the marker before it


def python_blocks(path: Path) -> list[Block]:
    """The page's ```python blocks, each with the reason of a ``<!-- not run: ... -->``
    marker on the line before it (blank lines between are allowed)."""
    lines = path.read_text().splitlines()
    blocks, reason, marker_line, i = [], None, 0, 0
    while i < len(lines):
        text = lines[i].strip()
        found = MARKER.fullmatch(text)
        if found:
            reason, marker_line = found[1], i + 1
        elif text == "```python":
            end = lines.index("```", i + 1)
            blocks.append(Block(i + 2, "\n".join(lines[i + 1 : end]), reason))
            reason, i = None, end
        elif text and reason is not None:
            raise AssertionError(
                f"{path.name}:{marker_line}: a 'not run' marker must stand right before a "
                "```python block"
            )
        i += 1
    return blocks


def test_every_page_with_python_is_executed_or_listed():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    with_code = {str(p.relative_to(ROOT)) for p in pages if python_blocks(p)}
    assert with_code == set(EXECUTED) | set(NOT_EXECUTED)


def test_markers_are_read_and_must_precede_a_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not run: needs a bucket -->\n\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n"
    )
    assert python_blocks(page) == [Block(4, "x = 1", "needs a bucket"), Block(8, "y = 2", None)]
    page.write_text("<!-- not run: a cluster -->\ntext\n```python\nx = 1\n```\n")
    with pytest.raises(AssertionError, match="right before"):
        python_blocks(page)


@pytest.fixture
def offline(tiny, tmp_path, monkeypatch):
    """A fresh working directory, and the session's tiny archive in the archive cache, so
    that the pages' ``simulated_archive("tiny")`` finds it instead of generating it."""
    from xcrop.datasets.archive import SIM_VERSION

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"sim-tiny-seed0-earth-search-v{SIM_VERSION}").symlink_to(tiny.root)
    monkeypatch.setenv("XCROP_CACHE", str(cache))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("page", EXECUTED)
def test_python_blocks_run_as_written(page, offline, capsys):
    pytest.importorskip("torch")
    path = ROOT / page
    blocks = python_blocks(path)
    namespace: dict = {"__name__": "__main__"}
    start = time.perf_counter()
    for block in blocks:
        if block.not_run is None:
            # blank lines first, so that a traceback names the page and its line
            exec(compile("\n" * (block.line - 1) + block.code, str(path), "exec"), namespace)
    skipped = [f"{page}:{b.line - 1} ({b.not_run})" for b in blocks if b.not_run]
    with capsys.disabled():
        print(f"\n{page}: {len(blocks) - len(skipped)} of {len(blocks)} blocks ran in "
              f"{time.perf_counter() - start:.1f} s; not run: {skipped or 'none'}")  # fmt: skip
    assert len(skipped) == NOT_RUN.get(page, 0), skipped


def test_without_the_reference_data_the_tests_say_what_to_do(tmp_path):
    """README, "Tests": without ../shared/data the suite stops at once with one message
    that names the folder and the command that runs the tests that do not read it."""
    tests = tmp_path / "repo" / "tests"
    tests.mkdir(parents=True)
    for name in ("__init__.py", "conftest.py"):
        (tests / name).write_text((ROOT / "tests" / name).read_text())
    (tests / "test_real.py").write_text(
        "from .conftest import SHARED\n\n\ndef test_a():\n    pass\n"
    )
    (tests / "test_plain.py").write_text("def test_b():\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def pytest_in_repo(*args):
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
        return subprocess.run(
            command, cwd=tests.parent, env=env, capture_output=True, text=True, timeout=120
        )

    result = pytest_in_repo("tests")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert f"there is no folder {tmp_path / 'shared' / 'data'}" in said
    assert "1 of the selected test files read it" in said
    assert "    pytest --ignore=tests/test_real.py\n" in said
    assert "passed" not in said and "failed" not in said  # stopped before any test ran
    assert pytest_in_repo("tests", "--ignore=tests/test_real.py").returncode == 0


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    model = (site / "api" / "model" / "index.html").read_text()
    assert 'id="xcrop.MultiHeadLSTM"' in model
    assert 'id="xcrop.train"' in model
    assert 'id="xcrop.predict"' in model
    assert 'id="xcrop.to_zarr"' in (site / "api" / "io" / "index.html").read_text()
    assert "to_zarr" in (site / "api" / "loading" / "index.html").read_text()  # the accessor
    # the griffe extension of docs/hooks: Sphinx roles became links, not text
    assert ":func:" not in model and ":class:" not in model
    for page in ("quickstart", "method", "training", "predicting", "scale", "performance"):
        assert (site / page / "index.html").exists()
    assert "Keep a Changelog" in (site / "changelog" / "index.html").read_text()
