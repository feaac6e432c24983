"""Band names, asset keys and the harmonisation policy, on the real STAC items."""

from __future__ import annotations

import datetime as dt
import json

import pystac
import pytest

from xcrop._sentinel2 import (
    DEFAULT_BANDS,
    asset_keys,
    canonical_band,
    check_bands,
    item_coords,
    normalise_item,
    reflectance_scaling,
)
from xcrop.errors import MissingBandError, XcropError

from .conftest import STAC_ITEMS


def _item(name: str, index: int = 0) -> pystac.Item:
    data = json.loads((STAC_ITEMS / name).read_text())
    if data.get("type") == "FeatureCollection":
        data = data["features"][index]
    return pystac.Item.from_dict(data)


ES_C1 = "earth-search-v1_sentinel-2-c1-l2a_item.json"
ES_L2A = "earth-search-v1_sentinel-2-l2a_item.json"
PC = "site2-2020_jun_jul-35MNM.geojson"
PC_RASTER = "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("red", "B04"),
        ("B04", "B04"),
        ("b8a", "B8A"),
        ("nir08", "B8A"),
        ("scl", "SCL"),
        ("swir22", "B12"),
        ("visual", None),
        ("AOT", None),
    ],
)
def test_canonical_band(name, expected):
    assert canonical_band(name) == expected


def test_asset_keys_earth_search_ignores_jp2_twins():
    keys = asset_keys(_item(ES_L2A))
    assert keys["B04"] == "red" and keys["B8A"] == "nir08" and keys["SCL"] == "scl"
    assert set(DEFAULT_BANDS) <= set(keys)
    assert not any(k.endswith("-jp2") for k in keys.values())


def test_asset_keys_planetary_computer_are_canonical():
    keys = asset_keys(_item(PC))
    assert all(keys[b] == b for b in DEFAULT_BANDS)


def test_normalise_item_renames_and_fixes_proj_code():
    item = _item(ES_L2A)
    item.properties.pop("proj:epsg", None)  # pystac >= 1.12 already migrates it away
    item.properties["proj:code"] = "EPSG:32613"
    out = normalise_item(item, ["B04", "SCL"])
    assert sorted(out.assets) == ["B04", "SCL"]
    assert out.properties["proj:epsg"] == 32613
    assert out.assets["B04"].href.endswith("/B04.tif")
    assert "red" in item.assets  # the original is untouched


def test_normalise_item_names_the_missing_band():
    item = _item(ES_L2A)
    del item.assets["nir08"]
    with pytest.raises(MissingBandError, match=r"\['B8A'\]"):
        normalise_item(item, ["B04", "B8A"])


def test_check_bands_rejects_unknown_names():
    assert check_bands(["red", "B08"]) == ("B04", "B08")
    with pytest.raises(MissingBandError, match="B13"):
        check_bands(["B04", "B13"])


def test_harmonisation_policy_on_real_items():
    pc, pc_raster = _item(PC), _item(PC_RASTER)
    es_c1, es_l2a = _item(ES_C1), _item(ES_L2A)
    # Planetary Computer, baseline 02.12, no raster:bands (or without scale/offset)
    assert reflectance_scaling(pc, "B04") == (1e-4, 0.0)
    assert reflectance_scaling(pc_raster, "B04") == (1e-4, 0.0)
    # the same item at baseline 04.00 gets the offset from s2:processing_baseline
    pc.properties["s2:processing_baseline"] = "04.00"
    assert reflectance_scaling(pc, "B04") == (1e-4, -0.1)
    # Earth Search c1: raster:bands says -0.1 and is right
    assert reflectance_scaling(es_c1, "B04") == (1e-4, -0.1)
    # Earth Search l2a, boa_offset_applied true: raster:bands says -0.1 but DNs are shifted
    assert reflectance_scaling(es_l2a, "B04") == (1e-4, 0.0)
    assert reflectance_scaling(es_l2a, "B04", "raster") == (1e-4, -0.1)
    es_l2a.properties["earthsearch:boa_offset_applied"] = False
    assert reflectance_scaling(es_l2a, "B04") == (1e-4, -0.1)  # baseline 05.09 decides
    assert reflectance_scaling(es_l2a, "B04", "none") == (1e-4, 0.0)
    assert reflectance_scaling(es_l2a, "B04", lambda item: -0.05) == (1e-4, -0.05)
    assert reflectance_scaling(es_l2a, "SCL") == (1.0, 0.0)
    with pytest.raises(XcropError, match="not a policy"):
        reflectance_scaling(es_l2a, "B04", "trust-me")


def test_item_coords_from_both_layouts():
    pc = item_coords(_item(PC))
    assert pc["mgrs_tile"] == "35MNM" and pc["platform"] == "sentinel-2a"
    assert pc["processing_baseline"] == pytest.approx(2.12)
    assert pc["sun_zenith"] == pytest.approx(36.401639408824)
    es = item_coords(_item(ES_C1))
    assert es["mgrs_tile"] == "20EPT" and es["collection"] == "sentinel-2-c1-l2a"
    assert es["sun_zenith"] == pytest.approx(90 - 4.164002081708503)
    assert es["boa_offset"] == -0.1 and es["cloud_cover"] == pytest.approx(26.02542)
    item = pystac.Item("x", None, None, dt.datetime(2020, 1, 1), {"grid:code": "MGRS-31NBJ"})
    assert item_coords(item)["mgrs_tile"] == "31NBJ"


def test_earth_engine_band_names():
    assert canonical_band("B2") == "B02" and canonical_band("B8A") == "B8A"
    assert canonical_band("B12") == "B12" and canonical_band("VV") is None
