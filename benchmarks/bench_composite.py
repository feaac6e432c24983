"""Compositing speed and memory: xcrop beside one pass over the data, in one run.

An in-memory uint16 cube (default 72 dates x 12 bands x 2048 x 2048, 512 px chunks, with
bright cloud blobs and their shadows) is scaled lazily to float32 reflectance, then:

1. ``max("time")``: a plain reduction, one pass over the data (the floor);
2. a straightforward xarray composite: per 30-day bin, ``argmin`` of B02 (a crude
   cloudiness) and vectorised ``isel`` of all bands;
3. ``xcrop.composite`` with a given cloudiness array (the same B02): xcrop's selection
   machinery alone;
4. ``xcrop.composite`` with the full Schmitt cloud + shadow score (default settings).

Each result is stored (``dask.array.store``) into one preallocated, already touched
numpy array, as a Zarr write would store it: none of the runs pays ``compute()``'s final
single-threaded concatenation (a 2.6 GB copy for a composite of the default cube, 0.2 GB
for the reduction), and peak memory counts the work, not the result. Threaded
scheduler; the best of ``--repeat`` runs (the xarray composite runs once). Prints
seconds, the ratio to the plain reduction and the peak memory above the cube's and the
result buffer's. Run:
``.venv/bin/python benchmarks/bench_composite.py [--size 2048] [--dates 72] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import dask
import dask.array as da
import numpy as np
import psutil
import rioxarray  # noqa: F401
import xarray as xr
from _paths import writable

import xcrop
from xcrop._sentinel2 import REFLECTANCE_BANDS

SPECTRUM = np.array([0.05, 0.08, 0.06, 0.12, 0.25, 0.3, 0.32, 0.33, 0.34, 0.24, 0.15])


def make_cube(size: int, dates: int, chunk: int) -> xr.DataArray:
    rng = np.random.default_rng(0)
    bands = [*REFLECTANCE_BANDS, "B01"]
    spectrum = np.append(SPECTRUM, 0.04)
    dn = np.empty((dates, len(bands), size, size), "uint16")
    yy, xx = np.mgrid[0:size, 0:size]
    for t in range(dates):
        cloud = np.zeros((size, size), "float32")
        for _ in range(rng.integers(0, 6)):
            cy, cx, r = [*rng.integers(0, size, 2).tolist(), int(rng.integers(20, size // 6))]
            cloud = np.maximum(cloud, np.clip(1 - np.hypot(yy - cy, xx - cx) / r, 0, 1) * 2)
        cloud = np.clip(cloud, 0, 1)
        shadow = np.roll(cloud, (60, -40), axis=(0, 1)) * (1 - cloud)
        for b in range(len(bands)):
            refl = spectrum[b] * (1 - 0.6 * shadow) * (1 - cloud) + 0.5 * cloud
            dn[t, b] = np.clip(refl * 10000 + rng.integers(0, 60, (size, size)), 1, 65535)
    times = np.datetime64("2019-03-01", "ns") + np.arange(dates) * np.timedelta64(5, "D")
    data = da.from_array(dn, chunks=(1, 1, chunk, chunk))
    return xr.DataArray(
        data.astype("float32") * np.float32(1e-4),
        dims=("time", "band", "y", "x"),
        coords={
            "time": times,
            "band": bands,
            "y": 1e6 - 10 * np.arange(size),
            "x": 3e5 + 10 * np.arange(size),
            "sun_azimuth": ("time", np.full(dates, 120.0)),
            "sun_zenith": ("time", np.full(dates, 30.0)),
            "cloud_cover": ("time", rng.uniform(0, 50, dates)),
        },
    ).rio.write_crs(32631)


def naive(cube: xr.DataArray) -> xr.DataArray:
    start = cube.time.values[0]
    period = ((cube.time - start) / np.timedelta64(30, "D")).astype(int)
    out = []
    for p in range(12):
        members = np.nonzero(period.values == p)[0]
        if len(members) == 0:
            continue
        sub = cube.isel(time=members)
        best = sub.sel(band="B02").drop_vars("band").argmin("time").compute()  # no lazy isel
        out.append(sub.isel(time=best))
    return xr.concat(out, dim="period").transpose("period", "band", "y", "x")


class PeakMemory:
    """Peak resident memory of this process above its level at start, sampled."""

    def __enter__(self):
        self.proc = psutil.Process(os.getpid())
        self.base = self.peak = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()

    @property
    def gb(self) -> float:
        return (self.peak - self.base) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--dates", type=int, default=72)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-naive", action="store_true", help="skip the slow xarray run")
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    args = parser.parse_args()
    t0 = time.perf_counter()
    cube = make_cube(args.size, args.dates, args.chunk)
    gb = args.dates * 12 * args.size**2 * 2 / 1e9
    print(
        f"cube: {args.dates} dates x 12 bands x {args.size}^2 px uint16 ({gb:.1f} GB in "
        f"memory, made in {time.perf_counter() - t0:.0f} s), chunks {args.chunk}, "
        f"{os.cpu_count()} cores, threaded scheduler, best of {args.repeat}"
    )
    score = cube.sel(band="B02").drop_vars("band")
    buffer = np.ones((12, 13, args.size, args.size), "float32")  # touched: pages exist
    periods = min(12, -(-args.dates * 5 // 30))  # naive() leaves out periods without dates
    runs = {
        "max('time') (one pass: the floor)": (lambda: cube.max("time").data, buffer[0, :12]),
        "xarray: bins + argmin + isel": (lambda: naive(cube).data, buffer[:periods, :12]),
        "xcrop.composite, given score": (
            lambda: xcrop.composite(cube, score=score).data.data,
            buffer,
        ),
        "xcrop.composite, Schmitt score": (lambda: xcrop.composite(cube).data.data, buffer),
    }
    if args.no_naive:
        runs.pop("xarray: bins + argmin + isel")
    rows = []
    with dask.config.set(scheduler="threads"):
        for name, (make, out) in runs.items():
            best = (np.inf, 0.0)
            for _ in range(1 if name.startswith("xarray") else args.repeat):
                with PeakMemory() as mem:
                    start = time.perf_counter()
                    da.store(make(), out, lock=False)
                    seconds = time.perf_counter() - start
                best = min(best, (seconds, mem.gb))
                print(f"  done: {name} {seconds:.1f} s", flush=True)
            rows.append((name, *best))
    floor = rows[0][1]
    print(f"{'method':36s} {'seconds':>8s} {'x floor':>8s} {'peak GB':>8s}")
    for name, seconds, peak in rows:
        print(f"{name:36s} {seconds:8.1f} {seconds / floor:8.2f} {peak:8.2f}")
    if args.markdown:
        args.markdown.write_text(markdown(rows, args, gb) + "\n")


#: The table's names of the runs.
NAMES = {
    "max('time') (one pass: the floor)": '`max("time")`: one pass over the data',
    "xarray: bins + argmin + isel": "xarray: 30-day bins + argmin + vectorised isel",
    "xcrop.composite, given score": "`xcrop.composite`, given cloudiness array",
    "xcrop.composite, Schmitt score": "`xcrop.composite`, Schmitt cloud + shadow score",
}


def markdown(rows: list[tuple[str, float, float]], args: argparse.Namespace, gb: float) -> str:
    """The runs as the table docs/performance.md includes, headed by the command."""
    command = " ".join(sys.argv[1:])
    floor = rows[0][1]
    lines = [
        f"<!-- generated: `python benchmarks/bench_composite.py {command}`; "
        "do not edit by hand -->",
        "",
        f"*{args.dates} dates x 12 bands x {args.size}^2 px uint16 ({gb:.1f} GB), chunks "
        f"{args.chunk}, {os.cpu_count()} cores, threaded scheduler, best of {args.repeat}*",
        "",
        "| method | seconds | x one pass | peak GB above cube and result |",
        "|---|---|---|---|",
    ]
    for name, seconds, peak in rows:
        lines.append(f"| {NAMES[name]} | {seconds:.1f} | {seconds / floor:.2f} | {peak:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
