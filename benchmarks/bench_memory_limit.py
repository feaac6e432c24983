"""``xcrop composite`` of the benchmark preset's whole togo-north region (2070 x 2070 px,
73 dates x 13 bands, Schmitt score) under a memory limit, as a user's container or batch
job would impose it: a real cgroup (v1 memory controller; needs root), one run per
``--chunks`` size. Prints, for each: exit status, whether the kernel's OOM killer
struck, the cgroup's peak memory (page cache included: the kernel reclaims it at the
limit), the process's peak resident memory, seconds, and the last line xcrop printed.

``--checkout PATH`` runs another checkout's xcrop (before/after comparisons). Run::

    .venv/bin/python benchmarks/bench_memory_limit.py [--limit 1.5GB] [--chunks 512 1024]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup/memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", default="1.5GB")
    parser.add_argument("--chunks", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--checkout", type=Path, help="another checkout's xcrop (PYTHONPATH)")
    args = parser.parse_args()
    from dask.utils import parse_bytes

    from xcrop.datasets import simulated_archive

    if not os.access(CGROUP, os.W_OK):
        raise SystemExit("needs a writable cgroup v1 memory controller (root)")
    archive = simulated_archive("benchmark")
    bbox = ",".join(f"{v:.6f}" for v in archive.bbox("togo-north"))
    limit = parse_bytes(args.limit)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(args.checkout or Path(__file__).resolve().parents[1])}  # fmt: skip
    print(f"limit {limit / 1e9:.2f} GB, xcrop from {args.checkout or 'this checkout'}")
    print(
        f"{'chunks':>6} {'exit':>5} {'OOM':>4} {'cgroup MB':>9} {'RSS MB':>7} {'s':>6}  last line"
    )
    for chunks in args.chunks:
        group = CGROUP / f"xcrop-bench-{os.getpid()}-{chunks}"
        group.mkdir()
        try:
            (group / "memory.limit_in_bytes").write_text(str(limit))
            (group / "memory.memsw.limit_in_bytes").write_text(str(limit))
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-c",
                       f"import os; open('{group}/cgroup.procs', 'w').write(str(os.getpid()));"
                       "import sys; from xcrop._cli import main; sys.exit(main())",
                       "composite", bbox, "2019-03-01/2020-02-29", "--catalog",
                       str(archive.items_path), "--collection", "sentinel-2-l2a",
                       "--chunks", str(chunks), "--out", f"{tmp}/c.zarr"]  # fmt: skip
                t0 = time.perf_counter()
                # cwd: the temporary folder, so that -c imports the xcrop of PYTHONPATH
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
                seconds = time.perf_counter() - t0
            peak = int((group / "memory.max_usage_in_bytes").read_text())
            oom = "oom_kill 0" not in (group / "memory.oom_control").read_text()
            lines = (done.stderr.strip() or done.stdout.strip() or "(nothing)").splitlines()
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # largest child
            print(f"{chunks:>6} {done.returncode:>5} {'yes' if oom else 'no':>4} "
                  f"{peak / 1e6:>9.0f} {rss / 1e6:>7.0f} {seconds:>6.0f}  {lines[-1][:160]}",
                  flush=True)  # fmt: skip
        finally:
            group.rmdir()


if __name__ == "__main__":
    main()
