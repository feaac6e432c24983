"""Lazy prediction: predict_proba against the model, NaN, chunks, threaded vs distributed."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr

torch = pytest.importorskip("torch")

import xcrop  # noqa: E402
from xcrop import _inference as predict_module  # noqa: E402
from xcrop._model import MultiHeadLSTM  # noqa: E402
from xcrop.errors import CubeError, ModelError  # noqa: E402

BANDS = ("B02", "B04", "B08", "NDVI")


def model_of(layers: int = 2, seed: int = 0) -> MultiHeadLSTM:
    torch.manual_seed(seed)
    model = MultiHeadLSTM(BANDS, mean=[0.1, 0.1, 0.3, 0.4], std=[0.05, 0.05, 0.1, 0.2],
                          layers=layers)  # fmt: skip
    with torch.no_grad():  # larger weights than the default init: outputs spread over 0..1
        for p in model.parameters():
            p.mul_(3)
    return model.eval()


def composite_of(ny: int = 50, nx: int = 70, chunks: int = 32, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    values = rng.normal([0.1, 0.1, 0.3, 0.4], [0.05, 0.05, 0.1, 0.2], (12, ny, nx, 4))
    values = values.transpose(0, 3, 1, 2).astype("float32")
    values[3, 1, 5, 7] = np.nan  # one pixel with a NaN in one period and band
    values[:, :, 10, 20] = np.nan  # one pixel without data
    da = xr.DataArray(
        values,
        dims=("time", "band", "y", "x"),
        coords={
            "time": np.datetime64("2019-03-01") + np.arange(12) * np.timedelta64(30, "D"),
            "band": list(BANDS),
            "y": 1_000_000 - 10 * np.arange(ny) - 5.0,
            "x": 300_000 + 10 * np.arange(nx) + 5.0,
        },
        name="composite",
    )
    return da.rio.write_crs("EPSG:32631").chunk({"y": chunks, "x": chunks})


def reference(model: MultiHeadLSTM, comp: xr.DataArray, head: str = "local") -> np.ndarray:
    """The model's own forward pass (fused nn.LSTM + head + sigmoid), pixel by pixel."""
    values = comp.transpose("y", "x", "time", "band").values
    ny, nx = values.shape[:2]
    x = torch.from_numpy(values.reshape(ny * nx, 12, len(BANDS)).copy())
    with torch.no_grad():
        local, glob = model(x)
    out = torch.sigmoid(local if head == "local" else glob).numpy().reshape(ny, nx)
    return np.where(np.isfinite(values).all(axis=(2, 3)), out, np.nan)


def test_predict_proba_equals_the_model_on_a_blocks_strided_view():
    model, comp = model_of(), composite_of()
    expected = {head: reference(model, comp, head) for head in ("local", "global")}
    model.train()  # evaluated without dropout, and left in training mode
    for head in ("local", "global"):
        values = comp.values.reshape(12, len(BANDS), -1).transpose(2, 0, 1)  # a view
        got = model.predict_proba(values, head=head, batch_size=700)
        np.testing.assert_allclose(
            got.reshape(expected[head].shape), expected[head], atol=2e-6, equal_nan=True
        )
    assert model.training
    expected = expected["local"]
    assert (0.05 < np.nanmin(expected) and np.nanmax(expected) < 0.95) or np.nanstd(expected) > 0.1


def test_predict_is_lazy_georeferenced_and_equals_the_model():
    model, comp = model_of(), composite_of()
    prob = comp.cropmask.predict(model)
    assert prob.name == "crop_probability" and prob.dims == ("y", "x")
    assert prob.chunks == comp.chunks[2:] and prob.dtype == "float32"
    assert prob.rio.crs.to_epsg() == 32631
    assert prob.rio.transform() == comp.rio.transform()
    values = prob.values
    np.testing.assert_allclose(values, reference(model, comp), atol=2e-6, equal_nan=True)
    assert np.isnan(values[5, 7]) and np.isnan(values[10, 20])
    assert np.isfinite(values).sum() == values.size - 2


