"""The simulated archive: loads like a real source, and its truth is what it claims."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

import xcrop
from xcrop.datasets import calibration, simulated_archive
from xcrop.datasets.annotate import LANDMARKS, write_hand_labels
from xcrop.datasets.archive import _simulate_region
from xcrop.datasets.landscape import CLASSES, make_landscape
from xcrop.datasets.regions import REGIONS, mgrs_square, rain, sun_position
from xcrop.datasets.serve import serve_items

from .conftest import SHARED

NORTH = "togo-north"


def _region_cube(archive, name, catalog=None, **kw):
    cube = xcrop.search(archive.bbox(name), catalog=catalog or str(archive.items_path), **kw)
    return cube.sel(**archive.window(name))


def _read(path, band=None):
    with rasterio.open(path) as src:
        return src.read() if band is None else src.read(band)


def test_calibration_constants_match_the_real_data():
    path = SHARED / "eolearn-slovenia-2015" / "timeseries.npz"
    measured = calibration.measure(path)
    assert measured["CLOUD_COVER_QUANTILES"] == calibration.CLOUD_COVER_QUANTILES
    assert measured["CLOUD_CORRELATION_PX"] == calibration.CLOUD_CORRELATION_PX
    assert measured["THIN_CLOUD_FRACTION"] == calibration.THIN_CLOUD_FRACTION
    assert measured["NDVI_NOISE"] == calibration.NDVI_NOISE
    assert measured["NDVI_RANGE"] == calibration.NDVI_RANGE


def test_regions_geometry_and_climate():
    assert mgrs_square(31, 292500, 835020, 7.55) == "31NBJ"
    assert mgrs_square(21, 641280, 8611980, -12.55).startswith("21L")
    _, zen = sun_position(dt.datetime(2019, 3, 21, 12, 0), 0.0, 0.0)
    assert zen < 3  # equinox noon on the equator
    _, zen_north = sun_position(dt.datetime(2019, 12, 21, 10, 20), 10.85, 0.2)
    _, zen_june = sun_position(dt.datetime(2019, 6, 21, 10, 20), 10.85, 0.2)
    assert zen_north > zen_june  # the sun is lower in December in Togo's north
    assert rain("sudanian", 225) > 0.9 and rain("sudanian", 30) < 0.05
    south = rain("guinean", np.arange(365))
    assert south[160] > 0.9 and south[280] > 0.7 and south[220] < 0.5  # two seasons


def test_search_static_catalog_and_rustac(tiny):
    static = _region_cube(tiny, NORTH, catalog=str(tiny.catalog_path))
    assert static.sizes["time"] == tiny.region(NORTH)["items"] == 82
    assert static.sizes["y"] == static.sizes["x"] == 120
    with serve_items(tiny.items_path) as url:
        api = _region_cube(
            tiny, NORTH, catalog=url, collection="sentinel-2-l2a", datetime="2019-06-01/2019-06-30"
        )
    assert api.sizes["time"] == 6
    days = pd.DatetimeIndex(api.time.values)
    assert (days.month == 6).all() and (np.diff(days).astype("timedelta64[D]") == 5).all()
    np.testing.assert_array_equal(api.compute().values, static.sel(time=api.time).compute().values)
    assert api.rio.crs.to_epsg() == 32631


def test_scl_agrees_with_the_simulated_clouds(tiny):
    cube = _region_cube(tiny, NORTH)
    scl = cube.sel(band="SCL").values[:, ::2, ::2]  # SCL is 20 m
    opacity = _read(tiny.truth(NORTH, "cloud_opacity_20m")) / 100
    cloud = np.isin(scl, (8, 9))
    assert cloud[opacity > 0.5].mean() > 0.99
    assert cloud[opacity == 0].mean() < 0.005
    assert 0.05 < (opacity > 0.35).mean() < 0.6  # some clouds, not all
    assert (scl == 3).sum() > 0 and np.isnan(scl).sum() > 0  # shadows, swath edges (SCL 0)
    cover = cube.cloud_cover.values
    assert cover.min() == 0 and cover.max() > 90


def test_crop_ndvi_follows_the_seasons(tiny):
    for name, peaks, troughs in [
        (NORTH, [8, 9], [1, 2, 3, 4, 12]),
        ("togo-south", [5, 10], [1, 2, 3, 12]),
    ]:
        cube = _region_cube(tiny, name, bands=["B04", "B08", "SCL"]).compute()
        crop = _read(tiny.truth(name), 1).astype(bool)
        ndvi = (cube.sel(band="B08") - cube.sel(band="B04")) / (
            cube.sel(band="B08") + cube.sel(band="B04")
        )
        clear = cube.sel(band="SCL").isin([4, 5])
        crop_ndvi = ndvi.where(clear & crop).median(["y", "x"])
        other_ndvi = ndvi.where(clear & ~crop).median(["y", "x"])
        month = crop_ndvi.time.dt.month
        peak = float(crop_ndvi.where(month.isin(peaks)).max())
        trough = float(crop_ndvi.where(month.isin(troughs)).median())
        assert peak > 0.5 and trough < 0.22, (name, peak, trough)
        assert float(other_ndvi.where(month.isin(troughs)).median()) > trough + 0.05


def test_the_baseline_04_offset_is_written_and_undone(tiny):
    france = _region_cube(tiny, "france")
    togo = _region_cube(tiny, NORTH)
    assert set(france.boa_offset.values) == {-0.1} and set(togo.boa_offset.values) == {0.0}
    assert set(france.processing_baseline.values) == {5.09}
    water = _read(tiny.truth("france", "landcover"), 1) == 5
    clear = france.sel(band="SCL").isin([6]).values & water
    nir = france.sel(band="B08").values[clear]
    assert clear.sum() > 20 and np.median(nir) < 0.05  # water is dark once harmonised


def test_labels_are_in_the_real_formats(tiny):
    hand = tiny.labels / "hand"
    crop_poly = gpd.read_file(hand / "crop_merged" / "crop_merged.shp")
    assert crop_poly.crs.to_epsg() == 4326 and set(crop_poly.geom_type) == {"Polygon"}
    assert list(crop_poly.columns) == ["FID", "geometry"]
    counts = tiny.manifest["labels"]["hand"]
    assert sum(counts.values()) == 120
    points = gpd.read_file(hand / "crop_points" / "crop_points.shp")
    assert len(points) == counts["crop_points"] and set(points.geom_type) == {"Point"}

    test = tiny.labels / "test"
    files = {
        "cn_labels": test / "random_sample_cn" / "random_sample_cn.shp",
        "bm_labels": test / "random_sample_bm" / "random_sample_bm.shp",
        "bb_label": test / "BB_random_sample_1k" / "BB_random_sample_1k.shp",
        "hrk-label": test / "random_sample_hrk" / "random_sample_hrk.shp",
    }
    frames = {col: gpd.read_file(path) for col, path in files.items()}
    assert all(frames[c].crs.to_epsg() == 4326 for c in ("cn_labels", "bm_labels", "bb_label"))
    hrk = frames["hrk-label"]
    assert hrk.crs.to_epsg() == 32631 and len(hrk) == 1000
    assert hrk["hrk-label"].notna().sum() == 100
    joined = pd.concat([frames[c].set_index("id")[c] for c in files], axis=1).dropna()
    truth = pd.read_csv(test / "test_truth.csv").set_index("id")["truth"]
    assert len(joined) == 100
    for col in files:
        agreement = (joined[col] == truth).mean()
        assert 0.7 < agreement < 0.99, (col, agreement)
    votes = joined.sum(1)
    assert (votes == 2).sum() == tiny.manifest["labels"]["test"]["ties"] > 0


def _hand_label_classes(archive) -> pd.DataFrame:
    """Region, land-cover class (at the centroid) and label of every hand label."""
    rows = []
    for path in sorted((archive.labels / "hand").rglob("*.shp")):
        label = int(path.stem.startswith("crop"))
        for name in archive.manifest["regions"]:
            if not archive.region(name)["local"]:
                continue
            with rasterio.open(archive.truth(name, "landcover")) as src:
                centre = gpd.read_file(path).to_crs(src.crs).geometry.centroid
                w, s, e, n = src.bounds
                inside = centre[(centre.x > w) & (centre.x < e) & (centre.y > s) & (centre.y < n)]
                codes = [v[0] for v in src.sample(zip(inside.x, inside.y, strict=True))]
            rows += [{"region": name, "class": CLASSES[int(c)], "label": label} for c in codes]
    return pd.DataFrame(rows)


def test_hand_labels_include_water_bare_and_settlements(tiny):
    # interpreters label the non-crop they see however small: cell-by-cell sampling gave
    # the river (one "cell") and the villages (a few) no label, so maps called them crop
    labels = _hand_label_classes(tiny)
    assert len(labels) == 120
    counts = labels.groupby(["region", "class"]).size()
    for region in ("togo-north", "togo-south"):
        present = np.unique(_read(tiny.truth(region, "landcover"), 1))
        for code in set(LANDMARKS) & set(present.tolist()):
            assert counts.get((region, CLASSES[code]), 0) >= 2, (region, CLASSES[code])
    landmarks = labels[labels["class"].isin([CLASSES[c] for c in LANDMARKS])]
    assert (landmarks["label"] == 0).mean() > 0.8  # non-crop, a few labelling errors
    assert labels.groupby("region").size().min() > 40  # still both regions, about even


def test_landmark_labels_leave_the_other_draws_alone(tmp_path):
    # the landmark points draw from their own generator: the test set and the crowd
    # labels drawn after the hand labels are those of the archive without landmarks
    region = REGIONS[NORTH]
    land = make_landscape(60, region.climate, np.random.default_rng(0))
    ends = []
    for k, landmark_rng in enumerate((np.random.default_rng(7), np.random.default_rng(8))):
        rng = np.random.default_rng(1)
        write_hand_labels(tmp_path / str(k), [(region, land)], 30, rng, landmark_rng)
        ends.append(rng.random())
    assert ends[0] == ends[1]


def test_crowd_labels_ceo_layout_and_truth(tiny):
    crowd = pd.read_csv(tiny.labels / "crowd.csv")
    assert {"plot_id", "lon", "lat", "email", "Crop/ or not", "Confidence level"} <= set(crowd)
    per_plot = crowd.groupby("plot_id").size()
    assert per_plot.min() >= 3 and per_plot.max() <= 5 and len(per_plot) == 120
    assert set(crowd["Crop/ or not"]) == {"Cropland", "Non-crop"}
    votes = crowd.assign(v=crowd["Crop/ or not"].eq("Cropland")).groupby("plot_id")
    mean = votes.v.mean()
    assert 0 < ((mean > 0) & (mean < 1)).mean() < 0.7  # some plots disagree
    kenya = crowd.drop_duplicates("plot_id").query("region == 'kenya'")
    pts = gpd.GeoSeries(gpd.points_from_xy(kenya.lon, kenya.lat), crs=4326).to_crs(32636)
    with rasterio.open(tiny.truth("kenya")) as src:
        truth = np.array([v[0] for v in src.sample(zip(pts.x, pts.y, strict=True))])
    share = mean.loc[kenya.plot_id].values
    decided = share != 0.5  # 2-2 ties say nothing
    majority = (share > 0.5).astype(int)
    assert (majority == truth)[decided].mean() > 0.8


def test_existing_maps_have_realistic_errors(tiny):
    crop = _read(tiny.truth(NORTH), 1).astype(float)
    frac = _read(tiny.root / "maps" / f"{NORTH}_cropfraction_100m.tif", 1)
    assert frac.shape == (12, 12) and frac.max() <= 100
    true_frac = crop.reshape(12, 10, 12, 10).mean((1, 3)) * 100
    assert np.corrcoef(frac.ravel(), true_frac.ravel())[0, 1] > 0.3
    assert frac.mean() < true_frac.mean() + 10  # no overestimate of crops
    classes = _read(tiny.root / "maps" / f"{NORTH}_classes_30m.tif", 1)
    assert classes.shape == (40, 40) and set(np.unique(classes)) <= {0, 1, 2}
    true30 = crop.reshape(40, 3, 40, 3).mean((1, 3)) > 0.5
    mapped = classes == 2
    recall = (mapped & true30).sum() / true30.sum()
    precision = (mapped & true30).sum() / mapped.sum()
    assert 0.4 < recall < 0.9 and 0.4 < precision < 0.95


def test_generation_is_deterministic_by_seed(tiny, tmp_path):
    region = REGIONS["france"]
    _, items = _simulate_region(tmp_path / "a", region, 30, 3, 0, "earth-search", None)
    # the tiny archive simulated france with index 3 and seed 0 at 60 px: another size,
    # so compare two runs at 30 px, and a different seed
    _, again = _simulate_region(tmp_path / "b", region, 30, 3, 0, "earth-search", None)
    _, other = _simulate_region(tmp_path / "c", region, 30, 3, 1, "earth-search", None)
    a = _read(items[20].assets["red"].href.removeprefix("file://"))
    b = _read(again[20].assets["red"].href.removeprefix("file://"))
    c = _read(other[20].assets["red"].href.removeprefix("file://"))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert [it.properties["eo:cloud_cover"] for it in items] == [
        it.properties["eo:cloud_cover"] for it in again
    ]
    land1 = make_landscape(60, "sudanian", np.random.default_rng([0, 0, 0]))
    land2 = make_landscape(60, "sudanian", np.random.default_rng([0, 0, 0]))
    np.testing.assert_array_equal(land1.landcover, land2.landcover)


def test_planetary_computer_layout_loads_to_the_same_cube(tmp_path):
    region = REGIONS["france"]
    _, es = _simulate_region(tmp_path / "es", region, 30, 3, 0, "earth-search", None)
    _, pc = _simulate_region(tmp_path / "pc", region, 30, 3, 0, "planetary-computer", None)
    assert "B04" in pc[0].assets and "raster:bands" not in pc[0].assets["B04"].extra_fields
    a = xcrop.load(es[10:14], bands=["B02", "B04", "B8A", "SCL"]).compute()
    b = xcrop.load(pc[10:14], bands=["B02", "B04", "B8A", "SCL"]).compute()
    np.testing.assert_array_equal(a.values, b.values)
    assert set(b.boa_offset.values) == {-0.1}
    assert float(a.sun_zenith[0]) == pytest.approx(float(b.sun_zenith[0]), abs=1e-3)


def test_unknown_preset_is_explained():
    with pytest.raises(xcrop.XcropError, match="benchmark"):
        simulated_archive("huge")


def test_localise_item_keeps_unsafe_ids_inside_its_folder(tmp_path):
    import json

    import pystac

    from xcrop.datasets import localise_item
    from xcrop.datasets.cogs import safe_name

    path = SHARED / "stac-items" / "earth-search-v1_sentinel-2-l2a_item.json"
    real = pystac.Item.from_dict(json.loads(path.read_text()))
    target = tmp_path / "a" / "b" / "cogs"
    pixels = lambda item, band, rows, cols: (1000 + rows + cols).astype("uint16")  # noqa: E731
    kept = localise_item(real, target, pixels, size_m=600, bands=("B04",))
    assert (target / real.id / "red.tif").exists()  # a real id is its folder's name
    written = {}
    for unsafe in ("../../x", "/tmp/abs", "..", "a/b", "a_b", "nul\x00byte", ".hidden"):
        item = real.clone()
        item.id = unsafe
        local = localise_item(item, target, pixels, size_m=600, bands=("B04",))
        href = Path(local.assets["red"].href.removeprefix("file://"))
        assert href.resolve().is_relative_to(target.resolve()), unsafe
        assert href.parent.parent == target and href.exists()
        assert local.id == unsafe  # the item keeps its id; only the folder is mapped
        written[unsafe] = href.parent.name
    assert len(set(written.values())) == len(written)  # "a/b" and "a_b" stay apart
    assert written["a_b"] == "a_b" and safe_name(real.id) == real.id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # nothing escaped
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]
    assert kept.assets["red"].href.endswith("/red.tif")
