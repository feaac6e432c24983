"""Scaling out: the end-to-end pipeline on a dask.distributed LocalCluster of 1 and 2
worker processes (one thread each), writing to an S3 server, in one run.

The pipeline is ``bench_end_to_end.py``'s (``xcrop.search`` of the ``benchmark``
preset's Togo-north region cut to a ``--size`` px window at its corner, ``composite()``,
``predict`` with an untrained model, ``to_zarr``), with ``--chunks`` px chunks (default
512: 4 blocks for 1024^2 px, enough for 2 workers), its map written to
``s3://maps/...`` on moto's S3 server on 127.0.0.1 (started here, as the tests start it:
``pip install "moto[server]"``). Each cluster is started fresh (workers import xcrop
before the clock starts); the workers read the COGs themselves and write their blocks
to the bucket, the client only schedules. Printed: seconds per cluster, the speed-up
(1 worker / n workers), the parallel efficiency (speed-up / n) and the maps checked
identical. Run::

    .venv/bin/python benchmarks/bench_scaling.py [--size 1024] [--chunks 512] [--markdown F]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _paths import writable

from tests.s3server import make_bucket, options, s3_server

DATETIME = "2019-03-01/2020-02-29"
REGION = "togo-north"


def _warm(_):
    import xcrop  # noqa: F401  (imports before the clock)

    return os.getpid()


def run(archive, model, size: int, chunks: int, workers: int, url: str, storage: dict) -> float:
    import distributed

    import xcrop

    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        client.gather(client.map(_warm, range(workers), pure=False))
        t0 = time.perf_counter()
        cube = xcrop.search(archive.bbox(REGION), DATETIME, catalog=str(archive.items_path),
                            collection="sentinel-2-l2a", chunks=chunks)  # fmt: skip
        window = archive.window(REGION)
        y0, x0 = window["y"].start, window["x"].start
        cube = cube.sel(y=slice(y0, None), x=slice(x0, None)).isel(
            y=slice(0, size), x=slice(0, size)
        )
        comp = cube.cropmask.composite()
        prob = comp.predict(model)
        xcrop.to_zarr(prob, url, storage_options=storage, progress=False)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    args = parser.parse_args()
    import xcrop
    from xcrop._model import MultiHeadLSTM
    from xcrop.datasets import simulated_archive

    archive = simulated_archive("benchmark")
    bands = (*xcrop.REFLECTANCE_BANDS, "NDVI")
    model = MultiHeadLSTM(bands)  # one model for both runs: the maps must be identical
    title = (
        f"preset benchmark, region {REGION}, {DATETIME} (73 dates x 13 bands), "
        f"{args.size}^2 px, chunks {args.chunks}, default Schmitt score, untrained model; "
        f"LocalCluster of worker processes with 1 thread each, map written to moto's S3 "
        f"server on 127.0.0.1; {os.cpu_count()} cores"
    )
    print(title)
    with s3_server() as endpoint:
        make_bucket(endpoint, "maps")
        storage = options(endpoint)
        seconds, maps = {}, {}
        for n in (1, 2):
            url = f"s3://maps/scaling-{n}.zarr"
            seconds[n] = run(archive, model, args.size, args.chunks, n, url, storage)
            maps[n] = xcrop.open_probability(url, storage_options=storage).values
            print(f"  {n} worker(s): {seconds[n]:.1f} s")
        same = np.array_equal(maps[1], maps[2], equal_nan=True)
    lines = [title, "", "| workers | seconds | speed-up | efficiency |", "|---|---|---|---|"]
    for n in (1, 2):
        speedup = seconds[1] / seconds[n]
        lines.append(f"| {n} | {seconds[n]:.1f} | {speedup:.2f} | {speedup / n:.2f} |")
    lines += ["", f"maps of 1 and 2 workers identical: {same}"]
    print("\n".join(lines[2:]))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
