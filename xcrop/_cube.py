"""Validating and standardising cubes made anywhere into xcrop's (time, band, y, x) form.

Accepts what users already have: xcrop's own cubes, stackstac DataArrays (band
coordinate, raw DN or rescaled), odc-stac Datasets (one variable per band), with Earth
Search or Planetary Computer band names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from ._sentinel2 import QUALITY_BANDS, canonical_band
from .errors import CRSError, CubeError, MissingBandError

__all__ = ["as_cube", "require_bands", "cube_crs", "composite_parts", "composite_data"]

_DIMS = ("time", "band", "y", "x")
_RENAME = {"latitude": "y", "longitude": "x", "lat": "y", "lon": "x", "bands": "band"}


def cube_crs(obj: xr.DataArray | xr.Dataset):
    """The CRS of a cube (``rasterio.crs.CRS``), or None.

    Looks where rioxarray and odc-geo write it (``spatial_ref``), then at stackstac's
    ``crs`` attribute and ``epsg`` coordinate.
    """
    crs = obj.rio.crs
    if crs is None and isinstance(obj.attrs.get("crs"), str):
        from rasterio.crs import CRS

        crs = CRS.from_user_input(obj.attrs["crs"])
    if crs is None and "epsg" in obj.coords and obj.coords["epsg"].size >= 1:
        from rasterio.crs import CRS

        crs = CRS.from_epsg(int(np.ravel(obj.coords["epsg"].values)[0]))
    return crs


def as_cube(obj: xr.DataArray | xr.Dataset) -> xr.DataArray:
    """Standardise a Sentinel-2 cube to dims (time, band, y, x) with canonical band names.

    Parameters
    ----------
    obj
        A DataArray with a ``band`` dimension, or a Dataset with one variable per band.

    Returns
    -------
    xarray.DataArray
        The same data (still lazy), transposed, bands renamed (``red`` -> ``B04``), the
        CRS written as ``spatial_ref``. Integer cubes are raw DN and are refused: load
        them with ``xcrop.load`` or ``stackstac.stack(rescale=True)``.

    Raises
    ------
    CubeError, CRSError

    Examples
    --------
    >>> cube = as_cube(stackstac.stack(items, assets=["red", "nir"]))  # doctest: +SKIP
    >>> list(cube.band.values)  # doctest: +SKIP
    ['B04', 'B08']
    """
    if isinstance(obj, xr.Dataset):
        names = {v: canonical_band(str(v)) for v in obj.data_vars}
        names = {v: c for v, c in names.items() if c is not None}
        if not names:
            raise CubeError(
                f"The Dataset has no Sentinel-2 band variables (it has {list(obj.data_vars)}); "
                "name them B02..B12/SCL or red/nir/scl..."
            )
        crs = cube_crs(obj)
        da = obj[list(names)].rename(names).to_dataarray("band")
    elif isinstance(obj, xr.DataArray):
        da, crs = obj, cube_crs(obj)
    else:
        raise CubeError(f"Expected an xarray DataArray or Dataset, got {type(obj).__name__}.")
    da = da.rename({k: v for k, v in _RENAME.items() if k in da.dims})
    missing = [d for d in _DIMS if d not in da.dims]
    extra = [d for d in da.dims if d not in _DIMS]
    if missing or extra:
        raise CubeError(
            f"A cube needs dims {_DIMS}; this one has {da.dims} (missing {missing}, "
            f"unexpected {extra}). Rename or stack dimensions, e.g. "
            "ds.to_dataarray('band') for a Dataset of bands."
        )
    if np.issubdtype(da.dtype, np.integer):
        raise CubeError(
            "This cube holds raw digital numbers (integer dtype). Load reflectance instead: "
            "xcrop.load(items) or stackstac.stack(..., rescale=True)."
        )
    labels = [str(b) for b in da["band"].values] if "band" in da.coords else []
    canon = [canonical_band(b) for b in labels]
    unknown = [b for b, c in zip(labels, canon, strict=True) if c is None]
    if not labels or unknown:
        raise CubeError(
            f"Band labels {unknown or 'missing'} are not Sentinel-2 band names; label the "
            "band coordinate with B02..B12/SCL or red/nir/scl..."
        )
    if crs is None:
        raise CRSError(
            "The cube has no CRS. Set it with cube.rio.write_crs('EPSG:32631') (rioxarray) "
            "or cube.odc.assign_crs(...) (odc-geo)."
        )
    da = da.transpose(*_DIMS).assign_coords(band=canon)
    drop = [c for c in ("epsg", "spatial_ref") if c in da.coords]
    return da.drop_vars(drop).rio.write_crs(crs)


def require_bands(cube: xr.DataArray, bands: Sequence[str]) -> None:
    """Raise ``MissingBandError`` naming every band of ``bands`` the cube lacks.

    Examples
    --------
    >>> require_bands(cube, ["B04", "B08"])  # doctest: +SKIP
    """
    have = {str(b) for b in cube["band"].values}
    missing = [b for b in bands if b not in have]
    if missing:
        hint = " (SCL is only needed for score='scl')" if set(missing) <= set(QUALITY_BANDS) else ""
        raise MissingBandError(
            f"The cube lacks band(s) {missing} needed here{hint}; it has {sorted(have)}. "
            f"Load them, e.g. xcrop.search(..., bands={list(bands)})."
        )


def composite_parts(composite: Any) -> tuple[Any, xr.DataArray | None]:
    """A composite's data and its counts of usable observations, for the stages after
    compositing.

    A ``Composite`` (anything whose ``data`` is a DataArray: the stages take it by what it
    holds, so they need not import the compositing module) gives its ``data`` and
    ``counts``; anything else (a composite DataArray from a Zarr store or an Earth Engine
    export) is the data as it is, without counts.

    Examples
    --------
    >>> data = xr.DataArray(np.zeros((1, 1, 1, 1)), dims=("time", "band", "y", "x"))
    >>> composite_parts(data)[0] is data, composite_parts(data)[1]
    (True, None)
    """
    data = getattr(composite, "data", None)
    if not isinstance(composite, (xr.DataArray, xr.Dataset)) and isinstance(data, xr.DataArray):
        return data, getattr(composite, "counts", None)
    return composite, None


def composite_data(composite: Any) -> Any:
    """The composite DataArray of a ``Composite``; anything else as it is (see
    :func:`composite_parts`)."""
    return composite_parts(composite)[0]
