"""Probability calibration: Platt scaling, the Brier score and reliability curves.

Numpy kernels, no xarray and no torch. A model's probability is *calibrated* when, of the
points it gives about ``p``, a share of about ``p`` are crop: then 0.5 is the threshold
a user expects, and an area summed from probabilities is unbiased.

:func:`fit_platt` fits ``p = sigmoid(a * z + b)`` to a model's logits ``z`` on labelled
points it was not trained on (Platt 1999, with his smoothed targets, so that a handful of
separable points does not give an infinite slope). :func:`brier` and
:func:`reliability` measure the result.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["fit_platt", "brier", "reliability", "expected_calibration_error"]


def _bce(params: np.ndarray, z: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``sigmoid(a z + b)`` against soft targets ``t``, and its
    gradient in (a, b); stable for large logits."""
    a, b = params
    s = a * z + b
    # -[t log sigmoid(s) + (1 - t) log sigmoid(-s)] = log(1 + e^s) - t s
    loss = np.logaddexp(0.0, s) - t * s
    residual = 1.0 / (1.0 + np.exp(-s)) - t
    return float(loss.mean()), np.array([(residual * z).mean(), residual.mean()])


def fit_platt(logits, y) -> tuple[float, float]:
    """Platt scaling: ``(a, b)`` so that ``sigmoid(a * logits + b)`` is calibrated on ``y``.

    Parameters
    ----------
    logits
        (N,) scores of a model (logits, or any score monotone in the probability) on
        points it was not fitted on.
    y
        (N,) 0/1 labels of those points.

    Returns
    -------
    a, b
        The slope and intercept. Targets are Platt's smoothed ones,
        ``(N1 + 1) / (N1 + 2)`` for crop and ``1 / (N0 + 2)`` for non-crop, which keep the
        slope finite when the points are separable. ``(1.0, 0.0)`` (no change) when ``y``
        holds one class only, or when the fitted slope is not positive (the scores do not
        rank the points: calibration would turn the model upside down).

    Examples
    --------
    >>> z = np.array([-3.0, -1.0, 1.0, 3.0, -2.0, 2.0])
    >>> a, b = fit_platt(z, [0, 0, 1, 1, 0, 1])
    >>> a > 0, abs(b) < 1e-6
    (True, True)
    """
    from scipy.optimize import minimize

    z = np.asarray(logits, "float64").ravel()
    y = np.asarray(y, "float64").ravel()
    n1, n0 = float(y.sum()), float(len(y) - y.sum())
    if n1 == 0 or n0 == 0:
        return 1.0, 0.0
    t = np.where(y == 1, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    prior = math.log((n1 + 1) / (n0 + 1))
    result = minimize(_bce, x0=np.array([1.0, prior]), args=(z, t), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in result.x)
    if not (np.isfinite(a) and np.isfinite(b)) or a <= 0:
        return 1.0, 0.0
    return a, b


def brier(y, prob) -> float:
    """The Brier score: mean squared difference of probability and 0/1 label (0 is
    perfect; always saying 0.5 scores 0.25).

    Examples
    --------
    >>> brier([0, 1, 1], [0.0, 1.0, 0.5])
    0.08333333333333333
    """
    y = np.asarray(y, "float64").ravel()
    p = np.asarray(prob, "float64").ravel()
    return float(np.mean((p - y) ** 2))


def reliability(y, prob, *, bins: int = 10) -> pd.DataFrame:
    """The reliability curve: in equal-width bins of probability, the mean probability
    against the share of crop.

    Parameters
    ----------
    y
        (N,) 0/1 labels.
    prob
        (N,) probabilities in 0..1.
    bins
        Number of equal-width bins over 0..1; the last bin includes 1.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``lower``, ``upper``, ``n``, ``mean_prob`` (the mean
        probability in the bin), ``crop_share`` (the share of label 1 in it). A calibrated
        model has ``crop_share`` close to ``mean_prob`` where ``n`` is large.

    Examples
    --------
    >>> curve = reliability([0, 0, 1, 1], [0.1, 0.15, 0.8, 0.95], bins=2)
    >>> curve[["n", "mean_prob", "crop_share"]].to_numpy().tolist()
    [[2.0, 0.125, 0.0], [2.0, 0.875, 1.0]]
    """
    y = np.asarray(y, "float64").ravel()
    p = np.asarray(prob, "float64").ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    n = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(index, p, minlength=bins) / n
        share = np.bincount(index, y, minlength=bins) / n
    frame = pd.DataFrame(
        {"lower": edges[:-1], "upper": edges[1:], "n": n, "mean_prob": mean_prob,
         "crop_share": share}
    )  # fmt: skip
    return frame[frame.n > 0].reset_index(drop=True)


def expected_calibration_error(y, prob, *, bins: int = 10) -> float:
    """The mean gap between ``mean_prob`` and ``crop_share`` over the bins of
    :func:`reliability`, weighted by the points in each (0 is calibrated).

    Examples
    --------
    >>> expected_calibration_error([0, 0, 1, 1], [0.1, 0.15, 0.8, 0.95], bins=2)
    0.125
    """
    curve = reliability(y, prob, bins=bins)
    gaps = (curve.mean_prob - curve.crop_share).abs()
    return float((gaps * curve.n).sum() / curve.n.sum())
