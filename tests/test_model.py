"""The multi-headed LSTM, its loss, training, grid search and baselines."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import xcrop  # noqa: E402
from xcrop._baselines import random_forest, svm  # noqa: E402
from xcrop._model import LSTMEnsemble, MultiHeadLSTM  # noqa: E402
from xcrop._sample import Samples  # noqa: E402
from xcrop._training import folds, multihead_loss, split  # noqa: E402
from xcrop.errors import ModelError, XcropError  # noqa: E402

BANDS = ("B04", "B08", "NDVI")


def synthetic(n: int, local: bool, seed: int, shift: float = 0.0, noise: float = 0.5) -> Samples:
    """Crops have a seasonal NDVI bump; non-crops do not; ``shift`` moves the season."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = np.arange(12)
    X = rng.normal(scale=noise, size=(n, 12, 3))
    X[:, :, 2] += y[:, None] * np.sin(2 * np.pi * t / 12 + shift)
    return Samples(
        X.astype("float32"), y.astype("int8"), np.full(n, local), np.arange(n), BANDS,
        np.ones((n, 12), "uint8"),
    )  # fmt: skip


def bce(z: float, y: float) -> float:
    p = 1 / (1 + math.exp(-z))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_loss_by_hand():
    local = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.0])
    glob = torch.tensor([9.0, 9.0, 9.0, 1.5, -0.5])  # the first three are never used
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    is_local = torch.tensor([True, True, True, False, False])
    l_local = (bce(0.5, 1) + bce(-1.0, 0) + bce(2.0, 0)) / 3
    l_global = (bce(1.5, 1) + bce(-0.5, 1)) / 2
    expected = (2 / 3) / 10 * l_global + l_local  # W = 2 global / 3 local, alpha 10
    assert float(multihead_loss(local, glob, y, is_local, alpha=10)) == pytest.approx(expected)
    # a batch without local rows: W = 1
    only_global = torch.zeros(5, dtype=torch.bool)
    l_all = sum(bce(float(z), float(t)) for z, t in zip(glob, y, strict=True)) / 5
    assert float(multihead_loss(local, glob, y, only_global, alpha=4)) == pytest.approx(l_all / 4)
    # single-headed: plain BCE over all rows
    l_single = sum(bce(float(z), float(t)) for z, t in zip(local, y, strict=True)) / 5
    assert float(multihead_loss(local, None, y, is_local)) == pytest.approx(l_single)


def test_global_rows_never_reach_the_local_head():
    model = MultiHeadLSTM(BANDS, dropout=0.0)
    x = torch.randn(6, 12, 3)
    y = torch.tensor([1.0, 0, 1, 0, 1, 0])
    is_local = torch.tensor([False] * 6)
    multihead_loss(*model(x), y, is_local).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.local_head.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.global_head.parameters())
    model.zero_grad()
    is_local[:] = True  # and local rows never reach the global head
    multihead_loss(*model(x), y, is_local).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.global_head.parameters())


def test_dropout_only_in_training_and_eval_is_the_fused_lstm():
    torch.manual_seed(0)
    model = MultiHeadLSTM(BANDS, dropout=0.5, mean=[0.1, 0.2, 0.3], std=[1, 2, 3])
    x = torch.randn(4, 12, 3)
    model.train()
    assert not torch.equal(model.encode(x), model.encode(x))  # fresh masks
    model.config["dropout"] = 0.0  # the unrolled cell without dropout is nn.LSTM
    unrolled = model.encode(x)
    model.config["dropout"] = 0.5
    model.eval()
    assert torch.allclose(model.encode(x), unrolled, atol=1e-6)
    assert torch.equal(model.encode(x), model.encode(x))


