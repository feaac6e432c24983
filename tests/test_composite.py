"""Least-cloudy composites: known answers, the real eo-learn series, the simulated archive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr

import xcrop
from xcrop._mosaic import choose, gather, period_index

from .conftest import SHARED

START = np.datetime64("2020-01-01", "ns")


def _cube(values: np.ndarray, days: list[int], cover=None, bands=("B04", "B08")) -> xr.DataArray:
    """A (time, band, y, x) cube with the given per-time values in every band (+ offset)."""
    _, h, w = values.shape
    data = np.stack([values + 0.01 * k for k in range(len(bands))], axis=1).astype("float32")
    times = START + np.array(days) * np.timedelta64(1, "D")
    cube = xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords={
            "time": times,
            "band": list(bands),
            "y": 1000.0 - 10 * np.arange(h),
            "x": 500.0 + 10 * np.arange(w),
        },
    )
    if cover is not None:
        cube = cube.assign_coords(cloud_cover=("time", np.asarray(cover, "float64")))
    return cube.chunk({"time": 1, "y": 2, "x": 2}).rio.write_crs(32631)


def _score(cloudiness: np.ndarray, cube: xr.DataArray) -> xr.DataArray:
    return xr.DataArray(cloudiness, dims=("time", "y", "x"), coords={"time": cube.time})


def test_period_index_and_choose_known_answers():
    t = START + np.array([0, 3, 9, 10, 19, 25, 40]) * np.timedelta64(1, "D")
    period = period_index(t, START, 3, 10)
    assert period.tolist() == [0, 0, 0, 1, 1, 2, -1]
    q = np.array([-0.5, -0.1, -0.1, np.nan, np.nan, -0.9, 0.0], "float32")[:, None, None]
    choice, counts = choose(q, period, order=np.arange(7), periods=3)
    # period 0: times 1 and 2 tie at -0.1: the first in priority order (1) wins
    # period 1: only NaN: filled from the nearest period with data, the earlier (0) on a tie
    assert choice[:, 0, 0].tolist() == [1, 1, 5]
    assert counts[:, 0, 0].tolist() == [2, 0, 0]  # -0.9 is not usable
    choice, _ = choose(q, period, order=np.array([2, 1, 0, 3, 4, 5, 6]), periods=3)
    assert choice[0, 0, 0] == 2  # priority decides ties
    band = np.arange(7, dtype="float32")[:, None, None]
    np.testing.assert_array_equal(gather(band, choice)[:, 0, 0], [2, 2, 5])
    assert np.isnan(gather(band, np.full((3, 1, 1), -1, "int16"))).all()


def test_composite_picks_the_least_cloudy_observation():
    rng = np.random.default_rng(0)
    values = rng.random((6, 4, 4)).astype("float32")
    cloudiness = rng.random((6, 4, 4)).astype("float32")
    cube = _cube(values, [0, 4, 8, 12, 16, 30])  # periods of 10 days: 3+2, day 30 outside
    comp = cube.cropmask.composite(
        start=START, periods=3, days=10, score=_score(cloudiness, cube), indices=(), bands=["B04"]
    )
    got = comp.data.sel(band="B04").values
    for p, members in enumerate([[0, 1, 2], [3, 4]]):
        best = np.array(members)[np.argmin(cloudiness[members], axis=0)]
        np.testing.assert_array_equal(got[p], np.take_along_axis(values, best[None], 0)[0])
        chosen = (START + np.array([0, 4, 8, 12, 16, 30]) * np.timedelta64(1, "D"))[best]
        np.testing.assert_array_equal(comp.dates.values[p], chosen)
    # period 2 has no acquisition: filled from period 1, count 0
    np.testing.assert_array_equal(got[2], got[1])
    assert (comp.counts.values[2] == 0).all()
    assert comp.data.time.values[1] == START + np.timedelta64(10, "D")
    assert comp.data.rio.crs.to_epsg() == 32631


def test_ties_go_to_the_lower_scene_cloud_cover_then_the_earlier_date():
    values = np.array([1, 2, 3], "float32")[:, None, None] * np.ones((3, 2, 2), "float32")
    cloudiness = np.zeros((3, 2, 2), "float32")
    cube = _cube(values, [0, 1, 2], cover=[50.0, 10.0, 10.0])
    comp = xcrop.composite(
        cube,
        start=START,
        periods=1,
        days=10,
        score=_score(cloudiness, cube),
        bands=["B04"],
        indices=(),
    )
    assert (comp.data.sel(band="B04").values == 2).all()  # cover 10 %, earlier of the two


def test_unsorted_and_duplicate_times_give_the_same_composite():
    rng = np.random.default_rng(1)
    values = rng.random((5, 4, 4)).astype("float32")
    cloudiness = rng.random((5, 4, 4)).astype("float32")
    days = [0, 5, 5, 12, 15]  # a duplicate acquisition on day 5
    cube = _cube(values, days)
    perm = [3, 0, 4, 2, 1]
    shuffled = _cube(values[perm], [days[i] for i in perm])
    kw = {"start": START, "periods": 2, "days": 10, "bands": ["B04", "B08"]}
    a = xcrop.composite(cube, score=_score(cloudiness, cube), **kw)
    b = xcrop.composite(shuffled, score=_score(cloudiness[perm], shuffled), **kw)
    xr.testing.assert_identical(a.data.compute(), b.data.compute())
    ndvi = a.data.sel(band="NDVI").values
    b04, b08 = a.data.sel(band="B04").values, a.data.sel(band="B08").values
    np.testing.assert_allclose(ndvi, (b08 - b04) / (b08 + b04), rtol=1e-6)


def test_all_nan_pixels_stay_nan_and_empty_periods_fill():
    values = np.ones((4, 3, 3), "float32")
    values[:, 0, 0] = np.nan  # no data ever
    values[2:, 1, 1] = np.nan  # no data in period 1
    cube = _cube(values, [0, 2, 10, 12])
    comp = xcrop.composite(
        cube,
        start=START,
        periods=2,
        days=10,
        bands=["B04", "B08"],
        score=_score(np.zeros((4, 3, 3), "float32"), cube),
    )
    data = comp.data.compute()
    assert np.isnan(data.values[:, :, 0, 0]).all() and np.isnat(comp.dates.values[:, 0, 0]).all()
    assert np.isfinite(data.values[1, :, 1, 1]).all() and comp.counts.values[1, 1, 1] == 0
    assert comp.counts.values[1, 2, 2] == 2


def test_a_10m_pixel_without_data_moves_its_20m_cell_to_a_complete_observation():
    """Regression (real: WorldCereal clip B, one B08 pixel of DN 0 on 2018-12-12): the
    observation is chosen per 20 m cell; one of its 10 m pixels without data used to leave
    that pixel NaN in the composite while its count said 2 clear views."""
    times = pd.to_datetime(["2019-03-05", "2019-03-10"])
    data = np.full((2, 3, 4, 4), 0.1, "float32")
    data[:, 1] = 0.4  # B08
    data[1, 1] = 0.5  # the later observation: another NIR, to see which one is used
    data[:, 2] = 4  # SCL vegetation: both clear
    data[0, 1, 0, 0] = np.nan  # the first observation lacks one 10 m pixel of B08
    cube = xr.DataArray(
        data, dims=("time", "band", "y", "x"),
        coords={"time": times, "band": ["B04", "B08", "SCL"], "y": 35.0 - 10 * np.arange(4),
                "x": 5.0 + 10 * np.arange(4)},
    ).rio.write_crs("EPSG:32631")  # fmt: skip
    comp = xcrop.composite(cube, start="2019-03-01", periods=1, bands=["B04", "B08"],
                           score="scl")  # fmt: skip
    nir = comp.data.sel(band="B08").values[0]
    assert np.isfinite(comp.data.values).all()  # was NaN at (0, 0): B08 and NDVI
    np.testing.assert_array_equal(nir[:2, :2], np.float32(0.5))  # the complete one
    np.testing.assert_array_equal(nir[2:, 2:], np.float32(0.4))  # others: the earlier
    assert comp.counts.values[0, 0, 0] == 1 and comp.counts.values[0, 3, 3] == 2


def test_errors_name_the_fix():
    cube = _cube(np.ones((2, 2, 2), "float32"), [0, 1])
    with pytest.raises(xcrop.XcropError, match="start="):
        xcrop.composite(
            cube,
            start="2021-01-01",
            bands=["B04"],
            indices=(),
            score=_score(np.zeros((2, 2, 2), "float32"), cube),
        )
    with pytest.raises(xcrop.MissingBandError, match="SCL"):
        xcrop.composite(cube, start=START, score="scl", bands=["B04"], indices=())
    with pytest.raises(xcrop.MissingBandError, match="B02"):
        xcrop.composite(cube, start=START)  # the Schmitt score needs more bands
    with pytest.raises(xcrop.XcropError, match="not known"):
        xcrop.composite(cube, start=START, score="fmask")


def test_real_cloud_probabilities_pick_the_clearest_acquisition():
    """eo-learn's real series: s2cloudless probability as the score."""
    d = np.load(SHARED / "eolearn-slovenia-2015" / "timeseries.npz")
    ndvi, prob, lulc = d["ndvi"], d["cloud_probability"], d["lulc"]
    times = d["time"].astype("datetime64[ns]")
    red = np.full(ndvi.shape, 0.05, "float32")
    nir = (red * (1 + ndvi) / (1 - ndvi)).astype("float32")
    cube = (
        xr.DataArray(
            np.stack([red, nir], axis=1),
            dims=("time", "band", "y", "x"),
            coords={
                "time": times,
                "band": ["B04", "B08"],
                "y": np.arange(101.0),
                "x": np.arange(100.0),
            },
        )
        .chunk({"time": 1, "y": 64, "x": 64})
        .rio.write_crs(32633)
    )
    score = xr.DataArray(prob, dims=("time", "y", "x"))
    comp = xcrop.composite(cube, score=score, bands=["B04", "B08"])
    assert str(comp.data.time.values[0])[:10] == "2016-03-01"  # the first March
    period = period_index(times, np.datetime64("2016-03-01"), 12, 30)
    dates = comp.dates.values
    for p in range(12):
        members = np.nonzero(period == p)[0]
        if len(members) == 0:
            continue
        best = members[np.argmin(prob[members], axis=0)]
        best_prob = np.take_along_axis(prob[members], np.argmin(prob[members], 0)[None], 0)[0]
        chosen = np.searchsorted(times, dates[p])
        chosen_prob = np.take_along_axis(prob, chosen[None], 0)[0]
        np.testing.assert_array_equal(chosen_prob, best_prob)  # least cloud probability
        assert (times[best] == dates[p]).mean() > 0.99  # the same acquisition (ties aside)
    # where a period holds a clear and a cloudy acquisition over the forest, the raw
    # series dips and the composite does not: it keeps the clear one's NDVI
    forest = lulc == 2
    composite_ndvi = np.nanmedian(comp.data.sel(band="NDVI").values[:, forest], axis=1)
    forest_prob = prob[:, forest].mean(axis=1)
    forest_ndvi = np.median(ndvi[:, forest], axis=1)
    checked = 0
    for p in range(12):
        members = np.nonzero(period == p)[0]
        clear = [t for t in members if forest_prob[t] < 0.35]
        cloudy = [t for t in members if forest_prob[t] > 0.5]
        if clear and cloudy:  # in 2016: mid June and December
            checked += 1
            assert abs(composite_ndvi[p] - max(forest_ndvi[clear])) < 0.08
            assert composite_ndvi[p] > min(forest_ndvi[cloudy]) + 0.3
    assert checked == 2


