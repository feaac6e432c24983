"""The .cropmask accessor on cubes users made themselves, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xcrop
from xcrop._sentinel2 import normalise_item


def test_import_registers_the_accessor_on_both_types():
    assert hasattr(xr.DataArray([1]), "cropmask")
    assert hasattr(xr.Dataset(), "cropmask")


def test_user_stackstac_cube_with_earth_search_keys(es_c1_item):
    """A cube made with stackstac straight from Earth Search items (keys red, nir, scl)."""
    import stackstac

    item = es_c1_item.clone()
    with pytest.raises(ValueError, match="Cannot pick a common CRS"):
        stackstac.stack([item], assets=["red"])  # pystac migrated proj:epsg to proj:code
    item.properties["proj:epsg"] = 32720  # the user's workaround
    user = stackstac.stack([item], assets=["red", "nir", "swir16", "scl"], xy_coords="center")
    assert user.dtype == np.float64  # rescaled by raster:bands
    cube = user.cropmask.check(["B04", "B08"])
    assert list(cube.band.values) == ["B04", "B08", "B11", "SCL"]
    assert cube.dims == ("time", "band", "y", "x") and cube.rio.crs.to_epsg() == 32720
    mine = xcrop.load([es_c1_item], bands=["B04", "B08", "B11", "SCL"])
    np.testing.assert_allclose(cube.sel(band="B04").values, mine.sel(band="B04").values, atol=1e-6)
    assert user.cropmask.bands == ["B04", "B08", "B11", "SCL"]


def test_user_odc_dataset(pc_items):
    import odc.stac

    items = [normalise_item(it, ["B04", "B08"]) for it in pc_items[:2]]
    ds = odc.stac.load(items, bands=["B04", "B08"], chunks={}, dtype="float32")
    ds = ds.rename({"B04": "red", "B08": "nir"})
    cube = ds.cropmask.check(["B04", "B08"])
    assert list(cube.band.values) == ["B04", "B08"] and cube.sizes["time"] == 2
    assert cube.rio.crs.to_epsg() == 32735


def test_missing_band_is_named(pc_items):
    cube = xcrop.load(pc_items[:1], bands=["B04", "B08"])
    with pytest.raises(xcrop.MissingBandError, match=r"\['B11', 'B12'\]"):
        cube.cropmask.check(["B04", "B11", "B12"])


def test_wrong_dims_integer_data_and_missing_crs_are_explained(pc_items):
    cube = xcrop.load(pc_items[:1], bands=["B04", "B08"])
    with pytest.raises(xcrop.CubeError, match="missing \\['time'\\]"):
        cube.isel(time=0).cropmask.check(["B04"])
    with pytest.raises(xcrop.CubeError, match="raw digital numbers"):
        (cube * 10000).astype("uint16").cropmask.check(["B04"])
    bare = xr.DataArray(
        np.zeros((1, 1, 2, 2), "float32"),
        dims=("time", "band", "y", "x"),
        coords={"band": ["B04"]},
    )
    with pytest.raises(xcrop.CRSError, match="write_crs"):
        bare.cropmask.check(["B04"])
    with pytest.raises(xcrop.CubeError, match="not Sentinel-2 band names"):
        bare.assign_coords(band=["VV"]).rio.write_crs(32631).cropmask.check(["B04"])
    with pytest.raises(xcrop.CubeError, match="no Sentinel-2 band variables"):
        xr.Dataset({"VV": bare}).cropmask.check()


def test_the_error_family():
    """Bad input stays a ValueError; a network failure is an OSError, never a ValueError;
    ``except XcropError`` catches every one."""
    input_errors = (xcrop.XcropInputError, xcrop.MissingBandError, xcrop.CubeError,
                    xcrop.CRSError, xcrop.ModelError, xcrop.UnknownCatalogError)  # fmt: skip
    for error in (*input_errors, xcrop.EmptySearchError):
        assert issubclass(error, xcrop.XcropError) and issubclass(error, ValueError)
    for error in (xcrop.XcropNetworkError, xcrop.CatalogUnreachableError):
        assert issubclass(error, xcrop.XcropError) and issubclass(error, ConnectionError)
        assert not issubclass(error, ValueError)
    assert issubclass(xcrop.ReadError, xcrop.XcropError) and issubclass(xcrop.ReadError, OSError)
    assert not issubclass(xcrop.ReadError, ValueError)
    assert not issubclass(xcrop.XcropError, ValueError)
    assert not issubclass(xcrop.EmptySearchError, xcrop.XcropInputError)