def test_chunk_boundaries_and_band_order_do_not_change_results():
    model, comp = model_of(layers=1), composite_of()
    a = xcrop.predict(comp, model).values
    b = xcrop.predict(comp.chunk({"y": 7, "x": 50}), model, batch_size=33).values
    reordered = comp.isel(band=[3, 1, 0, 2])  # bands are selected by name
    c = xcrop.predict(reordered, model).values
    np.testing.assert_allclose(a, b, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(a, c)


def test_an_ensemble_maps_its_members_mean_probability(tmp_path):
    from xcrop._model import LSTMEnsemble

    members = [model_of(layers=2, seed=s) for s in (1, 2, 3)]
    ensemble, comp = LSTMEnsemble(members), composite_of(chunks=16)
    prob = comp.cropmask.predict(ensemble)
    assert prob.chunks == comp.chunks[2:]
    expected = np.mean([reference(m, comp) for m in members], axis=0)
    np.testing.assert_allclose(prob.values, expected, atol=2e-6, equal_nan=True)
    for head in ("local", "global"):  # predict_proba on the pixels' series, per head
        mean = np.mean([reference(m, comp, head) for m in members], axis=0)
        series = comp.values.reshape(12, len(BANDS), -1).transpose(2, 0, 1)
        got = ensemble.predict_proba(series, head=head)
        np.testing.assert_allclose(got.reshape(mean.shape), mean, atol=2e-6, equal_nan=True)
    ensemble.save(tmp_path / "ensemble.pt")  # what the CLI maps with, read back
    again = xcrop.predict(comp, xcrop.load_model(tmp_path / "ensemble.pt")).values
    np.testing.assert_array_equal(again, prob.values)
    with pytest.raises(ModelError, match="same bands and hyper-parameters"):
        LSTMEnsemble([model_of(layers=1), model_of(layers=2)])


def test_predict_refuses_wrong_inputs():
    model, comp = model_of(), composite_of()
    with pytest.raises(ModelError, match="missing \\['NDVI'\\]"):
        xcrop.predict(comp.sel(band=["B02", "B04", "B08"]), model)
    with pytest.raises(CubeError, match="composite"):
        xcrop.predict(comp.isel(time=0), model)
    model.info["periods"] = 12
    with pytest.raises(ModelError, match="periods=12"):
        xcrop.predict(comp.isel(time=slice(0, 6)), model)


def test_two_maps_in_one_computation_keep_their_own_model_and_area():
    """Regression: a fixed ``name=`` made every map share its keys with every other."""
    import dask

    comp = composite_of()
    m1, m2 = model_of(seed=1), model_of(seed=2)
    small = comp.isel(y=slice(0, 20), x=slice(0, 30))
    p1, p2, p3 = dask.compute(xcrop.predict(comp, m1), xcrop.predict(comp, m2),
                              xcrop.predict(small, m1))  # fmt: skip
    np.testing.assert_allclose(p1.values, reference(m1, comp), atol=2e-6, equal_nan=True)
    np.testing.assert_allclose(p2.values, reference(m2, comp), atol=2e-6, equal_nan=True)
    assert p3.shape == (20, 30)
    np.testing.assert_allclose(p3.values, reference(m1, small), atol=2e-6, equal_nan=True)
    assert np.nanmax(np.abs(p1.values - p2.values)) > 0.1
    heads = dask.compute(xcrop.predict(comp, m1), xcrop.predict(comp, m1, head="global"))
    np.testing.assert_allclose(heads[1].values, reference(m1, comp, "global"), atol=2e-6,
                               equal_nan=True)  # fmt: skip


def test_the_model_is_one_graph_key():
    model, comp = model_of(), composite_of(chunks=16)
    prob = xcrop.predict(comp, model)
    graph = dict(prob.__dask_graph__())
    handles = [k for k, v in graph.items() if isinstance(v, predict_module.ModelHandle)]
    assert len(handles) <= 1
    blob = predict_module.ModelHandle.of(model).data
    pickled = pickle.dumps(graph)  # 20 chunks, the model's bytes in the graph once
    assert pickled.count(blob[-256:]) == 1


def test_distributed_workers_build_the_model_once_and_agree(tmp_path):
    distributed = pytest.importorskip("distributed")
    model, comp = model_of(), composite_of(chunks=16)
    threaded = xcrop.predict(comp, model).values
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        distributed.Client(cluster) as client,
    ):
        prob = xcrop.predict(comp, model)
        got = prob.values
        builds = client.run(lambda: len(__import__("xcrop._inference")._inference.BUILDS))
        prob.cropmask.to_zarr(tmp_path / "dist.zarr", progress=False)
        # a persisted map of one model is never handed out for another's
        other = model_of(seed=5)
        persisted = xcrop.predict(comp, model).persist()
        got_other = xcrop.predict(comp, other).values
        np.testing.assert_array_equal(persisted.values, threaded)
    np.testing.assert_array_equal(got, threaded)
    np.testing.assert_allclose(got_other, reference(other, comp), atol=2e-6, equal_nan=True)
    assert sum(builds.values()) <= 2 and max(builds.values()) == 1
    stored = xcrop.open_probability(tmp_path / "dist.zarr")
    np.testing.assert_array_equal(stored.values, threaded)
    assert stored.rio.crs.to_epsg() == 32631


