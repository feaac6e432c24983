"""Country-scale graph: build (never compute) the lazy pipeline for a Togo-sized area.

Synthetic STAC items (never read: their hrefs point nowhere) stand for a season of
Sentinel-2 L2A over an area the size of Togo (~5.7e8 px at 10 m: a 238.7 km square
centred on Togo, in UTM 31N): the MGRS tiles that cover it (109.8 km, on a 100 km grid,
so neighbours overlap by 9.8 km as real ones do), each seen every 5 days (73 dates), with
the 13 bands as COG assets and their real ``proj:`` and ``raster:`` metadata. For each
fraction of that area (``--fractions``, each in a fresh process) it builds
``xcrop.load(items, area=...)`` -> ``composite()`` -> ``predict(model)``, then
materialises the map's whole graph (culled to the map, as a compute of all of it
would), and
cuts one block out of it and optimises that (what each group of blocks that
``to_zarr`` computes pays first). It prints: items, the cube's time steps, pixels,
blocks, tasks, seconds to build the lazy objects and to materialise the graph, the
process's peak RSS above its RSS after imports, and the one block's seconds and tasks.
Nothing is read or computed. Run:
``.venv/bin/python benchmarks/bench_graph.py [--fractions 0.0625 0.25 1] [--chunks 1024]
[--markdown FILE]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from _paths import writable

TOGO_CENTRE = (0.85, 8.6)  # lon, lat
TOGO_PX = 5.7e8
BANDS = {  # asset key: (band, resolution)
    "coastal": ("B01", 60), "blue": ("B02", 10), "green": ("B03", 10), "red": ("B04", 10),
    "rededge1": ("B05", 20), "rededge2": ("B06", 20), "rededge3": ("B07", 20),
    "nir": ("B08", 10), "nir08": ("B8A", 20), "nir09": ("B09", 60), "swir16": ("B11", 20),
    "swir22": ("B12", 20), "scl": ("SCL", 20),
}  # fmt: skip


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def synthetic_items(fraction: float) -> tuple[list[dict], tuple[float, float, float, float]]:
    """Items over the MGRS-like tiles covering a square of ``fraction`` x Togo's area."""
    from pyproj import Transformer

    to_utm = Transformer.from_crs(4326, 32631, always_xy=True)
    to_ll = Transformer.from_crs(32631, 4326, always_xy=True)
    cx, cy = to_utm.transform(*TOGO_CENTRE)
    half = np.sqrt(TOGO_PX * fraction) * 10 / 2
    left, bottom, right, top = cx - half, cy - half, cx + half, cy + half
    lons, lats = to_ll.transform([left, right, right, left], [bottom, bottom, top, top])
    area = (min(lons), min(lats), max(lons), max(lats))
    size = 109_800
    x0s = [x for x in range(0, 900_000, 100_000) if x < right and x + size > left]
    y0s = [y for y in range(0, 1_500_000, 100_000) if y < top and y + size > bottom]
    start = dt.datetime(2019, 3, 1, 10, 20)
    items = []
    for x0 in x0s:
        for y0 in y0s:
            ring = [(x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size), (x0, y0)]
            lon, lat = to_ll.transform(*zip(*ring, strict=True))
            geometry = {"type": "Polygon", "coordinates": [list(zip(lon, lat, strict=True))]}
            tile = f"31N{x0 // 100_000}{y0 // 100_000}"
            for d in range(73):
                when = start + dt.timedelta(days=5 * d)
                item_id = f"S2B_{tile}_{when:%Y%m%d}_0_L2A"
                assets = {}
                for key, (band, res) in BANDS.items():
                    n = size // res
                    assets[key] = {
                        "href": f"https://example.invalid/{item_id}/{key}.tif",
                        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                        "proj:shape": [n, n],
                        "proj:transform": [res, 0.0, x0, 0.0, -res, y0 + size],
                        "eo:bands": [{"name": band}],
                        "raster:bands": [
                            {
                                "nodata": 0,
                                "data_type": "uint16",
                                "spatial_resolution": res,
                                "scale": 0.0001,
                                "offset": -0.1,
                            }
                        ],
                        "roles": ["data"],
                    }
                items.append({
                    "type": "Feature", "stac_version": "1.1.0", "id": item_id,
                    "stac_extensions": [
                        "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                        "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                    ],
                    "geometry": geometry, "bbox": [min(lon), min(lat), max(lon), max(lat)],
                    "properties": {
                        "datetime": f"{when:%Y-%m-%dT%H:%M:%SZ}", "platform": "sentinel-2b",
                        "constellation": "sentinel-2", "eo:cloud_cover": 10.0,
                        "s2:processing_baseline": "05.00", "proj:epsg": 32631,
                        "grid:code": f"MGRS-{tile}", "view:sun_azimuth": 130.0,
                        "view:sun_elevation": 55.0,
                    },
                    "links": [], "assets": assets, "collection": "sentinel-2-l2a",
                })  # fmt: skip
    return items, area


