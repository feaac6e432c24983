"""Metrics on test points: of models, of baselines, and of existing map rasters.

Everything that predicts follows one small protocol (:class:`Predictor`): a ``bands``
tuple and ``predict_proba(X)`` taking float32 (N, T, F) and returning (N,) crop
probabilities. :func:`evaluate` scores one on test :class:`~xcrop.Samples`;
:func:`xcrop.evaluate_map` scores a map raster (a crop fraction, a probability or a class map)
read at the test points; :func:`table` and :func:`to_markdown` put the results side by
side like Table 1 of Kerner et al. (2020). :func:`sensitivity` measures metrics against
the number of local labels, and :func:`labeller_agreement` how often labellers agree.

scikit-learn (the ``ml`` extra) is imported only inside the functions that need it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)

from ._calibration import brier, expected_calibration_error, reliability
from ._extras import require
from ._labels import to_binary
from ._sample import Samples
from .errors import XcropInputError

__all__ = [
    "METRICS",
    "Predictor",
    "metrics",
    "evaluate",
    "results_table",
    "to_markdown",
    "sensitivity",
    "labeller_agreement",
]

#: The metrics of :func:`metrics`: the paper's Table 1, then the Brier score.
METRICS: tuple[str, ...] = ("accuracy", "roc_auc", "precision", "recall", "f1", "brier")


@runtime_checkable
class Predictor(Protocol):
    """What :func:`evaluate` and :func:`sensitivity` need from a model or a baseline.

    ``bands`` names the features of ``X`` in order; ``predict_proba`` takes ``X`` float32
    (N, T, F) and returns the (N,) probability of crop.
    """

    bands: tuple[str, ...]

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


def _labels(y_true) -> np.ndarray:
    y = np.asarray(y_true, dtype="float64").ravel()
    if y.size == 0:
        raise XcropInputError("No test points to evaluate on: y_true is empty.")
    if not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
        raise XcropInputError(
            f"Test labels must be 0 (non-crop) or 1 (crop); found {bad.tolist()}. Drop "
            "unlabelled points first (xcrop.consensus drops ties and missing labels)."
        )
    return y.astype("int8")


def _scores(values, n: int, name: str) -> np.ndarray:
    out = np.asarray(values, dtype="float64")
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (n,):
        raise XcropInputError(
            f"{name} has shape {out.shape} but there are {n} test labels; give one value "
            "per point, (N,)."
        )
    if not np.isfinite(out).all():
        raise XcropInputError(
            f"{name} has {int((~np.isfinite(out)).sum())} NaN or infinite values; drop those "
            "points (and their labels) before computing metrics."
        )
    return out


def metrics(
    y_true,
    prob=None,
    *,
    pred=None,
    threshold: float = 0.5,
) -> dict[str, float | int]:
    """Accuracy, ROC AUC, precision, recall, F1 and Brier score of crop predictions.

    Parameters
    ----------
    y_true
        (N,) 0/1 labels, 1 = crop.
    prob
        (N,) probability (or any score in 0..1) of crop; ``prob >= threshold`` is crop.
    pred
        (N,) hard 0/1 classes instead of ``prob``, as from a class map: ROC AUC is then
        NaN (a hard map ranks nothing; the paper shows a dash).
    threshold
        Probability from which a point counts as crop.

    Returns
    -------
    dict
        ``accuracy``, ``roc_auc``, ``precision``, ``recall``, ``f1``, ``brier`` (floats;
        ``roc_auc`` NaN without ``prob`` or when ``y_true`` holds one class only; ``brier``,
        the mean squared error of the probabilities, NaN without ``prob``, see
        :mod:`xcrop._calibration`; precision, recall and F1 are 0 where undefined) and
        ``n``, ``n_crop`` (ints).

    Examples
    --------
    >>> m = metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    >>> m["accuracy"], m["roc_auc"], m["precision"], m["recall"], round(m["brier"], 4)
    (0.5, 0.75, 0.5, 0.5, 0.185)
    >>> metrics([0, 1], pred=[0, 1])["roc_auc"]
    nan
    """
    require("sklearn", "xcrop.metrics")
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = _labels(y_true)
    if (prob is None) == (pred is None):
        raise XcropInputError("Give either prob= (probabilities) or pred= (hard 0/1 classes).")
    if prob is not None:
        scores = _scores(prob, len(y), "prob")
        hard = (scores >= threshold).astype("int8")
    else:
        hard = _scores(pred, len(y), "pred")
        if not np.isin(hard, (0, 1)).all():
            raise XcropInputError(
                "pred must hold hard classes 0/1; give probabilities as prob= instead."
            )
        hard = hard.astype("int8")
    auc = brier_score = math.nan
    if prob is not None and len(np.unique(y)) == 2:
        auc = float(roc_auc_score(y, scores))
    if prob is not None:
        brier_score = brier(y, scores)
    return {
        "accuracy": float(accuracy_score(y, hard)),
        "roc_auc": auc,
        "precision": float(precision_score(y, hard, zero_division=0)),
        "recall": float(recall_score(y, hard, zero_division=0)),
        "f1": float(f1_score(y, hard, zero_division=0)),
        "brier": brier_score,
        "n": len(y),
        "n_crop": int(y.sum()),
    }


def _check_bands(predictor, samples: Samples) -> None:
    bands = getattr(predictor, "bands", None)
    if bands is not None and tuple(bands) != tuple(samples.bands):
        raise XcropInputError(
            f"The predictor was trained on bands {tuple(bands)} but the samples have "
            f"{tuple(samples.bands)}; sample a composite with the model's bands in the "
            "model's order (composite(bands=model.bands))."
        )


def evaluate(
    predictor: Predictor, test: Samples, *, threshold: float = 0.5, bins: int = 10
) -> dict:
    """Metrics of a predictor (model or baseline) on test samples, and its reliability.

    The predictor's ``bands`` (when it has them) must equal ``test.bands``, order
    included: a model fed features in another order is silently wrong otherwise.

    Returns
    -------
    dict
        The :func:`metrics` (Brier score included), ``ece`` (the expected calibration
        error over ``bins`` bins) and ``reliability``: the reliability curve
        (:func:`xcrop._calibration.reliability`, a DataFrame; draw it with
        :func:`xcrop.plot.reliability_diagram`).

    Examples
    --------
    >>> result = evaluate(model, test)  # doctest: +SKIP
    >>> result["roc_auc"], result["brier"]  # doctest: +SKIP
    (0.91, 0.08)
    """
    require("sklearn", "xcrop.evaluate")
    if not hasattr(predictor, "predict_proba"):
        raise XcropInputError(
            f"{type(predictor).__name__} has no predict_proba(X); a predictor takes X "
            "float32 (N, T, F) and returns the (N,) crop probability."
        )
    _check_bands(predictor, test)
    prob = _scores(
        predictor.predict_proba(np.ascontiguousarray(test.X, dtype="float32")),
        len(test),
        "predict_proba(X)",
    )
    return {
        **metrics(test.y, prob, threshold=threshold),
        "ece": expected_calibration_error(test.y, prob, bins=bins),
        "reliability": reliability(test.y, prob, bins=bins),
    }


# -- tables ---------------------------------------------------------------------------------

#: Columns of :func:`table`, from the keys of :func:`metrics`.
_TABLE_COLUMNS = {
    "accuracy": "accuracy",
    "roc_auc": "auc",
    "precision": "precision",
    "recall": "recall",
    "f1": "f1",
    "brier": "brier",
    "n": "n",
}
#: Shown for NaN by :func:`to_markdown` (an en dash, as in the paper's table).
DASH = "\u2013"
_HEADERS = {"auc": "AUC", "roc_auc": "AUC", "f1": "F1", "f1_std": "F1 std", "brier": "Brier"}


def results_table(results: Mapping[str, Mapping]) -> pd.DataFrame:
    """Results of several methods side by side, one row each (Table 1 of the paper).

    ``results`` maps a method's name to the dict of :func:`metrics`, :func:`evaluate` or
    :func:`evaluate_map`. Columns: ``accuracy``, ``auc``, ``precision``, ``recall``,
    ``f1``, ``brier``, ``n``; missing metrics are NaN (a class map has no AUC and no
    Brier score).

    Examples
    --------
    >>> results = {"random forest": evaluate(rf, test), "GFSAD 30 m": gfsad}  # doctest: +SKIP
    >>> frame = results_table(results)  # doctest: +SKIP
    >>> print(to_markdown(frame))  # doctest: +SKIP
    """
    rows = {
        name: {col: result.get(key, math.nan) for key, col in _TABLE_COLUMNS.items()}
        for name, result in results.items()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(_TABLE_COLUMNS.values()))
    frame.index.name = "method"
    if frame["n"].notna().all():
        frame["n"] = frame["n"].astype("int64")
    return frame


def _cell(value, digits: int) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return DASH if math.isnan(value) else f"{value:.{digits}f}"
    if value is None or value is pd.NA:
        return DASH
    return str(value).replace("|", "\\|")


def to_markdown(frame: pd.DataFrame, digits: int = 2) -> str:
    """A Markdown table of a frame: index first, floats to ``digits``, NaN as an en dash.

    ``auc`` and ``f1`` columns are headed "AUC" and "F1", as in the paper.

    Examples
    --------
    >>> gfsad = {"accuracy": 0.74, "roc_auc": float("nan"), "precision": 0.62,
    ...          "recall": 0.62, "f1": 0.62, "n": 306}
    >>> frame = results_table({"GFSAD": gfsad})
    >>> print(to_markdown(frame))
    | method | accuracy | AUC | precision | recall | F1 | Brier | n |
    |---|---|---|---|---|---|---|---|
    | GFSAD | 0.74 | – | 0.62 | 0.62 | 0.62 | – | 306 |
    """  # noqa: RUF002
    index_name = frame.index.name or ""
    headers = [index_name, *(_HEADERS.get(str(c), str(c)) for c in frame.columns)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = [_cell(label, digits), *(_cell(v, digits) for v in row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- sensitivity to the number of local labels ------------------------------------------------


def _take(samples: Samples, index: np.ndarray, **report) -> Samples:
    return replace(
        samples,
        X=samples.X[index],
        y=samples.y[index],
        is_local=samples.is_local[index],
        ids=samples.ids[index],
        counts=samples.counts[index],
        report={"read": len(samples), "kept": len(index), **report},
    )


def _draw(y: np.ndarray, n: int, rng: np.random.Generator, stratify: bool) -> np.ndarray:
    if not stratify:
        return rng.permutation(len(y))[:n]
    classes, sizes = np.unique(y, return_counts=True)
    share = n * sizes / sizes.sum()
    take = np.floor(share).astype("int64")
    for i in np.argsort(-(share - take), kind="stable")[: n - take.sum()]:
        take[i] += 1  # largest remainders first
    parts = [
        rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take, strict=True)
    ]
    return rng.permutation(np.concatenate(parts))


def sensitivity(
    fit: Callable[[Samples, int], Predictor],
    local: Samples,
    test: Samples,
    sizes: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    stratify: bool = False,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Metrics against the number of local training labels, mean and std over seeds.

    For each size ``n`` and seed, ``n`` samples are drawn from ``local`` without
    replacement with ``numpy.random.default_rng(seed)``; ``fit(subset, seed)`` trains and
    returns a predictor, which is evaluated on ``test``. Plain draws take the first ``n``
    of one random permutation per seed, so with one seed a larger subset contains the
    smaller ones; ``stratify=True`` keeps the classes' shares instead (largest remainders
    for rounding).

    Parameters
    ----------
    fit
        ``fit(samples, seed) -> predictor``; add global samples inside it if the model
        uses them (``samples.concat(global_samples)``).
    local
        The pool of local labelled samples to draw from.
    test
        Test samples (the same for every run).
    sizes
        Numbers of local samples, each at most ``len(local)``.
    seeds
        One run per seed and size (the paper: three).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``size`` (ascending): for each metric its mean over seeds (column
        ``accuracy``, ``roc_auc``, ...) and its standard deviation (``accuracy_std``, ...,
        ``ddof=0``), and ``runs``. The raw runs, one record per size and seed with
        ``size``, ``seed`` and every metric, are in ``frame.attrs["runs"]`` (a list of
        dicts: ``pandas.DataFrame(frame.attrs["runs"])``).

    Examples
    --------
    >>> curve = sensitivity(lambda s, seed: xcrop.train(s, seed=seed), local, test,
    ...                     sizes=[50, 100, 200, 400])  # doctest: +SKIP
    >>> curve[["roc_auc", "roc_auc_std"]]  # doctest: +SKIP
    """
    require("sklearn", "xcrop.sensitivity")  # before any training
    sizes = [int(n) for n in sizes]
    if not sizes or not list(seeds):
        raise XcropInputError("Give at least one size and one seed.")
    too_big = [n for n in sizes if n > len(local)]
    if too_big:
        raise XcropInputError(
            f"Sizes {too_big} exceed the {len(local)} local samples available; use sizes up "
            f"to {len(local)}."
        )
    if any(n < 1 for n in sizes):
        raise XcropInputError(f"Sizes must be positive; got {sizes}.")
    runs = []
    for n in sizes:
        for seed in seeds:
            index = _draw(local.y, n, np.random.default_rng(seed), stratify)
            predictor = fit(_take(local, index, size=n, seed=seed), seed)
            result = evaluate(predictor, test, threshold=threshold)
            result.pop("reliability")  # a table per run: not a metric to average
            runs.append({"size": n, "seed": seed, **result})
    raw = pd.DataFrame(runs)
    grouped = raw.groupby("size")[list(METRICS)]
    frame = grouped.mean().join(grouped.std(ddof=0).add_suffix("_std"))
    frame["runs"] = raw.groupby("size").size()
    frame = frame[[*(c for m in METRICS for c in (m, f"{m}_std")), "runs"]]
    frame.attrs["runs"] = runs
    return frame


