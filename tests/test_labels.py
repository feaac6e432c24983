"""Labels: the real Togo and Rwanda files, crowd votes and consensus on known tables."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, Polygon

import xcrop
from xcrop.labels import consensus, crowd_vote, join_labellers, mark_local, read_labels

from .conftest import SHARED

TOGO = SHARED / "togo-labels"
TEST_FILES = {
    "cn": TOGO / "random_sample_cn" / "random_sample_1k_cn.shp",
    "bm": TOGO / "random_sample_bm" / "BM_Labels.shp",
    "bb": TOGO / "BB_random_sample_1k" / "random_sample_1k_BB.shp",
    "hrk": TOGO / "random_sample_hrk" / "random_sample_test.shp",
}


def test_real_togo_training_polygons_become_central_points():
    crop = read_labels(TOGO / "crop_merged_v2" / "crop_merged_v2.shp", label=1)
    non = read_labels(TOGO / "noncrop_merged_v2" / "noncrop_merged_v2.shp", label=0)
    assert (len(crop), len(non)) == (688, 588) and len(crop) + len(non) == 1276
    assert set(crop.label) == {1} and set(non.label) == {0}
    assert crop.crs.to_epsg() == 4326 and set(crop.geom_type) == {"Point"}
    polygons = gpd.read_file(TOGO / "crop_merged_v2" / "crop_merged_v2.shp")
    utm = polygons.estimate_utm_crs()
    inside = crop.to_crs(utm).geometry.within(polygons.to_crs(utm).geometry.buffer(0.01))
    assert inside.all()
    assert crop.attrs["report"] == {"read": 688, "kept": 688, "dropped": {}}


def test_real_togo_test_set_joins_and_reduces_to_the_papers_306_points():
    table = join_labellers(TEST_FILES)
    assert len(table) == 351 and list(table.columns[-3:]) == ["bm", "bb", "hrk"]
    assert table[["cn", "bm", "bb", "hrk"]].notna().all().all()  # the hrk file's 649 empty rows
    result = consensus(table, ["cn", "bm", "bb", "hrk"])
    # Kerner et al. (2020) report 306 consensus test points for Togo
    assert len(result) == 306 and result.attrs["report"]["dropped"] == {"tie": 45}
    assert result.label.value_counts().to_dict() == {0: 200, 1: 106}


def test_rwanda_ceo_csv_text_labels():
    path = SHARED / "rwanda-ceo" / "ceo-2019-Rwanda-Cropland-sample-data-2021-04-20.csv"
    labels = read_labels(path, label="Crop/ or not")  # ids: row numbers
    raw = pd.read_csv(path)
    assert len(raw) == 1202
    assert labels.attrs["report"]["dropped"] == {"no or unknown label": 6}
    assert labels.label.value_counts().to_dict() == {0: 736, 1: 460}
    expected = raw["Crop/ or not"].iloc[labels.id].eq("Cropland")
    np.testing.assert_array_equal(labels.label.to_numpy(), expected.to_numpy().astype(int))


def test_crowd_vote_and_consensus_on_known_tables():
    wide = gpd.GeoDataFrame(
        {"id": [1, 2, 3, 4], "a": [1, 1, 0, np.nan], "b": [1, 0, 0, np.nan],
         "c": [0, 1, 1, np.nan], "d": [np.nan, 0, 1, np.nan]},
        geometry=[Point(0, i) for i in range(4)], crs=4326,
    )  # fmt: skip
    vote = crowd_vote(wide, ["a", "b", "c", "d"])
    assert vote.label.tolist() == [1, 0, 0]  # 2/3 > 0.5; 0.5 is not > 0.5
    assert vote.votes.tolist() == [3, 4, 4] and vote.attrs["report"]["dropped"] == {"no label": 1}
    major = consensus(wide, ["a", "b", "c", "d"])
    assert major.id.tolist() == [1] and major.attrs["report"]["dropped"] == {
        "tie": 2,
        "no label": 1,
    }
    long = pd.DataFrame({"id": [7, 7, 7, 8, 8], "label": ["Cropland", "Non-crop", "Cropland",
                                                         "Non-crop", "Non-crop"]})  # fmt: skip
    long = gpd.GeoDataFrame(long, geometry=[Point(1, 1)] * 3 + [Point(2, 2)] * 2, crs=4326)
    vote = crowd_vote(long)
    assert vote.set_index("id").label.to_dict() == {7: 1, 8: 0}
    assert vote.set_index("id").agreement.round(3).to_dict() == {7: 0.667, 8: 1.0}


def test_polygons_any_crs_and_unknown_labels_are_reported():
    square = Polygon([(300000, 1000000), (300040, 1000000), (300040, 1000040), (300000, 1000040)])
    x0, y0 = 300000, 1000100
    outer = [(x0, y0), (x0 + 100, y0), (x0 + 100, y0 + 100), (x0, y0 + 100)]
    hole = [(x0 + 5, y0 + 5), (x0 + 95, y0 + 5), (x0 + 95, y0 + 95), (x0 + 5, y0 + 95)]
    ring = Polygon(outer, [hole])
    frame = gpd.GeoDataFrame(
        {"crop": ["yes", "maize", "no", None], "fid": [10, 11, 12, 13]},
        geometry=[square, ring, Point(300500, 1000500), None],
        crs=32631,
    )
    labels = read_labels(frame, label="crop", id="fid", mapping={"maize": 1})
    assert labels.id.tolist() == [10, 11, 12] and labels.label.tolist() == [1, 1, 0]
    assert labels.attrs["report"]["dropped"] == {"no geometry": 1}
    utm = labels.to_crs(32631)
    assert utm.geometry.iloc[0].distance(Point(300020, 1000020)) < 0.01
    assert utm.geometry.iloc[1].within(ring.buffer(0.01))  # not in the hole
    with pytest.raises(xcrop.XcropError, match="columns"):
        read_labels(pd.DataFrame({"x": [1]}), label="x")


def test_mark_local():
    pts = gpd.GeoDataFrame({"id": [1, 2]}, geometry=[Point(1.1, 9.0), Point(30.0, -1.0)], crs=4326)
    assert mark_local(pts, (0.0, 6.0, 2.0, 11.0)).is_local.tolist() == [True, False]
