"""How often the four Togo test-set labellers agree (Kerner et al. 2020), from the real labels.

Run: ``.venv/bin/python examples/labeller_agreement.py [--data ../shared/data/togo-labels]
[--out agreement.png]``

Prints the pairwise counts (points both labelled alike / both labelled) and shares, the
unanimous count, the crop votes per point, and what consensus keeps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import xcrop
from xcrop import labeller_agreement

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "cn": "random_sample_cn/random_sample_1k_cn.shp",
    "bm": "random_sample_bm/BM_Labels.shp",
    "bb": "BB_random_sample_1k/random_sample_1k_BB.shp",
    "hrk": "random_sample_hrk/random_sample_test.shp",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/togo-labels")
    parser.add_argument("--out", type=Path, help="also save the agreement matrix as a PNG")
    args = parser.parse_args()
    names = list(FILES)
    table = xcrop.join_labellers({name: args.data / path for name, path in FILES.items()})
    agreement = labeller_agreement(table, names)
    print(f"{agreement['points']} points, {agreement['all_labelled']} labelled by all four\n")
    print("points labelled alike (diagonal: points labelled):")
    print(agreement["agree"].to_string(), "\n")
    print("share labelled alike:")
    print(agreement["fraction"].round(3).to_string(), "\n")
    unanimous, all_labelled = agreement["unanimous"], agreement["all_labelled"]
    print(f"unanimous: {unanimous} of {all_labelled} ({unanimous / all_labelled:.1%})")
    votes = table[names].dropna().sum(axis=1).astype(int).value_counts().sort_index()
    print("crop votes per point labelled by all:", votes.to_dict())
    test = xcrop.consensus(table, names)
    print(f"consensus keeps {len(test)}, drops {test.attrs['report']['dropped']}")
    if args.out:
        from xcrop.plot import agreement_matrix

        agreement_matrix(agreement).savefig(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
