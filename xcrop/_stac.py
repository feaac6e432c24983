"""Loading STAC items into one lazy, canonical Sentinel-2 cube (time, band, y, x).

Both loaders read raw digital numbers on the same pixel grid, then xcrop applies one
harmonisation (``sentinel2.reflectance_scaling``) to both, so odc-stac and stackstac give
identical values on the same items. Each item is one time step (several MGRS tiles on
one day stay separate steps; compositing takes care of overlaps).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import dask.array
import numpy as np
import pandas as pd
import pystac
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from odc.geo import geom
from odc.geo.geobox import GeoBox
from shapely.geometry.base import BaseGeometry

from . import _catalog
from ._extras import missing_extra
from ._reads import (
    NODATA,
    CubeSource,
    OnError,
    ReadDriver,
    dn_to_reflectance,
    inside_mask,
    source_array,
)
from ._sentinel2 import (
    DEFAULT_BANDS,
    Harmonize,
    check_bands,
    item_coords,
    normalise_item,
    reflectance_scaling,
)
from .errors import CRSError, XcropError, XcropInputError

__all__ = ["load", "search", "Loader"]

Loader = Literal["odc", "stackstac"]


def _as_items(items: Iterable[pystac.Item | dict[str, Any]]) -> list[pystac.Item]:
    out = [it if isinstance(it, pystac.Item) else pystac.Item.from_dict(it) for it in items]
    if not out:
        raise XcropInputError(
            "No items to load; search returned nothing or an empty list was given."
        )
    return sorted(out, key=lambda it: (pd.Timestamp(it.datetime), it.id))


def _pick_crs(items: Sequence[pystac.Item], crs: Any) -> str:
    if crs is not None:
        return str(crs) if not isinstance(crs, int) else f"EPSG:{crs}"
    epsgs = Counter(it.properties.get("proj:epsg") for it in items)
    epsgs.pop(None, None)
    if not epsgs:
        raise CRSError(
            "The items carry no proj:epsg/proj:code, so xcrop cannot choose an output CRS; "
            "pass crs='EPSG:32631' (for example)."
        )
    return f"EPSG:{epsgs.most_common(1)[0][0]}"


def _geobox(
    items: Sequence[pystac.Item], shape: BaseGeometry | None, crs: str, resolution: float
) -> GeoBox:
    """The grid over ``shape`` (lon/lat), or over the items' footprints."""
    if shape is None:
        from shapely.geometry import shape as to_shape
        from shapely.ops import unary_union

        shape = unary_union([to_shape(it.geometry) for it in items if it.geometry])
    extent = geom.Geometry(shape, crs="EPSG:4326").to_crs(crs)
    bbox = extent.boundingbox
    metres = extent.crs is not None and extent.crs.units[0] in ("metre", "m")
    if metres and (20 / resolution).is_integer():
        # Sentinel-2 tile corners lie on multiples of 20 m: a 20 m grid (odc-geo snaps its
        # edges to multiples of the resolution) zoomed to ``resolution`` keeps every native
        # 20 m pixel whole in the cube (the cloud score pairs 10 m pixels by 2 x 2);
        # tol=1/20: corners within 1 m of a line are on it (lon/lat round trips move them)
        grid = GeoBox.from_bbox(bbox, crs=crs, resolution=20, tol=1 / 20)
        return grid.zoom_to(resolution=resolution)
    return GeoBox.from_bbox(bbox, crs=crs, resolution=resolution)


def _crs(gbox: GeoBox):
    """The grid's CRS (xcrop's grids always have one; odc-geo's may not)."""
    if gbox.crs is None:
        raise CRSError("The output grid has no CRS; pass crs='EPSG:32631' (for example).")
    return gbox.crs


