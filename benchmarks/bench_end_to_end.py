"""End to end beside the floor of its parts: search -> composite -> predict -> to_zarr.

The whole pipeline a user runs, on the simulated archive's COGs (``benchmark`` preset,
region ``togo-north``: 2108 x 2108 px at 10 m, 73 dates x 13 bands, generated and cached
on first use), at growing areas (default 512^2, 1024^2 and 2048^2 px: 1x, 4x, 16x; the
region holds no 4096^2 window), each row in FRESH Python processes (peak RSS is the
run's own):

- ``xcrop``: ``xcrop.search(bbox, dates, catalog=items)`` (its default chunks) cut to
  the window, ``.cropmask.composite()`` (default Schmitt score), ``.predict(model)``,
  ``.cropmask.to_zarr(store)``: seconds (search included), px/s, peak RSS;
- ``floor``, in a second process: ``odc.stac.load`` of the same items, bands and window
  as uint16 DN (nearest, ``xcrop.search``'s default chunks from the window's corner)
  reduced by a max over time (the loader's reading, nothing kept), plus ``predict`` of
  the composite held in memory (computed first, untimed for the floor but printed as
  ``comp s``), split in one strip per thread so both cores run it. floor = read + predict.

Printed per row: seconds, px/s, peak RSS, the floor and its parts, xcrop / floor, and
the hours a Togo-sized map (5.7e8 px) would take at this row's speed on this machine.
Then peak RSS 16x / 1x. The threaded scheduler with ``--threads`` (2) workers; the
model is an UNTRAINED ``xcrop.MultiHeadLSTM`` (weights change neither time nor memory).
Timings are loose on a shared machine; run it alone. Run::

    .venv/bin/python benchmarks/bench_end_to_end.py [--sizes 512 1024 2048]
        [--threads 2] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _paths import writable
from bench_memory import PeakRSS

DATETIME = "2019-03-01/2020-02-29"
REGION = "togo-north"
TOGO_PX = 5.7e8


def _window(archive, n: int, chunks: int):
    """The searched cube cut to ``n`` x ``n`` px at the region's top-left corner (the
    region's first pixels: whatever the chunks, the same window for every run)."""
    import xcrop

    cube = xcrop.search(
        archive.bbox(REGION),
        DATETIME,
        catalog=str(archive.items_path),
        collection="sentinel-2-l2a",
        chunks=chunks,
    )
    window = archive.window(REGION)
    cube = cube.sel(**window)
    if min(cube.sizes["y"], cube.sizes["x"]) < n:
        raise SystemExit(f"{n} px do not fit in the region ({dict(cube.sizes)})")
    return cube.isel(y=slice(0, n), x=slice(0, n))


def child_xcrop(args: argparse.Namespace) -> dict:
    mem = PeakRSS()
    import dask
    import torch

    import xcrop
    from xcrop.datasets import simulated_archive

    torch.set_num_threads(1)
    archive = simulated_archive(args.preset)
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        t0 = time.perf_counter()
        cube = _window(archive, args.size, args.chunks)
        comp = cube.cropmask.composite()
        model = xcrop.MultiHeadLSTM(tuple(str(b) for b in comp.data.band.values)).eval()
        prob = comp.predict(model)
        with tempfile.TemporaryDirectory() as tmp:
            prob.cropmask.to_zarr(Path(tmp) / "prob.zarr", progress=False, in_flight=args.in_flight)
        seconds = time.perf_counter() - t0
    chunks = list(comp.data.data.chunksize[2:])
    return {"seconds": seconds, "peak": mem.stop(), "chunks": chunks}


