"""Bytes read and time: ``xcrop.sample_points`` beside loading the full cube, in one run.

The archive is the ``benchmark`` preset's Togo-north region (generated on first use):
2070 x 2070 px at 10 m (20.7 km), 82 items (dates) over the 2019-20 season, every band
a COG in 512 px tiles. Its items are large next to a window, and a season's search hits
all 82 of them (>= 10 items), so it shows what reading windows saves. The demo preset's
items (120-390 px, one COG tile each) are no larger than a window: nothing to save.

Points (``--points``, default 1,000, labelled from the region's crop truth) are laid out
in one of three ways (``--layout``; ``both`` runs block and spread, ``all`` the three):

- ``block`` (default): 1,000 points in a survey block of ``--block-m`` (1 km) square,
  centred in the 10 m COG tile (1, 1) of the region: how labels of a field campaign sit
  in a real Sentinel-2 item (110 km, 11 x 11 tiles of 1024 px). ``sample_points`` should
  read the few tiles under the block, far less than the region.
- ``spread``: the points uniform over the whole region. Their ~650 m spacing chains
  them into one window (``group_size``, 2 km): ``sample_points`` should read what the
  full composite reads, no more (before windows were joined, 121 windows of 2 km
  groups each read their own tiles again: 8x the bytes).
- ``sparse``: ``--sparse-points`` (default 20) points uniform over the region, most of
  them farther apart than ``group_size``: separate windows, each reading the tiles under
  it. This is where windows can read a tile more than once (two windows in one tile),
  the price of not compositing the ground between far-apart points.

Compared, for a layout, with the same bands, score and dates:

- ``full cube``: ``xcrop.search`` of the region (all 82 items, default 1024 px chunks),
  ``xcrop.composite`` computed whole into memory, then ``Composite.sample``: loading
  each item's full cube. Its chunk edges do not fall on tile edges (the search grid
  starts off the region's corner), so it reads more than the files hold;
- ``lazy cube``: the same, sampling the lazy composite (what a user would write): dask
  computes data and counts one after the other and the composite's 5 x 5 halo pulls in
  neighbouring chunks, so it reads more, not less;
- ``sample_points``: ``xcrop.sample_points(points, datetime, catalog=items.json)``.

The score is ``"scl"`` (with the Schmitt score a window must be wider than the shadow
reach to match exactly) and the bands are B04 and B08 (+ NDVI, + SCL for the score): all
11 bands would take the full cube several minutes on 2 cores. This favours windows a
little here: a 20 m band's tile covers 10.24 km, so a window reads at least a quarter of
each 20 m file of this archive. The samples of the three methods are checked equal (``X``
to float tolerance, ``counts`` exactly).

Bytes read are ``rchar`` of ``/proc/self/io`` before and after (bytes returned by read
syscalls of every thread, page-cache hits included: what the method asks for);
``read_bytes`` (what reached the disk) is near 0 once the page cache is warm, which the
script makes it first so that neither method pays the first read. ``GDAL_CACHEMAX`` is
set to 64 MB for both (GDAL's block cache lives as long as an open file: it does not
carry reads from one window or chunk to the next). Imports, GDAL and the catalog cache
are warmed up on the small ``kenya`` region first. Timings are one run each, on the
threaded dask scheduler. Run:
``.venv/bin/python benchmarks/bench_sample_points.py [--layout block|spread|sparse|both|all]
[--markdown FILE]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("GDAL_CACHEMAX", "64")  # MB, before GDAL loads

import argparse
import time

import dask
import geopandas as gpd
import numpy as np
import rasterio
from _paths import writable

import xcrop
from xcrop.datasets import simulated_archive

REGION = "togo-north"
BANDS = ("B04", "B08")
LOAD_BANDS = ["B04", "B08", "SCL"]
SCORE = "scl"
TILE_M = 5120.0  # a 512 px COG tile of a 10 m band


def _io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def _measure(fn):
    before, t0 = _io(), time.perf_counter()
    out = fn()
    seconds, after = time.perf_counter() - t0, _io()
    return (
        out,
        seconds,
        after["rchar"] - before["rchar"],
        after["read_bytes"] - before["read_bytes"],
    )


def make_points(
    archive, layout: str, n: int, block_m: float, seed: int, sparse: int = 20
) -> gpd.GeoDataFrame:
    region = archive.region(REGION)
    left, bottom, right, top = region["bounds"]
    rng = np.random.default_rng(seed)
    if layout == "sparse":
        n = sparse
    if layout == "block":
        cx, cy = left + 1.5 * TILE_M, top - 1.5 * TILE_M  # the centre of tile (1, 1)
        x = rng.uniform(cx - block_m / 2, cx + block_m / 2, n)
        y = rng.uniform(cy - block_m / 2, cy + block_m / 2, n)
    else:
        inset = 50.0
        x = rng.uniform(left + inset, right - inset, n)
        y = rng.uniform(bottom + inset, top - inset, n)
    with rasterio.open(archive.truth(REGION, "crop")) as src:
        labels = np.array([v[0] for v in src.sample(zip(x, y, strict=True))]) > 0
    return gpd.GeoDataFrame(
        {"id": np.arange(n), "label": labels.astype("int8")},
        geometry=gpd.points_from_xy(x, y),
        crs=region["epsg"],
    ).to_crs(4326)


def full_cube(archive, catalog: str, when: str, points, compute: bool):
    cube = xcrop.search(archive.bbox(REGION), when, catalog=catalog, bands=LOAD_BANDS)
    comp = xcrop.composite(cube, score=SCORE, bands=BANDS)
    if compute:  # the whole composite, i.e. every item read in full
        data, counts = dask.compute(comp.data, comp.counts)
        comp = xcrop.Composite(data, counts, comp.dates)
    return comp.sample(points), cube.sizes["time"]


def points_way(catalog: str, when: str, points):
    return xcrop.sample_points(points, when, catalog=catalog, score=SCORE, bands=BANDS)


def _same(a, b) -> bool:
    order = np.argsort(b.ids)
    ids_ok = a.ids.tolist() == b.ids[order].tolist()
    np.testing.assert_allclose(b.X[order], a.X, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(b.counts[order], a.counts)
    return ids_ok


def _warm_page_cache(catalog: str, when: str, archive) -> int:
    """Read the region's files once (the page cache); their total size."""
    items = xcrop.find_items(archive.bbox(REGION), when, catalog=catalog)
    keys = {"B04": "red", "B08": "nir", "SCL": "scl"}
    total = 0
    for item in items:
        for key in keys.values():
            href = item.assets[key].href.removeprefix("file://")
            with open(href, "rb") as f:
                while chunk := f.read(1 << 24):
                    total += len(chunk)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="benchmark")
    parser.add_argument(
        "--layout", choices=["block", "spread", "sparse", "both", "all"], default="block"
    )
    parser.add_argument("--sparse-points", type=int, default=20)
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--block-m", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    archive = simulated_archive(args.preset)
    catalog = str(archive.items_path)
    region = archive.region(REGION)
    when = f"{region['start'][:10]}/{region['end'][:10]}"

    # warm up: imports, GDAL, the parsed catalog, then the page cache of the files read
    kenya = archive.region("kenya")
    k_when = f"{kenya['start'][:10]}/{kenya['end'][:10]}"
    k_points = gpd.GeoDataFrame(
        {"id": [0], "label": [1]},
        geometry=gpd.points_from_xy([np.mean(kenya["bbox"][::2])], [np.mean(kenya["bbox"][1::2])]),
        crs=4326,
    )
    xcrop.search(kenya["bbox"], k_when, catalog=catalog, bands=LOAD_BANDS).isel(time=0).compute()
    points_way(catalog, k_when, k_points)
    files = _warm_page_cache(catalog, when, archive)

    size = region["size_px"]
    print(
        f"{args.preset}/{REGION}: {size} x {size} px items, bands {'+'.join(LOAD_BANDS)}, "
        f"score={SCORE!r}, {when}; {os.cpu_count()} cores, threaded scheduler, "
        f"GDAL_CACHEMAX={os.environ['GDAL_CACHEMAX']} MB; page cache warm; the files of "
        f"these bands in the region: {files / 1e6:.0f} MB"
    )
    layouts = {"both": ["block", "spread"], "all": ["block", "spread", "sparse"]}.get(
        args.layout, [args.layout]
    )
    rows, described = [], {}
    for layout in layouts:
        points = make_points(
            archive, layout, args.points, args.block_m, args.seed, args.sparse_points
        )
        (full, n_items), t_full, b_full, d_full = _measure(
            lambda points=points: full_cube(archive, catalog, when, points, compute=True)
        )
        (lazy, _), t_lazy, b_lazy, d_lazy = _measure(
            lambda points=points: full_cube(archive, catalog, when, points, compute=False)
        )
        pts, t_pts, b_pts, d_pts = _measure(lambda points=points: points_way(catalog, when, points))
        same = _same(full, lazy) and _same(full, pts)
        what = f"{args.block_m:.0f} m block in one COG tile" if layout == "block" else "region"
        print(
            f"\n{layout}: {len(points)} points over the {what}; {n_items} items; "
            f"sample_points used {pts.report['windows']} windows; {len(pts)} samples; "
            f"X and counts of all three equal: {same}"
        )
        rows.append((layout, "full cube, composite computed, sample", t_full, b_full, d_full))
        rows.append((layout, "lazy cube, composite().sample (dask)", t_lazy, b_lazy, d_lazy))
        rows.append((layout, "xcrop.sample_points", t_pts, b_pts, d_pts))
        described[layout] = (len(points), pts.report["windows"], same)
    print(
        f"\n{'layout':7s} {'method':39s} {'seconds':>8s} {'MB read':>9s} {'disk MB':>8s} "
        f"{'x fewer B':>9s} {'x faster':>8s}"
    )
    for layout, name, seconds, rchar, disk in rows:
        base = next(r for r in rows if r[0] == layout)
        print(
            f"{layout:7s} {name:39s} {seconds:8.1f} {rchar / 1e6:9.1f} {disk / 1e6:8.1f} "
            f"{base[3] / rchar:9.2f} {base[2] / seconds:8.2f}"
        )
    print("(MB read: rchar, page-cache hits included; disk MB: read_bytes; ratios vs full cube)")
    if args.markdown:
        lines = [
            f"preset {args.preset}, region {REGION} ({size} x {size} px items in 512 px COG "
            f"tiles, {n_items} items), bands {'+'.join(LOAD_BANDS)}, score={SCORE!r}, "
            f"threaded scheduler, {os.cpu_count()} cores, page cache warm, "
            f"GDAL_CACHEMAX={os.environ['GDAL_CACHEMAX']} MB; the files of these bands: "
            f"{files / 1e6:,.0f} MB; one run",
            "",
            "| layout | points | windows | method | seconds | MB read | x fewer bytes | x faster |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for layout, name, seconds, rchar, _ in rows:
            base = next(r for r in rows if r[0] == layout)
            n, windows, same = described[layout]
            lines.append(
                f"| {layout} | {n:,} | {windows if 'sample_points' in name else ''} | {name} | "
                f"{seconds:.1f} | {rchar / 1e6:,.0f} | {base[3] / rchar:.2f} | "
                f"{base[2] / seconds:.2f} |"
            )
        same_all = all(d[2] for d in described.values())
        lines += ["", f"samples of the three methods equal in every layout: {same_all}"]
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
