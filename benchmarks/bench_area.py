"""Does the 95 % interval of ``xcrop.area`` hold the true crop area as often as it says?

On the demo's maps of the simulated archive (``xcrop demo`` writes them; the archive
knows the true crop mask), for each region and each of ``--seeds`` seeds: draw a
stratified random sample of ``--n`` pixels with ``xcrop.sample_for_area``, label it from
the truth raster (what a labeller would answer), estimate the crop area with
``xcrop.area`` and count the intervals that hold the true area. Beside it, the map's
own pixel count (the biased number the estimate replaces).

Run after ``make demo`` (or ``xcrop demo --out DIR``)::

    .venv/bin/python benchmarks/bench_area.py [--demo xcrop-demo] [--n 300] [--seeds 100]
        [--markdown benchmarks/results/area.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _paths import writable

import xcrop
import xcrop.datasets
from xcrop._demo import LOCAL_REGIONS, _label_from_truth, _true_crop_ha


def run(demo: Path, n: int, seeds: int, preset: str = "demo", seed: int = 0) -> list[dict]:
    """One row per region and variance (``"wald"``: Olofsson et al.'s formulas;
    ``"laplace"``: xcrop's default), the same samples for both."""
    archive = xcrop.datasets.simulated_archive(preset, seed=seed)
    rows = []
    for region in LOCAL_REGIONS:
        prob = xcrop.open_probability(demo / f"{region}.zarr")
        true_ha = _true_crop_ha(archive, region, prob)
        mapped_ha = float(xcrop._areas.mapped_areas(prob).get(1, 0.0))
        variances = ("wald", "laplace")
        estimates, half, hits = [], {v: [] for v in variances}, dict.fromkeys(variances, 0)
        t0 = time.perf_counter()
        for s in range(seeds):
            design = _label_from_truth(archive, region, xcrop.sample_for_area(prob, n, seed=s))
            for variance in variances:
                ha, lower, upper = xcrop.area(prob, design, variance=variance).area(1)
                half[variance].append((upper - lower) / 2)
                hits[variance] += lower <= true_ha <= upper
            estimates.append(ha)
        for variance in variances:
            rows.append({
                "region": region, "variance": variance, "n": n, "true ha": true_ha,
                "map count ha": mapped_ha,
                "map bias %": 100 * (mapped_ha - true_ha) / true_ha,
                "mean estimate ha": float(np.mean(estimates)),
                "estimate bias %": 100 * (np.mean(estimates) - true_ha) / true_ha,
                "mean 95 % CI ± ha": float(np.mean(half[variance])),
                "intervals holding the truth": f"{hits[variance]} / {seeds}",
                "s per sample": (time.perf_counter() - t0) / seeds,
            })  # fmt: skip
    return rows


def to_markdown(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = []
        for k in head:
            v = r[k]
            if isinstance(v, float):
                v = (
                    f"{v:+.1f}"
                    if "bias" in k
                    else f"{v:,.2f}"
                    if k.startswith("s ")
                    else f"{v:,.0f}"
                )
            cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("xcrop-demo"), help="xcrop demo's folder")
    parser.add_argument("--n", type=int, default=300, help="sample points per region")
    parser.add_argument("--seeds", type=int, default=100, help="samples drawn per region")
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = run(args.demo, args.n, args.seeds)
    table = to_markdown(rows)
    header = (
        f"`xcrop.area` on the maps of `xcrop demo` (seed 0), {args.n} points per sample, "
        f"{args.seeds} samples per region, labels from the archive's truth; "
        f"{time.perf_counter() - t0:.0f} s\n\n"
    )
    print(header + table)
    if args.markdown:
        args.markdown.write_text(header + table + "\n")


if __name__ == "__main__":
    main()