def test_simulated_archive_composite_avoids_the_clouds(tiny):
    region = "togo-north"
    cube = xcrop.search(tiny.bbox(region), catalog=str(tiny.items_path), chunks=64)
    cube = cube.sel(**tiny.window(region)).persist()
    comp = cube.cropmask.composite()
    assert comp.data.sizes == {"time": 12, "band": 12, "y": 120, "x": 120}
    assert list(comp.data.band.values) == [*xcrop.REFLECTANCE_BANDS, "NDVI"]
    with rasterio.open(tiny.truth(region, "cloud_opacity_20m")) as src:
        opacity = np.repeat(np.repeat(src.read() / 100, 2, 1), 2, 2)
    dates = comp.dates.values
    times = pd.DatetimeIndex(cube.time.values)
    period = period_index(times.values, comp.data.time.values[0], 12, 30)
    worse = []
    for p in range(12):
        members = np.nonzero(period == p)[0]
        least = opacity[members].min(axis=0)
        chosen = np.searchsorted(times.values, dates[p])
        picked = np.take_along_axis(opacity, chosen[None], 0)[0]
        worse.append(((picked - least) > 0.05).mean())
    assert np.mean(worse) < 0.05, worse  # the least cloudy observation, 95 % of the time
    with rasterio.open(tiny.truth(region)) as src:
        crop = src.read(1).astype(bool)
    ndvi = comp.data.sel(band="NDVI").values
    august = int(np.nonzero(pd.DatetimeIndex(comp.data.time.values).month == 8)[0][0])
    assert np.median(ndvi[august][crop]) > 0.5 > np.median(ndvi[0][crop]) + 0.2
    assert comp.counts.values.max() <= 6 and (comp.counts.values > 0).mean() > 0.6
    # the 60 m B09 loses data at swath edges where other bands have it: such
    # observations are not chosen, so no pixel lacks some bands only
    missing = np.isnan(comp.data.values)
    assert not missing.any()


