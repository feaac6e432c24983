"""``xcrop.read_map`` on a map file against one 1 x 1 window read per point.

Issue 20 item 5: ``read_map`` reads a file's values at points with rasterio's own
``DatasetReader.sample`` (it replaced a hand-written loop of one-pixel window reads). In
one run, on a tiled, deflate-compressed GeoTIFF of ``--size`` px and ``--points`` random
points: xcrop (``read_map(path, points, kind="classes")``) and the baseline loop, the
same values checked, best of ``--repeat``.

    .venv/bin/python benchmarks/bench_read_map.py [--size 8192] [--points 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from xcrop._maps import read_map


def window_loop(path: Path, points: gpd.GeoDataFrame) -> np.ndarray:
    """The baseline: one 1 x 1 window read per point."""
    with rasterio.open(path) as src:
        xy = points.geometry
        rows, cols = rasterio.transform.rowcol(src.transform, xy.x, xy.y)
        pixels = zip(rows, cols, strict=True)
        return np.array([src.read(1, window=Window(c, r, 1, 1))[0, 0] for r, c in pixels])


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.size
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.tif"
        profile = dict(driver="GTiff", width=n, height=n, count=1, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(300000, 1000000, 10, 10),
                       tiled=True, blockxsize=512, blockysize=512, compress="deflate")  # fmt: skip
        with rasterio.open(path, "w", **profile) as dst:
            for row in range(0, n, 512):
                dst.write(rng.integers(0, 4, (1, 512, n), dtype="uint8"),
                          window=Window(0, row, n, 512))  # fmt: skip
        x = 300000 + rng.uniform(0, 10 * n, args.points)
        y = 1000000 - rng.uniform(0, 10 * n, args.points)
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs="EPSG:32631")
        t_base, base = best_of(lambda: window_loop(path, points), args.repeat)
        t_xcrop, got = best_of(
            lambda: read_map(path, points, kind="classes", crop_classes=(1, 2, 3)), args.repeat
        )
    same = np.array_equal(np.isin(base, (1, 2, 3)).astype(float), got)
    print(f"{args.points} points on a {n} x {n} px tiled GeoTIFF, best of {args.repeat}:")
    print(f"  baseline (1 x 1 windows)  {t_base:8.3f} s")
    print(f"  xcrop read_map            {t_xcrop:8.3f} s   ratio {t_base / t_xcrop:.2f}x")
    print(f"  same values: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
