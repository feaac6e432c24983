"""Evaluation: metrics by hand, map rasters at points, tables, sensitivity, agreement."""

from __future__ import annotations

import math
from math import comb

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rioxarray
import xarray as xr
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import Point

import xcrop
from xcrop._evaluation import (
    evaluate,
    labeller_agreement,
    metrics,
    results_table,
    sensitivity,
    to_markdown,
)
from xcrop._labels import consensus, join_labellers
from xcrop._maps import evaluate_map, per_class_errors, read_map

from .test_labels import TEST_FILES

pytest.importorskip("sklearn")

BANDS = ("B04", "B08", "NDVI")


def make_samples(y, *, feature=None, ids=None) -> xcrop.Samples:
    """Samples whose NDVI in every period is ``feature`` (default: the label)."""
    y = np.asarray(y, "int8")
    values = y.astype("float32") if feature is None else np.asarray(feature, "float32")
    X = np.zeros((len(y), 12, len(BANDS)), "float32")
    X[:, :, -1] = values[:, None]
    ids = np.arange(len(y)) if ids is None else np.asarray(ids)
    counts = np.ones((len(y), 12), "uint8")
    return xcrop.Samples(X, y, np.ones(len(y), bool), ids, BANDS, counts)


class LastNDVI:
    """A predictor: the NDVI of the last period is the crop probability."""

    bands = BANDS

    def __init__(self):
        self.seen = []

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.seen.append(X.dtype)
        return X[:, -1, -1]


# -- metrics ------------------------------------------------------------------------------------


def test_metrics_known_answers():
    y = [0, 0, 0, 0, 1, 1, 1]
    prob = [0.1, 0.5, 0.6, 0.2, 0.8, 0.3, 0.5]
    # prob >= 0.5 is crop: TP 2 (0.8, 0.5), FP 2 (0.5, 0.6), FN 1 (0.3), TN 2
    m = metrics(y, prob)
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # = 4/7
    # 12 crop/non-crop pairs: 0.8 beats 4, 0.3 beats 2, 0.5 beats 2 and ties 1 -> 8.5
    assert m["roc_auc"] == pytest.approx(8.5 / 12)
    assert (m["n"], m["n_crop"]) == (7, 3)
    # Brier: squared errors .01 .25 .36 .04 | .04 .49 .25 -> 1.44 / 7
    assert m["brier"] == pytest.approx(1.44 / 7)
    assert all(type(m[k]) is float for k in xcrop._evaluation.METRICS)
    # another threshold moves the classes, not the AUC
    high = metrics(y, prob, threshold=0.7)
    assert (high["accuracy"], high["precision"], high["recall"]) == pytest.approx((5 / 7, 1, 1 / 3))
    assert high["roc_auc"] == m["roc_auc"]


def test_metrics_hard_classes_one_class_and_nothing_predicted():
    hard = metrics([0, 0, 1, 1], pred=[0, 1, 1, 1])
    assert math.isnan(hard["roc_auc"]) and math.isnan(hard["brier"])  # no probabilities
    assert (hard["accuracy"], hard["precision"], hard["recall"]) == pytest.approx((0.75, 2 / 3, 1))
    one_class = metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert math.isnan(one_class["roc_auc"]) and one_class["recall"] == pytest.approx(2 / 3)
    none = metrics([0, 1, 1], [0.1, 0.2, 0.3])  # nothing called crop: zero_division -> 0
    assert (none["precision"], none["recall"], none["f1"]) == (0.0, 0.0, 0.0)
    assert none["roc_auc"] == 1.0


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([0, 1], [0.2, 0.7]), {"pred": [0, 1]}, "either prob"),
        (([0, 1],), {}, "either prob"),
        (([0, 1], [0.2, np.nan]), {}, "NaN"),
        (([0, 1], [0.2]), {}, "shape"),
        (([0, 2], [0.2, 0.3]), {}, "0 \\(non-crop\\) or 1"),
        (([], []), {}, "empty"),
        (([0, 1],), {"pred": [0.2, 0.9]}, "hard classes"),
    ],
)
def test_metrics_errors_say_what_to_fix(args, kwargs, match):
    with pytest.raises(xcrop.XcropError, match=match):
        metrics(*args, **kwargs)