def test_stackstac_and_odc_cubes_composite_alike(es_c1_item):
    """A cube the user made with stackstac (Earth Search keys) composites like xcrop's."""
    import stackstac

    item = es_c1_item.clone()
    item.properties["proj:epsg"] = 32720
    keys = ["coastal", "blue", "green", "red", "nir", "swir16", "swir22", "scl"]
    user = stackstac.stack([item], assets=keys, xy_coords="center", chunksize=64)
    mine = xcrop.load([es_c1_item], bands=[*xcrop._sentinel2.check_bands(keys)], chunks=64)
    kw = {"start": "2025-07-15", "periods": 1, "bands": ["B02", "B04", "B08"]}
    a = xcrop.composite(user, **kw).data.compute()
    b = xcrop.composite(mine, **kw).data.compute()
    np.testing.assert_allclose(a.values, b.values, atol=1e-6)
    assert np.isfinite(b.values).all() and list(b.band.values) == ["B02", "B04", "B08", "NDVI"]


def test_composite_sample_on_the_simulated_archive(tiny):
    """Hand labels of the tiny archive, sampled from a composite: crops green in August."""
    region = "togo-north"
    cube = xcrop.search(tiny.bbox(region), catalog=str(tiny.items_path), chunks=64)
    comp = cube.sel(**tiny.window(region)).cropmask.composite(bands=["B04", "B08"])
    hand = tiny.labels / "hand"
    labels = pd.concat(
        [
            xcrop.read_labels(hand / "crop_points" / "crop_points.shp", label=1),
            xcrop.read_labels(hand / "noncrop_points" / "noncrop_points.shp", label=0),
        ],
        ignore_index=True,
    )
    labels["id"] = np.arange(len(labels))
    samples = comp.sample(labels)
    dropped = samples.report["dropped"]
    assert samples.X.shape[1:] == (12, 3) and len(samples) + sum(dropped.values()) == len(labels)
    assert dropped.get("outside the composite", 0) > 0  # togo-south's labels
    starts = pd.DatetimeIndex(comp.data.time.values)
    late_august = int(np.nonzero(starts.month == 8)[0][0])  # the period from 27 August
    ndvi = samples.X[:, :, 2]
    crop, other = samples.y == 1, samples.y == 0
    # in the dry season crop fields are bare soil, darker in NDVI than natural vegetation;
    # their seasonal rise is the larger one
    assert np.median(ndvi[crop, 0]) < np.median(ndvi[other, 0]) - 0.05
    rise = ndvi[:, late_august] - ndvi[:, 0]
    assert np.median(rise[crop]) > np.median(rise[other]) + 0.1


