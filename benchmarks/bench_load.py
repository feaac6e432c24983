"""Loading throughput: xcrop.load beside the loaders it wraps, in one run.

Uses a region of the simulated archive (default: the ``benchmark`` preset's 2070 x 2070
px Togo-north region, generated on first use) and times, on the threaded scheduler, for
``--dates`` acquisitions and all 13 bands:

- ``rasterio``: reading every COG whole at its native resolution (the I/O + decode
  limit of this machine);
- ``odc.stac.load`` of the same items to uint16 DN (the loader alone);
- ``xcrop.load(loader="odc")`` and ``xcrop.load(loader="stackstac")``: DN -> float32
  harmonised reflectance with NaN nodata, per-item coordinates.

Each computes a max over the whole array, so results stream chunk by chunk instead of
being assembled in memory. Prints output pixels per second (one pixel = one band of one
date on the 10 m grid) and each one's speed relative to odc-stac alone. Run:
``.venv/bin/python benchmarks/bench_load.py [--preset benchmark] [--dates 12]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import dask
import odc.stac
import pystac
import rasterio
from _paths import writable

import xcrop
from xcrop._sentinel2 import DEFAULT_BANDS, normalise_item
from xcrop.datasets import simulated_archive


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="benchmark")
    parser.add_argument("--region", default="togo-north")
    parser.add_argument("--dates", type=int, default=12)
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    args = parser.parse_args()
    archive = simulated_archive(args.preset)
    items = [
        it
        for it in pystac.ItemCollection.from_file(str(archive.items_path))
        if it.properties["xcrop:region"] == args.region
    ][: args.dates]
    normalised = [normalise_item(it) for it in items]
    size = archive.region(args.region)["size_px"]
    pixels = len(items) * len(DEFAULT_BANDS) * size**2
    print(
        f"{args.preset}/{args.region}: {len(items)} dates x {len(DEFAULT_BANDS)} bands x "
        f"{size}^2 px; cores {os.cpu_count()}, threaded scheduler, chunks {args.chunks}"
    )

    def read_rasterio():
        for it in normalised:
            for asset in it.assets.values():
                with rasterio.open(asset.href) as src:
                    src.read(1)

    def odc_alone():
        ds = odc.stac.load(
            normalised,
            bands=list(DEFAULT_BANDS),
            groupby="id",
            dtype="uint16",
            chunks={"x": args.chunks, "y": args.chunks},
            resolution=10,
            crs=f"EPSG:{archive.region(args.region)['epsg']}",
            nodata=0,
        )
        ds.to_dataarray().data.max().compute()

    def xcrop_load(loader):
        cube = xcrop.load(items, chunks=args.chunks, loader=loader)
        return lambda: cube.data.max().compute()

    with dask.config.set(scheduler="threads"):
        base = _best(odc_alone)
        rows = [
            ("rasterio read, native res (I/O limit)", _best(read_rasterio)),
            ("odc.stac.load -> uint16 (baseline)", base),
            ("xcrop.load(loader='odc') -> float32", _best(xcrop_load("odc"))),
            ("xcrop.load(loader='stackstac')", _best(xcrop_load("stackstac"))),
        ]
    print(f"{'what':42s} {'seconds':>8s} {'Mpx/s':>8s} {'vs odc':>7s}")
    for name, seconds in rows:
        print(f"{name:42s} {seconds:8.2f} {pixels / seconds / 1e6:8.1f} {base / seconds:7.2f}")
    print("(rasterio decodes 20/60 m bands at their native size: fewer pixels)")
    if args.markdown:
        head = (
            f"{len(items)} dates x {len(DEFAULT_BANDS)} bands x {size}^2 px of the "
            f"{args.preset} preset, {os.cpu_count()} cores, chunks {args.chunks}"
        )
        args.markdown.write_text(markdown(rows, pixels, base, head) + "\n")


#: The table's names of the readers.
NAMES = {
    "rasterio read, native res (I/O limit)": "rasterio, whole COGs at native resolution",
    "odc.stac.load -> uint16 (baseline)": "`odc.stac.load` alone (uint16 DN)",
    "xcrop.load(loader='odc') -> float32": '`xcrop.load(loader="odc")` (float32 reflectance, '
    "NaN, coords)",
    "xcrop.load(loader='stackstac')": '`xcrop.load(loader="stackstac")`',
}


def markdown(rows: list[tuple[str, float]], pixels: int, base: float, head: str) -> str:
    """The readers as the table docs/performance.md includes, headed by the command."""
    lines = [
        f"<!-- generated: `python benchmarks/bench_load.py {' '.join(sys.argv[1:])}`; "
        "do not edit by hand -->",
        "",
        f"*{head}*",
        "",
        "| reader | Mpx/s | x odc-stac |",
        "|---|---|---|",
    ]
    for name, seconds in rows:
        ratio = "" if name.startswith("rasterio") else f"{base / seconds:.2f}"
        lines.append(f"| {NAMES[name]} | {pixels / seconds / 1e6:.1f} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
