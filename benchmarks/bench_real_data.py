"""Cropland models on real Sentinel-2 data: spatial cross-validation, several seeds.

Issue 17 item 1. Three labelled sets from WorldCereal's test resources
(``../shared/data/worldcereal``, read-only): ``points`` (500 points in East Africa,
monthly composites of 2017), ``clipA`` and ``clipB`` (64 x 64 px of Flanders with every
L2A acquisition of the 2018 / 2019 seasons, per-pixel LPIS labels), all turned into
``xcrop.Samples`` of 12 periods x (10 bands + NDVI) by xcrop's own compositing (see
``real_data.py`` for how, the season dates, the spatial folds, the global sets and why).

Per set, spatial folds (points: ~2.2 km location cells, 5 folds; clips: the four
quadrants with a 4 px buffer dropped at their borders); for every fold and seed, each
model of ``real_data.model_fits()`` is fitted on the other folds and predicts the held-out
fold: the multi-headed LSTM (``xcrop.train`` with local + global samples), the
single-headed LSTM (local only), the random forest and the SVM (local only). A clip's
training side is a stratified draw of ``--train-pixels`` per fold (500); tests use every
held-out pixel. From the pooled out-of-fold predictions, per (set, model, seed): AUC,
accuracy at 0.5 and at the best threshold (an oracle, chosen on the same predictions),
F1 at 0.5, Brier score, n; then per (set, model) the mean over seeds with the seed
spread, std (ddof=0) and range (max - min). Prints a Markdown table and the wall time.

Run (the full table takes ~13 min on 2 cores)::

    .venv/bin/python benchmarks/bench_real_data.py [--seeds 5] [--folds N]
        [--train-pixels 500] [--sets points clipA clipB] [--models ...]
        [--max-epochs N] [--quick] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_data as rd
from _paths import writable

#: Default folds per set: location-cell folds for the points, one quadrant per fold.
DEFAULT_FOLDS = {"points": 5, "clipA": 4, "clipB": 4}
#: Headers of the summary's metric columns.
HEADERS = {"auc": "AUC", "acc@0.5": "acc@0.5", "acc@best": "acc@best",
           "threshold": "best threshold", "f1": "F1", "brier": "Brier"}  # fmt: skip


@dataclass
class Result:
    """Everything a run produced: predictions, fit timings, per-seed metrics, summary."""

    predictions: pd.DataFrame
    fits: pd.DataFrame
    runs: pd.DataFrame
    summary: pd.DataFrame
    sets: dict
    seconds: float
    #: Each model's AUC minus the best baseline's, per seed, with a 95 % interval.
    against: pd.DataFrame


def run(
    sets: Sequence[str] = rd.SETS,
    *,
    models: Sequence[str] | None = None,
    seeds: int | Sequence[int] = 5,
    folds: int | None = None,
    train_pixels: int | None = 500,
    global_per_source: int = 500,
    max_epochs: int | None = None,
    data_seed: int = 0,
    cell_m: float | None = 2200.0,
    n_blocks: int = 2,
    buffer: int = 4,
    log=None,
) -> Result:
    """The benchmark: load, fold, fit and predict, score. ``seeds``: a count (0..n-1)
    or the seeds; ``folds``: the same for every set, or None for :data:`DEFAULT_FOLDS`;
    ``train_pixels`` caps the clips' training side per fold (the points use all)."""
    t0 = time.perf_counter()
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    fits = rd.model_fits(max_epochs)
    if models is not None:
        unknown = [m for m in models if m not in fits]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; known: {list(fits)}")
        fits = {m: fits[m] for m in models}
    needed = list(dict.fromkeys([*sets, *(s for n in sets for s in rd.GLOBAL_SOURCES[n])]))
    if "multihead_lstm" not in fits:
        needed = list(sets)
    loaded = rd.load(needed, cell_m=cell_m, n_blocks=n_blocks, buffer=buffer)
    predictions, timings = [], []
    for name in sets:
        data = loaded[name]
        fold = rd.folds(data, folds or DEFAULT_FOLDS[name], seed=data_seed)
        global_ = (
            rd.global_samples(name, loaded, global_per_source, data_seed)
            if "multihead_lstm" in fits
            else None
        )
        p, f = rd.cross_validate(
            data, fold, fits, seeds, global_=global_,
            train_pixels=None if name == "points" else train_pixels,
            data_seed=data_seed, log=log,
        )  # fmt: skip
        predictions.append(p)
        timings.append(f)
    predictions = pd.concat(predictions, ignore_index=True)
    runs = rd.per_seed(predictions)
    timings = pd.concat(timings, ignore_index=True)
    summary = rd.summary(runs)
    seconds = timings.groupby(["set", "model", "seed"], sort=False)["seconds"].sum()
    summary = summary.merge(
        seconds.groupby(["set", "model"], sort=False).mean().rename("fit_seconds").reset_index(),
        on=["set", "model"],
    )
    against = rd.against_best_baseline(predictions, runs, loaded)
    return Result(predictions, timings, runs, summary, loaded, time.perf_counter() - t0, against)