def test_save_load_round_trip_and_refusals(tmp_path):
    data = synthetic(200, True, 0)
    model, _ = xcrop.train(data, max_epochs=3, seed=1, members=1)
    path = model.save(tmp_path / "model.pt")
    again = MultiHeadLSTM.load(path)
    assert again.bands == BANDS and again.config == model.config and again.info == model.info
    np.testing.assert_array_equal(again.predict_proba(data.X), model.predict_proba(data.X))
    assert isinstance(xcrop.load_model(path), MultiHeadLSTM)
    ensemble, _ = xcrop.train(data, max_epochs=2, seed=1, members=3)
    ensemble.save(tmp_path / "ensemble.pt")
    back = xcrop.load_model(tmp_path / "ensemble.pt")
    assert isinstance(back, LSTMEnsemble) and len(back) == 3 and back.info == ensemble.info
    assert back.config == {**model.config, "members": 3}
    np.testing.assert_array_equal(back.predict_proba(data.X), ensemble.predict_proba(data.X))
    with pytest.raises(ModelError, match=r"ensemble of 3 LSTMs; read it with xcrop\.load_model"):
        MultiHeadLSTM.load(tmp_path / "ensemble.pt")
    for unsaved in (model, ensemble):  # an unwritable place: one line before torch's error
        with pytest.raises(XcropError, match=r"Cannot write the model to .*does not exist"):
            unsaved.save(tmp_path / "missing" / "model.pt")
    with pytest.raises(ModelError, match="missing \\['NDVI'\\]"):
        again.check_bands(["B04", "B08", "B11"])
    assert again.check_bands(["NDVI", "B08", "B04", "B11"]) == [2, 1, 0]
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not an xcrop model file"):
        MultiHeadLSTM.load(tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="No model file"):
        MultiHeadLSTM.load(tmp_path / "missing.pt")
    buffer = io.BytesIO()  # a pickled object is refused (weights_only)
    torch.save({"meta": object(), "state": {}}, buffer)
    (tmp_path / "pickle.pt").write_bytes(buffer.getvalue())
    with pytest.raises(ModelError, match="not an xcrop model file"):
        MultiHeadLSTM.load(tmp_path / "pickle.pt")


def test_split_is_stratified_and_reproducible():
    data = synthetic(100, True, 0).concat(synthetic(50, False, 1))
    train, val = split(data, 0.2, seed=3)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 150
    assert data.is_local[val].sum() == 20 and (~data.is_local[val]).sum() == 10
    np.testing.assert_array_equal(val, split(data, 0.2, seed=3)[1])


def test_folds_are_stratified_and_every_sample_validates_one_member():
    data = synthetic(103, True, 0).concat(synthetic(41, False, 1))
    fold = folds(data, 5, seed=3)
    assert fold.min() == 0 and fold.max() == 4
    assert np.ptp(np.bincount(fold)) <= 1  # 144 samples: 28 or 29 per fold
    for local in (True, False):
        for label in (0, 1):
            group = (data.is_local == local) & (data.y == label)
            assert np.ptp(np.bincount(fold[group], minlength=5)) <= 1
    np.testing.assert_array_equal(fold, folds(data, 5, seed=3))
    assert not np.array_equal(fold, folds(data, 5, seed=4))


def test_ensemble_predicts_its_members_mean_and_says_what_it_is():
    data = synthetic(120, True, 0)
    ensemble, history = xcrop.train(data, max_epochs=3, seed=0, members=3)
    assert isinstance(ensemble, LSTMEnsemble) and len(ensemble) == 3
    assert sorted(history.member.unique()) == [0, 1, 2]
    info = ensemble.info
    assert info["members"] == 3 and len(info["best_epochs"]) == 3
    assert info["n_val_local"] == 120  # out-of-fold: every local sample validated once
    members = np.mean([m.predict_proba(data.X) for m in ensemble.members], axis=0)
    np.testing.assert_allclose(ensemble.predict_proba(data.X), members, atol=1e-6)
    # members differ (own folds, own seeds) but share the bands and hyper-parameters
    weights = [m.lstm.weight_ih_l0 for m in ensemble.members]
    assert not torch.equal(weights[0], weights[1])
    with pytest.raises(XcropError, match="members=0"):
        xcrop.train(data, members=0)
    few = Samples(data.X[:8], np.array([0, 1] * 4, "int8"), data.is_local[:8], data.ids[:8],
                  BANDS, data.counts[:8])  # fmt: skip
    with pytest.raises(XcropError, match="8 local samples cannot validate 10 members"):
        xcrop.train(few, members=10)


