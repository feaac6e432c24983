"""The docs' numbers from a demo run: Markdown fragments that the pages include.

``xcrop demo`` (``make demo``) writes its tables and ``summary.json`` to a report folder;
this script turns that folder into the fragments that docs/experiment.md includes
(``--8<-- "benchmarks/results/demo/NAME.md"``), each starting with a comment that names
the commands that made it. Run after ``make demo``::

    .venv/bin/python benchmarks/docs_fragments.py --demo xcrop-demo
        [--out benchmarks/results/demo] [--check]

``--check`` writes nothing: it compares the fragments of the run with those in ``--out``
and exits 1, with a diff, where a deterministic one differs (the run is seeded and
trains on one thread, so the same commit prints the same tables). Timings are not
deterministic: they are written, never compared. ``tests/test_docs_fragments.py`` runs
the demo and makes the same comparison.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "demo"


def _command(summary: dict) -> str:
    """The demo command that wrote a folder with this ``summary.json``."""
    options = [] if summary.get("preset", "demo") == "demo" else [f"--preset {summary['preset']}"]
    options += [] if summary.get("seed", 0) == 0 else [f"--seed {summary['seed']}"]
    return " ".join(["xcrop demo", *options, "--out xcrop-demo"])


def _header(summary: dict, source: str) -> str:
    return (
        f"<!-- generated: `{_command(summary)}`, then `python benchmarks/docs_fragments.py "
        f"--demo xcrop-demo` ({source}); do not edit by hand -->\n\n"
    )


def _copy(name: str) -> Callable[[Path, dict], str]:
    def fragment(demo: Path, summary: dict) -> str:
        return _header(summary, name) + (demo / name).read_text()

    return fragment


def _int(value) -> str:
    return f"{int(value):,}"


def _data(demo: Path, summary: dict) -> str:
    """The labels the run used and the test set it built."""
    report = summary["test_report"]
    dropped = report.get("dropped", {})
    rows = [
        ("hand labels sampled (local)", _int(summary["local"])),
        ("crowd labels sampled (global)", _int(summary["global"])),
        ("test points labelled by the four labellers", _int(report["read"])),
        *((f"test points dropped: {why}", _int(n)) for why, n in dropped.items()),
        ("test points kept (consensus)", _int(summary["test"])),
        ("test points all four labellers agree on", _int(summary["unanimous"])),
    ]
    lines = ["| labels | points |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
    return _header(summary, "summary.json") + "\n".join(lines) + "\n"


def _epochs(value) -> str:
    """A grid CSV's ``best_epochs`` (one per member, space-separated) as a list."""
    return ", ".join(str(value).split())


def _grid(demo: Path, summary: dict) -> str:
    """The grid searches of both LSTMs, best first: the chosen configuration marked."""
    lines = [
        "| model | classifier layers | dropout | validation AUC | validation loss "
        "| best epochs | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, model in (("multi", "multi-headed"), ("single", "single-headed")):
        grid = pd.read_csv(demo / f"grid_{name}.csv")
        for row in grid.itertuples(index=False):
            lines.append(
                f"| {model} | {row.layers} | {row.dropout:g} | {row.val_auc:.3f} "
                f"| {row.val_loss:.3f} | {_epochs(row.best_epochs)} "
                f"| {'yes' if row.chosen else ''} |"
            )
    return _header(summary, "grid_multi.csv, grid_single.csv") + "\n".join(lines) + "\n"


def _time(demo: Path, summary: dict) -> str:
    """Seconds per step of the run (not deterministic: the machine's, that day's)."""
    seconds = summary["seconds"]
    lines = ["| step | seconds |", "|---|---|"]
    lines += [f"| {step} | {s:.1f} |" for step, s in seconds.items()]
    lines.append(f"| **in all** | **{sum(seconds.values()):.1f}** |")
    return _header(summary, "summary.json: seconds") + "\n".join(lines) + "\n"


#: name -> (deterministic, how it is made from the demo folder and its summary.json)
FRAGMENTS: dict[str, tuple[bool, Callable[[Path, dict], str]]] = {
    "metrics.md": (True, _copy("metrics.md")),
    "data.md": (True, _data),
    "grid.md": (True, _grid),
    "sensitivity.md": (True, _copy("sensitivity.md")),
    "per_class.md": (True, _copy("per_class.md")),
    "area.md": (True, _copy("area.md")),
    "active_round.md": (True, _copy("active_round.md")),
    "time.md": (False, _time),
}


def fragments(demo: Path) -> dict[str, str]:
    """The text of every fragment, from a demo's report folder."""
    demo = Path(demo)
    summary = json.loads((demo / "summary.json").read_text())
    return {name: make(demo, summary) for name, (_, make) in FRAGMENTS.items()}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")]


def _close(a: str, b: str, tolerance: float) -> bool:
    """Two lines equal, or two table rows whose cells differ only in decimals by at most
    ``tolerance`` (whole numbers, such as counts, must be equal)."""
    if a == b:
        return True
    ca, cb = _cells(a), _cells(b)
    if not tolerance or len(ca) != len(cb):
        return False
    for x, y in zip(ca, cb, strict=True):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if "." not in x or "." not in y or abs(fx - fy) > tolerance:
            return False
    return True


def differences(made: dict[str, str], folder: Path, tolerance: float = 0.0) -> dict[str, str]:
    """A unified diff per deterministic fragment whose file in ``folder`` differs;
    ``tolerance``: decimals may differ by that much (another CPU's float kernels can move
    a rounded score by one in its last digit), whole numbers and text may not."""
    out = {}
    for name, text in made.items():
        if not FRAGMENTS[name][0]:
            continue
        path = Path(folder) / name
        old = path.read_text() if path.exists() else ""
        lines_old, lines_new = old.splitlines(), text.splitlines()
        same = len(lines_old) == len(lines_new) and all(
            _close(a, b, tolerance) for a, b in zip(lines_old, lines_new, strict=True)
        )
        if not same:
            diff = difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                        f"{path} (committed)", f"{name} (this run)")  # fmt: skip
            out[name] = "".join(diff)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("xcrop-demo"), help="a demo's folder")
    parser.add_argument("--out", type=Path, default=OUT, help="where the fragments are")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    if not (args.demo / "summary.json").is_file():
        parser.error(
            f"--demo {args.demo}: no summary.json there; give the folder of a finished "
            "`xcrop demo --out FOLDER` (make demo writes xcrop-demo)."
        )
    made = fragments(args.demo)
    if args.check:
        diffs = differences(made, args.out)
        for diff in diffs.values():
            sys.stdout.write(diff)
        print(f"{len(diffs)} of the deterministic fragments differ from {args.out}")
        return 1 if diffs else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in made.items():
        (args.out / name).write_text(text)
    print(f"{len(made)} fragments written to {args.out}: {', '.join(made)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