# -- predictors ---------------------------------------------------------------------------------


def test_evaluate_a_predictor_on_samples():
    test = make_samples([0, 0, 1, 1, 1], feature=[0.2, 0.6, 0.9, 0.4, 0.75])
    predictor = LastNDVI()
    result = evaluate(predictor, test)
    assert predictor.seen == [np.float32]
    # classes 0 1 1 0 1 vs labels 0 0 1 1 1: TP 2, FP 1, FN 1, TN 1
    # AUC: crop 0.9 beats 2 non-crop, 0.4 beats 1 (0.2), 0.75 beats 2 -> 5 of 6 pairs
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["roc_auc"] == pytest.approx(5 / 6)
    expected = metrics(test.y, [0.2, 0.6, 0.9, 0.4, 0.75])
    assert {k: result[k] for k in expected} == pytest.approx(expected)
    # five points, each alone in its bin of 0.1: |p - y| = .2 .6 .1 .6 .25 -> ECE 0.35
    assert result["ece"] == pytest.approx(0.35)
    curve = result["reliability"]
    assert curve.n.tolist() == [1] * 5 and curve.crop_share.tolist() == [0, 1, 0, 1, 1]
    assert curve.mean_prob.to_numpy() == pytest.approx([0.2, 0.4, 0.6, 0.75, 0.9])


def test_evaluate_refuses_other_band_order_and_non_predictors():
    test = make_samples([0, 1])
    other = LastNDVI()
    other.bands = ("B08", "B04", "NDVI")
    with pytest.raises(
        xcrop.XcropError, match=r"\('B08', 'B04', 'NDVI'\).*\('B04', 'B08', 'NDVI'\)"
    ):
        evaluate(other, test)
    with pytest.raises(xcrop.XcropError, match="predict_proba"):
        evaluate(object(), test)

    class TwoColumns(LastNDVI):
        def predict_proba(self, X):
            return np.column_stack([1 - X[:, -1, -1], X[:, -1, -1]])

    with pytest.raises(xcrop.XcropError, match=r"shape \(2, 2\)"):
        evaluate(TwoColumns(), test)

    class NoBands:  # no ``bands``: accepted as is
        def predict_proba(self, X):
            return X[:, -1, -1]

    assert evaluate(NoBands(), test)["accuracy"] == 1.0


# -- map rasters --------------------------------------------------------------------------------

UTM_ORIGIN = (300000.0, 1001200.0)  # EPSG:32631, Togo; 30 m pixels, 40 x 40
TO_LONLAT = Transformer.from_crs(32631, 4326, always_xy=True)


def utm_centre(row: int, col: int) -> tuple[float, float]:
    return UTM_ORIGIN[0] + 30 * col + 15, UTM_ORIGIN[1] - 30 * row - 15


def lonlat_points(xy, labels) -> gpd.GeoDataFrame:
    lon, lat = TO_LONLAT.transform(*np.array(xy).T)
    return gpd.GeoDataFrame(
        {"id": np.arange(len(labels)), "label": labels},
        geometry=[Point(a, b) for a, b in zip(lon, lat, strict=True)],
        crs=4326,
    )


@pytest.fixture
def class_map(tmp_path):
    """A GFSAD-like class map (1 non-crop, 2 crop, 255 nodata) in EPSG:32631."""
    classes = np.ones((40, 40), "uint8")
    classes[2, 3] = classes[18, 20] = classes[34, 30] = 2
    classes[30, 38] = 255
    path = tmp_path / "classes.tif"
    profile = dict(driver="GTiff", width=40, height=40, count=1, dtype="uint8", crs="EPSG:32631")
    profile.update(transform=from_origin(*UTM_ORIGIN, 30, 30), nodata=255)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes, 1)
    cells = [(2, 3), (10, 12), (18, 20), (26, 5), (34, 30), (30, 38)]  # > 100 m apart
    xy = [utm_centre(*rc) for rc in cells] + [(UTM_ORIGIN[0] - 500, UTM_ORIGIN[1] - 100)]
    #         crop    non     crop    non     crop    nodata  outside
    labels = [1, 0, 0, 1, 1, 1, 0]
    return path, lonlat_points(xy, labels)