def test_the_default_ensemble_depends_on_its_seed_far_less_than_one_lstm():
    """80 noisy local labels: one LSTM's test AUC moves with the seed (split, weights,
    batches); the default ensemble of 5 k-fold members barely does (issue 17, item 2)."""
    from sklearn.metrics import roc_auc_score

    local, test = synthetic(80, True, 11, noise=1.2), synthetic(2000, True, 12, noise=1.2)

    def aucs(members):
        return np.array([
            roc_auc_score(test.y, xcrop.train(local, seed=s, members=members, max_epochs=60)[0]
                          .predict_proba(test.X))
            for s in range(4)
        ])  # fmt: skip

    single, ensemble = aucs(1), aucs(5)
    assert ensemble.std() < single.std() / 3  # measured: 0.002 against 0.015
    assert np.ptp(ensemble) <= 0.01 < np.ptp(single)  # 0.005 against 0.039
    assert ensemble.mean() > single.mean()


def test_platt_scaling_known_answer_and_folded_into_the_head():
    from xcrop._calibration import fit_platt
    from xcrop._model import fold_platt

    rng = np.random.default_rng(0)
    z = rng.normal(scale=2.0, size=50_000)
    y = rng.random(50_000) < 1 / (1 + np.exp(-(1.7 * z - 0.8)))  # truly sigmoid(1.7 z - 0.8)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(1.7, abs=0.05) and b == pytest.approx(-0.8, abs=0.05)
    assert fit_platt(z[:10], np.ones(10)) == (1.0, 0.0)  # one class: nothing to fit
    assert fit_platt(-z, y) == (1.0, 0.0)  # scores that rank backwards are not flipped
    # separable points: Platt's smoothed targets keep the slope finite
    a_sep, _ = fit_platt([-2.0, -1.0, 1.0, 2.0], [0, 0, 1, 1])
    assert 0 < a_sep < 10
    model = MultiHeadLSTM(BANDS, layers=2)
    x = torch.randn(7, 12, 3)
    before = model.eval()(x)[0]
    fold_platt(model.local_head, 1.7, -0.8)
    torch.testing.assert_close(model(x)[0], 1.7 * before - 0.8)


def test_calibrated_training_makes_half_mean_even_odds():
    """A single head trained on local labels (25 % crop) and many global ones (90 % crop)
    takes the global crop share for the local one: it says crop too often. The same
    members, calibrated on the local out-of-fold logits, say what the local test shows."""
    from sklearn.metrics import roc_auc_score

    from xcrop._calibration import brier, expected_calibration_error

    def with_share(n, share, local, seed):
        s = synthetic(4 * n, local, seed, noise=1.0)
        rng = np.random.default_rng(seed)
        crop, other = np.flatnonzero(s.y == 1), np.flatnonzero(s.y == 0)
        take = np.concatenate([rng.choice(crop, round(n * share), replace=False),
                               rng.choice(other, n - round(n * share), replace=False)])  # fmt: skip
        return Samples(s.X[take], s.y[take], s.is_local[take], s.ids[take], BANDS,
                       s.counts[take])  # fmt: skip

    local, glob = with_share(300, 0.25, True, 1), with_share(1200, 0.9, False, 2)
    test = with_share(3000, 0.25, True, 3)
    kw = {"seed": 0, "members": 2, "multi_head": False, "max_epochs": 30}
    raw, _ = xcrop.train(local, glob, calibrate=False, **kw)
    cal, _ = xcrop.train(local, glob, **kw)
    assert raw.info["calibration"] is None and cal.info["calibration"]["fitted"]
    p_raw, p_cal = raw.predict_proba(test.X), cal.predict_proba(test.X)
    ece_raw = expected_calibration_error(test.y, p_raw)
    ece_cal = expected_calibration_error(test.y, p_cal)
    assert ece_cal < 0.05 < ece_raw and ece_cal < ece_raw / 2
    assert brier(test.y, p_cal) < brier(test.y, p_raw)
    assert ((p_cal >= 0.5) == test.y).mean() > ((p_raw >= 0.5) == test.y).mean()
    # the same members: calibration is monotone, the ranking (AUC) is unchanged
    assert roc_auc_score(test.y, p_cal) == pytest.approx(roc_auc_score(test.y, p_raw), abs=2e-3)


