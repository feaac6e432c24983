"""When do global labels help? Single- vs multi-headed LSTM against the number of local labels.

Reads the samples a demo run saved (``xcrop demo`` writes ``samples_local.npz``,
``samples_global.npz`` and ``samples_test.npz`` to its report folder) and, for each number
of local labels and 3 seeds, trains a single-headed LSTM on the local labels alone and a
multi-headed one on the same local labels plus all global ones, and prints the mean test
metrics of both (the paper's sensitivity experiment, with the single-headed baseline).

    python examples/single_vs_multi.py xcrop-demo [--sizes 25 50 100 200 600] [--members 5]
        [--markdown FILE]

``--markdown`` also writes the AUC and accuracy of both side by side, the table of
docs/experiment.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

import xcrop
from xcrop import sensitivity, to_markdown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the folder of a demo run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200, 600])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--members", type=int, default=5, help="LSTMs per training (train's)")
    parser.add_argument("--markdown", type=Path, help="also write both side by side here")
    args = parser.parse_args()
    local = xcrop.Samples.load(args.report / "samples_local.npz")
    global_ = xcrop.Samples.load(args.report / "samples_global.npz")
    test = xcrop.Samples.load(args.report / "samples_test.npz")
    sizes = [min(n, len(local)) for n in args.sizes]
    print(f"{len(local)} local, {len(global_)} global, {len(test)} test samples")
    rows, members = {}, args.members
    for name, fit in (
        ("single-headed", lambda s, seed: xcrop.train(s, seed=seed, members=members)[0]),
        ("multi-headed", lambda s, seed: xcrop.train(s, global_, seed=seed, members=members)[0]),
    ):
        curve = sensitivity(fit, local, test, sizes, seeds=args.seeds)
        rows[name] = curve
        print(f"\n{name}\n" + to_markdown(curve[["accuracy", "roc_auc", "f1"]]))
    auc = pd.DataFrame({name: c["roc_auc"] for name, c in rows.items()})
    print("\nmean test AUC\n" + to_markdown(auc.rename_axis("local labels")))
    if args.markdown:
        both = pd.DataFrame({
            f"{name} {label}": rows[name][metric]
            for metric, label in (("roc_auc", "AUC"), ("accuracy", "accuracy"))
            for name in rows
        }).rename_axis("local labels")  # fmt: skip
        words = ["python examples/single_vs_multi.py", args.report, "--sizes", *args.sizes]
        words += ["--seeds", *args.seeds, "--members", members, "--markdown", args.markdown]
        command = " ".join(map(str, words))
        args.markdown.write_text(
            f"<!-- generated: `{command}`; do not edit by hand -->\n\n" + to_markdown(both) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