def test_class_map_read_at_lonlat_points_outside_and_nodata_reported(class_map):
    path, points = class_map
    values = read_map(path, points, kind="classes", crop_classes=(2,))
    np.testing.assert_array_equal(values, [1, 0, 1, 0, 1, np.nan, np.nan])
    result = evaluate_map(path, points, kind="classes")
    # kept: labels 1 0 0 1 1 vs map 1 0 1 0 1 -> TP 2, FP 1, FN 1, TN 1
    assert result["report"] == {
        "read": 7,
        "kept": 5,
        "dropped": {"outside the map": 1, "no data at the pixel": 1},
    }
    assert (result["accuracy"], result["precision"], result["recall"], result["f1"]) == (
        pytest.approx((3 / 5, 2 / 3, 2 / 3, 2 / 3))
    )
    assert math.isnan(result["roc_auc"]) and (result["n"], result["n_crop"]) == (5, 3)
    # the same raster as a DataArray (masked: nodata -> NaN) reads the same
    da = rioxarray.open_rasterio(path, masked=True)
    np.testing.assert_array_equal(read_map(da, points, kind="classes"), values)
    assert evaluate_map(da, points, kind="classes")["report"] == result["report"]
    # a nodata value the file does not declare
    assert np.isnan(read_map(path, points, kind="classes", nodata=2)[[0, 2, 4]]).all()


