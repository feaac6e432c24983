"""Plots: figures without pyplot that save to PNGs of the expected size and content."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import xcrop
from xcrop import plot
from xcrop._calibration import reliability
from xcrop._composite import no_clear_share
from xcrop._evaluation import labeller_agreement

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from matplotlib.figure import Figure
from matplotlib.image import imread


def saved(fig, path) -> np.ndarray:
    fig.savefig(path)
    return imread(path)


def test_roc_curve_of_a_perfect_classifier_passes_through_0_1(tmp_path):
    y = np.array([0, 0, 1, 1, 0, 1])
    fig = plot.roc_curves({"perfect": (y, y * 0.8 + 0.1), "coin": (y, [0.5] * 6)})
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    perfect = ax.lines[1]
    points = set(zip(perfect.get_xdata(), perfect.get_ydata(), strict=True))
    assert (0.0, 1.0) in points and (1.0, 1.0) in points
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["chance", "perfect (AUC 1.00)", "coin (AUC 0.50)"]
    assert ax.get_title() == "ROC curves on 6 test points"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("false positive rate", "true positive rate")
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1.01)
    assert saved(fig, tmp_path / "roc.png").shape == (450, 450, 4)
    # curves on different points: no count in the title; a title given is kept
    mixed = plot.roc_curves({"a": (y, y), "b": ([0, 1], [0.3, 0.6])})
    assert mixed.axes[0].get_title() == "ROC curves"
    assert plot.roc_curves({"a": (y, y)}, title="Togo").axes[0].get_title() == "Togo"
    with pytest.raises(xcrop.XcropError, match="both crop and non-crop"):
        plot.roc_curves({"one class": ([1, 1], [0.2, 0.9])})


def test_reliability_diagram_draws_the_bins_and_names_the_brier_score(tmp_path):
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.85, 0.95, 0.82, 0.88, 0.12, 0.1])
    fig = plot.reliability_diagram({"model": (y, p), "curve": reliability(y, p, bins=5)})
    ax = fig.axes[0]
    diagonal, model, curve = ax.lines
    np.testing.assert_allclose(diagonal.get_xdata(), [0, 1])
    # bins of 0.1: 0.0-0.1 (0.05), 0.1-0.2 (0.15, 0.12, 0.1), 0.8-0.9 (0.85, 0.82, 0.88), 0.9-1
    np.testing.assert_allclose(model.get_xdata(), [0.05, 0.37 / 3, 2.55 / 3, 0.95])
    np.testing.assert_allclose(model.get_ydata(), [0, 1 / 3, 2 / 3, 1])
    assert len(curve.get_xdata()) == 2  # a curve given as such: its own bins of 0.2
    brier = np.mean((p - y) ** 2)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["calibrated", f"model (Brier {brier:.3f})", "curve"]
    assert ax.get_title() == "reliability" and "share of crop" in ax.get_ylabel()
    assert saved(fig, tmp_path / "reliability.png").shape == (450, 450, 4)
    with pytest.raises(xcrop.XcropError, match="needs columns mean_prob"):
        plot.reliability_diagram({"bad": pd.DataFrame({"x": [1]})})


def test_sensitivity_curve_draws_means_and_std_bands(tmp_path):
    frame = pd.DataFrame(
        {"roc_auc": [0.7, 0.8, 0.9], "roc_auc_std": [0.05, 0.03, 0.01], "f1": [0.5, 0.6, 0.7]},
        index=pd.Index([10, 50, 200], name="size"),
    )
    fig = plot.sensitivity_curve(frame)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.7, 0.8, 0.9])
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [10, 50, 200])
    assert len(ax.collections) == 1  # the +/- std band
    assert saved(fig, tmp_path / "sensitivity.png").shape == (350, 500, 4)
    # titled, axes named, the band in the legend; AUC's axis from chance (0.5) to 1, not
    # zoomed to the data (0.65-0.91 here), so small differences do not look large
    assert ax.get_title() == "ROC AUC against the number of local labels"
    assert ax.get_xlabel() == "local training labels" and "from 0.5: chance" in ax.get_ylabel()
    assert ax.get_ylim() == (0.5, 1.0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["mean over seeds", "± 1 std over seeds"]
    both = plot.sensitivity_curve({"LSTM": frame, "RF": frame.assign(f1=0.4)}, metric="f1")
    assert [line.get_label() for line in both.axes[0].lines] == ["LSTM", "RF"]
    assert len(both.axes[0].collections) == 0  # no f1_std column: no band
    assert both.axes[0].get_ylim() == (0.0, 1.0) and both.axes[0].get_ylabel() == "F1"
    assert both.axes[0].get_title() == "F1 against the number of local labels"
    # a point below chance widens the axis to show it
    low = plot.sensitivity_curve(frame.assign(roc_auc=[0.42, 0.6, 0.7]), title="t")
    assert low.axes[0].get_ylim() == (pytest.approx(0.3), 1.0)
    assert low.axes[0].get_title() == "t"
    with pytest.raises(xcrop.XcropError, match="roc_auc"):
        plot.sensitivity_curve(frame, metric="kappa")


def test_agreement_matrix_writes_counts(tmp_path):
    table = pd.DataFrame({"a": [1, 0, 1, np.nan], "b": [1, 1, 1, 0], "c": [1, 0, 0, 0]})
    agreement = labeller_agreement(table, ["a", "b", "c"])
    fig = plot.agreement_matrix(agreement)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 9 and texts[1] == "0.67\n2/3" and texts[0] == "1.00\n3/3"
    assert ax.get_title() == "unanimous: 1 of 3 points labelled by all"
    assert ax.get_xlabel() == ax.get_ylabel() == "labeller"
    image = saved(fig, tmp_path / "agreement.png")
    assert image.shape == (460, 560, 4)
    assert len(plot.agreement_matrix(agreement["fraction"]).axes[0].texts) == 9


def probability(height=20, width=30) -> xr.DataArray:
    y = 1000000 - 10 * np.arange(height) - 5
    x = 300000 + 10 * np.arange(width) + 5
    values = np.linspace(0, 1, height * width).reshape(height, width)
    values[:5, :5] = np.nan
    da = xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": x})
    return da.rio.write_crs(32631)


def test_probability_map_extent_in_crs_units_and_blank_nan(tmp_path):
    fig = plot.probability_map(probability(), title="Togo")
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.get_extent() == [300000, 300300, 999800, 1000000]
    assert image.origin == "upper" and image.get_clim() == (0, 1)
    assert image.get_array().mask[:5, :5].all() and not image.get_array().mask[5:, 5:].any()
    assert ax.get_xlabel() == "x (EPSG:32631)" and ax.get_title() == "Togo"
    assert len(fig.axes) == 2  # the colour bar
    png = saved(fig, tmp_path / "probability.png")
    assert png.shape[1] == 600 and png.shape[0] == int(fig.get_figheight() * 100)
    # y ascending (south up in the array) is drawn the right way up
    flipped = plot.probability_map(probability().isel(y=slice(None, None, -1)))
    assert flipped.axes[0].images[0].origin == "lower"
    assert flipped.axes[0].images[0].get_extent() == [300000, 300300, 999800, 1000000]
    with pytest.raises(xcrop.XcropError, match=r"dims \('y', 'x'\)"):
        plot.probability_map(probability().expand_dims(time=1))


def composite() -> xr.DataArray:
    rng = np.random.default_rng(0)
    data = rng.uniform(0.0, 0.3, (2, 4, 8, 10))
    data[1, :, 0, 0] = np.nan
    return xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords={
            "time": pd.to_datetime(["2019-03-01", "2019-03-31"]),
            "band": ["B02", "B03", "B04", "B08"],
            "y": 1000000 - 10 * np.arange(8) - 5.0,
            "x": 300000 + 10 * np.arange(10) + 5.0,
        },
    ).rio.write_crs(32631)


def test_rgb_stretch_transparent_gaps_and_given_axes(tmp_path):
    cube = composite()
    fig = plot.rgb(cube, period=1)
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (8, 10, 4) and image.min() == 0 and image.max() == 1
    assert image[0, 0, 3] == 0 and (image[..., 3].sum() == 79)  # the gap is transparent
    red = cube.isel(time=1).sel(band="B04").to_numpy()
    low, high = np.nanpercentile(red, [2, 98])
    np.testing.assert_allclose(image[3, 4, 0], np.clip((red[3, 4] - low) / (high - low), 0, 1))
    ax = fig.axes[0]
    assert ax.get_title() == "composite, 2019-03-31 to 2019-04-29\nR/G/B = B04/B03/B02"
    assert ax.get_xlabel() == "x (EPSG:32631)" and ax.get_ylabel() == "y (EPSG:32631)"
    nearest = plot.rgb(cube, period="2019-03-02").axes[0].get_title()
    assert nearest.startswith("composite, 2019-03-01 to 2019-03-30")
    # with the counts (a Composite's own), the title says how much of the period was
    # without a clear observation: 20 of 80 pixels here in the second period, 1 in the first
    counts = xr.zeros_like(cube.isel(band=0, drop=True), dtype="uint8") + 3
    counts[1, :2] = 0
    counts[0, 0, 0] = 0
    comp = xcrop.Composite(cube, counts, counts.astype("datetime64[ns]"))
    title = plot.rgb(comp, period=1, title="least-cloudy composite, Togo").axes[0].get_title()
    assert title == (
        "least-cloudy composite, Togo, 2019-03-31 to 2019-04-29\n"
        "R/G/B = B04/B03/B02; 25 % of pixels without a clear observation"
    )
    few = plot.rgb(cube, period=0, counts=counts).axes[0].get_title()
    assert few.endswith("; 1 % of pixels without a clear observation")
    np.testing.assert_allclose(no_clear_share(counts), [1 / 80, 0.25])
    # drawing on given axes returns their figure
    host = Figure(figsize=(6, 3), dpi=100)
    left, right = host.subplots(1, 2)
    assert plot.rgb(cube, ax=left) is host and plot.probability_map(probability(), ax=right) is host
    assert saved(host, tmp_path / "both.png").shape == (300, 600, 4)
    with pytest.raises(xcrop.XcropError, match=r"no band\(s\) \['B05'\]"):
        plot.rgb(cube, bands=("B05", "B03", "B02"))


def test_figures_render_in_threads_without_pyplot(tmp_path):
    def draw(i):
        path = tmp_path / f"map{i}.png"
        plot.probability_map(probability() * (i / 4)).savefig(path)
        return imread(path).shape

    with ThreadPoolExecutor(4) as pool:
        shapes = list(pool.map(draw, range(4)))
    assert len(set(shapes)) == 1
    code = (
        "import sys, numpy as np, xcrop.plot as p; "
        "p.roc_curves({'a': ([0, 1], [0.2, 0.8])}); "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
