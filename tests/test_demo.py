"""The main job end to end at its tiny size: every report file exists and is valid."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

import geopandas as gpd
import rasterio
from matplotlib.image import imread

import xcrop
from xcrop.demo import LOCAL_REGIONS, run_demo


def test_demo_writes_a_valid_report(tiny, tmp_path):
    lines = []
    report = run_demo("tiny", out=tmp_path / "report", archive=tiny, sensitivity_seeds=(0,),
                      log=lines.append)  # fmt: skip
    folder = report.folder
    assert all(f.exists() for f in report.files)
    assert any("grid search" in line for line in lines) and "| method |" in lines[-2]
    for region in LOCAL_REGIONS:
        prob = xcrop.open_probability(folder / f"{region}.zarr")
        assert prob.rio.crs.to_epsg() == 32631 and prob.shape == (120, 120)
        values = prob.values
        finite = values[np.isfinite(values)]
        assert finite.size > 0.95 * values.size and finite.min() >= 0 and finite.max() <= 1
        with rasterio.open(folder / f"{region}.tif") as cog:
            assert cog.crs.to_epsg() == 32631 and cog.overviews(1) is not None
            np.testing.assert_allclose(cog.read(1, masked=True).filled(np.nan), values,
                                       equal_nan=True)  # fmt: skip
        for png in (f"{region}_map.png", f"{region}_rgb.png"):
            image = imread(folder / png)
            assert image.ndim == 3 and min(image.shape[:2]) > 100 and image.std() > 0
        suggestions = gpd.read_file(folder / f"{region}_label_next.geojson")
        assert len(suggestions) == 16 and suggestions.crs.to_epsg() == 4326  # one per 30 px cell
        assert (abs(suggestions.probability - 0.5) < 0.5).all()
    for png in ("roc.png", "sensitivity.png", "agreement.png"):
        assert imread(folder / png).ndim == 3
    table = pd.read_csv(folder / "metrics.csv", index_col=0)
    assert len(table) == 6
    metrics = table[["accuracy", "auc", "precision", "recall", "f1"]]
    assert ((metrics.stack() >= 0) & (metrics.stack() <= 1)).all()  # NaN (class-map AUC) dropped
    assert np.isnan(table.loc["30 m class map (no AUC)", "auc"])
    lstm = table.loc["multi-headed LSTM (local + global)"]
    assert lstm.auc > 0.75 and lstm.accuracy > 0.7  # it learned something real
    assert "| multi-headed LSTM (local + global) |" in (folder / "metrics.md").read_text()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["local"] > 100 and summary["global"] > 100 and summary["test"] > 50
    model = xcrop.load_model(folder / "model.pt")
    assert model.multi_head and model.bands[-1] == "NDVI"
    # the map against the archive's land cover, per class: every pixel counted once
    per_class = pd.read_csv(folder / "per_class.csv")
    pd.testing.assert_frame_equal(per_class, report.per_class, check_dtype=False)
    pixels = per_class.groupby("region")[["pixels", "no_data"]].sum().sum(axis=1)
    assert pixels.to_dict() == {"both regions": 28800, **dict.fromkeys(LOCAL_REGIONS, 14400)}
    both = per_class[per_class.region == "both regions"].set_index("class")
    assert both.loc[["crop", "irrigated crop"], "crop"].all() and not both.loc["water", "crop"]
    assert both.loc["crop", "mapped_crop"] > 0.8  # the recall of the main crop class
    # hand labels on water since SIM_VERSION 3: the river was mapped crop on 36 % of its
    # pixels here before (1 to 2 % now); a false-positive rate, so small is good
    assert both.loc["water", "mapped_crop"] < 0.25
    assert "| water | False |" in (folder / "per_class.md").read_text()
    assert summary["per_class"]["both regions"]["water"]["pixels"] == both.loc["water", "pixels"]
    assert any("per land-cover class" in line for line in lines)
    # calibration: the reliability diagram; metrics with the Brier score in summary.json
    assert imread(folder / "reliability.png").ndim == 3
    lstm_metrics = summary["metrics"]["multi-headed LSTM (local + global)"]
    assert 0 <= lstm_metrics["brier"] < 0.25 and lstm_metrics["roc_auc"] == pytest.approx(lstm.auc)
    # the area of each region: an interval around the estimate, beside the truth
    for region in LOCAL_REGIONS:
        area = summary["area"][region]
        assert area["95 % lower"] < area["estimate"] < area["95 % upper"]
        assert 0 < area["true"] <= 120 * 120 * 0.01 and area["points"] >= 100
    assert "| togo-north |" in (folder / "area.md").read_text()
    # one round of active labelling: more local labels, scored on the same test set
    before, after = summary["active_round"].values()
    assert before["n"] == after["n"] == summary["test"]
    assert "suggested, labelled" in (folder / "active_round.md").read_text()