def _read_odc(
    items: list[pystac.Item],
    bands: Sequence[str],
    gbox: GeoBox,
    chunks: int,
    scaling: np.ndarray,
    network: _catalog.Network | None,
    on_error: OnError,
    aoi: geom.Geometry | None = None,
) -> dask.array.Array:
    """The cube as a dask array of window reads through odc-loader's rasterio reader: a
    slice of it reads only its own pixels (see :class:`xcrop._reads.CubeSource`), none
    outside ``aoi`` (in the grid's CRS), which are NaN."""
    sources = {
        item.assets[band].href: (item.id, band)
        for item in items
        for band in bands
        if band in item.assets
    }
    driver = ReadDriver(sources, network=network, on_error=on_error)
    hrefs = [[it.assets[b].href if b in it.assets else None for b in bands] for it in items]
    footprints = [
        geom.Geometry(it.geometry, crs="EPSG:4326").to_crs(_crs(gbox)) if it.geometry else None
        for it in items
    ]
    if aoi is not None:  # nothing outside the area is read: footprints end at its edge
        footprints = [aoi if f is None else f & aoi for f in footprints]
    ids = [it.id for it in items]
    source = CubeSource(hrefs, footprints, scaling, gbox, driver, ids, bands, aoi=aoi)
    return source_array(source, chunks)


def _load_stackstac(items: list[pystac.Item], bands: Sequence[str], gbox: GeoBox, chunks: int):
    try:
        import stackstac
    except ImportError as err:
        raise missing_extra("loader='stackstac' (or use the default loader='odc')", err) from err
    bb = gbox.boundingbox
    da = stackstac.stack(
        items,
        assets=list(bands),
        epsg=_crs(gbox).epsg,
        resolution=abs(gbox.resolution.x),
        bounds=(bb.left, bb.bottom, bb.right, bb.top),
        snap_bounds=False,
        dtype=np.dtype("uint16"),
        fill_value=np.uint16(NODATA),
        rescale=False,
        sortby_date=False,
        xy_coords="center",
        properties=False,
        band_coords=False,
        chunksize=(1, 1, chunks, chunks),
    )
    return da.drop_vars([c for c in da.coords if c not in da.dims])


