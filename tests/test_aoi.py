"""Areas of interest: a polygon limits what is read, and its outside is nodata."""

from __future__ import annotations

import json
import threading

import geopandas as gpd
import numpy as np
import pytest
import shapely
from odc.geo import geom
from scipy.ndimage import binary_erosion

import xcrop
from tests.test_cli import xcrop_cli
from xcrop._reads import _Reader, inside_mask

KW = {"collection": "sentinel-2-l2a", "chunks": 20}  # kenya: 60 px, 3 x 3 chunks


def _triangle(tiny) -> shapely.Polygon:
    w, s, e, n = tiny.bbox("kenya")
    return shapely.Polygon([(w, s), (e, s), (w, n)])  # the lower-left half


def _count_reads(monkeypatch) -> list:
    real, lock, windows = _Reader.read, threading.Lock(), []

    def counted(self, cfg, dst_geobox, **kwargs):
        with lock:
            windows.append(dst_geobox)
        return real(self, cfg, dst_geobox, **kwargs)

    monkeypatch.setattr(_Reader, "read", counted)
    return windows


def test_nothing_outside_the_polygon_is_read_and_it_is_nodata_everywhere(tiny, monkeypatch):
    catalog = str(tiny.items_path)
    triangle = _triangle(tiny)
    box = xcrop.search(tiny.bbox("kenya"), catalog=catalog, **KW)
    cube = xcrop.search(triangle, catalog=catalog, **KW)
    assert cube.sizes == box.sizes  # the polygon's bounding box
    model = xcrop.MultiHeadLSTM(("B04", "B08", "NDVI"))
    comps, probs, reads = {}, {}, {}
    for name, c in (("box", box), ("polygon", cube)):
        windows = _count_reads(monkeypatch)
        comps[name] = c.cropmask.composite(score="scl", bands=("B04", "B08")).to_dataset()
        comps[name] = comps[name].compute()
        reads[name] = list(windows)
        probs[name] = xcrop.composite(c, score="scl", bands=("B04", "B08")).predict(model)
        probs[name] = probs[name].compute()
    aoi = geom.Geometry(triangle, crs=4326).to_crs(cube.rio.crs)
    inside = inside_mask(aoi, cube.odc.geobox)
    assert 0.4 < inside.mean() < 0.6
    # no read of a window the triangle misses; on this grid (snapped to 20 m) 7 of the 9
    # chunks overlap it: the polygon reads 7/9 of what its bounding box reads
    assert all(g.extent.intersects(aoi) for g in reads["polygon"])
    assert len(reads["polygon"]) == len(reads["box"]) * 7 // 9
    # outside: nodata in the composite, its counts, dates and the map; inside: the same
    composite, whole = comps["polygon"], comps["box"]
    assert np.isnan(composite.composite.values[:, :, ~inside]).all()
    assert (composite.counts.values[:, ~inside] == 0).all()
    assert np.isnan(probs["polygon"].values[~inside]).all()
    # away from the edge (the cloud mask's buffer sees no clouds outside the polygon)
    core = binary_erosion(inside, iterations=12)
    assert core.sum() > 200
    np.testing.assert_array_equal(
        composite.composite.values[:, :, core], whole.composite.values[:, :, core]
    )
    np.testing.assert_array_equal(probs["polygon"].values[core], probs["box"].values[core])
    # a GeoDataFrame in another CRS and a GeoJSON FeatureCollection are the same area
    frame = gpd.GeoDataFrame(geometry=[triangle], crs=4326).to_crs(cube.rio.crs)
    feature = {"type": "FeatureCollection",
               "features": [{"type": "Feature", "properties": {},
                             "geometry": shapely.geometry.mapping(triangle)}]}  # fmt: skip
    for other in (frame, feature):
        again = xcrop.search(other, catalog=catalog, **KW).isel(time=3).values
        np.testing.assert_array_equal(again, cube.isel(time=3).values)
    with pytest.raises(xcrop.XcropError, match="has no area"):
        xcrop.search(shapely.LineString([(34.75, 0.27), (34.76, 0.28)]), catalog=catalog)


def test_the_command_line_takes_an_area_file(tiny, tmp_path):
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(shapely.geometry.mapping(_triangle(tiny))))
    bbox = ",".join(map(str, tiny.bbox("kenya")))
    for area in ((bbox, "--aoi", path), (path,)):
        out = tmp_path / f"comp{len(area)}.zarr"
        done = xcrop_cli("composite", area[0], "2015/2030", *area[1:], "--catalog",
                         tiny.items_path, "--collection", "sentinel-2-l2a", "--score", "scl",
                         "--chunks", 20, "--out", out)  # fmt: skip
        assert done.returncode == 0, done.stderr
        comp = xcrop.open_composite(out)
        assert 0.4 < float(comp.data.isel(time=0, band=0).notnull().mean()) < 0.6
    far = tmp_path / "far.geojson"
    far.write_text(json.dumps(shapely.geometry.mapping(shapely.box(10, 10, 11, 11))))
    refused = xcrop_cli("composite", bbox, "2015/2030", "--aoi", far, "--catalog",
                        tiny.items_path, "--out", tmp_path / "x.zarr")  # fmt: skip
    assert refused.returncode == 1 and "does not overlap BBOX" in refused.stderr
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "x.zarr").exists()
    missing = xcrop_cli("search", tmp_path / "nothere.geojson", "2019", "--catalog",
                        tiny.items_path)  # fmt: skip
    assert missing.returncode == 2 and "no such file" in missing.stderr