def test_sample_points_reads_windows_and_matches_composite_sample(tiny):
    region = "togo-north"
    hand = tiny.labels / "hand"
    labels = pd.concat(
        [
            xcrop.read_labels(hand / "crop_points" / "crop_points.shp", label=1),
            xcrop.read_labels(hand / "noncrop_points" / "noncrop_points.shp", label=0),
        ],
        ignore_index=True,
    )
    labels = xcrop.mark_local(labels, tiny.bbox(region))
    labels = labels[labels.is_local].assign(id=lambda f: np.arange(len(f)))
    points = xcrop.sample_points(
        labels, "2019-02-01/2020-04-30", catalog=str(tiny.items_path), score="scl", window=16
    )
    assert points.report["windows"] in (1, 2) and not points.is_local.any()
    cube = xcrop.search(tiny.bbox(region), catalog=str(tiny.items_path), chunks=64)
    full = cube.sel(**tiny.window(region)).cropmask.composite(score="scl").sample(labels)
    order = np.argsort(points.ids)  # windows come back group by group
    assert points.ids[order].tolist() == full.ids.tolist() and len(points) > 30
    np.testing.assert_array_equal(points.X[order], full.X)
    np.testing.assert_array_equal(points.counts[order], full.counts)
    with pytest.raises(xcrop.EmptySearchError, match="No imagery"):
        xcrop.sample_points(labels, "2015", catalog=str(tiny.items_path))