def load(
    items: Iterable[pystac.Item | dict[str, Any]],
    *,
    bands: Sequence[str] = DEFAULT_BANDS,
    area: _catalog.Area | None = None,
    loader: Loader = "odc",
    resolution: float = 10,
    crs: Any = None,
    chunks: int = 1024,
    harmonize: Harmonize = "auto",
    network: _catalog.Network | None = None,
    on_error: OnError = "raise",
) -> xr.DataArray:
    """Load Sentinel-2 L2A items into a lazy reflectance cube.

    Parameters
    ----------
    items
        STAC items (``pystac.Item`` or dicts), from any source and asset-key layout.
    bands
        Bands to load, canonical (``"B04"``) or Earth Search (``"red"``) names.
    area
        Lon/lat bbox, or a polygon (shapely, GeoJSON, a GeoDataFrame in any CRS) to clip
        to; default the union of the items' footprints. With a polygon the cube covers
        its bounding box, but nothing outside the polygon is read (the odc loader opens
        no file for a window outside it, and the composite makes no task for a chunk
        outside it) and its pixels are NaN in the cube and in everything made from it.
    loader
        ``"odc"`` (odc-stac, default) or ``"stackstac"`` (optional extra).
    resolution
        Pixel size in CRS units (metres for UTM).
    crs
        Output CRS; default the most common ``proj:epsg`` of the items.
    chunks
        Spatial chunk size in pixels; each chunk holds one time step and one band.
    harmonize
        Reflectance harmonisation policy, see :mod:`xcrop._sentinel2`.
    network
        GDAL's HTTP timeout and retries for remote COGs (see :class:`xcrop.Network`);
        they travel with the read tasks to dask.distributed workers.
    on_error
        A read that still fails after its retries (odc loader only) raises
        :class:`xcrop.ReadError` naming the file, the item and the band
        (``"raise"``, the default), or is left as nodata, logged and counted
        (``"nodata"``; see :func:`xcrop.read_failures`): the composite then takes
        another date there, and its counts show it.

    Returns
    -------
    xarray.DataArray
        ``float32`` (time, band, y, x), named ``reflectance``: reflectance 0..1 (SCL
        keeps its class codes), NaN where the source has no data. Time coordinates
        ``id``, ``collection``, ``platform``, ``mgrs_tile``, ``cloud_cover``,
        ``processing_baseline``, ``boa_offset``, ``sun_azimuth``, ``sun_zenith``; the CRS
        as rioxarray's ``spatial_ref``.

    Examples
    --------
    >>> cube = xcrop.load(items, bands=["B04", "B08", "SCL"])  # doctest: +SKIP
    >>> cube.sel(band="B08").isel(time=0).mean().compute()  # doctest: +SKIP
    """
    bands = check_bands(bands)
    originals = _as_items(items)
    normalised = [normalise_item(it, bands) for it in originals]
    out_crs = _pick_crs(normalised, crs)
    # the area's geometry once (a GeoDataFrame of a country is unioned and checked here)
    shape = _catalog._geometry(area) if area is not None else None
    gbox = _geobox(normalised, shape, out_crs, resolution)
    scaling = np.array(
        [[reflectance_scaling(it, b, harmonize) for b in bands] for it in normalised],
        dtype="float64",
    )
    aoi = None
    if shape is not None and not _catalog.is_box(shape):
        aoi = geom.Geometry(shape, crs="EPSG:4326").to_crs(out_crs)
    if loader == "odc":
        data = _read_odc(normalised, bands, gbox, chunks, scaling, network, on_error, aoi)
    elif loader == "stackstac":
        dn = _load_stackstac(normalised, bands, gbox, chunks).transpose("time", "band", "y", "x")
        if dn.sizes["time"] != len(normalised) or dn.shape[2:] != gbox.shape.yx:
            raise XcropError(
                f"The stackstac loader returned shape {dn.shape} for {len(normalised)} items "
                f"on a {gbox.shape.yx} grid; this is a bug, please report it with the items."
            )
        factors = scaling.astype("float32")[:, :, None, None, :]  # (time, band, 1, 1, 2)
        factors = dask.array.from_array(factors, chunks=(*dn.data.chunks[:2], 1, 1, 2))
        data = dask.array.map_blocks(
            dn_to_reflectance, dn.data, factors[..., 0], factors[..., 1], dtype="float32"
        )
        if aoi is not None:  # stackstac reads the whole bbox: pixels outside become NaN
            inside = dask.array.from_array(inside_mask(aoi, gbox), chunks=data.chunks[2:])
            data = dask.array.where(inside[None, None], data, np.float32(np.nan))
    else:
        raise XcropInputError(f"loader={loader!r} is not known; use 'odc' or 'stackstac'.")
    cube = xr.DataArray(data, dims=("time", "band", "y", "x"), name="reflectance")
    coords = pd.DataFrame([item_coords(it, harmonize) for it in originals])
    times = pd.DatetimeIndex([pd.Timestamp(it.datetime) for it in originals])
    times = times.tz_convert(None) if times.tz is not None else times
    cube = cube.assign_coords(
        {
            "time": times.values.astype("datetime64[ns]"),
            "band": np.array(bands, dtype=object),  # variable-length strings: Zarr v3 has a spec
            "y": gbox.coords["y"].values,
            "x": gbox.coords["x"].values,
            **{name: ("time", coords[name].to_numpy()) for name in coords.columns},
        }
    )
    cube.attrs = {"harmonize": harmonize if isinstance(harmonize, str) else "custom"}
    return cube.rio.write_crs(out_crs)


def search(
    area: _catalog.Area,
    datetime: _catalog.Datetime | None = None,
    *,
    catalog: str = "earth-search",
    collection: str | None = None,
    max_cloud: float | None = None,
    max_items: int | None = None,
    network: _catalog.Network | None = None,
    bands: Sequence[str] = DEFAULT_BANDS,
    loader: Loader = "odc",
    resolution: float = 10,
    crs: Any = None,
    chunks: int = 1024,
    harmonize: Harmonize = "auto",
    on_error: OnError = "raise",
) -> xr.DataArray:
    """Search a STAC source and load the result as a lazy Sentinel-2 cube over ``area``.

    The search arguments are those of :func:`xcrop.find_items`, the loading
    ones those of :func:`xcrop.load`; the cube is clipped to ``area``.

    Examples
    --------
    >>> cube = xcrop.search((1.0, 8.9, 1.1, 9.0), "2019-03-01/2020-03-31",
    ...                     catalog="earth-search", max_cloud=60)  # doctest: +SKIP
    >>> cube.dims  # doctest: +SKIP
    ('time', 'band', 'y', 'x')
    """
    items = _catalog.find_items(
        area,
        datetime,
        catalog=catalog,
        collection=collection,
        max_cloud=max_cloud,
        max_items=max_items,
        network=network,
    )
    return load(
        items,
        bands=bands,
        area=area,
        loader=loader,
        resolution=resolution,
        crs=crs,
        chunks=chunks,
        harmonize=harmonize,
        network=network,
        on_error=on_error,
    )
