"""The real-data benchmark (benchmarks/bench_real_data.py) on WorldCereal's real data:
its loaders' values, its spatial splits, and a small run (points, 2 folds, 1 seed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "worldcereal"
if not DATA.exists():
    pytest.skip(f"the WorldCereal data is not at {DATA}", allow_module_level=True)

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_real_data as bench  # noqa: E402
import real_data as rd  # noqa: E402

#: RF's pooled out-of-fold AUC on the points with 2 folds was 0.77..0.86 over 4 fold
#: draws x 3 seeds; a model that learned nothing gives 0.5.
RF_AUC_FLOOR = 0.70


@pytest.fixture(scope="module")
def points_raw():
    with np.load(DATA / rd.POINTS_FILE, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def clip_raw():
    with np.load(DATA / rd.CLIP_FILES["clipA"], allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def sets():
    return rd.load()


@pytest.fixture(scope="module")
def result():
    """The benchmark itself, small: the points, 2 folds, 1 seed, every model (3 LSTM
    epochs), the clips as the multi-headed model's global samples."""
    return bench.run(["points"], seeds=1, folds=2, max_epochs=3)


def test_points_reflectance_and_filled_months(points_raw, sets):
    """DN / 1e4 where a month has data; a missing month (65535) takes the nearest month
    with data, the earlier on a tie (xcrop's rule for an empty period), with count 0."""
    dn, samples = points_raw["dn"], sets["points"].samples
    assert samples.bands == (*rd.BANDS, "NDVI") and samples.X.shape == (500, 12, 11)
    assert list(samples.ids) == list(points_raw["sample_id"])  # none dropped, same order
    # point 0, 2017-03 (period 3), B04: a value read by hand
    assert dn[0, 3, 2] != 65535
    assert samples.X[0, 3, 2] == pytest.approx(dn[0, 3, 2] / 1e4, rel=1e-6)
    missing = (dn == 65535).all(axis=2)
    assert missing.any() and not missing.all(axis=1).any()
    expected = np.empty(dn.shape, "float64")
    for i in range(len(dn)):
        have = np.flatnonzero(~missing[i])
        for m in range(12):
            near = have[np.argmin(np.abs(have - m))]  # argmin: the first (earlier) on a tie
            expected[i, m] = dn[i, near] / 1e4
    np.testing.assert_allclose(samples.X[..., :10], expected, rtol=1e-6)
    np.testing.assert_array_equal(samples.counts == 0, missing)
    # a tie: month 4 missing with months 3 and 5 present takes month 3
    tie = np.flatnonzero(missing[:, 4] & ~missing[:, 3] & ~missing[:, 5])
    assert len(tie)
    np.testing.assert_allclose(samples.X[tie, 4, :10], dn[tie, 3] / 1e4, rtol=1e-6)
    red, nir = samples.X[..., 2], samples.X[..., 6]
    np.testing.assert_allclose(samples.X[..., 10], (nir - red) / (nir + red), rtol=1e-5)
    assert set(np.unique(samples.y)) == {0, 1} and samples.y.sum() == 471


def test_clip_cube_values(clip_raw):
    cube = rd.clip_cube(DATA / rd.CLIP_FILES["clipA"])
    assert cube.dims == ("time", "band", "y", "x") and cube.dtype == np.float32
    assert list(cube.band.values) == [*rd.BANDS, "SCL"]
    assert cube.rio.crs.to_epsg() == 32631
    assert cube.rio.transform().c == 501360 and cube.rio.transform().f == 5629680
    assert "sun_zenith" in cube.coords and cube.sun_zenith.dims == ("time",)
    t = 50
    b08 = list(clip_raw["bands10"]).index("B08")
    np.testing.assert_allclose(
        cube.isel(time=t).sel(band="B08").values, clip_raw["dn10"][t, b08] / 1e4, rtol=1e-6
    )
    # the 20 m bands and SCL are their 32 x 32 pixels repeated 2 x 2
    b11 = list(clip_raw["bands20"]).index("B11")
    b11_cube = cube.isel(time=t).sel(band="B11").values
    for dr in (0, 1):
        for dc in (0, 1):
            np.testing.assert_allclose(
                b11_cube[dr::2, dc::2], clip_raw["dn20"][t, b11] / 1e4, rtol=1e-6
            )
            np.testing.assert_array_equal(
                cube.isel(time=t).sel(band="SCL").values[dr::2, dc::2], clip_raw["scl"][t]
            )