def _cloudy_cube(n: int = 96) -> xr.DataArray:
    """Six clear dates (two 15-day periods) but for a cloud on dates 0 and 3, in the
    south-east, whose shadow falls 42 rows north and 72 columns west (sun at azimuth
    120, zenith 40, cloud at 1 km): chunks of 16 px must reach across four of them."""
    clear = dict(B01=0.03, B02=0.04, B03=0.08, B04=0.04, B08=0.45, B11=0.22, B12=0.1)
    cloud = dict(B01=0.5, B02=0.55, B03=0.55, B04=0.55, B08=0.6, B11=0.4, B12=0.3)
    rng = np.random.default_rng(2)
    data = np.empty((6, len(clear), n, n), "float32")
    for t in range(6):
        for k, (band, value) in enumerate(clear.items()):
            data[t, k] = value + rng.normal(0, 0.005, (n, n))
            if t in (0, 3):
                data[t, k, 60:80, 72:92] = cloud[band]
                if band in ("B08", "B11", "B12"):
                    data[t, k, 18:38, 0:20] *= 0.3
    cube = xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords={
            "time": START + np.arange(6) * np.timedelta64(5, "D"),
            "band": list(clear),
            "y": 1000.0 - 10 * np.arange(n),
            "x": 500.0 + 10 * np.arange(n),
            "sun_azimuth": ("time", np.full(6, 120.0)),
            "sun_zenith": ("time", np.full(6, 40.0)),
        },
    )
    return cube.rio.write_crs(32631)


def test_schmitt_composite_does_not_depend_on_the_chunks():
    cube = _cloudy_cube()
    kw = {"start": START, "periods": 2, "days": 15, "bands": ["B02", "B08"]}
    whole = xcrop.composite(cube.chunk({"time": 1, "y": -1, "x": -1}), **kw)
    dates = whole.dates.values
    # ties go to the earlier date, so the cloudy date 0 wins wherever it is clear: not in
    # its cloud, not in its shadow, which lies four 16 px chunks away
    assert dates[0, 70, 80] == START + np.timedelta64(5, "D")
    assert dates[0, 28, 10] == START + np.timedelta64(5, "D")
    assert dates[0, 5, 60] == START and dates[1, 5, 60] == START + np.timedelta64(15, "D")
    for chunks in ({"y": 32, "x": 32}, {"y": 16, "x": 24}, {"y": 30, "x": 17}):
        part = xcrop.composite(cube.chunk({"time": 1, **chunks}), **kw)
        np.testing.assert_array_equal(part.dates.values, dates)
        np.testing.assert_array_equal(part.data.values, whole.data.values)
        np.testing.assert_array_equal(part.counts.values, whole.counts.values)


def test_kernel_examples_hold():
    """The numpy kernels' docstring examples are tests too."""
    import doctest

    from xcrop import _cloudscore as cloudscore
    from xcrop import _mosaic as mosaic

    for module in (mosaic, cloudscore):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_composite_graph_runs_on_a_distributed_cluster():
    """The composite's graph (``da.blockwise`` layers and the task-spec tasks of
    ``xcrop._graph._from_tasks``) ships to worker processes and gives the threaded result."""
    distributed = pytest.importorskip("distributed")
    cube = _cloudy_cube().chunk({"time": 1, "y": 32, "x": 32})
    kw = {"start": START, "periods": 2, "days": 15, "bands": ["B02", "B08"]}
    threaded = xcrop.composite(cube, **kw).to_dataset().compute()
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    with cluster, distributed.Client(cluster):
        spread = xcrop.composite(cube, **kw).to_dataset().compute()
    xr.testing.assert_identical(threaded, spread)