# -- labeller agreement -----------------------------------------------------------------------


def labeller_agreement(table: pd.DataFrame, labellers: Sequence[str]) -> dict:
    """How often labellers agree, pair by pair and all together.

    Parameters
    ----------
    table
        One row per point and one column per labeller, labels 0/1 (or text labels) and
        NaN where a labeller did not label the point: the output of
        :func:`xcrop.join_labellers`.
    labellers
        The labeller columns, at least two.

    Returns
    -------
    dict
        ``agree``: square DataFrame of the number of points both labelled identically;
        ``both``: of the number of points both labelled (the diagonal: points each
        labelled); ``fraction``: ``agree / both`` (NaN where ``both`` is 0);
        ``unanimous``: points labelled by all and with the same label from all;
        ``all_labelled``: points labelled by all; ``points``: rows in ``table``.

    Examples
    --------
    >>> table = xcrop.join_labellers(files)  # doctest: +SKIP
    >>> labeller_agreement(table, ["cn", "bm", "bb", "hrk"])["unanimous"]  # doctest: +SKIP
    """
    labellers = list(labellers)
    if len(labellers) < 2:
        raise XcropInputError("Agreement needs at least two labellers.")
    missing = [c for c in labellers if c not in table]
    if missing:
        raise XcropInputError(
            f"No labeller column(s) {missing}; columns are {list(table.columns)}."
        )
    values = np.column_stack([to_binary(table[c], None).to_numpy() for c in labellers])
    labelled = ~np.isnan(values)
    k = len(labellers)
    agree = np.zeros((k, k), "int64")
    both = np.zeros((k, k), "int64")
    for i in range(k):
        for j in range(k):
            mask = labelled[:, i] & labelled[:, j]
            both[i, j] = mask.sum()
            agree[i, j] = (mask & (values[:, i] == values[:, j])).sum()
    all_labelled = labelled.all(axis=1)
    same = np.nanmax(values, axis=1, initial=-1) == np.nanmin(values, axis=1, initial=2)
    names = pd.Index(labellers, name="labeller")
    agree_frame = pd.DataFrame(agree, index=names, columns=names)
    both_frame = pd.DataFrame(both, index=names, columns=names)
    return {
        "agree": agree_frame,
        "both": both_frame,
        "fraction": agree_frame / both_frame.where(both_frame > 0),
        "unanimous": int((all_labelled & same).sum()),
        "all_labelled": int(all_labelled.sum()),
        "points": len(table),
    }
