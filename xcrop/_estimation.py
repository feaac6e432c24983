"""Area estimation with confidence intervals from a map and a stratified reference sample.

Counting a map's crop pixels gives a biased area: every omission and commission error of
the map is in it. Olofsson et al. (2014, "Good practices for estimating area and
assessing accuracy of land change", Remote Sensing of Environment 148, 42-57) combine the
map with reference labels of a stratified random sample (strata: usually the map's
classes) into an unbiased estimate of each class's area with its confidence interval,
and the map's user's, producer's and overall accuracies with their standard errors.

:func:`stratified_estimate` is the estimator on plain arrays (numpy and pandas only),
in the general form of Stehman (2014, "Estimating area and map accuracy for stratified
random sampling when the strata are different from the map classes", International
Journal of Remote Sensing 35), which reduces to Olofsson et al.'s formulas when the
strata are the map classes. :func:`from_counts` takes the published form: mapped areas
and an error matrix of sample counts. :func:`xcrop.area` (in :mod:`xcrop.area_map`)
counts a map's strata lazily and reads the reference points from it.

Standard errors leave out the finite population correction (as Olofsson et al.: the
sample is a tiny share of the pixels); a 95 % interval is +-1.96 standard errors.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import XcropInputError

__all__ = ["AreaEstimate", "stratified_estimate", "from_counts", "Z95"]

#: The multiplier of a two-sided 95 % interval, as Olofsson et al. (2014) write it.
Z95 = 1.96


@dataclass(frozen=True)
class AreaEstimate:
    """What :func:`stratified_estimate` (and :func:`xcrop.area`) found.

    Attributes
    ----------
    table
        One row per reference class: ``mapped_ha`` (the map's area of the class),
        ``area_share`` (estimated share of the area), ``area_ha``, ``se_ha``,
        ``ci95_ha`` (half-width of the 95 % interval), ``lower_ha``, ``upper_ha``;
        ``users`` and ``users_se`` (of the map class of that name), ``producers`` and
        ``producers_se``; ``n_reference`` (sample points with that reference label).
    error_matrix
        Estimated area proportions, rows the map classes, columns the reference classes
        (Olofsson et al.'s Table 4 form); they sum to 1.
    counts
        Sample counts, rows the strata, columns the reference classes.
    strata
        Per stratum: ``area_ha``, ``weight`` (its share of the area), ``n`` (points).
    overall, overall_se
        Overall accuracy (area-weighted share of points whose map class is the
        reference class) and its standard error.
    report
        How many points were read, used and left out, and why.
    """

    table: pd.DataFrame
    error_matrix: pd.DataFrame
    counts: pd.DataFrame
    strata: pd.DataFrame
    overall: float
    overall_se: float
    report: dict = field(default_factory=dict)

    def area(self, cls: Hashable = 1) -> tuple[float, float, float]:
        """``(area_ha, lower_ha, upper_ha)`` of reference class ``cls`` (crop is 1).

        Examples
        --------
        >>> estimate.area(1)  # doctest: +SKIP
        (21157.8, 14999.9, 27315.4)
        """
        if cls not in self.table.index:
            raise XcropInputError(f"No class {cls!r}; the classes are {list(self.table.index)}.")
        row = self.table.loc[cls]
        return float(row.area_ha), float(row.lower_ha), float(row.upper_ha)

    def to_markdown(self, digits: int = 2) -> str:
        """The table as Markdown: areas in whole hectares, accuracies to ``digits``.

        Examples
        --------
        >>> print(estimate.to_markdown())  # doctest: +SKIP
        """
        head = (
            "| class | mapped ha | estimated ha | 95 % CI ha | user's | producer's | points |\n"
            "|---|---|---|---|---|---|---|"
        )
        rows = [head]
        for cls, r in self.table.iterrows():
            rows.append(
                f"| {cls} | {r.mapped_ha:,.0f} | {r.area_ha:,.0f} | ± {r.ci95_ha:,.0f} | "
                f"{_pm(r.users, r.users_se, digits)} | "
                f"{_pm(r.producers, r.producers_se, digits)} | {int(r.n_reference)} |"
            )
        rows.append(f"\noverall accuracy {_pm(self.overall, self.overall_se, digits)}")
        return "\n".join(rows)


def _pm(value: float, se: float, digits: int) -> str:
    if not np.isfinite(value):
        return "\u2013"
    return f"{value:.{digits}f} ± {se:.{digits}f}" if np.isfinite(se) else f"{value:.{digits}f}"


def _moments(y: np.ndarray, x: np.ndarray, stratum: np.ndarray, strata: Sequence):
    """Per stratum: means of y and x, their variances and covariance (ddof 1)."""
    out = []
    for h in strata:
        sel = stratum == h
        yh, xh = y[sel], x[sel]
        n = sel.sum()
        if n > 1:
            cov = np.cov(np.vstack([yh, xh]), ddof=1)
            out.append((yh.mean(), xh.mean(), cov[0, 0], cov[1, 1], cov[0, 1], n))
        else:
            out.append((yh.mean(), xh.mean(), np.nan, np.nan, np.nan, n))
    return np.array(out, "float64").T


def _total(y, stratum, strata, area, variance: str = "wald"):
    """Estimated total of y (in area units) and its variance. ``variance="laplace"``
    estimates each stratum's share of a 0/1 ``y`` as (x + 1) / (n + 2) in the variance
    (not in the total), so that a stratum whose sample saw no error does not count as
    known exactly; ``"wald"`` is the plain sample variance (Olofsson et al.)."""
    ybar, _, s2y, _, _, n = _moments(y, y, stratum, strata)
    if variance == "laplace":
        smoothed = (ybar * n + 1) / (n + 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            s2y = np.where(n > 1, smoothed * (1 - smoothed) * n / (n - 1), np.nan)
    return float((area * ybar).sum()), float((area**2 * s2y / n).sum())


def _ratio(y, x, stratum, strata, area):
    """Ratio of estimated totals of y and x, and its variance."""
    ybar, xbar, s2y, s2x, sxy, n = _moments(y, x, stratum, strata)
    ty, tx = (area * ybar).sum(), (area * xbar).sum()
    if tx == 0:
        return np.nan, np.nan
    r = ty / tx
    var = (area**2 * (s2y + r**2 * s2x - 2 * r * sxy) / n).sum() / tx**2
    return float(r), float(var)


def stratified_estimate(
    stratum_area: Mapping[Hashable, float] | pd.Series,
    stratum,
    map_class,
    reference,
    *,
    mapped_area: Mapping[Hashable, float] | pd.Series | None = None,
    variance: str = "laplace",
    report: dict | None = None,
) -> AreaEstimate:
    """Areas, their confidence intervals and the map's accuracies from a stratified sample.

    Parameters
    ----------
    stratum_area
        Area (hectares, or any unit: the results are in it) of each stratum.
    stratum, map_class, reference
        Per sample point: its stratum, the map's class there and the reference label.
    mapped_area
        The map's area of each class; by default ``stratum_area`` (strata = map classes).
    variance
        How the areas' and the overall accuracy's standard errors treat each stratum's
        share: ``"laplace"`` (default) as ``(x + 1) / (n + 2)``, ``"wald"`` as the sample
        share ``x / n``, the formulas of Olofsson et al. (2014). With an accurate map a
        stratum's sample often holds no error: the Wald variance then counts that
        stratum as known exactly, and its 95 % intervals held the true crop area in only
        52 and 80 of 100 samples on the demo's maps (``benchmarks/bench_area.py``). The
        estimates themselves do not change; user's and producer's accuracies keep the
        Wald form.
    report
        Carried into :attr:`AreaEstimate.report`.

    Returns
    -------
    AreaEstimate

    Raises
    ------
    XcropError
        When a stratum with area has no sample point, or a point's stratum has no area.

    Examples
    --------
    >>> est = stratified_estimate({0: 900.0, 1: 100.0}, [0, 0, 0, 1, 1, 1],
    ...                           [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 0])
    >>> round(float(est.table.loc[1, "area_ha"]), 1)  # 900 / 3 + 100 * 2 / 3
    366.7
    """
    areas = pd.Series(stratum_area, dtype="float64")
    areas = areas[areas > 0]
    stratum = np.asarray(stratum)
    map_class = np.asarray(map_class)
    reference = np.asarray(reference)
    if variance not in ("laplace", "wald"):
        raise XcropInputError(f"variance={variance!r}; use 'laplace' or 'wald'.")
    if not (len(stratum) == len(map_class) == len(reference)):
        raise XcropInputError("stratum, map_class and reference need one value per sample point.")
    unknown = sorted(set(stratum.tolist()) - set(areas.index.tolist()))
    if unknown:
        raise XcropInputError(
            f"Sample points lie in strata {unknown} that have no mapped area; give the "
            "points of this map's strata."
        )
    empty = [h for h in areas.index if not (stratum == h).any()]
    if empty:
        raise XcropInputError(
            f"Strata {empty} have area but no reference point: their area cannot be "
            "estimated. Label points in every stratum (xcrop.sample_for_area draws them)."
        )
    strata = list(areas.index)
    a = areas.to_numpy()
    total = a.sum()
    mapped = areas if mapped_area is None else pd.Series(mapped_area, dtype="float64")
    map_classes = sorted(set(mapped.index.tolist()) | set(map_class.tolist()))
    classes = sorted(set(map_classes) | set(reference.tolist()))
    rows = {}
    for k in classes:
        ref_k = (reference == k).astype("float64")
        hit = ((reference == k) & (map_class == k)).astype("float64")
        t, v = _total(ref_k, stratum, strata, a, variance)
        users, users_var = _ratio(hit, (map_class == k).astype("float64"), stratum, strata, a)
        producers, prod_var = _ratio(hit, ref_k, stratum, strata, a)
        se = np.sqrt(v)
        rows[k] = {
            "mapped_ha": float(mapped.get(k, 0.0)),
            "area_share": t / total,
            "area_ha": t,
            "se_ha": se,
            "ci95_ha": Z95 * se,
            "lower_ha": t - Z95 * se,
            "upper_ha": t + Z95 * se,
            "users": users,
            "users_se": np.sqrt(users_var),
            "producers": producers,
            "producers_se": np.sqrt(prod_var),
            "n_reference": int(ref_k.sum()),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "class"
    matrix = pd.DataFrame(0.0, index=pd.Index(map_classes, name="map"),
                          columns=pd.Index(classes, name="reference"))  # fmt: skip
    for i in map_classes:
        for j in classes:
            cell = ((map_class == i) & (reference == j)).astype("float64")
            matrix.loc[i, j] = _total(cell, stratum, strata, a)[0] / total
    agree = (map_class == reference).astype("float64")
    t, v = _total(agree, stratum, strata, a, variance)
    counts = pd.crosstab(pd.Series(stratum, name="stratum"), pd.Series(reference, name="reference"))
    info = pd.DataFrame(
        {"area_ha": a, "weight": a / total,
         "n": [int((stratum == h).sum()) for h in strata]},
        index=pd.Index(strata, name="stratum"),
    )  # fmt: skip
    return AreaEstimate(table, matrix, counts, info, t / total, float(np.sqrt(v)) / total,
                        dict(report or {}))  # fmt: skip


def from_counts(
    mapped_area: Sequence[float] | Mapping[Hashable, float],
    counts,
    *,
    classes: Sequence[Hashable] | None = None,
    variance: str = "laplace",
) -> AreaEstimate:
    """:func:`stratified_estimate` from the published form: the mapped area of each map
    class (the strata) and the error matrix of sample counts (rows the map classes,
    columns the reference classes, in the same order).

    Examples
    --------
    Olofsson et al. (2014), section 5 (30 m pixels, 0.09 ha):

    >>> est = from_counts([200_000 * 0.09, 150_000 * 0.09, 3_200_000 * 0.09,
    ...                    6_450_000 * 0.09],
    ...                   [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]],
    ...                   variance="wald")
    >>> round(est.table.loc[0, "area_ha"]), round(est.table.loc[0, "ci95_ha"])
    (21158, 6158)
    """
    counts = np.asarray(counts, "int64")
    k = counts.shape[0]
    if counts.ndim != 2 or counts.shape[1] != k:
        raise XcropInputError(f"counts must be a square error matrix; got shape {counts.shape}.")
    classes = list(range(k)) if classes is None else list(classes)
    if isinstance(mapped_area, Mapping):
        mapped = pd.Series(mapped_area, dtype="float64").reindex(classes)
    else:
        mapped = pd.Series(list(mapped_area), index=classes, dtype="float64")
    if len(mapped) != k or mapped.isna().any():
        raise XcropInputError(f"Give one mapped area per class of the {k} x {k} error matrix.")
    stratum, reference = [], []
    for i in range(k):
        for j in range(k):
            stratum += [classes[i]] * int(counts[i, j])
            reference += [classes[j]] * int(counts[i, j])
    return stratified_estimate(mapped, stratum, stratum, reference, variance=variance)
