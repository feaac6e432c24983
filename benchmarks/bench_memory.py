"""Peak memory of composite + predict + to_zarr at 1x, 4x and 16x the area, in one run.

The requirement: peak memory of the whole pipeline must stay flat as the area grows
(set by the chunk size, not by the area). Uses the simulated archive (``benchmark``
preset, region ``togo-north``: 2070 x 2070 px at 10 m, generated and cached on first
use) and, for each window (default 256^2, 512^2, 1024^2 px: 1x, 4x, 16x; each starts at
the searched cube's first chunk boundary inside the region, so it holds 1, 4, 16 whole
``--chunks`` (256) px chunks), runs in a FRESH Python process (so that peak RSS belongs
to that run alone):

    xcrop.search(bbox, "2019-03-01/2020-02-29", chunks=...) -> .sel(x=..., y=...)
    -> cube.cropmask.composite(score=...) -> .predict(model) -> prob.cropmask.to_zarr(...)

on the threaded scheduler with ``--threads`` (2) workers, for two approaches:

- ``xcrop``: the lazy pipeline above, chunk by chunk;
- ``eager``: the baseline: the same pipeline, but the composite is first computed into
  memory (``comp.data.compute()``) and then predicted and written from memory (re-chunked
  to the same chunks), as a user holding a whole composite as numpy would; its memory
  grows with the area.

The model is an UNTRAINED ``xcrop.MultiHeadLSTM`` on the composite's bands (weights do
not change memory or time). The cloud score defaults to ``"scl"`` (SCL classes alone),
the cheapest, and the areas are 256^2 .. 1024^2 px, to keep the run near 10 minutes on 2
cores (the 73 dates x 13 bands of a 512^2 window take ~70 s; ``--sizes 512 1024 2048``
works, but takes ~30 minutes); ``--score schmitt`` runs the default Schmitt score
instead (slower; more memory per task for its shadow halo). All 13 bands are loaded.

Each run reports: wall seconds of the pipeline (graph building + compute + write), peak
RSS of the process (max of a 50 ms sampling thread and ``ru_maxrss``), RSS just before
computing (imports, torch, graph: the fixed part), the peak above that, pixels, the
number of spatial chunks, and the peak RSS above the fixed part per chunk (of
``--chunks``^2 px; the eager rows use the lazy row's fixed part of the same size); then
the ratio of peak memory 16x / 1x for each approach. Timings are noisy on a shared machine. Run::

    .venv/bin/python benchmarks/bench_memory.py [--sizes 256 512 1024] [--chunks 256]
        [--score scl|schmitt] [--threads 2] [--approaches xcrop eager]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _paths import writable

DATETIME = "2019-03-01/2020-02-29"
REGION = "togo-north"


class PeakRSS:
    """Peak resident memory of this process, sampled by a thread every ``interval`` s."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self.proc = psutil.Process(os.getpid())
        self.interval = interval
        self.peak = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def now(self) -> int:
        return self.proc.memory_info().rss

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        return max(self.peak, maxrss)


