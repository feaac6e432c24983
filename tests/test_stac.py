"""Search and load through a real STAC API (rustac serve) and both loaders."""

from __future__ import annotations

import numpy as np
import pystac
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import xcrop
from xcrop._catalog import CATALOGS, Catalog

from .conftest import band_resolution, expected_reflectance

PC_WINDOW = (26.9995, -7.2485, 27.011, -7.237)  # the localised 35MNM window
PIXELS = [(0, 0), (17, 33), (64, 101), (119, 119)]


def _check_values(cube: xr.DataArray, items: dict[str, pystac.Item]) -> None:
    """Every band at a few known pixels equals the formula the COGs were written with.

    The pixels are picked by coordinates, as (row, col) offsets from the corner of the
    localised window, so the check holds for any cube that covers the window.
    """
    first = items[str(cube.id.values[0])]
    x0, _, _, y0 = first.assets[next(iter(first.assets))].extra_fields["proj:bbox"]
    xs = [x0 + 5 + 10 * col for _, col in PIXELS]
    ys = [y0 - 5 - 10 * row for row, _ in PIXELS]
    values = cube.sel(x=xs, y=ys, method="nearest", tolerance=1.0).compute()
    for t, item_id in enumerate(values.id.values):
        item = items[str(item_id)]
        for b, band in enumerate(values.band.values):
            res = band_resolution(item, str(band))
            for k, (row, col) in enumerate(PIXELS):
                want = expected_reflectance(str(item_id), str(band), row, col, res)
                assert values.values[t, b, k, k] == pytest.approx(want, abs=1e-6), (
                    item_id,
                    band,
                    row,
                    col,
                )


def test_search_api_returns_the_right_items(stac_api, pc_items):
    cube = xcrop.search(
        PC_WINDOW,
        "2020-06-10/2020-07-05",
        catalog=stac_api,
        collection="sentinel-2-l2a",
        max_cloud=6,
    )
    want = [
        it
        for it in pc_items
        if "2020-06-10" <= it.datetime.strftime("%Y-%m-%d") <= "2020-07-05"
        and it.properties["eo:cloud_cover"] <= 6
    ]
    assert [str(i) for i in cube.id.values] == [
        it.id for it in sorted(want, key=lambda i: i.datetime)
    ]
    assert len(want) == 4  # 06-11, 06-16, 06-21, 06-26 (07-01 has 29 % cloud)
    assert cube.dims == ("time", "band", "y", "x") and cube.dtype == np.float32
    assert list(cube.band.values) == list(xcrop.DEFAULT_BANDS)
    assert cube.chunks is not None  # lazy


def test_cube_values_at_known_pixels(stac_api, pc_items):
    cube = xcrop.search(PC_WINDOW, "2020-06", catalog=stac_api, collection="sentinel-2-l2a")
    assert ((cube.x.values - 5) % 10 == 0).all() and ((cube.y.values - 5) % 10 == 0).all()
    _check_values(cube, {it.id: it for it in pc_items})
    assert cube.rio.crs.to_epsg() == 32735
    whole = xcrop.load(pc_items[:1])  # no area: the items' own footprint
    assert whole.sizes["y"] == whole.sizes["x"] == 120
    assert float(whole.x[0]) == 499985.0 and float(whole.y[0]) == 9200015.0  # pixel centres
    assert whole.rio.transform().c == 499980.0 and whole.rio.transform().f == 9200020.0


def test_cube_carries_item_properties(stac_api, pc_items):
    cube = xcrop.search(PC_WINDOW, "2020-07-11", catalog=stac_api, collection="sentinel-2-l2a")
    assert cube.sizes["time"] == 1
    assert float(cube.cloud_cover[0]) == pytest.approx(26.800215)
    assert (
        str(cube.mgrs_tile.values[0]) == "35MNM" and str(cube.platform.values[0]) == "sentinel-2a"
    )
    assert float(cube.processing_baseline[0]) == pytest.approx(2.12)
    assert float(cube.boa_offset[0]) == 0.0
    assert np.isfinite(cube.sun_azimuth.values).all()


def test_outside_the_data_is_nan(stac_api):
    wider = (26.995, -7.252, 27.011, -7.237)  # extends west and south of the COG windows
    cube = xcrop.search(wider, "2020-06-06", catalog=stac_api, collection="sentinel-2-l2a")
    values = cube.sel(band="B04").isel(time=0).compute().values
    assert values.shape[0] > 120 and values.shape[1] > 120
    assert np.isfinite(values).sum() == 120 * 120  # exactly the COG window has data


