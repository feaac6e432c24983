"""The simulated archive's presets: what each holds, its size on disk and its generation time.

For each preset, the archive of the current ``SIM_VERSION`` in ``$XCROP_CACHE`` (default
``~/.cache/xcrop``), generated first where it is missing; sizes, counts and seconds are
those its ``manifest.json`` recorded when it was generated. ``--older`` takes, for a
preset not generated at the current version, the newest older version in the cache
instead (its row names its version); ``--fresh`` generates each again into a temporary
folder (deleted afterwards) and times that run instead::

    .venv/bin/python benchmarks/bench_archive.py [--presets tiny demo benchmark]
        [--older | --fresh] [--markdown benchmarks/results/archive.md]

docs/simulation.md and docs/performance.md include the table it writes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from _paths import writable

from xcrop.datasets import simulated_archive
from xcrop.datasets.archive import PRESETS, SIM_VERSION, cache_dir

NAMES = {"togo-north": "Togo north", "togo-south": "Togo south"}


def _regions(manifest: dict) -> str:
    """Regions grouped by size: "Togo north + south (120), Kenya + France (60)"."""
    by_size: dict[int, list[str]] = {}
    for name, region in manifest["regions"].items():
        by_size.setdefault(region["size_px"], []).append(NAMES.get(name, name.title()))
    parts = []
    for size, names in by_size.items():
        if names == ["Togo north", "Togo south"]:
            names = ["Togo north", "south"]
        parts.append(f"{' + '.join(names)} ({size})")
    return ", ".join(parts)


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _seconds(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.0f} s"


def row(preset: str, manifest: dict) -> dict:
    labels = manifest["labels"]
    items = {r["items"] for r in manifest["regions"].values()}
    per_region = f"{items.pop()} per region" if len(items) == 1 else "per region varies"
    version = manifest["version"]
    return {
        "preset": f"`{preset}`" + ("" if version == SIM_VERSION else f" (SIM_VERSION {version})"),
        "regions (pixels per side)": _regions(manifest),
        "acquisitions": f"{per_region}, {manifest['items']} items",
        "labels": f"{sum(labels['hand'].values()):,} hand, {labels['test']['points']:,} test x 4, "
        f"{labels['crowd_points']:,} crowd points",
        "files": _size(manifest["bytes"]),
        "generation": _seconds(manifest["seconds"]),
    }


def _cached(preset: str, version: int) -> Path:
    return cache_dir() / f"sim-{preset}-seed0-earth-search-v{version}" / "manifest.json"


def measure(preset: str, fresh: bool, older: bool = False) -> dict:
    if older and not _cached(preset, SIM_VERSION).exists():
        for version in range(SIM_VERSION - 1, 0, -1):
            if _cached(preset, version).exists():
                return json.loads(_cached(preset, version).read_text())
    if not fresh:
        return simulated_archive(preset).manifest
    folder = Path(tempfile.mkdtemp(prefix=f"sim-{preset}-"))
    try:
        start = time.perf_counter()
        manifest = simulated_archive(preset, directory=folder / "archive").manifest
        return manifest | {"seconds": round(time.perf_counter() - start, 1)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def to_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r.values()) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--older", action="store_true", help="an older version if cached")
    how.add_argument("--fresh", action="store_true", help="generate again, time it")
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    args = parser.parse_args()
    manifests = {preset: measure(preset, args.fresh, args.older) for preset in args.presets}
    table = to_markdown([row(p, m) for p, m in manifests.items()])
    dates = sorted({m["created"][:10] for m in manifests.values()})
    how = (
        f"measured now, on {os.cpu_count()} cores"
        if args.fresh
        else "as each manifest recorded them, on the machine that generated it"
    )
    command = "benchmarks/bench_archive.py " + " ".join(
        ["--presets", *args.presets, *(["--older"] if args.older else [])]
        + (["--fresh"] if args.fresh else [])
        + (["--markdown", str(args.markdown)] if args.markdown else [])
    )
    header = (
        f"<!-- generated: `python {command}`; do not edit by hand -->\n\n"
        f"*SIM_VERSION {SIM_VERSION} unless a row says otherwise, seed 0; size on disk and "
        f"generation time {how} "
        f"({', '.join(dates)})*\n\n"
    )
    print(header + table)
    if args.markdown:
        args.markdown.write_text(header + table + "\n")


if __name__ == "__main__":
    main()
