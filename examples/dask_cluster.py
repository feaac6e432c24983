"""Scale out on dask.distributed: the same code, with a Client.

    python examples/dask_cluster.py [--workers 2] [--preset demo]

xcrop uses whatever dask scheduler is active: with a ``Client`` every compute goes to
the cluster (a ``LocalCluster`` here; ``Client("tcp://scheduler:8786")``, dask-gateway
or coiled on a real one). The model is sent to each worker once (one graph key, a
per-process kernel cache); each Zarr block is one task, written by the worker that made
it, and a record of finished blocks lets an interrupted write resume. Memory per worker
is set by the chunk size, not by the area.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from distributed import Client, LocalCluster

import xcrop
from xcrop.datasets import simulated_archive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--preset", default="demo", choices=["demo", "tiny"])
    parser.add_argument("--chunks", type=int, default=128, help="pixels per chunk side")
    parser.add_argument("--out", default="cluster-map.zarr", type=Path)
    args = parser.parse_args()
    archive = simulated_archive(args.preset)
    region = "togo-north"
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1) as cluster,
        Client(cluster) as client,
    ):
        print(f"dashboard: {client.dashboard_link}")
        t0 = time.perf_counter()
        cube = xcrop.search(archive.bbox(region), "2019-03-01/2020-02-29",
                            catalog=str(archive.catalog_path), chunks=args.chunks)  # fmt: skip
        comp = cube.sel(**archive.window(region)).cropmask.composite()
        hand = archive.labels / "hand" / "crop_points" / "crop_points.shp"
        non = archive.labels / "hand" / "noncrop_points" / "noncrop_points.shp"
        local = comp.sample(xcrop.read_labels(hand, label=1)).concat(
            comp.sample(xcrop.read_labels(non, label=0))
        )
        model, _ = xcrop.train(local, seed=0)
        prob = comp.predict(model)
        xcrop.to_zarr(prob, args.out, overwrite=True)
        print(f"{args.out}: {dict(prob.sizes)} in {time.perf_counter() - t0:.0f} s "
              f"on {args.workers} workers")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
