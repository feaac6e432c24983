"""Local Sentinel-2 archives written exactly as a STAC source serves them.

``write_cog`` writes one band; ``localise_item`` turns a real STAC item (any layout) into
one whose assets are small local COGs on the item's own grid (same ``proj:transform``, a
window of it), with pixel values from a function you give: tests use it to serve real
metadata with data that can be read offline.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from odc.geo import geom

from .._sentinel2 import asset_keys

__all__ = ["write_cog", "localise_item", "safe_name", "PixelFunction"]

#: Names kept as they are: letters, digits, ``.``, ``_``, ``-``, not starting with a dot.
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,150}")

#: ``f(item, band, rows, cols) -> uint array``: DN of ``band`` at the given pixel indices
#: (2-D, of the asset's own grid).
PixelFunction = Callable[[pystac.Item, str, np.ndarray, np.ndarray], np.ndarray]


def write_cog(
    path: str | Path, data: np.ndarray, transform: Affine, crs: str, nodata: float | None = 0
) -> Path:
    """Write a single-band Cloud Optimized GeoTIFF (deflate + predictor, 256/512 px tiles).

    Examples
    --------
    >>> write_cog("b04.tif", np.ones((10, 10), "uint16"),
    ...           Affine(10, 0, 600000, 0, -10, 1000000), "EPSG:32631")  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 2,  # horizontal differencing: smaller files, as in real S2 COGs
        "level": 1,  # fast deflate: nearly as small, a third quicker to write
        "blocksize": 512 if max(data.shape) > 512 else 256,  # small files: small tiles
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def safe_name(name: str) -> str:
    """``name`` as one file or folder name that stays where it is put.

    Names of letters, digits, ``.``, ``_`` and ``-`` (not starting with a dot, at most
    151 characters: every real Sentinel-2 item id and asset key) are kept. Any other name
    (path separators, ``..``, spaces, ``:``, control characters, a leading dot, empty)
    becomes its safe characters followed by ``-`` and 12 hex digits of its SHA-256, so
    two different names never map to one.

    Examples
    --------
    >>> safe_name("S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531")
    'S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531'
    >>> safe_name("../../x")
    'x-9cdf6a50100a'
    """
    name = str(name)
    if SAFE_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:100]
    return f"{stem}-{digest}" if stem else digest


def localise_item(
    item: pystac.Item,
    directory: str | Path,
    pixels: PixelFunction,
    *,
    size_m: float = 1200.0,
    bands: tuple[str, ...] | None = None,
) -> pystac.Item:
    """A copy of ``item`` whose band assets are local COGs of a ``size_m`` window.

    The window starts at the top-left corner of each asset's ``proj:transform``, so the
    pixel grid is the real one; ``proj:shape``, ``proj:bbox`` and the item geometry are
    updated to the window. Asset keys, ``raster:bands`` and properties are kept, so the
    result has the source's layout (Earth Search or Planetary Computer). Assets that are
    not bands (metadata, thumbnails, ``*-jp2`` twins) are dropped. Files go to
    ``directory / safe_name(item.id) / f"{safe_name(key)}.tif"``: an id such as
    ``../../x`` cannot write outside ``directory``.

    Examples
    --------
    >>> def pixels(item, band, rows, cols):
    ...     return (1000 + rows + cols).astype("uint16")
    >>> local = localise_item(item, "cogs/", pixels)  # doctest: +SKIP
    """
    directory = Path(directory)
    keys = asset_keys(item)
    wanted = set(bands) if bands else set(keys)
    out = item.clone()
    out.assets = {}
    epsg = item.properties.get("proj:epsg") or int(str(item.properties["proj:code"]).split(":")[1])
    crs = f"EPSG:{epsg}"
    footprint = None
    for band, key in keys.items():
        if band not in wanted:
            continue
        asset = item.assets[key].clone()
        t = asset.extra_fields["proj:transform"]
        transform = Affine(*t[:6])
        n = round(size_m / abs(transform.a))
        rows, cols = np.mgrid[0:n, 0:n]
        data = np.asarray(pixels(item, band, rows, cols))
        dtype = "uint8" if band == "SCL" else "uint16"
        target = directory / safe_name(item.id) / f"{safe_name(key)}.tif"
        path = write_cog(target, data.astype(dtype), transform, crs)
        asset.href = path.resolve().as_uri()
        asset.media_type = pystac.MediaType.COG
        asset.extra_fields["proj:shape"] = [n, n]
        left, top = transform.c, transform.f
        bbox = [left, top - n * abs(transform.e), left + n * transform.a, top]
        asset.extra_fields["proj:bbox"] = bbox
        footprint = bbox
        out.add_asset(key, asset)
    if footprint is not None:
        left, bottom, right, top = footprint
        poly = geom.box(left, bottom, right, top, crs=crs).to_crs("EPSG:4326")
        out.geometry = poly.json
        out.bbox = list(poly.boundingbox)
    out.clear_links()
    return out
