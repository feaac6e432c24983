"""The main job as a script: the whole method on the simulated archive (``make demo``).

Same as ``xcrop demo``: generate (once, then cached) the simulated Sentinel-2 archive,
serve it with a real STAC API on 127.0.0.1, composite the two Togo regions, sample the
hand labels (local), the crowd labels (global) and the consensus test set, grid-search
the multi-headed and single-headed LSTMs, fit random forest and SVM, evaluate them with
the two existing maps, predict both regions into Zarr/COG and write the report.

    python examples/demo.py [--preset demo|tiny] [--out xcrop-demo]

Read ``xcrop/demo.py`` for the steps as library calls.
"""

from __future__ import annotations

import argparse
import sys

from xcrop import run_demo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=["demo", "tiny"])
    parser.add_argument("--out", default="xcrop-demo", help="report folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run_demo(args.preset, out=args.out, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
