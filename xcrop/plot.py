"""Figures for evaluation and maps: ROC, reliability, sensitivity, agreement, maps, RGB.

Every function draws on ``ax`` when given, else on a new
:class:`matplotlib.figure.Figure` (not pyplot: no global state, so it works headless, in
threads and in notebooks alike), and returns the figure: ``fig.savefig("roc.png")``.
matplotlib (the ``plot`` extra) is imported only when a function is called.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from numpy.typing import ArrayLike

from ._composite import Composite, no_clear_share
from ._cube import composite_parts
from ._extras import require
from .errors import XcropInputError

__all__ = [
    "roc_curves",
    "reliability_diagram",
    "sensitivity_curve",
    "agreement_matrix",
    "probability_map",
    "rgb",
]


def _axes(ax, figsize: tuple[float, float]):
    """(figure, axes): the given axes' figure, or a new pyplot-free figure."""
    if ax is not None:
        return ax.figure, ax
    require("matplotlib", "xcrop.plot")
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def roc_curves(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]], ax=None, *, title: str | None = None
):
    """ROC curves of several methods on one plot, with their AUC in the legend.

    ``curves`` maps a method's name to ``(y_true, prob)``. Needs scikit-learn. The title
    defaults to "ROC curves on N test points" (N when every curve has the same points).

    Examples
    --------
    >>> fig = roc_curves({"LSTM": (test.y, model.predict_proba(test.X))})  # doctest: +SKIP
    >>> fig.savefig("roc.png")  # doctest: +SKIP
    """
    require("sklearn", "xcrop.plot.roc_curves")
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _axes(ax, (4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1, label="chance")
    for name, (y_true, prob) in curves.items():
        y, p = np.asarray(y_true), np.asarray(prob, dtype="float64")
        if len(np.unique(y)) < 2:
            raise XcropInputError(
                f"{name!r}: a ROC curve needs both crop and non-crop test labels."
            )
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, linewidth=1.5, label=f"{name} (AUC {roc_auc_score(y, p):.2f})")
    if title is None:
        sizes = {len(np.asarray(y)) for y, _ in curves.values()}
        title = f"ROC curves on {sizes.pop()} test points" if len(sizes) == 1 else "ROC curves"
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def reliability_diagram(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike] | pd.DataFrame], *, bins: int = 10, ax=None
):
    """Reliability curves of several methods: the share of crop against the mean
    probability in bins of probability; a calibrated model follows the diagonal.

    ``curves`` maps a method's name to ``(y_true, prob)`` or to a curve already made
    (``xcrop.evaluate(...)["reliability"]``). Marker
    areas grow with the points in the bin; the legend gives each method's Brier score
    when the points are given.

    Examples
    --------
    >>> fig = reliability_diagram({"LSTM": (test.y, model.predict_proba(test.X))})  # doctest: +SKIP
    >>> fig.savefig("reliability.png")  # doctest: +SKIP
    """
    from ._calibration import brier, reliability

    fig, ax = _axes(ax, (4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1, label="calibrated")
    for name, value in curves.items():
        label = name
        if isinstance(value, pd.DataFrame):
            curve = value
        else:
            y, p = np.asarray(value[0], "float64"), np.asarray(value[1], "float64")
            curve = reliability(y, p, bins=bins)
            label = f"{name} (Brier {brier(y, p):.3f})"
        missing = {"mean_prob", "crop_share", "n"} - set(curve.columns)
        if missing:
            raise XcropInputError(
                f"{name!r}: a reliability curve needs columns mean_prob, crop_share and n; "
                "give (y_true, prob) or xcrop.evaluate(model, test)['reliability']."
            )
        (line,) = ax.plot(curve.mean_prob, curve.crop_share, linewidth=1.2, label=label)
        size = 8 + 120 * curve.n / max(curve.n.max(), 1)
        ax.scatter(curve.mean_prob, curve.crop_share, s=size, color=line.get_color(), alpha=0.7)
    ax.set(
        xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted crop probability (bin)",
        ylabel="share of crop among test points (bin)", title="reliability",
    )  # fmt: skip
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize="small")
    return fig


#: y-axis ranges of the metrics in 0..1 that :func:`sensitivity_curve` shows whole, and
#: what their axis label says about the range (AUC starts at chance, 0.5; a Brier score
#: of 0.25 is that of always answering 0.5).
_METRIC_AXES = {
    "accuracy": ((0.0, 1.0), "accuracy"),
    "roc_auc": ((0.5, 1.0), "ROC AUC (axis from 0.5: chance)"),
    "precision": ((0.0, 1.0), "precision"),
    "recall": ((0.0, 1.0), "recall"),
    "f1": ((0.0, 1.0), "F1"),
    "brier": ((0.0, 0.25), "Brier score (0.25: always 0.5)"),
}


