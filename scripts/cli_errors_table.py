"""Run every mistaken ``xcrop`` invocation of ``tests/test_cli_errors.py`` against the
xcrop found on ``sys.path`` (this checkout, or an older one put first with PYTHONPATH),
and print a JSON line per case: exit code, lines on stderr, first line, traceback or not.

The closing notes of issue 14 compare two runs (before / after)::

    PYTHONPATH=/path/to/old/checkout .venv/bin/python scripts/cli_errors_table.py --out before.jsonl
    .venv/bin/python scripts/cli_errors_table.py --out after.jsonl
    .venv/bin/python scripts/cli_errors_table.py --compare before.jsonl after.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _run_case(main, args: list[str]) -> tuple[int, str]:
    """``main(args)`` with stderr captured at the file-descriptor level."""
    with tempfile.TemporaryFile("w+") as err:
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            try:
                code = main(args)
            except SystemExit as e:  # old entry points exit
                code = e.code if isinstance(e.code, int) else 1
            except BaseException as e:  # old entry points let errors through
                import traceback

                traceback.print_exc()
                code = f"raised {type(e).__name__}"
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        return code, err.read()


def run(out: Path) -> None:
    import importlib.util

    import xcrop
    from xcrop._cli import main

    # the cases and fixtures of this checkout's tests, whichever xcrop is on the path
    spec = importlib.util.spec_from_file_location("cli_cases", HERE / "tests/test_cli_errors.py")
    cases = sys.modules["cli_cases"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    CASES, argv, build_fixtures = cases.CASES, cases.argv, cases.build_fixtures

    with tempfile.TemporaryDirectory() as tmp, open(out, "w") as results:
        places = build_fixtures(Path(tmp) / "d")
        for case in CASES:
            code, err = _run_case(main, argv(case, places))
            lines = [line for line in err.strip().splitlines() if line.strip()]
            print(json.dumps({"id": case.id, "code": code, "lines": len(lines),
                              "traceback": "Traceback" in err,
                              "first": lines[-1][:200] if "Traceback" in err and lines
                              else (lines[0][:200] if lines else ""),
                              "xcrop": str(Path(xcrop.__file__).parents[1])}),
                  file=results, flush=True)  # fmt: skip


def compare(before: str, after: str) -> None:
    old = {r["id"]: r for r in map(json.loads, Path(before).read_text().splitlines())}
    new = {r["id"]: r for r in map(json.loads, Path(after).read_text().splitlines())}
    print("| case | before: exit, stderr | after: exit, stderr |")
    print("|---|---|---|")
    for key, r in new.items():
        o = old.get(key, {"code": "-", "first": "(not run)", "traceback": False, "lines": 0})
        was = ("traceback: " if o["traceback"] else "") + o["first"].replace("|", "/")
        now = r["first"].replace("|", "/")
        print(f"| {key} | {o['code']}, {o['lines']} lines: {was} | {r['code']}: {now} |")
    tb = sum(r["traceback"] for r in old.values())
    print(f"\nbefore: {tb} of {len(old)} cases printed a traceback; after: "
          f"{sum(r['traceback'] for r in new.values())} of {len(new)}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--out", type=Path, help="where the JSON lines go")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    elif args.out is None:
        parser.error("give --out FILE (or --compare BEFORE AFTER)")
    else:
        run(args.out)
