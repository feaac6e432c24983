"""Labels: the real Togo and Rwanda files, crowd votes and consensus on known tables."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from geopandas.testing import assert_geodataframe_equal
from shapely.geometry import Point, Polygon

import xcrop
from xcrop._labels import (
    concat_labels,
    consensus,
    crowd_vote,
    join_labellers,
    mark_local,
    read_labels,
)

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
    assert list(table.columns) == ["id", "cn", "bm", "bb", "hrk", "geometry"]
    # every id of any file (hrk holds 1000), less the 645 no one labelled
    assert table.attrs["report"] == {"read": 1000, "kept": 355, "dropped": {"no label": 645}}
    names = ["cn", "bm", "bb", "hrk"]
    assert table[names].notna().all(axis=1).sum() == 351
    only_hrk = table[table[["cn", "bm", "bb"]].isna().all(axis=1)]
    assert only_hrk.id.tolist() == [374, 815, 830, 947] and only_hrk.hrk.tolist() == [1, 0, 0, 0]
    result = consensus(table, names)
    # Kerner et al. (2020) report 306 consensus test points for Togo: the 351 all four
    # labelled, less 45 ties
    assert len(result) == 306
    assert result.attrs["report"]["dropped"] == {"below quorum": 4, "tie": 45}
    assert result.label.value_counts().to_dict() == {0: 200, 1: 106}


def test_real_togo_test_set_is_the_same_in_every_file_order():
    names = list(TEST_FILES)
    runs = {}
    for order in itertools.permutations(names):
        table = join_labellers({name: TEST_FILES[name] for name in order})
        runs[order] = table, consensus(table, list(order))
    counts = {order: r.label.value_counts().to_dict() for order, (_, r) in runs.items()}
    # the old join kept the first file's points: hrk first gave 107 / 203 over 310
    assert all(c == {0: 200, 1: 106} for c in counts.values()), counts
    first_table, first_result = runs[tuple(names)]
    assert first_table.id.is_monotonic_increasing and len(first_table) == 355
    for order, (table, result) in runs.items():
        assert list(table.columns[1:-1]) == list(order)  # label columns as given
        assert_geodataframe_equal(table[["id", *names, "geometry"]], first_table)
        assert_geodataframe_equal(result, first_result)
        assert result.attrs == first_result.attrs and table.attrs == first_table.attrs
    # the 4 points only hrk labelled keep hrk's position (its file is in EPSG:32631)
    hrk = gpd.read_file(TEST_FILES["hrk"]).set_index("id").to_crs(4326).geometry
    own = first_table.set_index("id").geometry.loc[[374, 815, 830, 947]]
    assert own.geom_equals_exact(hrk.loc[own.index], 1e-9).all()


def test_consensus_quorum():
    names = list(TEST_FILES)
    table = join_labellers(TEST_FILES)
    three = consensus(table, names, quorum=3)  # the 4 hrk-only points stay below 3 labels
    assert three.attrs["report"]["dropped"] == {"below quorum": 4, "tie": 45}
    one = consensus(table, names, quorum=1)  # single labels count: the old behaviour
    assert one.attrs["report"]["dropped"] == {"tie": 45}
    assert one.label.value_counts().to_dict() == {0: 203, 1: 107}
    with pytest.raises(xcrop.XcropError, match=r"quorum=5: give 1\.\.4"):
        consensus(table, names, quorum=5)


def test_rwanda_ceo_csv_text_labels():
    path = SHARED / "rwanda-ceo" / "ceo-2019-Rwanda-Cropland-sample-data-2021-04-20.csv"
    labels = read_labels(path, label="Crop/ or not")  # ids: row numbers
    raw = pd.read_csv(path)
    assert len(raw) == 1202
    assert labels.attrs["report"]["dropped"] == {"no or unknown label": 6}
    assert labels.label.value_counts().to_dict() == {0: 736, 1: 460}
    expected = raw["Crop/ or not"].iloc[labels.id].eq("Cropland")
    np.testing.assert_array_equal(labels.label.to_numpy(), expected.to_numpy().astype(int))


RWANDA = SHARED / "rwanda-ceo" / "ceo-2019-Rwanda-Cropland-sample-data-2021-04-20.csv"


def test_duplicates_conflicts_and_invalid_coordinates_are_dropped_and_counted():
    raw = pd.read_csv(RWANDA)
    flip = {"Cropland": "Non-crop", "Non-crop": "Cropland"}
    table = pd.concat(
        [
            raw,
            raw.iloc[[0, 1, 2]],  # exact copies
            raw.iloc[[10]].assign(**{"Crop/ or not": flip[raw["Crop/ or not"][10]]}),
            raw.iloc[[20]].assign(lon=np.nan),  # a copy with a missing coordinate
            raw.iloc[[21]].assign(lat=95.0),  # a copy off the globe
        ],
        ignore_index=True,
    )
    labels = read_labels(table, label="Crop/ or not", id="sample_id")
    assert labels.attrs["report"] == {
        "read": 1208,
        "kept": 1195,
        "dropped": {
            "invalid coordinates": 2,
            "no or unknown label": 6,
            "duplicate": 3,
            "conflicting labels": 2,
        },
    }
    assert labels.id.is_unique and raw.sample_id[10] not in set(labels.id)
    # the 1,196 labels of the file less point 10, both of whose labels were dropped
    assert labels.label.value_counts().to_dict() == {
        0: 736 - (raw["Crop/ or not"][10] == "Non-crop"),
        1: 460 - (raw["Crop/ or not"][10] == "Cropland"),
    }
    # by row (no id): the same location is the same point
    by_row = read_labels(table, label="Crop/ or not")
    assert by_row.attrs["report"] == labels.attrs["report"]
    assert by_row.id.max() == 1202 - 1  # the copies' rows were the ones dropped
    # plot 139241576 is three sample points, all Cropland: one id, three places
    by_plot = read_labels(raw, label="Crop/ or not", id="plot_id")
    assert by_plot.attrs["report"]["dropped"] == {"no or unknown label": 6, "duplicate": 2}
    assert (by_plot.id == 139241576).sum() == 1
    # a long table of votes keeps every row
    votes = read_labels(table, label="Crop/ or not", id="sample_id", long=True)
    assert len(votes) == 1208 - 2 - 6


def test_concat_labels_drops_polygons_in_both_files():
    crop_path = TOGO / "crop_merged_v2" / "crop_merged_v2.shp"
    crop = read_labels(crop_path, label=1)
    polygons = gpd.read_file(TOGO / "noncrop_merged_v2" / "noncrop_merged_v2.shp")
    wrong = pd.concat([polygons, gpd.read_file(crop_path).iloc[[5]]], ignore_index=True)
    non = read_labels(wrong, label=0)  # crop polygon 5 also filed as non-crop
    both = concat_labels([crop, non], renumber=True)
    assert both.attrs["report"] == {
        "read": 1277,
        "kept": 1275,
        "dropped": {"conflicting labels": 2},
    }
    assert both.id.is_unique and 5 not in set(both.id) and 688 + 588 not in set(both.id)
    assert both.label.value_counts().to_dict() == {1: 687, 0: 588}
    twice = concat_labels([crop, crop])  # same ids: the same points
    assert twice.attrs["report"]["dropped"] == {"duplicate": 688} and len(twice) == 688


def test_crowd_vote_and_consensus_on_known_tables():
    wide = gpd.GeoDataFrame(
        {"id": [1, 2, 3, 4], "a": [1, 1, 0, np.nan], "b": [1, 0, 0, np.nan],
         "c": [0, 1, 1, np.nan], "d": [np.nan, 0, 1, np.nan]},
        geometry=[Point(0, i) for i in range(4)], crs=4326,
    )  # fmt: skip
    vote = crowd_vote(wide, ["a", "b", "c", "d"])
    assert vote.label.tolist() == [1, 0, 0]  # 2/3 > 0.5; 0.5 is not > 0.5
    assert vote.votes.tolist() == [3, 4, 4] and vote.attrs["report"]["dropped"] == {"no label": 1}
    major = consensus(wide, ["a", "b", "c", "d"], quorum=3)
    assert major.id.tolist() == [1] and major.label.tolist() == [1]  # 2 of 3
    assert major.attrs["report"]["dropped"] == {"tie": 2, "no label": 1}
    everyone = consensus(wide, ["a", "b", "c", "d"])  # point 1 lacks d's label
    assert len(everyone) == 0
    assert everyone.attrs["report"]["dropped"] == {"no label": 1, "below quorum": 1, "tie": 2}
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