def sensitivity_curve(
    frame: pd.DataFrame | Mapping[str, pd.DataFrame],
    metric: str = "roc_auc",
    ax=None,
    *,
    title: str | None = None,
):
    """A metric against the number of local labels: mean over seeds, band of +/- 1 std.

    ``frame`` is the result of :func:`xcrop.sensitivity` (or a mapping of
    method names to such results, drawn together). The y-axis of a metric in 0..1 spans
    its whole meaningful range (0..1; AUC from chance, 0.5, to 1), widened only to show
    every point, so small differences do not look large.

    Examples
    --------
    >>> fig = sensitivity_curve({"LSTM": lstm_curve, "RF": rf_curve}, "f1")  # doctest: +SKIP
    """
    frames = frame if isinstance(frame, Mapping) else {None: frame}
    fig, ax = _axes(ax, (5.0, 3.5))
    (low, high), label = _METRIC_AXES.get(metric, ((None, None), metric))
    for name, data in frames.items():
        if metric not in data:
            raise XcropInputError(
                f"No column {metric!r}; give one of {[c for c in data if not c.endswith('_std')]}."
            )
        size = np.asarray(data.index, dtype="float64")
        mean = data[metric].to_numpy(dtype="float64")
        (line,) = ax.plot(size, mean, marker="o", markersize=3,
                          label="mean over seeds" if name is None else name)  # fmt: skip
        lowest, highest = mean, mean
        if f"{metric}_std" in data:
            std = data[f"{metric}_std"].to_numpy(dtype="float64")
            ax.fill_between(size, mean - std, mean + std, color=line.get_color(), alpha=0.2,
                            label="± 1 std over seeds" if name is None else None)  # fmt: skip
            lowest, highest = mean - std, mean + std
        if low is not None:  # widened to tenths only where a point lies outside
            low = min(low, np.floor(10 * np.nanmin(lowest)) / 10)
            high = max(high, np.ceil(10 * np.nanmax(highest)) / 10)
    if low is not None:
        ax.set_ylim(low, high)
    if title is None:
        title = f"{label.split(' (')[0]} against the number of local labels"
    ax.set(xlabel="local training labels", ylabel=label, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def agreement_matrix(agreement: Mapping | pd.DataFrame, ax=None):
    """Pairwise labeller agreement as a matrix: shares coloured, ``agree/both`` written.

    ``agreement`` is the dict of :func:`xcrop.labeller_agreement` (or a square
    DataFrame of shares).

    Examples
    --------
    >>> agreement = labeller_agreement(table, ["cn", "bm", "bb", "hrk"])  # doctest: +SKIP
    >>> agreement_matrix(agreement).savefig("agreement.png")  # doctest: +SKIP
    """
    if isinstance(agreement, pd.DataFrame):
        fraction, agree, both, title = agreement, None, None, "labeller agreement"
    else:
        fraction, agree, both = agreement["fraction"], agreement["agree"], agreement["both"]
        title = (
            f"unanimous: {agreement['unanimous']} of {agreement['all_labelled']} "
            "points labelled by all"
        )
    k = len(fraction)
    fig, ax = _axes(ax, (1.2 * k + 2.0, 1.2 * k + 1.0))
    image = ax.imshow(fraction.to_numpy(dtype="float64"), vmin=0, vmax=1, cmap="viridis")
    for i in range(k):
        for j in range(k):
            share = float(fraction.iat[i, j])
            text = f"{share:.2f}"
            if agree is not None and both is not None:
                text += f"\n{agree.iat[i, j]}/{both.iat[i, j]}"
            colour = "black" if share > 0.6 else "white"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize="small")
    ax.set_xticks(range(k), [str(c) for c in fraction.columns])
    ax.set_yticks(range(k), [str(c) for c in fraction.index])
    ax.set(xlabel="labeller", ylabel="labeller")
    ax.set_title(title, fontsize="small")
    fig.colorbar(image, ax=ax, label="share of points labelled alike")
    return fig


def _extent(da: xr.DataArray) -> tuple[list[float], str]:
    """imshow extent (pixel edges, CRS units) and origin, from the x/y coordinates."""
    x, y = np.asarray(da["x"].values, "float64"), np.asarray(da["y"].values, "float64")
    dx = abs(x[1] - x[0]) if len(x) > 1 else abs(da.rio.resolution()[0])
    dy = abs(y[1] - y[0]) if len(y) > 1 else abs(da.rio.resolution()[1])
    left, right = x.min() - dx / 2, x.max() + dx / 2
    bottom, top = y.min() - dy / 2, y.max() + dy / 2
    origin = "upper" if len(y) < 2 or y[0] > y[-1] else "lower"
    return [left, right, bottom, top], origin


def _label_axes(ax, da: xr.DataArray) -> None:
    crs = da.rio.crs if hasattr(da, "rio") else None
    suffix = f" ({crs.to_string()})" if crs is not None else ""
    ax.set(xlabel=f"x{suffix}", ylabel=f"y{suffix}")
    ax.ticklabel_format(useOffset=False, style="plain")  # whole CRS coordinates, no "+1e6"
    ax.tick_params(axis="x", labelrotation=30)  # long coordinates would overlap


def _require_dims(da: xr.DataArray, dims: tuple[str, ...], what: str) -> None:
    if set(da.dims) != set(dims):
        raise XcropInputError(f"{what} must have dims {dims}; this one has {da.dims}.")