def test_harmonisation_across_baseline_04(stac_api, pc_items, pc_items_pb4):
    """The same reflectance stored with and without the +1000 shift loads identically."""
    old = xcrop.load([pc_items[0]])
    new = xcrop.load([pc_items_pb4[0]])
    assert float(new.boa_offset[0]) == -0.1 and float(old.boa_offset[0]) == 0.0
    refl = ["B02", "B04", "B08", "B8A", "B11"]
    a = old.sel(band=refl).compute().values
    b = new.sel(band=refl).compute().values
    assert np.nanmax(np.abs(a - b)) < 1e-6
    raw = xcrop.load([pc_items_pb4[0]], harmonize="none").sel(band=refl).compute().values
    assert np.allclose(raw - b, 0.1, atol=1e-6)  # without the policy: 0.1 too bright
    both = xcrop.search(PC_WINDOW, "2020-07-31", catalog=stac_api, collection="sentinel-2-l2a")
    assert both.sizes["time"] == 2
    _check_values(both, {it.id: it for it in [*pc_items, *pc_items_pb4]})


def test_earth_search_layouts(stac_api, es_c1_item, es_l2a_item):
    c1 = xcrop.search(
        es_c1_item.bbox, "2025-07-31", catalog=stac_api, collection="sentinel-2-c1-l2a"
    )
    assert c1.rio.crs.to_epsg() == 32720 and float(c1.boa_offset[0]) == -0.1
    _check_values(c1, {es_c1_item.id: es_c1_item})
    l2a = xcrop.search(
        es_l2a_item.bbox, "2023-10-08", catalog=stac_api, collection="sentinel-2-l2a"
    )
    assert l2a.rio.crs.to_epsg() == 32613 and float(l2a.boa_offset[0]) == 0.0
    _check_values(l2a, {es_l2a_item.id: es_l2a_item})
    # trusting raster:bands on this item subtracts the offset a second time
    wrong = xcrop.search(
        es_l2a_item.bbox,
        "2023-10-08",
        catalog=stac_api,
        collection="sentinel-2-l2a",
        harmonize="raster",
    )
    wrong = wrong.sel(band="B04").compute()
    right = l2a.sel(band="B04").compute()
    diff = (right - wrong).values
    assert np.allclose(diff[np.isfinite(diff)], 0.1, atol=1e-6)


def test_named_catalog_uses_its_default_collection(stac_api, es_c1_item, monkeypatch):
    monkeypatch.setitem(CATALOGS, "earth-search", Catalog(stac_api, "sentinel-2-c1-l2a"))
    cube = xcrop.search(es_c1_item.bbox, "2025-07", catalog="earth-search")
    assert [str(c) for c in cube.collection.values] == ["sentinel-2-c1-l2a"]


@pytest.mark.parametrize("which", ["pc", "es_c1", "es_l2a"])
def test_stackstac_equals_odc(which, pc_items, pc_items_pb4, es_c1_item, es_l2a_item):
    items = {
        "pc": [*pc_items[:3], pc_items_pb4[0]],
        "es_c1": [es_c1_item],
        "es_l2a": [es_l2a_item],
    }[which]
    odc = xcrop.load(items, chunks=64)
    sst = xcrop.load(items, loader="stackstac", chunks=64)
    xr.testing.assert_identical(odc.compute(), sst.compute())
    assert np.isfinite(odc.values).all()


def test_stackstac_with_proj_code_only_items(es_l2a_item):
    """Newer Earth Search items carry proj:code and no proj:epsg: stackstac alone fails."""
    item = es_l2a_item.clone()
    item.properties.pop("proj:epsg", None)
    item.properties["proj:code"] = "EPSG:32613"
    cube = xcrop.load([item], loader="stackstac", bands=["B04", "SCL"])
    assert cube.rio.crs.to_epsg() == 32613
    assert np.isfinite(cube.compute().values).all()


def test_crs_and_resolution_arguments(pc_items):
    cube = xcrop.load(pc_items[:2], bands=["red", "nir"], resolution=20)
    assert list(cube.band.values) == ["B04", "B08"] and cube.sizes["x"] == 60
    utm36 = xcrop.load(pc_items[:1], bands=["B04"], crs=32736, resolution=10)
    assert utm36.rio.crs.to_epsg() == 32736
    assert np.isfinite(utm36.compute().values).mean() > 0.5