def test_fraction_map_in_another_crs_and_resolution(class_map):
    _, points = class_map
    # a 100 m-like crop fraction in EPSG:3857 covering the UTM raster; values 0..100
    to_merc = Transformer.from_crs(4326, 3857, always_xy=True)
    mx, my = to_merc.transform(points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
    left, top = mx[:6].min() - 150, my[:6].max() + 150
    width = int((mx[:6].max() + 150 - left) // 100) + 1
    height = int((top - (my[:6].min() - 150)) // 100) + 1
    x = left + 100 * np.arange(width) + 50
    y = top - 100 * np.arange(height) - 50
    fraction = np.zeros((height, width), "float32")
    rows = ((top - my[:6]) // 100).astype(int)
    cols = ((mx[:6] - left) // 100).astype(int)
    assert len(set(zip(rows, cols, strict=True))) == 6  # one point per 100 m pixel
    fraction[rows, cols] = [80, 30, 60, 10, 50, 255]
    da = xr.DataArray(fraction, dims=("y", "x"), coords={"y": y, "x": x})
    da = da.rio.write_crs(3857).rio.write_nodata(255)
    values = read_map(da, points, kind="fraction")
    np.testing.assert_allclose(values, [0.8, 0.3, 0.6, 0.1, 0.5, np.nan, np.nan])
    result = evaluate_map(da, points, kind="fraction")
    # crop 0.8, 0.1, 0.5 vs non-crop 0.3, 0.6: 0.8 beats 2, 0.5 beats 1 -> 3 of 6
    assert result["roc_auc"] == pytest.approx(0.5)
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["report"]["dropped"] == {"outside the map": 1, "no data at the pixel": 1}
    # an undeclared nodata value is refused with a hint, not read as a probability of 2.55
    with pytest.raises(xcrop.XcropError, match="nodata="):
        read_map(da.rio.write_nodata(None), points, kind="fraction")
    assert np.isnan(read_map(da.rio.write_nodata(None), points, nodata=255)[5])


def test_map_errors(class_map, tmp_path):
    path, points = class_map
    with pytest.raises(xcrop.XcropError, match="No map raster"):
        read_map(tmp_path / "missing.tif", points)
    with pytest.raises(xcrop.XcropError, match="kind must be"):
        read_map(path, points, kind="percent")
    with pytest.raises(xcrop.CRSError, match="write_crs"):
        read_map(xr.DataArray(np.zeros((2, 2)), dims=("y", "x")), points)
    with pytest.raises(xcrop.XcropError, match="Unknown options"):
        evaluate_map(path, points, kind="classes", crop_class=2)
    far = points.assign(geometry=[Point(30, -1)] * len(points))
    with pytest.raises(xcrop.XcropError, match="covers the test region"):
        evaluate_map(path, far, kind="classes")


# -- errors per land-cover class ------------------------------------------------------------------


def _class_case():
    """Land cover 6 x 8 (10 m, EPSG:32631): crop, water, built, two rows each; a map whose
    answers are known: crop 12 of 16 above 0.5, water 4 of 14 (exactly 0.5) and 2 NaN,
    built all 1."""
    cover = np.repeat(np.array([0, 5, 7], "uint8"), 16).reshape(6, 8)
    prob = np.empty((6, 8), "float32")
    prob[:2] = 0.8
    prob[1, 4:] = 0.3
    prob[2:4] = 0.1
    prob[2, :4] = 0.5
    prob[3, 6:] = np.nan
    prob[4:] = 1.0
    coords = {"y": 1000.0 - 10 * np.arange(6) - 5, "x": 300000.0 + 10 * np.arange(8) + 5}
    make = lambda a: xr.DataArray(a, dims=("y", "x"), coords=coords).rio.write_crs(32631)  # noqa: E731
    return make(prob), make(cover)


EXPECTED_CLASSES = pd.DataFrame(
    {
        "code": [0, 5, 7],
        "crop": [True, False, False],
        "pixels": [16, 14, 16],
        "mapped_crop": [12 / 16, 4 / 14, 1.0],
        "mean_probability": [(12 * 0.8 + 4 * 0.3) / 16, (4 * 0.5 + 10 * 0.1) / 14, 1.0],
        "no_data": [0, 2, 0],
    },
    index=pd.Index(["crop", "water", "built"], name="class"),
)


def test_per_class_errors_known_answer_numpy_and_dask_chunks():
    prob, cover = _class_case()
    names = {0: "crop", 5: "water", 7: "built"}
    eager = per_class_errors(prob, cover, names, crop_classes=(0, 9))
    pd.testing.assert_frame_equal(eager, EXPECTED_CLASSES, rtol=1e-6)
    # dask, chunks that cut across the classes: counted per chunk, then summed
    seen = []

    def record(block):
        seen.append(block.shape)
        return block

    lazy = prob.copy(
        data=prob.chunk({"y": 4, "x": 3}).data.map_blocks(record, meta=np.array((), "float32"))
    )
    result = per_class_errors(lazy, cover.chunk({"y": 5, "x": 5}), names, crop_classes=(0, 9))
    pd.testing.assert_frame_equal(result, EXPECTED_CLASSES, rtol=1e-6)
    assert len(seen) == 2 * 3 and max(seen) <= (4, 3)  # every chunk once, none bigger
    # a code without a name, and a threshold: the share moves, the counts do not
    high = per_class_errors(prob, cover, {0: "crop"}, threshold=0.9)
    assert list(high.index) == ["crop", "class 5", "class 7"] and not high["crop"].any()
    assert high["mapped_crop"].tolist() == [0.0, 0.0, 1.0]


def test_per_class_errors_reads_a_larger_truth_file_with_nodata(tmp_path):
    prob, cover = _class_case()
    big = np.full((10, 12), 255, "uint8")  # the map is rows 2..7, columns 3..10
    big[2:8, 3:11] = cover.values
    big[2, 3] = 255  # one crop pixel without truth: left out
    big[0, 0] = 7  # outside the map: not counted
    path = tmp_path / "landcover.tif"
    profile = dict(driver="GTiff", width=12, height=10, count=1, dtype="uint8", crs="EPSG:32631")
    profile.update(transform=from_origin(300000.0 - 30, 1000.0 + 20, 10, 10), nodata=255)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(big, 1)
    result = per_class_errors(prob, path, {0: "crop", 5: "water", 7: "built"})
    assert result["pixels"].tolist() == [15, 14, 16]
    assert result.loc["crop", "mapped_crop"] == pytest.approx(11 / 15)
    assert not result["crop"].any()  # no crop_classes given


def test_per_class_errors_refuses_other_grids():
    prob, cover = _class_case()
    with pytest.raises(xcrop.XcropError, match="reproject"):
        per_class_errors(prob, cover.rio.write_crs(32632))
    with pytest.raises(xcrop.XcropError, match="does not cover"):
        per_class_errors(prob, cover.isel(x=slice(0, 4)))
    with pytest.raises(xcrop.XcropError, match="dims"):
        per_class_errors(prob.expand_dims(time=2), cover)
    with pytest.raises(xcrop.XcropError, match="No land-cover raster"):
        per_class_errors(prob, "missing.tif")


# -- tables -------------------------------------------------------------------------------------


def test_table_and_markdown():
    results = {
        "GFSAD 30 m": metrics([0, 0, 1, 1], pred=[0, 1, 1, 1]),
        "random forest": {**metrics([0, 0, 1, 1], [0.1, 0.6, 0.8, 0.4]), "extra": "ignored"},
    }
    frame = results_table(results)
    assert list(frame.columns) == ["accuracy", "auc", "precision", "recall", "f1", "brier", "n"]
    assert list(frame.index) == ["GFSAD 30 m", "random forest"] and frame.index.name == "method"
    assert math.isnan(frame.loc["GFSAD 30 m", "auc"]) and frame["n"].dtype == "int64"
    assert to_markdown(frame) == "\n".join(
        [
            "| method | accuracy | AUC | precision | recall | F1 | Brier | n |",
            "|---|---|---|---|---|---|---|---|",
            "| GFSAD 30 m | 0.75 | \u2013 | 0.67 | 1.00 | 0.80 | \u2013 | 4 |",
            "| random forest | 0.50 | 0.75 | 0.50 | 0.50 | 0.50 | 0.19 | 4 |",
        ]
    )
    assert "| 0.750 |" in to_markdown(frame, digits=3)


# -- sensitivity --------------------------------------------------------------------------------


class MeanLabel:
    """Predicts the crop share of its training subset everywhere."""

    bands = BANDS

    def __init__(self, subset: xcrop.Samples):
        self.p = float(subset.y.mean())

    def predict_proba(self, X):
        return np.full(len(X), self.p)


def test_sensitivity_plain_draws_known_answers():
    local = make_samples([1] * 6 + [0] * 14, ids=np.arange(100, 120))
    test = make_samples([1] * 3 + [0] * 7)  # all crop: accuracy 0.3; all non-crop: 0.7
    calls = []

    def fit(subset, seed):
        calls.append((len(subset), seed, subset.ids.copy()))
        return MeanLabel(subset)

    frame = sensitivity(fit, local, test, sizes=[2, 10], seeds=(0, 1, 2))
    assert [(n, s) for n, s, _ in calls] == [(2, 0), (2, 1), (2, 2), (10, 0), (10, 1), (10, 2)]
    expected = {}
    for n, seed, ids in calls:
        index = np.random.default_rng(seed).permutation(20)[:n]
        np.testing.assert_array_equal(ids, 100 + index)
        assert len(set(ids)) == n
        share = (index < 6).mean()
        expected.setdefault(n, []).append(0.3 if share >= 0.5 else 0.7)
    # with one seed, the 10 contain the 2 (prefixes of one permutation)
    assert set(calls[0][2]) <= set(calls[3][2])
    assert list(frame.index) == [2, 10] and frame.index.name == "size"
    for n, acc in expected.items():
        assert frame.loc[n, "accuracy"] == pytest.approx(np.mean(acc))
        assert frame.loc[n, "accuracy_std"] == pytest.approx(np.std(acc))
    assert (frame["roc_auc"] == 0.5).all() and (frame["runs"] == 3).all()
    runs = pd.DataFrame(frame.attrs["runs"])
    assert len(runs) == 6 and {"size", "seed", "accuracy", "roc_auc", "n"} <= set(runs)
    assert frame.columns[:4].tolist() == ["accuracy", "accuracy_std", "roc_auc", "roc_auc_std"]


def test_sensitivity_stratified_keeps_shares_and_errors():
    local = make_samples([1] * 6 + [0] * 6)
    test = make_samples([1] * 3 + [0] * 7)
    shares = []

    def fit(subset, seed):
        shares.append((len(subset), int(subset.y.sum())))
        return MeanLabel(subset)

    frame = sensitivity(fit, local, test, sizes=[3, 4], stratify=True)
    # 3 of a 50/50 pool: 1.5 each, the remainder goes to class 0 -> 1 crop -> all non-crop
    assert shares == [(3, 1)] * 3 + [(4, 2)] * 3
    assert frame["accuracy"].tolist() == pytest.approx([0.7, 0.3])
    assert (frame["accuracy_std"] == 0).all()
    with pytest.raises(xcrop.XcropError, match=r"\[13\] exceed the 12 local samples"):
        sensitivity(fit, local, test, sizes=[4, 13])
    with pytest.raises(xcrop.XcropError, match="positive"):
        sensitivity(fit, local, test, sizes=[0])


# -- labeller agreement -------------------------------------------------------------------------


def test_labeller_agreement_constructed():
    nan = np.nan
    frame = pd.DataFrame(
        {
            "a": [1, 0, 1, nan, 0, nan],
            "b": [1, 1, 1, 0, nan, nan],
            "c": ["crop", "non-crop", None, "non-crop", "non-crop", None],
        }
    )
    result = labeller_agreement(frame, ["a", "b", "c"])
    # a-b: points 0 1 2 labelled by both, 0 and 2 alike; a-c: 0 1 4, all alike;
    # b-c: 0 1 3, 0 and 3 alike
    assert result["both"].to_numpy().tolist() == [[4, 3, 3], [3, 4, 3], [3, 3, 4]]
    assert result["agree"].to_numpy().tolist() == [[4, 2, 3], [2, 4, 2], [3, 2, 4]]
    assert result["fraction"].loc["a", "b"] == pytest.approx(2 / 3)
    assert result["fraction"].loc["a", "c"] == 1.0
    assert (result["unanimous"], result["all_labelled"], result["points"]) == (1, 2, 6)
    with pytest.raises(xcrop.XcropError, match=r"\['d'\]"):
        labeller_agreement(frame, ["a", "d"])
    with pytest.raises(xcrop.XcropError, match="two"):
        labeller_agreement(frame, ["a"])


def test_labeller_agreement_real_togo_test_set():
    names = ["cn", "bm", "bb", "hrk"]
    joined = join_labellers(TEST_FILES)
    result = labeller_agreement(joined, names)
    # 355 points: the 351 all four labelled and 4 that only hrk labelled
    assert (result["points"], result["all_labelled"]) == (355, 351)
    assert result["both"].to_numpy().min() == 351
    assert result["agree"].to_numpy().tolist() == [
        [351, 273, 274, 229],
        [273, 351, 278, 249],
        [274, 278, 351, 248],
        [229, 249, 248, 355],
    ]
    assert result["unanimous"] == 181  # 52 % of the points
    # cross-checks from the crop votes per point (0..4 of the four labellers)
    crop_votes = joined[names].dropna().sum(axis=1).astype(int)
    per_votes = crop_votes.value_counts().sort_index().to_dict()
    assert per_votes == {0: 131, 1: 69, 2: 45, 3: 56, 4: 50}
    assert result["unanimous"] == per_votes[0] + per_votes[4]
    pairs = sum(count * (comb(k, 2) + comb(4 - k, 2)) for k, count in per_votes.items())
    assert np.triu(result["agree"].to_numpy(), 1).sum() == pairs == 1551
    kept = consensus(joined, names)
    dropped = {"below quorum": 4, "tie": per_votes[2]}
    assert len(kept) == 306 and kept.attrs["report"]["dropped"] == dropped
    assert len(kept) == result["unanimous"] + per_votes[1] + per_votes[3]
