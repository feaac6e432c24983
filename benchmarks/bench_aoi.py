"""A polygon against its bounding box, end to end: what is not in the area is not read.

On the ``benchmark`` preset's Togo-north region (the simulated archive's COGs, 73 dates x
13 bands), a ``--size`` px square window (default 1024) at the region's top-left corner
(the triangle's bounding box in the grid's CRS, given as a polygon: the same grid) and
the triangle that is its lower-left half are each run through the whole pipeline,
in fresh processes: ``xcrop.search(area, ...)`` (a bbox, or the polygon) ->
``composite()`` (default Schmitt score) -> ``predict`` (an untrained model) ->
``to_zarr``, with ``--chunks`` px chunks (default 256: 16 chunks, of which the triangle
misses 6 and crosses 4 on its diagonal). Printed per area: seconds, files read (calls
of the reader), pixels with a value in the map, and the polygon's time and reads as a
share of the bounding box's. Timings are loose on a shared machine; run it alone::

    .venv/bin/python benchmarks/bench_aoi.py [--size 1024] [--chunks 256] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _paths import writable

DATETIME = "2019-03-01/2020-02-29"
REGION = "togo-north"


def _areas(archive, size: int):
    """The window and its lower-left triangle, made in the grid's CRS, in lon/lat."""
    import shapely
    from pyproj import Transformer

    region = archive.region(REGION)
    left, _, _, top = region["bounds"]
    right, bottom = left + 10 * size, top - 10 * size
    to_ll = Transformer.from_crs(region["epsg"], 4326, always_xy=True)
    inset = 1.0  # metres: the snapped grid keeps the window's own pixels
    ring = [(left + inset, bottom + inset), (right - inset, bottom + inset),
            (left + inset, top - inset)]  # fmt: skip
    triangle = shapely.Polygon([to_ll.transform(x, y) for x, y in ring])
    # the window itself, as a polygon: the triangle's bounding box in the grid's CRS (a
    # lon/lat bbox would be a larger grid: lon/lat lines are not the grid's)
    corners = [(left + inset, bottom + inset), (right - inset, bottom + inset),
               (right - inset, top - inset), (left + inset, top - inset)]  # fmt: skip
    square = shapely.Polygon([to_ll.transform(x, y) for x, y in corners])
    return square, triangle


def child(which: str, size: int, chunks: int) -> dict:
    import threading

    import xcrop
    from xcrop._model import MultiHeadLSTM
    from xcrop._reads import _Reader
    from xcrop.datasets import simulated_archive

    reads, lock, real = [0], threading.Lock(), _Reader.read

    def counted(self, *args, **kwargs):
        with lock:
            reads[0] += 1
        return real(self, *args, **kwargs)

    _Reader.read = counted
    archive = simulated_archive("benchmark")
    box, triangle = _areas(archive, size)
    area = box if which == "bbox" else triangle
    t0 = time.perf_counter()
    cube = xcrop.search(area, DATETIME, catalog=str(archive.items_path),
                        collection="sentinel-2-l2a", chunks=chunks)  # fmt: skip
    comp = cube.cropmask.composite()
    prob = comp.predict(MultiHeadLSTM(tuple(str(b) for b in comp.data.band.values)))
    with tempfile.TemporaryDirectory() as folder:
        store = xcrop.to_zarr(prob, f"{folder}/map.zarr", progress=False)
        seconds = time.perf_counter() - t0
        mapped = int(xcrop.open_probability(store).notnull().sum())
    return {"seconds": seconds, "reads": reads[0], "mapped": mapped,
            "pixels": cube.sizes["y"] * cube.sizes["x"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    parser.add_argument("--child", choices=["bbox", "polygon"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.chunks)))
        return
    title = (
        f"preset benchmark, region {REGION}, {DATETIME} (73 dates x 13 bands), a "
        f"{args.size}^2 px window and its lower-left triangle, chunks {args.chunks}, default "
        f"Schmitt score, untrained model, to_zarr; threaded scheduler, {os.cpu_count()} "
        "cores; fresh processes"
    )
    print(title)
    rows = {}
    for which in ("bbox", "polygon"):
        done = subprocess.run(
            [sys.executable, __file__, "--child", which, "--size", str(args.size),
             "--chunks", str(args.chunks)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows[which] = json.loads(done.stdout.strip().splitlines()[-1])
    lines = [
        title,
        "",
        "| area | pixels | mapped pixels | seconds | files read | x bbox time | x bbox reads |",
        "|---|---|---|---|---|---|---|",
    ]
    for which, r in rows.items():
        box = rows["bbox"]
        lines.append(
            f"| {which} | {r['pixels']:,} | {r['mapped']:,} | {r['seconds']:.1f} | "
            f"{r['reads']:,} | {r['seconds'] / box['seconds']:.2f} | "
            f"{r['reads'] / box['reads']:.2f} |"
        )
    print("\n".join(lines[2:]))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