def test_early_stopping_keeps_the_best_epoch():
    rng = np.random.default_rng(0)
    noise = synthetic(300, True, 0)
    noise = Samples(noise.X, rng.integers(0, 2, 300).astype("int8"), noise.is_local,
                    noise.ids, BANDS, noise.counts)  # fmt: skip  # nothing to learn: overfits
    model, history = xcrop.train(noise, patience=3, max_epochs=100, seed=0, dropout=0.0,
                                 members=1)  # fmt: skip
    (best,) = history.attrs["best_epochs"]
    assert len(history) == best + 3 < 100
    assert history.val_loss.iloc[best - 1] == history.val_loss.min()
    assert model.info["best_epochs"] == [best]
    ensemble, history = xcrop.train(noise, patience=3, max_epochs=100, seed=0, dropout=0.0,
                                    members=3)  # fmt: skip
    for member, rows in history.groupby("member"):  # each member stops on its own fold
        best = ensemble.info["best_epochs"][member]
        assert len(rows) == best + 3 and rows.val_loss.iloc[best - 1] == rows.val_loss.min()


def test_inputs_are_scaled_by_the_local_samples_not_the_global_ones():
    """Every member normalises by its local training samples' mean and std, the region it
    maps; before, 1,000 Flemish global pixels set the scale of 320 East-African points
    (issue 17). Known answer: every local series is f + t/11 in feature f, so any subset
    of local samples has mean f + 0.5 and std std(t/11); the global ones sit at 100."""
    n, t = 40, np.arange(12) / 11
    X = np.broadcast_to(np.arange(3)[None, None, :] + t[None, :, None], (n, 12, 3))
    local = Samples(X.astype("float32"), np.array([0, 1] * (n // 2), "int8"),
                    np.full(n, True), np.arange(n), BANDS, np.ones((n, 12), "uint8"))  # fmt: skip
    glob = Samples((X + 100).astype("float32"), local.y, np.full(n, False), np.arange(n),
                   BANDS, local.counts)  # fmt: skip
    for members in (1, 3):
        model, _ = xcrop.train(local, glob, seed=0, max_epochs=1, members=members)
        for member in getattr(model, "members", [model]):
            np.testing.assert_allclose(member.mean.numpy(), [0.5, 1.5, 2.5], atol=1e-5)
            np.testing.assert_allclose(member.std.numpy(), np.full(3, t.std()), atol=1e-5)


def test_members_validate_on_whole_groups():
    """With groups (a field per sample), a member never validates on a field it trains on
    (issue 17: pixels of one field validated each other, and the members trained past
    the epoch that generalises). Known answer: 5 fields of 8 samples, every sample of
    field g equal to 10**g; each member's inputs are scaled by its local training
    samples, so with whole fields its mean is that of 4 fields' values, and the 5
    members leave out one field each. Without groups, the folds mix fields."""
    values = 10.0 ** np.arange(5)
    X = np.repeat(values, 8)[:, None, None] * np.ones((1, 12, 3))
    y = np.tile([0, 1], 20).astype("int8")
    field = np.repeat(np.arange(5), 8)
    local = Samples(X.astype("float32"), y, np.full(40, True), np.arange(40), BANDS,
                    np.ones((40, 12), "uint8"), groups=field)  # fmt: skip
    whole = sorted((values.sum() - values) / 4)
    model, _ = xcrop.train(local, seed=0, max_epochs=1, members=5)
    assert model.info["n_groups"] == 5
    means = sorted(float(m.mean[0]) for m in model.members)
    np.testing.assert_allclose(means, whole, rtol=1e-6)
    # the single model (members=1) validates on one whole field of the 5 (val_fraction 0.2)
    one, _ = xcrop.train(local, seed=0, max_epochs=1, members=1)
    assert min(abs(float(one.mean[0]) - w) for w in whole) < 1e-3
    # groups= overrides the samples' own, and None (each sample its own group) mixes them
    mixed, _ = xcrop.train(local, groups=np.arange(40), seed=0, max_epochs=1, members=5)
    assert mixed.info["n_groups"] == 40
    assert not np.allclose(sorted(float(m.mean[0]) for m in mixed.members), whole, rtol=1e-3)


def test_group_folds_keep_groups_whole_and_leave_the_rest_as_before():
    s = synthetic(90, True, 7)
    g = s.concat(synthetic(30, False, 8))
    field = np.array([f"f{i // 6}" for i in range(120)], dtype=object)
    field[90:] = None  # the global samples' groups play no part
    plain, grouped = folds(g, 5, 0), folds(g, 5, 0, field)
    np.testing.assert_array_equal(grouped[90:], plain[90:])
    for name in np.unique(field[:90].astype(str)):
        assert len(np.unique(grouped[:90][field[:90] == name])) == 1
    assert sorted(np.unique(grouped[:90]).tolist()) == [0, 1, 2, 3, 4]
    # a missing group is a group of one; too few groups for the folds is one clear line
    loose = field.copy()
    loose[:6] = np.nan
    assert len(np.unique(folds(g, 5, 0, loose)[:6])) > 1
    with pytest.raises(XcropError, match="hold 2 groups, too few to validate 5 folds"):
        xcrop.train(s, groups=np.arange(90) % 2, max_epochs=1)
    with pytest.raises(XcropError, match="groups has 3 values for 90 local samples"):
        xcrop.train(s, groups=[0, 1, 2], max_epochs=1)
    with pytest.raises(XcropError, match=r"groups='field': give one group per local sample"):
        xcrop.train(s, groups="field", max_epochs=1)  # a column name belongs to sample()
    # tuples, and the rows of a 2-D array, are one group each: (row // 30, 0) -> 3 groups
    rows = np.stack([np.arange(90) // 30, np.zeros(90, int)], axis=1)
    for given in (rows, [tuple(r) for r in rows.tolist()]):
        with pytest.raises(XcropError, match="hold 3 groups, too few to validate 5 folds"):
            xcrop.train(s, groups=given, max_epochs=1)


def test_a_constant_feature_is_not_scaled():
    """float32 sums give a constant 0.3 a std of 3e-8 to 1e-6, not 0: the model divided by
    it, and a pixel at 0.31 in that feature was 1e4 standard deviations or more away."""
    assert 0 < float(np.std(np.full((60, 12), 0.3, "float32"))) < 1e-7
    local = synthetic(60, True, 5)
    X = local.X.copy()
    X[:, :, 0] = 0.3
    flat = Samples(X, local.y, local.is_local, local.ids, BANDS, local.counts)
    model, _ = xcrop.train(flat, seed=0, max_epochs=2, members=2)
    for member in model.members:
        assert float(member.std[0]) == 1.0 and float(member.mean[0]) == pytest.approx(0.3, abs=1e-6)
    moved = X.copy()
    moved[:, :, 0] = 0.31
    np.testing.assert_allclose(model.predict_proba(moved), model.predict_proba(X), atol=0.02)


def test_multi_head_training_learns_and_is_reproducible():
    from sklearn.metrics import roc_auc_score

    local, glob = synthetic(200, True, 1), synthetic(800, False, 2, shift=0.4)
    test = synthetic(400, True, 3)
    model, _ = xcrop.train(local, glob, seed=0, max_epochs=25, members=2)
    assert model.multi_head and model.info["n_global"] == 800
    assert roc_auc_score(test.y, model.predict_proba(test.X)) > 0.95
    again, _ = xcrop.train(local, glob, seed=0, max_epochs=25, members=2)
    np.testing.assert_array_equal(again.predict_proba(test.X), model.predict_proba(test.X))
    single, _ = xcrop.train(local, seed=0, max_epochs=5, members=1)
    assert not single.multi_head
    with pytest.raises(ModelError, match="single-headed"):
        single.predict_proba(test.X, head="global")


def test_grid_search_picks_the_best_validation_auc():
    local = synthetic(150, True, 4)
    model, results = xcrop.grid_search(local, seed=0, max_epochs=4, patience=2)
    assert len(results) == 4 and set(results.layers) == {1, 2}
    assert set(results.dropout) == {0.0, 0.2}
    top = results.iloc[0]
    assert model.config["layers"] == top.layers and model.config["dropout"] == top.dropout
    assert top.val_auc == results.val_auc.max()


def test_rank_configurations_states_its_tie_rule():
    import pandas as pd

    from xcrop._training import rank_configurations

    rows = pd.DataFrame({
        "layers": [1, 1, 2, 2], "dropout": [0.0, 0.2, 0.0, 0.2],
        "val_auc": [0.9, 0.9 + 1e-12, float("nan"), 0.5], "val_loss": [0.3, 0.2, 0.1, 0.5],
    })  # fmt: skip
    ranked = rank_configurations(rows)
    # 0.9 and 0.9 + 1e-12 tie: the lower validation loss wins; NaN AUC ranks last
    assert ranked.index.tolist() == [1, 0, 3, 2] and ranked.attrs["tie"]
    assert ranked.tied.tolist() == [True, True, False, False]
    assert ranked.chosen.tolist() == [True, False, False, False]
    same = rows.assign(val_auc=1.0, val_loss=0.3)  # a full tie: the simplest model
    assert rank_configurations(same.iloc[::-1]).index.tolist() == [0, 1, 2, 3]
    clear = rank_configurations(rows.assign(val_auc=[0.8, 0.7, 0.6, 0.95]))
    assert clear.index[0] == 3 and not clear.attrs["tie"] and clear.tied.sum() == 1


def test_grid_search_breaks_a_tie_by_the_rule_not_the_order():
    local = synthetic(120, True, 4, noise=0.05)  # separable: every configuration has AUC 1
    runs = {  # single models on a 24-sample validation split: the tie
        order: xcrop.grid_search(local, seed=0, layers=order, max_epochs=3, patience=2, members=1)
        for order in ((1, 2), (2, 1))
    }
    for model, results in runs.values():
        assert results.attrs["tie"] and results.tied.all() and (results.val_auc == 1).all()
        top = results.iloc[0]
        assert top.chosen and top.val_loss == results.val_loss.min()
        assert (model.config["layers"], model.config["dropout"]) == (top.layers, top.dropout)
    # the first configuration tried used to win: here (2, 0.0) with layers=(2, 1)
    (a, _), (b, _) = runs.values()
    assert (a.config["layers"], a.config["dropout"]) == (b.config["layers"], b.config["dropout"])


def test_train_refuses_bad_samples():
    local = synthetic(50, True, 0)
    with pytest.raises(XcropError, match="both classes"):
        xcrop.train(Samples(local.X, np.zeros(50, "int8"), local.is_local, local.ids,
                            BANDS, local.counts))  # fmt: skip
    other = Samples(local.X, local.y, local.is_local, local.ids, ("a", "b", "c"), local.counts)
    with pytest.raises(XcropError, match="same bands"):
        xcrop.train(local, other)


def test_baselines_follow_the_predictor_interface():
    from sklearn.metrics import roc_auc_score

    train, test = synthetic(300, True, 5), synthetic(200, True, 6)
    for baseline in (random_forest(seed=0), svm()):
        with pytest.raises(ModelError, match="not fitted"):
            baseline.predict_proba(test.X)
        prob = baseline.fit(train).predict_proba(test.X)
        assert baseline.bands == BANDS and prob.shape == (200,)
        assert roc_auc_score(test.y, prob) > 0.9
    X = test.X.copy()
    X[0, 3, 1] = np.nan
    assert (
        np.isnan(baseline.predict_proba(X)[0]) and np.isfinite(baseline.predict_proba(X)[1:]).all()
    )
