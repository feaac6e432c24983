"""Reading the 20 m and 60 m bands: odc-loader's warp beside a native read + repeat.

The experiment behind the next factor of ``bench_end_to_end.py``: xcrop's cube reads
every band onto the 10 m grid through odc-loader's rasterio reader, which warps
(``rasterio.warp.reproject``, nearest) the 20 m and 60 m bands. Where the 10 m grid is
aligned with a band's own pixels (Sentinel-2 tiles: corners on multiples of 60 m), the
same pixels come from a plain window read at the band's native resolution, each pixel
repeated 2 x 2 (20 m) or 6 x 6 (60 m). On ``--dates`` dates of the ``benchmark``
preset's Togo-north region, a ``--size`` px window from the region's corner, it times
both ways for every 20 m / 60 m band (one thread), checks they give the same DN, and
prints the ratio. Run::

    .venv/bin/python benchmarks/bench_native_reads.py [--size 1024] [--dates 12]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import rasterio
from rasterio.windows import Window

import xcrop
from xcrop._reads import source_of
from xcrop.datasets import simulated_archive

NATIVE = {"B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20, "B01": 60, "B09": 60}


def native(href: str, x0: float, y0: float, n: int, res: int) -> np.ndarray | None:
    """DN of the 10 m window whose top-left corner is (x0, y0), from the file's own
    pixels repeated; None where the grids are not aligned."""
    with rasterio.open(href) as src:
        t = src.transform
        col, row = (x0 - t.c) / t.a, (y0 - t.f) / t.e  # in native pixels
        f = res // 10
        if abs(t.a - res) > 1e-6 or col * f % 1 or row * f % 1:
            return None
        c0, r0 = int(np.floor(col)), int(np.floor(row))
        skip_c, skip_r = round((col - c0) * f), round((row - r0) * f)
        size = -(-(n + max(skip_c, skip_r)) // f) + 1
        window = Window(c0, r0, size, size)
        dn = src.read(1, window=window, boundless=True, fill_value=0)
    big = np.repeat(np.repeat(dn, f, axis=0), f, axis=1)
    return big[skip_r : skip_r + n, skip_c : skip_c + n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--dates", type=int, default=12)
    args = parser.parse_args()
    archive = simulated_archive("benchmark")
    cube = xcrop.search(
        archive.bbox("togo-north"), "2019-03-01/2020-02-29",
        catalog=str(archive.items_path), collection="sentinel-2-l2a",
    )  # fmt: skip
    cube = cube.sel(**archive.window("togo-north")).isel(
        y=slice(0, args.size), x=slice(0, args.size), time=slice(0, args.dates)
    )
    source = source_of(cube)
    bands = [b for b in source.bands if b in NATIVE]
    x0 = float(cube.x[0]) - 5.0
    y0 = float(cube.y[0]) + 5.0
    warp = plain = 0.0
    same = checked = 0
    for t in range(len(source.ids)):
        for band in bands:
            b = source.bands.index(band)
            scale, offset = source.scaling[t, b]
            start = time.perf_counter()
            mine = source[t, b]  # float32 reflectance through odc-loader's warp
            warp += time.perf_counter() - start
            start = time.perf_counter()
            dn = native(source.hrefs[t][b].removeprefix("file://"), x0, y0, args.size, NATIVE[band])
            if dn is None:
                continue
            ref = dn.astype("float32")
            ref *= scale
            ref += offset
            ref[dn == 0] = np.nan
            plain += time.perf_counter() - start
            checked += 1
            same += bool(np.array_equal(ref, mine, equal_nan=True))
    print(
        f"{len(source.ids)} dates x {len(bands)} bands at 20/60 m, {args.size}^2 px window, "
        "one thread"
    )
    print(f"odc-loader (warp to 10 m):     {warp:6.2f} s")
    print(f"native window read + repeat:   {plain:6.2f} s  ({warp / plain:.1f}x faster)")
    print(f"identical reflectance: {same} of {checked} reads")


if __name__ == "__main__":
    main()