def _cell(row: pd.Series, metric: str, digits: int = 3) -> str:
    mean, std, spread = row[metric], row[f"{metric}_std"], row[f"{metric}_range"]
    if row["seeds"] == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({spread:.{digits}f})"


def to_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table: per metric ``mean ± std (max - min)`` over seeds."""
    headers = ["set", "model", *HEADERS.values(), "n (crop)", "seeds", "fit s / seed"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, row in summary.iterrows():
        cells = [row["set"], row["model"], *(_cell(row, m) for m in HEADERS)]
        cells += [f"{row['n']} ({row['n_crop']})", str(row["seeds"]), f"{row['fit_seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed_markdown(runs: pd.DataFrame) -> str:
    """One row per (set, model, seed)."""
    cols = ["set", "model", "seed", *HEADERS, "n"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in runs[cols].iterrows():
        cells = [str(r["set"]), str(r["model"]), str(r["seed"])]
        cells += [f"{r[m]:.3f}" for m in HEADERS] + [str(r["n"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def against_markdown(against: pd.DataFrame) -> str:
    """One row per (set, model, seed): AUC minus the best baseline's, its interval."""
    cols = ["set", "model", "seed", "best baseline", "AUC - baseline's", "95 % interval",
            "groups drawn"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in against.iterrows():
        verdict = "" if r["low"] <= 0 <= r["high"] else (" (above)" if r["low"] > 0 else " (below)")
        cells = [str(r["set"]), str(r["model"]), str(r["seed"]), str(r["baseline"]),
                 f"{r['diff']:+.3f}", f"{r['low']:+.3f} .. {r['high']:+.3f}{verdict}",
                 str(r["groups"])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals_markdown(goals: pd.DataFrame) -> str:
    """Issue 17's goals for the multi-headed LSTM, one row per set, each with met or not."""
    cols = ["set", "AUC", "best baseline's AUC", "seeds below / above it",
            "AUC range over seeds (goal <= 0.01)",
            "acc@best - acc@0.5, worst seed (goal <= 0.05)"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    for _, r in goals.iterrows():
        cells = [str(r["set"]), f"{r['auc']:.3f} ({met(r['auc_met'])})",
                 f"{r['baseline_auc']:.3f} ({r['baseline']})",
                 f"{r['below']} / {r['above']} of {r['seeds']}",
                 f"{r['spread']:.3f} ({met(r['spread_met'])})",
                 f"{r['calibration']:.3f} ({met(r['calibration_met'])})"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe(result: Result, settings: dict) -> str:
    """What was run on what: the sets' sizes and drops, the settings."""
    lines = []
    for name, data in result.sets.items():
        info = {k: v for k, v in data.info.items() if k not in ("composite", "lc")}
        s = data.samples
        share = float(s.y.mean())
        lines.append(
            f"- {name}: {len(s)} samples ({int(s.y.sum())} crop; calling all crop scores "
            f"accuracy {max(share, 1 - share):.3f}), {info}"
        )
    lines.append(f"- settings: {settings}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(rd.SETS), choices=rd.SETS)
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"default all: {list(rd.model_fits())}")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--folds", type=int, default=None,
                        help="folds of every set (default: points 5, clips 4)")  # fmt: skip
    parser.add_argument("--train-pixels", type=int, default=500,
                        help="a clip's training pixels per fold (stratified draw)")  # fmt: skip
    parser.add_argument("--global-per-source", type=int, default=500)
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap the LSTMs' epochs (default: xcrop.train's)")  # fmt: skip
    parser.add_argument("--data-seed", type=int, default=0,
                        help="seeds the folds of the points and every draw")  # fmt: skip
    parser.add_argument("--cell-m", type=float, default=2200.0,
                        help="the points' location cells (m); 0: the file's H3 cells")  # fmt: skip
    parser.add_argument("--buffer", type=int, default=4, help="px dropped at block borders")
    parser.add_argument("--quick", action="store_true",
                        help="points only, 2 folds, 1 seed, 5 epochs")  # fmt: skip
    parser.add_argument("--per-seed", action="store_true", help="also the per-seed table")
    parser.add_argument(
        "--markdown", type=writable, default=None, help="also write the tables here"
    )
    parser.add_argument("--quiet", action="store_true", help="no line per fitted model")
    args = parser.parse_args(argv)
    if args.quick:
        args.sets, args.folds, args.seeds, args.max_epochs = ["points"], 2, 1, 5
    settings = {
        "seeds": args.seeds, "folds": args.folds or DEFAULT_FOLDS,
        "train_pixels": args.train_pixels, "global_per_source": args.global_per_source,
        "max_epochs": args.max_epochs or "xcrop.train default", "data_seed": args.data_seed,
        "cell_m": args.cell_m or "h3_l3_cell", "buffer": args.buffer,
    }  # fmt: skip
    log = None if args.quiet else (lambda line: print(line, flush=True))
    result = run(
        args.sets, models=args.models, seeds=args.seeds, folds=args.folds,
        train_pixels=args.train_pixels, global_per_source=args.global_per_source,
        max_epochs=args.max_epochs, data_seed=args.data_seed,
        cell_m=args.cell_m or None, buffer=args.buffer, log=log,
    )  # fmt: skip
    command = shlex.join(["python", "benchmarks/bench_real_data.py", *(argv or sys.argv[1:])])
    table = to_markdown(result.summary)
    parts = [
        f"`{command}`",
        describe(result, settings),
        "Cells: mean over seeds ± std (ddof=0) (max - min), from each seed's pooled "
        "out-of-fold predictions; acc@best and its threshold are an oracle (the best "
        "threshold on the same predictions).",
        table,
    ]
    if args.per_seed:
        parts.append(per_seed_markdown(result.runs))
    if len(result.against):
        parts += [
            "Against the best baseline (the baseline with the highest mean AUC of the set), "
            "seed by seed, on the same out-of-fold samples: the 95 % interval is a paired "
            "bootstrap that draws the folds' units (location cells, clip blocks) with "
            "replacement 2,000 times; an interval that holds 0 means the set cannot tell the "
            "two apart.",
            against_markdown(result.against),
        ]
        found = rd.goals(result.runs, result.against)
        if len(found):
            parts += [
                "Issue 17's goals for the default multi-headed LSTM: AUC (mean over seeds) "
                "at least the best baseline's; seeds whose interval above is wholly below "
                "or above it; AUC range over seeds; accuracy at 0.5 against the best "
                "threshold's.",
                goals_markdown(found),
            ]
    parts.append(f"Wall time {result.seconds:.0f} s ({result.seconds / 60:.1f} min).")
    text = "\n\n".join(parts) + "\n"
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