def test_clip_composite_ndvi_follows_a_summer_crop(clip_raw, sets):
    """Site A's largest crop parcel (CT 1200) in xcrop's composite: green in Jul-Sep,
    bare after sowing (Jun) and after harvest (Oct)."""
    data = sets["clipA"]
    comp = data.info["composite"].data
    assert str(comp.time.values[0])[:10] == "2017-12-01" and comp.sizes["time"] == 12
    ndvi = comp.sel(band="NDVI").values
    parcel = clip_raw["CT"] == 1200
    assert (clip_raw["LC"][parcel] == rd.CROP_LC).all()
    median = np.median(ndvi[:, parcel], axis=1)
    # periods: 6 = 2018-05-30.., 7..9 = 2018-06-29..2018-09-26, 10 = 2018-09-27..
    assert median[7:10].min() > 0.7
    assert median[6] < 0.4 and median[10] < 0.3
    pixel = ndvi[:, 37, 41]  # one pixel of it
    assert pixel[7:10].min() > 0.7 and pixel[6] < 0.35 and pixel[10] < 0.3
    # every pixel labelled: crop = LC 11
    assert data.samples.y.sum() == (clip_raw["LC"] == 11).sum() == 1401


def test_point_folds_keep_cells_and_duplicates_together(sets, points_raw):
    data = sets["points"]
    fold = rd.folds(data, 5)
    assert (fold >= 0).all()
    for g in np.unique(data.groups):
        assert len(np.unique(fold[data.groups == g])) == 1
    # the 49 coordinates with two records: same cell, so same fold
    lat, lon = points_raw["lat"], points_raw["lon"]
    d = np.hypot((lat[:, None] - lat) * 111_320, (lon[:, None] - lon) * 111_320)
    i, j = np.nonzero(np.triu(d < 1.0, 1))
    assert len(i) == 49
    assert (data.groups[i] == data.groups[j]).all() and (fold[i] == fold[j]).all()
    # the file's H3 cells as groups instead
    h3 = rd.load_points(cell_m=None)
    assert h3.groups.max() + 1 == 7


@pytest.mark.parametrize("n_folds", [2, 4])
def test_clip_folds_are_blocks_apart(sets, n_folds):
    data = sets["clipB"]
    fold = rd.folds(data, n_folds)
    rows, cols = np.array([tuple(map(int, i.split(":")[1:])) for i in data.samples.ids]).T
    assert ((fold < 0) == (data.groups < 0)).all()
    for b in range(4):
        assert len(np.unique(fold[data.groups == b])) == 1
        r, c = rows[data.groups == b], cols[data.groups == b]
        assert r.max() - r.min() + 1 == 32 - 4 and c.max() - c.min() + 1 == 32 - 4
    for k in range(n_folds):  # a test pixel is at least 2 x 4 + 1 px from any training pixel
        test, train = fold == k, (fold >= 0) & (fold != k)
        gap = np.maximum(
            np.abs(rows[test][:, None] - rows[train]), np.abs(cols[test][:, None] - cols[train])
        )
        assert gap.min() >= 9


def test_draw_and_global_samples(sets):
    y = sets["clipA"].samples.y
    index = rd.draw(y, 500, 0)
    assert len(np.unique(index)) == 500
    assert abs(y[index].mean() - y.mean()) < 0.002
    g = rd.global_samples("clipA", sets, 500)
    assert len(g) == 1000 and not g.is_local.any()
    assert not any(i.startswith("clipA") for i in g.ids)


def test_best_threshold_is_the_best(sets):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    prob = np.round(np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1), 2)  # with ties
    acc, threshold = rd.best_threshold(y, prob)
    brute = max(((prob >= t) == y).mean() for t in [*np.unique(prob), 1.1])
    assert acc == pytest.approx(brute)
    assert ((prob >= threshold) == y).mean() == pytest.approx(acc)


