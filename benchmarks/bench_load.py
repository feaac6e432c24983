"""Loading throughput: xcrop.load beside the loaders it wraps, in one run.

Writes a local archive with ``xcrop.datasets.tiny_archive`` (default 6 dates of
2048 x 2048 px, 13 bands), then times, on the threaded scheduler:

- ``rasterio``: reading every COG window whole, no reprojection (the I/O + decode limit);
- ``odc.stac.load`` of the same items to uint16 DN (the loader alone);
- ``xcrop.load(loader="odc")`` and ``xcrop.load(loader="stackstac")``: DN -> float32
  harmonised reflectance with NaN nodata, per-item coordinates.

Each computes a max over the whole array, so results are streamed chunk by chunk, not
assembled in memory (assembly of a 1.3 GB float32 result would dominate). Prints output
pixels per second (one pixel = one band of one date on the 10 m grid) and
each one's ratio to odc-stac alone. Run: ``.venv/bin/python benchmarks/bench_load.py
[--size 2048] [--dates 6]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import pystac
import rasterio

import xcrop
from xcrop.datasets import tiny_archive
from xcrop.sentinel2 import DEFAULT_BANDS, normalise_item


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--dates", type=int, default=6)
    parser.add_argument("--chunks", type=int, default=1024)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="xcrop-bench-"))
    t0 = time.perf_counter()
    path = tiny_archive(out, dates=args.dates, size=args.size)
    print(
        f"archive: {args.dates} dates x {args.size}^2 px, written in "
        f"{time.perf_counter() - t0:.1f} s to {out}"
    )
    items = list(pystac.ItemCollection.from_file(str(path)))
    normalised = [normalise_item(it) for it in items]
    pixels = len(items) * len(DEFAULT_BANDS) * args.size**2

    def read_rasterio():
        for it in normalised:
            for asset in it.assets.values():
                with rasterio.open(asset.href) as src:
                    src.read(1)

    def odc_alone():
        import odc.stac

        ds = odc.stac.load(
            normalised,
            bands=list(DEFAULT_BANDS),
            groupby="id",
            chunks={"x": args.chunks, "y": args.chunks},
            dtype="uint16",
            resolution=10,
            crs="EPSG:32631",
            nodata=0,
        )
        ds.to_dataarray().data.max().compute()

    def xcrop_odc():
        xcrop.load(items, chunks=args.chunks).data.max().compute()

    def xcrop_stackstac():
        xcrop.load(items, chunks=args.chunks, loader="stackstac").data.max().compute()

    print(f"cores: {os.cpu_count()}, scheduler: threads, chunks {args.chunks}")
    with dask.config.set(scheduler="threads"):
        base = _best(odc_alone)
        rows = [
            ("rasterio read, native res (I/O limit)", _best(read_rasterio)),
            ("odc.stac.load -> uint16 (baseline)", base),
            ("xcrop.load(loader='odc') -> float32", _best(xcrop_odc)),
            ("xcrop.load(loader='stackstac')", _best(xcrop_stackstac)),
        ]
    print(f"{'what':42s} {'seconds':>8s} {'Mpx/s':>8s} {'vs odc':>7s}")
    for name, seconds in rows:
        print(f"{name:42s} {seconds:8.2f} {pixels / seconds / 1e6:8.1f} {base / seconds:7.2f}")
    print("(rasterio reads 20/60 m bands at their native size: fewer pixels decoded)")
    assert np.isfinite(base)


if __name__ == "__main__":
    main()