def one(fraction: float, chunks: int) -> dict:
    base = _rss_mb()
    import dask

    import xcrop
    from xcrop._model import MultiHeadLSTM

    imported = _rss_mb()
    items, area = synthetic_items(fraction)
    t0 = time.perf_counter()
    cube = xcrop.load(items, area=area, chunks=chunks)
    comp = xcrop.composite(cube)
    model = MultiHeadLSTM(tuple(str(b) for b in comp.data.band.values))
    prob = comp.predict(model)
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    # the graph a compute of the whole map would run: culled to the map's keys (the
    # cube's layer is lazy: only the reads some task needs are made), every layer
    # materialised
    graph = prob.data.__dask_graph__()
    keys = {k for row in prob.data.__dask_keys__() for k in row}
    tasks = len(dict(graph.cull(keys)))
    materialised = time.perf_counter() - t1
    del graph
    # what each group of to_zarr's write pays before computing: its blocks cut out of
    # the lazy graph and optimised (the middle block: items of several tiles over it)
    ny, nx = prob.data.numblocks
    t2 = time.perf_counter()
    (one_block,) = dask.optimize(prob.data.blocks[ny // 2, nx // 2])
    per_block_tasks = len(dict(one_block.__dask_graph__()))
    per_group = time.perf_counter() - t2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "fraction": fraction, "items": len(items), "shape": dict(cube.sizes),
        "blocks": int(np.prod(prob.data.numblocks)), "tasks": tasks,
        "pixels": cube.sizes["y"] * cube.sizes["x"], "build_s": built,
        "graph_s": materialised, "peak_mb": peak - imported, "imports_mb": imported - base,
        "block_s": per_group, "block_tasks": per_block_tasks,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0625, 0.25, 1.0])
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.chunks)))
        return
    title = (
        f"Togo-sized graph (~{TOGO_PX:.1e} px at 10 m), 73 dates, 13 bands, chunks "
        f"{args.chunks}; synthetic items never read; {os.cpu_count()} cores; each row a "
        "fresh process"
    )
    print(title)
    lines = [
        title,
        "",
        "| area | items | time steps | pixels | blocks | tasks | build s | graph s | peak MB "
        "| tasks per Mpx | one block s | its tasks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    head = (
        f"{'area':>6s} {'items':>6s} {'time':>5s} {'pixels':>9s} {'blocks':>6s} {'tasks':>10s} "
        f"{'build s':>8s} {'graph s':>8s} {'peak MB':>8s} {'tasks/Mpx':>9s} "
        f"{'1 block s':>9s} {'its tasks':>9s}"
    )
    print(head)
    for fraction in args.fractions:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(fraction), "--chunks", str(args.chunks)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode:
            print(f"{fraction:6.3f} failed: {done.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{r['fraction']:6.3f} {r['items']:6d} {r['shape']['time']:5d} "
            f"{r['pixels'] / 1e6:8.1f}M {r['blocks']:6d} {r['tasks']:10,d} {r['build_s']:8.1f} "
            f"{r['graph_s']:8.1f} {r['peak_mb']:8.0f} {r['tasks'] / (r['pixels'] / 1e6):9.0f} "
            f"{r['block_s']:9.2f} {r['block_tasks']:9,d}"
        )
        lines.append(
            f"| {r['fraction']:g} | {r['items']} | {r['shape']['time']} | "
            f"{r['pixels'] / 1e6:.1f} M | {r['blocks']} | {r['tasks']:,} | {r['build_s']:.1f} | "
            f"{r['graph_s']:.1f} | {r['peak_mb']:.0f} | {r['tasks'] / (r['pixels'] / 1e6):.0f} | "
            f"{r['block_s']:.2f} | {r['block_tasks']:,} |"
        )
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
