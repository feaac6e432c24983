"""Sampling composites at labelled points: nearest pixel in any CRS, reports, round trips."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from shapely.geometry import Point

import xcrop
from xcrop._sample import Samples, pixel_index, sample

X0, Y0 = 300000.0, 1000000.0  # top-left corner, EPSG:32631


def _composite(h=6, w=5, t=3, bands=("B04", "B08", "NDVI")) -> xr.DataArray:
    # value = 1000 * row + 10 * col + period + band / 10: every pixel is recognisable
    rows, cols = np.mgrid[0:h, 0:w]
    data = np.stack([np.stack([1000 * rows + 10 * cols + p + b / 10 for b in range(len(bands))])
                     for p in range(t)]).astype("float32")  # fmt: skip
    da = xr.DataArray(
        data, dims=("time", "band", "y", "x"),
        coords={"time": np.arange(t), "band": list(bands), "y": Y0 - 5 - 10 * np.arange(h),
                "x": X0 + 5 + 10 * np.arange(w)},
    )  # fmt: skip
    return da.rio.write_crs(32631)


def _points(xy, crs=32631, labels=None):
    labels = labels if labels is not None else [1] * len(xy)
    return gpd.GeoDataFrame({"id": np.arange(len(xy)), "label": labels},
                            geometry=[Point(x, y) for x, y in xy], crs=crs)  # fmt: skip


def test_nearest_pixel_in_utm_and_on_edges():
    comp = _composite()
    rows, cols = pixel_index(comp, np.array([X0 + 1, X0 + 10, X0 + 49.9, X0 - 1]),
                             np.array([Y0 - 1, Y0 - 10, Y0 - 59.9, Y0 - 1]))  # fmt: skip
    # a point on the edge x0 + 10 / y0 - 10 belongs to the pixel east / south of it
    assert rows.tolist() == [0, 1, 5, -1] and cols.tolist() == [0, 1, 4, -1]


def test_points_in_lonlat_on_a_utm_composite():
    comp = _composite()
    utm = _points([(X0 + 23, Y0 - 41), (X0 + 7, Y0 - 2)])
    lonlat = utm.to_crs(4326)
    samples = sample(comp, lonlat)
    assert samples.X.shape == (2, 3, 3)
    # (row 4, col 2) and (row 0, col 0), every period and band
    np.testing.assert_allclose(samples.X[0, :, 0], [4020, 4021, 4022])
    np.testing.assert_allclose(samples.X[1, 2], [2, 2.1, 2.2])
    assert samples.bands == ("B04", "B08", "NDVI") and samples.report["dropped"] == {}


def test_outside_and_nodata_points_are_reported_not_zeroed():
    comp = _composite()
    comp[1, 0, 3, 3] = np.nan  # one period of one band missing at (3, 3)
    pts = _points([(X0 + 35, Y0 - 35), (X0 + 5000, Y0 - 5), (X0 + 15, Y0 - 15)], labels=[1, 0, 0])
    samples = sample(comp, pts)
    assert samples.ids.tolist() == [2] and samples.y.tolist() == [0]
    assert samples.report["dropped"] == {"outside the composite": 1, "no data at the pixel": 1}
    assert np.isfinite(samples.X).all()


def test_nan_coordinates_are_invalid_not_outside():
    comp = _composite()
    pts = _points([(X0 + 35, Y0 - 35), (np.nan, np.nan), (X0 + 5000, Y0 - 5)])
    samples = sample(comp, pts)
    assert samples.ids.tolist() == [0]
    assert samples.report["dropped"] == {"invalid coordinates": 1, "outside the composite": 1}


def test_composite_and_accessor_sample_alike_and_samples_round_trip(tmp_path):
    comp = _composite()
    pts = _points([(X0 + 12, Y0 - 12), (X0 + 44, Y0 - 51)])
    a = comp.cropmask.sample(pts, local=True)
    counts = xr.full_like(comp.isel(band=0, drop=True), 2, dtype="uint8")
    composite = xcrop.Composite(comp, counts, counts.astype("datetime64[ns]"))
    b = composite.sample(pts.assign(is_local=[True, False]))
    np.testing.assert_array_equal(a.X, b.X)
    assert b.is_local.tolist() == [True, False] and (b.counts == 2).all()
    both = a.concat(b)
    assert len(both) == 4 and both.is_local.tolist() == [True, True, True, False]
    path = both.save(tmp_path / "train.npz")
    back = Samples.load(path)
    np.testing.assert_array_equal(back.X, both.X)
    assert back.bands == both.bands and back.ids.tolist() == both.ids.tolist() == [0, 1, 0, 1]
    frame = both.to_pandas()
    assert frame.shape == (4, 3 * 3 + 3) and frame["NDVI_02"].iloc[0] == pytest.approx(1012.2)


def test_samples_keep_their_groups_through_drops_joins_and_files(tmp_path):
    """group= keeps each label's field with its sample: aligned after a point outside is
    dropped, through concat (a part without groups gives each sample its own) and save."""
    comp = _composite()
    pts = _points([(X0 + 12, Y0 - 12), (X0 - 500, Y0), (X0 + 44, Y0 - 51)], labels=[1, 0, 0])
    pts = pts.assign(field=["north", "gone", "south"])
    s = comp.cropmask.sample(pts, local=True, group="field")
    assert s.ids.tolist() == [0, 2] and s.groups.tolist() == ["north", "south"]
    assert s.report["dropped"] == {"outside the composite": 1}
    plain = comp.cropmask.sample(pts, local=False)
    assert plain.groups is None
    both = s.concat(plain)
    assert both.groups.tolist() == ["north", "south", "#1:0", "#1:1"]
    back = Samples.load(both.save(tmp_path / "s.npz"))
    assert back.groups.tolist() == both.groups.tolist()
    assert Samples.load(plain.save(tmp_path / "p.npz")).groups is None
    assert both.to_pandas()["group"].tolist() == both.groups.tolist()
    with pytest.raises(xcrop.XcropError, match=r"No column 'parcel' among .*give group= one"):
        comp.cropmask.sample(pts, group="parcel")
    # label= and id= are checked the same way, before the composite is read (was a
    # KeyError traceback after it)
    with pytest.raises(xcrop.XcropError, match=r"No column 'id' among \['pid', .*give id= one"):
        comp.cropmask.sample(pts.rename(columns={"id": "pid"}))
    with pytest.raises(xcrop.XcropError, match=r"No column 'crop' among .*give label= one"):
        comp.cropmask.sample(pts, label="crop")
    with pytest.raises(xcrop.XcropError, match="groups has 1 values for 2 samples"):
        Samples(s.X, s.y, s.is_local, s.ids, s.bands, s.counts, groups=np.array([1]))


def test_composite_without_crs_is_refused():
    comp = _composite().drop_vars("spatial_ref")
    comp.attrs.pop("grid_mapping", None)
    with pytest.raises(xcrop.XcropError, match="CRS"):
        sample(comp, _points([(X0 + 1, Y0 - 1)]))


def test_gee_export_reads_as_a_composite_and_samples_at_polygon_98():
    """The real GEE export centred on crop polygon 98 of the Togo training labels."""
    from .conftest import SHARED

    comp = xcrop.read_gee_export(SHARED / "togo-gee-export" / "98-togo_2019-02-06_2020-02-01.tif")
    assert comp.sizes == {"time": 12, "band": 12, "y": 17, "x": 17}
    assert list(comp.band.values) == [*xcrop.REFLECTANCE_BANDS, "NDVI"]
    assert comp.rio.crs.to_epsg() == 4326 and str(comp.time.values[0])[:10] == "2019-02-06"
    refl = comp.sel(band=list(xcrop.REFLECTANCE_BANDS)).values
    assert 0 < np.nanmedian(refl) < 0.5  # L1C DN / 10000
    crops = gpd.read_file(SHARED / "togo-labels" / "crop_merged_v2" / "crop_merged_v2.shp")
    labels = xcrop.read_labels(crops[crops.FID == 98], label=1, id="FID")
    samples = comp.cropmask.sample(labels)
    assert samples.X.shape == (1, 12, 12) and samples.ids.tolist() == [98.0]
    ndvi = samples.X[0, :, -1]
    assert ndvi.max() - ndvi.min() > 0.3  # a crop's seasonal cycle


def test_samples_as_a_torch_dataset():
    torch = pytest.importorskip("torch")
    comp = _composite()
    samples = sample(comp, _points([(X0 + 12, Y0 - 12), (X0 + 44, Y0 - 51)], labels=[1, 0]))
    data = samples.to_torch()
    x, y, local = data[1]
    assert len(data) == 2 and x.shape == (3, 3) and x.dtype == torch.float32
    assert float(y) == 0.0 and bool(local) is True


def test_sample_points_reads_each_block_of_a_window_once(tiny, monkeypatch):
    """Data and counts of a window's composite come from one pass over its files."""
    import threading

    import pandas as pd

    from xcrop import _points as points_module
    from xcrop._mosaic import period_index

    real, lock = points_module.load, threading.Lock()
    blocks, reads = [], []

    def count(block):
        with lock:
            reads.append(block.shape)
        return block

    def counted_load(*args, **kwargs):
        cube = real(*args, **kwargs)
        start = np.datetime64("2019-03-01")  # the first March: the periods' default start
        used = (period_index(cube.time.values, start, 12, 30) >= 0).sum()
        blocks.append(cube.data.npartitions // cube.data.numblocks[0] * used)
        meta = np.empty((0, 0, 0, 0), cube.dtype)
        return cube.copy(data=cube.data.map_blocks(count, dtype=cube.dtype, meta=meta))

    monkeypatch.setattr(points_module, "load", counted_load)
    hand = tiny.labels / "hand"
    labels = pd.concat(
        [
            xcrop.read_labels(hand / "crop_points" / "crop_points.shp", label=1),
            xcrop.read_labels(hand / "noncrop_points" / "noncrop_points.shp", label=0),
        ],
        ignore_index=True,
    )
    labels = labels[xcrop.mark_local(labels, tiny.bbox("togo-north")).is_local]
    samples = xcrop.sample_points(
        labels.assign(id=np.arange(len(labels))), "2019-02-01/2020-04-30",
        catalog=str(tiny.items_path), score="scl", bands=("B04", "B08"), window=16,
    )  # fmt: skip
    assert len(samples) > 30 and samples.report["windows"] == len(blocks) >= 1
    # every (time, band) block of the periods read once: not twice, none outside them
    assert len(reads) == sum(blocks)


def test_a_failed_save_keeps_the_old_file_and_ids_keep_their_type(tmp_path):
    """RLIMIT_FSIZE makes the write fail as a full disk would."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from xcrop._sample import Samples

    rng = np.random.default_rng(0)
    small = Samples(rng.random((3, 12, 2), dtype="float32"), np.array([0, 1, 1], "int8"),
                    np.ones(3, bool), np.array([7, 8, 9]), ("B04", "NDVI"),
                    np.ones((3, 12), "uint8"), {"read": 3})  # fmt: skip
    path = small.save(tmp_path / "s.npz")
    back = Samples.load(path)
    assert back.ids.dtype.kind == "i" and back.ids.tolist() == [7, 8, 9]
    assert back.report == {"read": 3}
    before = path.read_bytes()
    code = (
        "import resource, numpy as np\nfrom xcrop._sample import Samples\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))\n"
        "rng = np.random.default_rng(1)\n"
        "big = Samples(rng.random((2000, 12, 2), dtype='float32'), np.zeros(2000, 'int8'),\n"
        "              np.ones(2000, bool), np.arange(2000), ('B04', 'NDVI'),\n"
        "              np.ones((2000, 12), 'uint8'))\n"
        f"big.save({str(path)!r})\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert path.read_bytes() == before  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no partial file left


def test_sample_points_window_names_are_the_same_in_every_process():
    import subprocess
    import sys

    code = (
        "import dask, geopandas as gpd, shapely\nfrom xcrop._points import _fingerprint\n"
        "g = gpd.GeoDataFrame({'id': [1, 2], 'label': [0, 1]},\n"
        "    geometry=[shapely.Point(1, 2), shapely.Point(3, 4)], crs=4326)\n"
        "print(dask.base.tokenize('k', _fingerprint(g), '2019', None, (1, 2, 3, 4),\n"
        "      ['B04'], {'bands': ['B04']}, {'catalog': 'x', 'collection': None}))\n"
    )
    tokens = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout for _ in range(2)}  # fmt: skip
    assert len(tokens) == 1 and len(tokens.pop().strip()) == 32


def test_sample_points_reads_each_file_once_however_close_the_points_lie(tiny, monkeypatch):
    """Points whose windows overlap share one window: no file is read twice (the old
    grid of ``group_size`` cells made overlapping windows of these points, each reading
    every file of its region again)."""
    import threading
    from collections import Counter

    import pandas as pd

    from xcrop._reads import _Reader

    real, lock, reads = _Reader.read, threading.Lock(), Counter()

    def counted(self, cfg, dst_geobox, **kwargs):
        with lock:
            reads[self._src.uri] += 1
        return real(self, cfg, dst_geobox, **kwargs)

    hand = tiny.labels / "hand"
    labels = pd.concat(
        [
            xcrop.read_labels(hand / "crop_points" / "crop_points.shp", label=1),
            xcrop.read_labels(hand / "noncrop_points" / "noncrop_points.shp", label=0),
        ],
        ignore_index=True,
    ).assign(id=lambda f: np.arange(len(f)))
    kwargs = dict(catalog=str(tiny.items_path), score="scl", bands=("B04", "B08"), window=16)
    xcrop.sample_points(labels.head(1), "2019-02-01/2020-04-30", **kwargs)  # caches warm
    monkeypatch.setattr(_Reader, "read", counted)
    samples = xcrop.sample_points(labels, "2019-02-01/2020-04-30", group_size=300.0, **kwargs)
    assert samples.report["windows"] == 2  # one per region: its points' windows overlap
    assert len(reads) > 100 and max(reads.values()) == 1
    # the same samples as every region composited whole
    for region in ("togo-north", "togo-south"):
        cube = xcrop.search(tiny.bbox(region), catalog=str(tiny.items_path),
                            bands=["B04", "B08", "SCL"])  # fmt: skip
        full = cube.cropmask.composite(score="scl", bands=("B04", "B08")).sample(labels)
        mine = np.isin(samples.ids, full.ids)
        order = np.argsort(samples.ids[mine])
        assert samples.ids[mine][order].tolist() == full.ids.tolist() and len(full) > 30
        np.testing.assert_array_equal(samples.X[mine][order], full.X)
        np.testing.assert_array_equal(samples.counts[mine][order], full.counts)


def test_windows_never_overlap_and_join_chains_of_close_points():
    import shapely

    from xcrop._points import _window, _windows

    rng = np.random.default_rng(3)
    # three clusters of 20 points (~110 m spread): two 1.5 km apart, one 30 km away
    centres = [(1.0, 9.0), (1.0135, 9.0), (1.3, 9.0)]
    xy = np.concatenate([c + rng.normal(0, 0.001, (20, 2)) for c in centres])
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=4326)
    chained = _windows(points, 2000.0, 320.0, 51_200.0)  # the first two chain at 2 km
    assert chained.nunique() == 2 and chained.iloc[0] == chained.iloc[20] != chained.iloc[40]
    # at 100 m the clusters' points do not all chain, but their windows overlap: joined
    overlapping = _windows(points, 100.0, 320.0, 51_200.0)
    assert overlapping.nunique() == 3
    assert all(overlapping.iloc[k * 20 : (k + 1) * 20].nunique() == 1 for k in range(3))
    assert _windows(points, 100.0, 0.0, 51_200.0).nunique() > 3  # without margins: chains
    for keys in (chained, overlapping):
        boxes = [shapely.box(*_window(g, 320.0)) for _, g in points.groupby(keys)]
        assert not any(a.intersects(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    # a window wider than the cut is cut on the grid: a 100 km line of close points
    line = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(np.linspace(1.0, 1.9, 200), np.full(200, 9.0)), crs=4326
    )
    cut = _windows(line, 2000.0, 320.0, 51_200.0)
    assert 2 <= cut.nunique() <= 3


def test_sample_points_mistakes_get_one_line_before_any_search(tmp_path):
    """Each of these was a swallowed error ("no imagery found") or a traceback."""
    points = gpd.GeoDataFrame(
        {"id": [1, 2], "label": [0, 1]}, geometry=[Point(1.0, 9.0), Point(1.1, 9.1)], crs=4326
    )
    nowhere = str(tmp_path / "no-catalog-needed.json")  # every case fails before reading it
    cases = [
        ({"datetime": "2020-04-30/2019-02-01"}, "ends before it starts"),
        ({"year": "season"}, r"year='season': the points have no such column.*\['id', 'label'\]"),
        ({"datetime": "2019", "group_size": 0}, "give group_size > 0"),
        ({"datetime": "2019", "checkpoint": "/proc/xcrop"}, "cannot create it"),
    ]
    for kwargs, message in cases:
        with pytest.raises(xcrop.XcropError, match=message):
            xcrop.sample_points(points, catalog=nowhere, **kwargs)
    with pytest.raises(xcrop.XcropError, match=r"points need a 'label' \(0/1\) and an 'id'"):
        xcrop.sample_points(points.rename(columns={"id": "pid"}), "2019", catalog=nowhere)
    with pytest.raises(xcrop.XcropError, match=r"No column 'field' among .*give group= one"):
        xcrop.sample_points(points, "2019", catalog=nowhere, group="field")
    with pytest.raises(xcrop.XcropError, match="points is empty"):
        xcrop.sample_points(points.iloc[:0], "2019", catalog=nowhere)
    with pytest.raises(xcrop.XcropError, match=r"no CRS; .*set_crs\(4326\)"):
        xcrop.sample_points(points.set_crs(None, allow_override=True), "2019", catalog=nowhere)


def test_a_composite_one_pixel_high_keeps_its_points():
    """Regression: rioxarray cannot infer the transform of an array one row high and fell
    back to the identity: every point was 'outside the composite'."""
    import pandas as pd

    coords = {"y": [5.0], "x": [5.0, 15.0, 25.0]}
    row = xr.DataArray(np.zeros((1, 3)), dims=("y", "x"), coords=coords).rio.write_crs(32636)
    rows, cols = pixel_index(row, np.array([5.0, 14.0, 29.9, 31.0]), np.array([5.0, 1.0, 9.9, 5.0]))
    assert rows.tolist() == [0, 0, 0, -1] and cols.tolist() == [0, 1, 2, -1]
    column = row.transpose("x", "y").rename(x="y", y="x").assign_coords(y=[25.0, 15.0, 5.0])
    rows, cols = pixel_index(column.transpose("y", "x"), np.array([5.0]), np.array([14.0]))
    assert (rows.tolist(), cols.tolist()) == ([1], [0])
    comp = xr.DataArray(
        np.ones((12, 1, 1, 3), "float32"), dims=("time", "band", "y", "x"),
        coords={"time": pd.date_range("2019-03-01", periods=12, freq="30D"), "band": ["NDVI"],
                "y": [5.0], "x": [5.0, 15.0, 25.0]},
    ).rio.write_crs(32636)  # fmt: skip
    xy = gpd.points_from_xy([5, 15, 25], [5, 5, 5])
    points = gpd.GeoDataFrame({"id": [0, 1, 2], "label": [1, 0, 1]}, geometry=xy, crs=32636)
    samples = xcrop.sample(comp, points)
    assert len(samples) == 3 and samples.report["kept"] == 3