def _start(coord, region: slice, n: int, chunks: int) -> slice:
    """``n`` pixels of the region along one axis, from the first chunk boundary of the
    searched cube inside the region when they fit (whole chunks), else from its edge."""
    inside = (coord >= min(region.start, region.stop)) & (coord <= max(region.start, region.stop))
    index = np.flatnonzero(inside.values)
    first, last = int(index[0]), int(index[-1])
    aligned = -(-first // chunks) * chunks
    start = aligned if aligned + n - 1 <= last else first
    if start + n - 1 > last:
        raise SystemExit(f"{n} px do not fit in the region ({last - first + 1} px)")
    return slice(start, start + n)


def child(args: argparse.Namespace) -> dict:
    """One pipeline run in this process; returns its measurements."""
    mem = PeakRSS()
    import dask
    import torch

    import xcrop
    from xcrop.datasets import simulated_archive

    torch.set_num_threads(1)  # the dask threads are the parallelism
    archive = simulated_archive(args.preset)
    window = archive.window(REGION)
    n = args.size
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        t0 = time.perf_counter()
        cube = xcrop.search(
            archive.bbox(REGION),
            DATETIME,
            catalog=str(archive.items_path),
            collection="sentinel-2-l2a",
            chunks=args.chunks,
        )
        cube = cube.isel(x=_start(cube.x, window["x"], n, args.chunks))
        cube = cube.isel(y=_start(cube.y, window["y"], n, args.chunks))
        comp = cube.cropmask.composite(score=args.score).data
        if args.approach == "eager":
            comp = comp.copy(data=comp.data.compute()).chunk({"y": args.chunks, "x": args.chunks})
        model = xcrop.MultiHeadLSTM(tuple(str(b) for b in comp.band.values)).eval()
        prob = comp.cropmask.predict(model)
        base = mem.now() if args.approach == "xcrop" else None
        blocks = int(np.prod(prob.data.numblocks))
        with tempfile.TemporaryDirectory() as tmp:
            prob.cropmask.to_zarr(Path(tmp) / "prob.zarr", progress=False)
        seconds = time.perf_counter() - t0
    peak = mem.stop()
    return {
        "approach": args.approach,
        "size": n,
        "pixels": n * n,
        "blocks": blocks,
        "times": int(cube.sizes["time"]),
        "seconds": seconds,
        "peak": peak,
        "base": base,
    }


def run_child(args: argparse.Namespace, approach: str, size: int) -> dict:
    cmd = [
        sys.executable, __file__, "--child", "--approach", approach, "--size", str(size),
        "--chunks", str(args.chunks), "--score", args.score, "--threads", str(args.threads),
        "--preset", args.preset,
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--score", default="scl", choices=["scl", "schmitt"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="benchmark")
    parser.add_argument("--approaches", nargs="+", default=["xcrop", "eager"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--approach", default="xcrop", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    # generate the archive once, outside the measured runs, in its own process: a child's
    # ru_maxrss starts at the RSS of the parent that forked it
    make = f"from xcrop.datasets import simulated_archive; simulated_archive({args.preset!r})"
    subprocess.run([sys.executable, "-c", make], check=True)
    print(
        f"preset {args.preset}, region {REGION}, {DATETIME}, score={args.score!r}, "
        f"{args.chunks} px chunks, threaded scheduler with {args.threads} threads, "
        f"{os.cpu_count()} cores; untrained MultiHeadLSTM; one fresh process per row",
        flush=True,
    )
    rows = []
    for approach in args.approaches:
        for size in args.sizes:
            row = run_child(args, approach, size)
            rows.append(row)
            print(f"  done: {approach} {size}^2 px in {row['seconds']:.0f} s", flush=True)
    # the fixed part (imports, torch, graph): RSS just before the lazy run's compute
    fixed = {r["size"]: r["base"] for r in rows if r["base"] is not None}
    chunk_px = args.chunks**2
    print(
        f"\n{'approach':8s} {'area':>4s} {'window':>11s} {'pixels':>10s} {'chunks':>6s} "
        f"{'seconds':>8s} {'peak RSS MB':>11s} {'fixed MB':>8s} {'above MB':>8s} "
        f"{'MB/chunk':>8s}"
    )
    smallest = min(args.sizes)
    for r in rows:
        base = fixed.get(r["size"], min(fixed.values()) if fixed else 0)
        above = (r["peak"] - base) / 1e6
        r["above"] = above
        print(
            f"{r['approach']:8s} {r['size'] ** 2 // smallest**2:>3d}x "
            f"{r['size']:>5d}^2 px {r['pixels']:>10d} {r['blocks']:>6d} {r['seconds']:8.1f} "
            f"{r['peak'] / 1e6:11.0f} {base / 1e6:8.0f} {above:8.0f} "
            f"{above * chunk_px / r['pixels']:8.1f}"
        )
    print(f"(each chunk at most {args.chunks}^2 px; {rows[0]['times']} dates; MB = 1e6 bytes)")
    if args.markdown:
        args.markdown.write_text(markdown(rows, smallest, args) + "\n")
    largest = max(args.sizes)
    for approach in args.approaches:
        mine = {r["size"]: r for r in rows if r["approach"] == approach}
        if smallest in mine and largest in mine:
            lo, hi = mine[smallest], mine[largest]
            print(
                f"{approach}: peak RSS {largest}^2 / {smallest}^2 = {hi['peak'] / lo['peak']:.2f}"
                f" (above the fixed part: {hi['above'] / lo['above']:.2f})"
            )


def markdown(rows: list[dict], smallest: int, args: argparse.Namespace) -> str:
    """The rows as the table docs/performance.md includes, headed by the command."""
    lines = [
        f"<!-- generated: `python benchmarks/bench_memory.py {' '.join(sys.argv[1:])}`; "
        "do not edit by hand -->",
        "",
        f"*preset {args.preset}, {rows[0]['times']} dates, score={args.score!r}, "
        f"{args.chunks} px chunks, {args.threads} threads, {os.cpu_count()} cores*",
        "",
        "| approach | area | chunks | seconds | peak RSS MB | above MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        area = f"{r['size'] ** 2 // smallest**2}x ({r['size']}^2 px)"
        lines.append(
            f"| {r['approach']} | {area} | {r['blocks']} | {r['seconds']:.1f} "
            f"| {r['peak'] / 1e6:,.0f} | {r['above']:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