def test_composite_predict_chain(tiny):
    from xcrop.datasets import simulated_archive  # noqa: F401  (the tiny fixture made it)

    cube = xcrop.search(
        tiny.bbox("togo-north"), "2019-03-01/2020-02-29", catalog=str(tiny.items_path),
        collection="sentinel-2-l2a",
    ).sel(**tiny.window("togo-north"))  # fmt: skip
    comp = cube.cropmask.composite(score="scl")
    bands = tuple(str(b) for b in comp.data.band.values)
    model = MultiHeadLSTM(bands).eval()
    prob = cube.cropmask.composite(score="scl").predict(model)
    assert prob.shape == cube.shape[2:] and prob.rio.crs == cube.rio.crs
    values = prob.values
    data = np.isfinite(comp.data.values).all(axis=(0, 1))
    np.testing.assert_array_equal(np.isfinite(values), data)
    assert data.mean() > 0.9 and ((values >= 0) & (values <= 1))[data].all()


def _samples_of(comp: xr.DataArray, n: int = 300, seed: int = 1) -> xcrop.Samples:
    """Labelled series from the composite's own pixels (label: NDVI rises in summer)."""
    rng = np.random.default_rng(seed)
    series = comp.transpose("y", "x", "time", "band").values.reshape(-1, 12, len(BANDS))
    series = series[np.isfinite(series).all(axis=(1, 2))][rng.choice(3000, n, replace=False)]
    y = (series[:, 6, 3] > series[:, 0, 3]).astype("int8")
    return xcrop.Samples(series, y, np.ones(n, bool), np.arange(n), BANDS,
                         np.ones((n, 12), "uint8"))  # fmt: skip


def test_any_model_with_predict_proba_maps_lazily_like_it_scores_points():
    """xcrop's baselines and a plain scikit-learn classifier map a composite; each pixel
    is the model's own predict_proba of its series (NaN where the series has NaN)."""
    from sklearn.linear_model import LogisticRegression

    comp = composite_of()
    samples = _samples_of(comp)
    series = comp.transpose("y", "x", "time", "band").values.reshape(-1, 12, len(BANDS))
    valid = np.isfinite(series).all(axis=(1, 2))
    forest = xcrop.random_forest(n_estimators=20, seed=0).fit(samples)
    logistic = LogisticRegression(max_iter=500).fit(samples.X.reshape(len(samples), -1),
                                                    samples.y)  # fmt: skip
    expected = {
        "forest": forest.predict_proba(series),
        "logistic": np.where(
            valid, logistic.predict_proba(np.nan_to_num(series.reshape(len(series), -1)))[:, 1],
            np.nan),
    }  # fmt: skip
    for name, model in (("forest", forest), ("logistic", logistic)):
        prob = xcrop.predict(comp, model)
        assert prob.chunks == ((32, 18), (32, 32, 6)) and prob.rio.crs.to_epsg() == 32631
        got = prob.values.ravel()
        np.testing.assert_allclose(got, expected[name], rtol=1e-6, atol=1e-6)
        assert np.isnan(got[~valid]).all() and np.isfinite(got[valid]).all()
        assert len(prob.attrs["model_sha256"]) == 64
    # bands are chosen by name for the baselines, whatever the composite's order
    shuffled = comp.isel(band=[3, 1, 0, 2])
    np.testing.assert_array_equal(xcrop.predict(shuffled, forest).values,
                                  xcrop.predict(comp, forest).values)  # fmt: skip
    with pytest.raises(ModelError, match=r"takes 48 features; the composite gives 12 periods x 3"):
        xcrop.predict(comp.sel(band=["B02", "B04", "B08"]), logistic)
    with pytest.raises(ModelError, match="lacks \\['NDVI'\\]"):
        xcrop.predict(comp.sel(band=["B02", "B04", "B08"]), forest)
    with pytest.raises(ModelError, match="or a fitted model with predict_proba"):
        xcrop.predict(comp, object())


def test_a_prediction_leaves_torchs_threads_as_it_found_them():
    """Regression: the first predict task on a worker thread set torch to one thread for
    the whole process and never restored it (a thread started after the map saw 1)."""
    import threading

    import dask

    def in_a_new_thread() -> int:
        seen = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        return seen[0]

    before = torch.get_num_threads()
    torch.set_num_threads(3)  # not 1, not the default: a setting of the user's
    try:
        prob = xcrop.predict(composite_of(), model_of())
        with dask.config.set(scheduler="threads", num_workers=2):
            values = prob.compute()
        assert np.isfinite(values).sum() == values.size - 2
        assert torch.get_num_threads() == 3
        assert in_a_new_thread() == 3
    finally:
        torch.set_num_threads(before)