def test_small_run(result):
    summary = result.summary
    assert set(summary["model"]) == set(rd.model_fits())
    assert (summary["set"] == "points").all() and (summary["n"] == 500).all()
    metrics = summary[list(rd.METRICS)].to_numpy("float64")
    assert np.isfinite(metrics).all()
    rf = summary.set_index("model").loc["random_forest"]
    assert rf["auc"] > RF_AUC_FLOOR
    assert (summary["acc@best"] >= summary["acc@0.5"]).all()
    table = bench.to_markdown(summary)
    assert all(f"| points | {m} |" in table for m in rd.model_fits())
    # every point predicted once per model and seed, by a model that did not see it
    p = result.predictions
    assert (p.groupby("model").size() == 500).all()
    assert p.groupby(["model", "index"]).size().max() == 1
    assert (result.fits["n_global_given"] == 1000).all()  # 500 from each clip
    # each non-baseline model against the better baseline, on the same samples
    against = result.against
    best = summary[summary["model"].isin(rd.BASELINES)].set_index("model")["auc"].idxmax()
    assert set(against["model"]) == set(rd.model_fits()) - set(rd.BASELINES)
    assert (against["baseline"] == best).all() and (against["groups"] > 100).all()
    auc = summary.set_index("model")["auc"]
    for _, r in against.iterrows():
        assert r["diff"] == pytest.approx(auc[r["model"]] - auc[best])
        assert r["low"] <= r["diff"] <= r["high"]
    assert "| points | lstm | 0 |" in bench.against_markdown(against)


def test_auc_difference_knows_its_answers():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 100)
    groups = np.arange(200) // 4  # 50 units of 4 samples
    perfect = y + rng.random(200) * 0.5
    noise = rng.random(200)
    assert rd.auc_difference(y, noise, noise, groups) == (0.0, 0.0, 0.0)
    diff, low, high = rd.auc_difference(y, perfect, noise, groups)
    assert diff == pytest.approx(1 - roc_auc(y, noise)) and 0.3 < low <= diff <= high
    # fewer units, the same samples: a wider interval
    _, low_few, high_few = rd.auc_difference(y, perfect, noise, np.arange(200) // 40)
    assert high_few - low_few > high - low


def test_goals_know_their_answers():
    """Constructed per-seed scores: the verdicts follow the goals' thresholds."""
    rows = []
    for name, lstm_auc, rf_auc in (("points", (0.91, 0.92, 0.93), 0.90),
                                   ("clipA", (0.90, 0.92, 0.94), 0.95)):  # fmt: skip
        for seed, auc in enumerate(lstm_auc):
            rows.append({"set": name, "model": "multihead_lstm", "seed": seed, "auc": auc,
                         "acc@0.5": 0.90 - 0.03 * seed, "acc@best": 0.92})  # fmt: skip
            rows.append({"set": name, "model": "random_forest", "seed": seed, "auc": rf_auc,
                         "acc@0.5": 0.9, "acc@best": 0.9})  # fmt: skip
        rows.append({"set": name, "model": "svm", "seed": 0, "auc": 0.5,
                     "acc@0.5": 0.5, "acc@best": 0.5})  # fmt: skip
    runs = pd.DataFrame(rows)
    against = pd.DataFrame({"set": ["clipA"] * 3, "model": ["multihead_lstm"] * 3,
                            "low": [-0.09, -0.05, 0.01], "high": [-0.01, 0.02, 0.03]})  # fmt: skip
    g = rd.goals(runs, against).set_index("set")
    assert g.loc["points", "auc"] == pytest.approx(0.92) and g.loc["points", "auc_met"]
    assert g.loc["points", "baseline"] == "random_forest"
    assert g.loc["points", "spread"] == pytest.approx(0.02) and not g.loc["points", "spread_met"]
    # worst seed: 0.92 - (0.90 - 0.06) = 0.08 > 0.05
    assert g.loc["points", "calibration"] == pytest.approx(0.08)
    assert not g.loc["points", "calibration_met"]
    assert not g.loc["clipA", "auc_met"] and g.loc["clipA", "baseline_auc"] == pytest.approx(0.95)
    assert (g.loc["clipA", "below"], g.loc["clipA", "above"]) == (1, 1)
    assert (g.loc["points", "below"], g.loc["points", "above"]) == (0, 0)
    text = bench.goals_markdown(g.reset_index())
    assert "| clipA | 0.920 (not met) | 0.950 (random_forest) | 1 / 1 of 3 |" in text


def roc_auc(y, p):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(y, p)


def test_cli_quick_writes_markdown(tmp_path, capsys):
    out = tmp_path / "table.md"
    bench.main(["--quick", "--models", "random_forest", "svm", "--quiet", "--markdown", str(out)])
    text = out.read_text()
    assert "| points | random_forest |" in text and "| points | svm |" in text
    assert "Wall time" in capsys.readouterr().out