def probability_map(prob: xr.DataArray, ax=None, *, cmap: str = "YlGn", title: str | None = None):
    """A crop probability map (y, x) in 0..1: NaN left blank, colour bar, CRS extent.

    Examples
    --------
    >>> prob = comp.predict(model)  # doctest: +SKIP
    >>> probability_map(prob.compute()).savefig("togo.png")  # doctest: +SKIP
    """
    require("matplotlib", "xcrop.plot.probability_map")
    import matplotlib

    _require_dims(prob, ("y", "x"), "A probability map")
    extent, origin = _extent(prob)
    colours = matplotlib.colormaps[cmap].with_extremes(bad=(0, 0, 0, 0))
    values = np.asarray(prob.transpose("y", "x").to_numpy(), dtype="float64")
    ratio = prob.sizes["y"] / max(prob.sizes["x"], 1)
    fig, ax = _axes(ax, (6.0, max(2.5, min(9.0, 5.0 * ratio + 0.5))))
    image = ax.imshow(
        np.ma.masked_invalid(values),
        cmap=colours,
        vmin=0,
        vmax=1,
        extent=extent,
        origin=origin,
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax, label="crop probability", shrink=0.8)
    _label_axes(ax, prob)
    if title:
        ax.set_title(title)
    return fig


def rgb(
    composite_data: xr.DataArray | Composite,
    period: int | Hashable = 0,
    bands: tuple[str, str, str] = ("B04", "B03", "B02"),
    ax=None,
    *,
    percentiles: tuple[float, float] = (2, 98),
    counts: xr.DataArray | None = None,
    title: str | None = None,
):
    """A true-colour (or any three bands) image of one period of a composite.

    Each band is stretched between its ``percentiles`` over the image; pixels without
    data are transparent. The title names the period (its first and last day), the bands
    and, when the observation counts are known, the share of pixels that had no clear
    observation in that period: a least-cloudy composite shows a cloud (or a pixel filled
    from another period) there.

    Parameters
    ----------
    composite_data
        (time, band, y, x) DataArray, or a ``Composite`` (its ``.data`` is used, and its
        ``.counts`` unless ``counts`` is given).
    period
        Position of the period (int), or a time label (nearest period).
    bands
        Red, green and blue band names.
    counts
        (time, y, x) usable observations per period and pixel (``Composite.counts``).
    title
        What the image is; the first line of the title (default "composite").

    Examples
    --------
    >>> rgb(comp, period=6).savefig("september.png")  # doctest: +SKIP
    """
    da, own_counts = composite_parts(composite_data)
    counts = own_counts if counts is None else counts
    if not isinstance(da, xr.DataArray):
        raise XcropInputError("rgb needs a composite DataArray (time, band, y, x) or a Composite.")
    _require_dims(da, ("time", "band", "y", "x"), "A composite")
    missing = [b for b in bands if b not in da["band"].to_numpy().tolist()]
    if missing:
        raise XcropInputError(
            f"The composite has no band(s) {missing}; bands are {da['band'].values.tolist()}."
        )
    if isinstance(period, (int, np.integer)):
        index = int(period)
    else:
        index = int(da.indexes["time"].get_indexer([period], method="nearest")[0])
    one = da.isel(time=index)
    cube = one.sel(band=list(bands)).transpose("y", "x", "band").to_numpy().astype("float64")
    valid = np.isfinite(cube).all(axis=-1)
    image = np.zeros((*cube.shape[:2], 4))
    if valid.any():
        low, high = np.percentile(cube[valid], percentiles, axis=0)
        stretched = (cube - low) / np.where(high > low, high - low, 1.0)
        image[..., :3] = np.clip(np.nan_to_num(stretched), 0, 1)
    image[..., 3] = valid
    extent, origin = _extent(one)
    ratio = da.sizes["y"] / max(da.sizes["x"], 1)
    fig, ax = _axes(ax, (5.0, max(2.5, min(9.0, 5.0 * ratio))))
    ax.imshow(image, extent=extent, origin=origin, interpolation="nearest")
    _label_axes(ax, one)
    lines = [f"{title or 'composite'}, {_period_text(da, index)}", f"R/G/B = {'/'.join(bands)}"]
    if counts is not None:
        share = no_clear_share(counts).iloc[index]
        percent = "< 1" if 0 < share < 0.005 else f"{100 * share:.0f}"
        lines[-1] += f"; {percent} % of pixels without a clear observation"
    ax.set_title("\n".join(lines), fontsize="small")
    return fig


def _period_text(da: xr.DataArray, index: int) -> str:
    """A period's first and last day ("2019-08-28 to 2019-09-26"), from the time labels'
    step (labels are first days); the first day alone for a single period or no dates."""
    times = da["time"].to_numpy()
    start = str(times[index])[:10]
    if len(times) < 2 or not np.issubdtype(times.dtype, np.datetime64):
        return start
    step = np.median(np.diff(times.astype("datetime64[D]")).astype("int64"))
    end = times[index].astype("datetime64[D]") + int(step) - 1
    return f"{start} to {end}"
