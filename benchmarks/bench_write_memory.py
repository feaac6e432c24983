"""Peak memory of ``write_composite`` per block in flight, to size the writers' memory
budget: the benchmark preset (togo-north, 73 dates x 13 bands, default Schmitt score),
one fresh process per run, ``--window`` px square (whole chunks), for each ``--chunks``
size and ``--in-flight`` count, on the threaded scheduler with ``--threads`` workers.

Each row: chunk size, blocks in flight, wall seconds, peak RSS, RSS before the write
(imports and graph), the peak above it, and what xcrop estimates for the same write
(the composite's ``bytes_fixed`` + blocks in flight x ``bytes_per_pixel`` x chunk^2,
which the writers divide into their memory budget; ``xcrop._memory`` holds the model
fitted to these measurements), so the estimate is checked against the measurement in
the same run (est/meas >= 1: the estimate is on the safe side). Run::

    .venv/bin/python benchmarks/bench_write_memory.py [--chunks 256 512 1024]
        [--in-flight 1 2] [--window 1024] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import DATETIME, REGION, PeakRSS, _start


def child(args: argparse.Namespace) -> dict:
    mem = PeakRSS()
    import dask

    import xcrop
    from xcrop.datasets import simulated_archive

    archive = simulated_archive("benchmark")
    window = archive.window(REGION)
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        t0 = time.perf_counter()
        cube = xcrop.search(archive.bbox(REGION), DATETIME, catalog=str(archive.items_path),
                            collection="sentinel-2-l2a", chunks=args.chunk)  # fmt: skip
        n = min(args.window, args.chunk * (len(cube.x) // args.chunk))
        cube = cube.isel(x=_start(cube.x, window["x"], n, args.chunk))
        cube = cube.isel(y=_start(cube.y, window["y"], n, args.chunk))
        comp = cube.cropmask.composite()
        # what xcrop plans for: the write's fixed part and each block in flight
        attrs = comp.data.attrs
        flight = min(args.in_flight, (n // args.chunk) ** 2)  # no more than the blocks
        estimate = attrs["bytes_fixed"] + flight * attrs["bytes_per_pixel"] * args.chunk**2
        base = mem.now()
        with tempfile.TemporaryDirectory() as tmp:
            xcrop.write_composite(comp, Path(tmp) / "c.zarr", progress=False,
                                  in_flight=args.in_flight, memory_budget=False)  # fmt: skip
        seconds = time.perf_counter() - t0
    peak = mem.stop()
    return {"chunk": args.chunk, "in_flight": args.in_flight, "window": n, "seconds": seconds,
            "peak": peak, "base": base, "estimate": estimate,
            "times": int(cube.sizes["time"]), "bands": int(cube.sizes["band"])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--flight", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.in_flight = args.flight
        print(json.dumps(child(args)))
        return
    from xcrop.datasets import simulated_archive

    simulated_archive("benchmark")  # generated (once) before any timed run
    print(f"{'chunk':>6} {'flight':>6} {'window':>6} {'s':>7} {'peak MB':>8} {'base MB':>8} "
          f"{'above MB':>9} {'est. MB':>8} {'est/meas':>8}")  # fmt: skip
    for chunk in args.chunks:
        for flight in args.in_flight:
            cmd = [sys.executable, __file__, "--child", "--chunk", str(chunk),
                   "--flight", str(flight), "--window", str(args.window),
                   "--threads", str(args.threads)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            above, est = r["peak"] - r["base"], r["estimate"]
            print(f"{chunk:>6} {flight:>6} {r['window']:>6} {r['seconds']:>7.1f} "
                  f"{r['peak'] / 1e6:>8.0f} {r['base'] / 1e6:>8.0f} {above / 1e6:>9.0f} "
                  f"{est / 1e6:>8.0f} {est / above:>8.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
