"""Monthly stacks exported from Google Earth Engine, as xcrop composites.

Users of the paper's original pipeline hold their data as one GeoTIFF per patch: 12
monthly composites x named bands (``VV, VH, B1 .. B12, temperature_2m, ...``, the month
as a ``_1`` .. ``_11`` suffix), then static bands (``elevation``, ``slope``).
``read_gee_export`` turns such a file into a composite DataArray (time, band, y, x) with
Sentinel-2 names and reflectance 0..1 plus NDVI, which ``.cropmask.sample`` and
prediction accept like any composite.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import rioxarray
import xarray as xr

from ._sentinel2 import REFLECTANCE_BANDS, canonical_band
from .errors import MissingBandError, XcropInputError

__all__ = ["read_gee_export"]


def _month_and_name(description: str) -> tuple[int, str]:
    m = re.fullmatch(r"(.+?)(?:_(\d+))?", description)
    assert m is not None
    return int(m[2] or 0), m[1]


def read_gee_export(
    path: str | Path,
    *,
    start: str | None = None,
    bands: tuple[str, ...] = REFLECTANCE_BANDS,
    scale: float = 1e-4,
) -> xr.DataArray:
    """A GEE monthly export as a composite DataArray (time, band, y, x) + NDVI.

    Parameters
    ----------
    path
        The GeoTIFF; band descriptions name the bands (``B2``, ``B2_1``, ...).
    start
        First month's date; default from a ``YYYY-MM-DD`` in the file name (the export's
        start, as in ``98-togo_2019-02-06_2020-02-01.tif``).
    bands
        Sentinel-2 bands to keep (canonical names; ``B2`` in the file is ``B02``).
    scale
        DN to reflectance (GEE's Sentinel-2 collections store reflectance x 10000).

    Examples
    --------
    >>> comp = read_gee_export("98-togo_2019-02-06_2020-02-01.tif")  # doctest: +SKIP
    >>> comp.sizes["time"], list(comp.band.values)[-1]  # doctest: +SKIP
    (12, 'NDVI')
    """
    raster = rioxarray.open_rasterio(path)
    if not isinstance(raster, xr.DataArray):  # a file of several subdatasets (HDF, netCDF)
        raise XcropInputError(f"{path} holds several rasters; give a GeoTIFF.")
    descriptions = raster.attrs.get("long_name")
    if not isinstance(descriptions, (tuple, list)) or len(descriptions) != raster.sizes["band"]:
        raise XcropInputError(
            f"{path}: the bands have no descriptions to tell months and bands apart."
        )
    layers: dict[tuple[int, str], int] = {}
    for index, description in enumerate(descriptions):
        month, name = _month_and_name(str(description))
        band = canonical_band(name)
        if band in bands:
            layers[(month, band)] = index
    months = sorted({m for m, _ in layers})
    missing = [b for b in bands if any((m, b) not in layers for m in months)]
    if not months or missing:
        raise MissingBandError(f"{path}: no monthly layers for band(s) {missing or list(bands)}.")
    data = np.stack(
        [np.stack([raster.values[layers[(m, b)]] for b in bands]) for m in months]
    ).astype("float32") * np.float32(scale)
    red, nir = data[:, list(bands).index("B04")], data[:, list(bands).index("B08")]
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
    data = np.concatenate([data, ndvi[:, None]], axis=1)
    if start is None:
        found = re.search(r"(\d{4}-\d{2}-\d{2})", Path(path).name)
        if not found:
            raise XcropInputError(f"{path}: pass start='YYYY-MM-DD', the first month's date.")
        start = found[1]
    times = pd.date_range(start, periods=len(months), freq="30D").values
    out = xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords={
            "time": times,
            "band": np.array([*bands, "NDVI"], dtype=object),
            "y": raster.y.values,
            "x": raster.x.values,
        },
        name="composite",
    )
    return out.rio.write_crs(raster.rio.crs)