def child_floor(args: argparse.Namespace) -> dict:
    import dask
    import numpy as np
    import odc.stac
    import torch

    import xcrop
    from xcrop._catalog import find_items
    from xcrop._sentinel2 import normalise_item
    from xcrop.datasets import simulated_archive

    torch.set_num_threads(1)
    archive = simulated_archive(args.preset)
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        cube = _window(archive, args.size, args.chunks)
        items = find_items(
            archive.bbox(REGION), DATETIME, catalog=str(archive.items_path),
            collection="sentinel-2-l2a",
        )  # fmt: skip
        bands = [str(b) for b in cube.band.values]
        items = [normalise_item(it, bands) for it in items]
        gbox = cube.odc.geobox  # the window's own grid
        chunk = args.chunks  # as xcrop's, from the window's corner
        t0 = time.perf_counter()
        ds = odc.stac.load(
            items, bands=bands, geobox=gbox, groupby=lambda item, parsed, idx: idx,
            chunks={"time": 1, "y": chunk, "x": chunk}, dtype="uint16",
            resampling="nearest", nodata=0,
        )  # fmt: skip
        ds.to_dataarray("band").max("time").compute()
        read = time.perf_counter() - t0

        t0 = time.perf_counter()
        held = cube.cropmask.composite().data.compute()
        composite = time.perf_counter() - t0
        strip = -(-held.sizes["y"] // args.threads)
        held = held.chunk({"y": strip, "x": -1})
        model = xcrop.MultiHeadLSTM(tuple(str(b) for b in held.band.values)).eval()
        t0 = time.perf_counter()
        prob = xcrop.predict(held, model).compute()
        predict = time.perf_counter() - t0
        assert np.isfinite(prob.values).any()
    return {"read": read, "predict": predict, "composite": composite}


def _run(args: argparse.Namespace, what: str, size: int) -> dict:
    cmd = [
        sys.executable, __file__, "--child", what, "--size", str(size),
        "--threads", str(args.threads), "--preset", args.preset, "--chunks", str(args.chunks),
        *(["--in-flight", str(args.in_flight)] if args.in_flight else []),
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="benchmark")
    import xcrop

    default = inspect.signature(xcrop.search).parameters["chunks"].default
    parser.add_argument("--chunks", type=int, default=default, help="xcrop.search chunks")
    parser.add_argument("--in-flight", type=int, help="to_zarr's in_flight (default its own)")
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    parser.add_argument("--child", choices=["xcrop", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=512, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = child_xcrop if args.child == "xcrop" else child_floor
        print(json.dumps(run(args)))
        return

    make = f"from xcrop.datasets import simulated_archive; simulated_archive({args.preset!r})"
    subprocess.run([sys.executable, "-c", make], check=True)
    flight = f"in_flight={args.in_flight}" if args.in_flight else "to_zarr's default in_flight"
    head = (
        f"preset {args.preset}, region {REGION}, {DATETIME} (73 dates x 13 bands), default "
        f"Schmitt score, chunks {args.chunks}, {flight}, threaded scheduler with "
        f"{args.threads} threads, {os.cpu_count()} cores; untrained MultiHeadLSTM; fresh "
        "processes per row"
    )
    print(head, flush=True)
    rows = []
    smallest = min(args.sizes)
    for size in args.sizes:
        floor = _run(args, "floor", size)
        mine = _run(args, "xcrop", size)
        px = size * size
        total = floor["read"] + floor["predict"]
        rows.append(
            {
                "area": f"{px // smallest**2}x",
                "window": f"{size}^2",
                "chunks": "x".join(map(str, mine["chunks"])),
                "seconds": mine["seconds"],
                "px/s": px / mine["seconds"],
                "peak RSS MB": mine["peak"] / 1e6,
                "read s": floor["read"],
                "predict s": floor["predict"],
                "floor s": total,
                "x floor": mine["seconds"] / total,
                "Togo h": TOGO_PX / (px / mine["seconds"]) / 3600,
                "floor Togo h": TOGO_PX / (px / total) / 3600,
                "comp s": floor["composite"],
            }
        )
        print(f"  done: {size}^2 px: {mine['seconds']:.0f} s, floor {total:.0f} s", flush=True)
    cols = list(rows[0])
    fmt = {"seconds": ".1f", "px/s": ",.0f", "peak RSS MB": ",.0f", "read s": ".1f",
           "predict s": ".1f", "floor s": ".1f", "x floor": ".2f", "Togo h": ".1f",
           "floor Togo h": ".1f", "comp s": ".1f"}  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [format(r[c], fmt[c]) if c in fmt else str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > 1:
        ratio = rows[-1]["peak RSS MB"] / rows[0]["peak RSS MB"]
        lines.append("")
        lines.append(f"peak RSS {rows[-1]['area']} / {rows[0]['area']}: {ratio:.2f}")
    text = "\n".join(lines)
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(f"{head}\n\n{text}\n")


if __name__ == "__main__":
    main()