def test_cube_round_trips_through_zarr_with_its_crs(stac_api, tmp_path):
    cube = xcrop.search(
        PC_WINDOW,
        "2020-06-06",
        catalog=stac_api,
        collection="sentinel-2-l2a",
        bands=["B04", "B08", "SCL"],
    )
    cube.to_dataset(name="reflectance").to_zarr(tmp_path / "c.zarr", mode="w", consolidated=False)
    back = xr.open_zarr(tmp_path / "c.zarr", decode_coords="all", consolidated=False)
    back = back["reflectance"]
    assert back.rio.crs.to_epsg() == 32735
    xr.testing.assert_allclose(back.compute(), cube.compute())


def test_unknown_loader_is_explained(pc_items):
    with pytest.raises(xcrop.XcropError, match="'odc' or 'stackstac'"):
        xcrop.load(pc_items[:1], loader="gdal")


def test_search_by_polygon_through_the_api(stac_api, pc_items):
    from shapely.geometry import Polygon

    # a triangle inside the window's north-east half
    tri = Polygon([(27.004, -7.238), (27.010, -7.238), (27.010, -7.244)])
    cube = xcrop.search(tri, "2020-06-06", catalog=stac_api, collection="sentinel-2-l2a")
    assert cube.sizes["time"] == 1 and cube.sizes["x"] < 120
    far = Polygon([(28.0, -7.0), (28.1, -7.0), (28.1, -7.1)])
    with pytest.raises(xcrop.EmptySearchError):
        xcrop.search(far, "2020-06", catalog=stac_api, collection="sentinel-2-l2a")


def test_distributed_processes_give_the_threaded_result(pc_items):
    from dask.distributed import Client, LocalCluster

    cube = xcrop.load(pc_items[:3], bands=["B04", "B08", "SCL"], chunks=64)
    threaded = cube.mean(["y", "x"]).compute(scheduler="threads")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        distributed = cube.mean(["y", "x"]).compute()
    xr.testing.assert_identical(threaded, distributed)


def test_planetary_computer_signer_is_used_when_installed():
    import planetary_computer

    from xcrop._catalog import _signer

    assert _signer(CATALOGS["planetary-computer"]) is planetary_computer.sign_inplace
    assert _signer(CATALOGS["earth-search"]) is None


@pytest.mark.parametrize(("offset_m", "size_m"), [(0.5, 0.0), (0.3, 0.4), (5.0, 0.0), (5.0, 30.0)])
def test_the_grid_keeps_20m_pixels_whole_for_any_area(pc_items, offset_m, size_m):
    """The 10 m grid is a 20 m grid zoomed in: even an area of a point or under 1 m
    gives whole 20 m pixels (2 x 2 of 10 m), edges on multiples of 20 m. The hand-written
    snap gave an area within 1 m of a 20 m line a single 10 m pixel, half of a 20 m one
    (the cloud score pairs 10 m pixels by 2 x 2)."""
    from pyproj import Transformer

    whole = xcrop.load(pc_items[:1], bands=["B04"])
    x0, y0 = float(whole.x[0]) - 5, float(whole.y[0]) + 5
    x, y = x0 + 20 * 7 + offset_m, y0 - 20 * 9 - offset_m  # inside a 20 m pixel
    to_lonlat = Transformer.from_crs(whole.rio.crs, 4326, always_xy=True).transform
    corners = [to_lonlat(x + dx, y + dy) for dx, dy in [(0, 0), (size_m, 0), (size_m, size_m)]]
    lon, lat = zip(*corners, strict=True)
    area = (min(lon), min(lat), max(lon), max(lat))
    cube = xcrop.load(pc_items[:1], bands=["B04"], area=area)
    assert cube.sizes["x"] % 2 == 0 and cube.sizes["y"] % 2 == 0
    left, top = float(cube.x[0]) - 5, float(cube.y[0]) + 5
    assert left % 20 == 0 and top % 20 == 0
    # the area inside the grid, to the 1 m within which a corner counts as on a 20 m line
    assert left - 1 <= x <= left + 10 * cube.sizes["x"] + 1
    assert top - 10 * cube.sizes["y"] - 1 <= y <= top + 1
    if size_m < 1:
        assert (cube.sizes["y"], cube.sizes["x"]) == (2, 2)
