"""Local Sentinel-2 archives written exactly as a STAC source serves them.

For now: ``localise_item`` turns a real STAC item (any layout) into one whose assets are
small local COGs on the item's own grid (same ``proj:transform``, a window of it), with
pixel values from a function you give. Tests, examples and the simulated archive use it
to serve real metadata with data that can be read offline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from odc.geo import geom

from .sentinel2 import asset_keys

__all__ = ["write_cog", "localise_item", "PixelFunction"]

#: ``f(item, band, rows, cols) -> uint array``: DN of ``band`` at the given pixel indices
#: (2-D, of the asset's own grid).
PixelFunction = Callable[[pystac.Item, str, np.ndarray, np.ndarray], np.ndarray]


def write_cog(
    path: str | Path, data: np.ndarray, transform: Affine, crs: str, nodata: float | None = 0
) -> Path:
    """Write a single-band Cloud Optimized GeoTIFF (deflate, 256 px tiles).

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
        "blocksize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


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
    not bands (metadata, thumbnails, ``*-jp2`` twins) are dropped.

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
        path = write_cog(directory / item.id / f"{key}.tif", data.astype(dtype), transform, crs)
        asset.href = path.resolve().as_uri()
        asset.media_type = pystac.MediaType.COG
        asset.extra_fields["proj:shape"] = [n, n]
        left, top = transform.c, transform.f
        bbox = [left, top - n * abs(transform.e), left + n * transform.a, top]
        asset.extra_fields["proj:bbox"] = bbox
        footprint = bbox
        out.add_asset(key, asset)
    if footprint is not None:
        poly = geom.box(*footprint, crs=crs).to_crs("EPSG:4326")
        out.geometry = poly.json
        out.bbox = list(poly.boundingbox)
    out.clear_links()
    return out


#: Earth Search v1 asset keys of the L2A bands and their resolutions (metres).
_ES_ASSETS = {
    "coastal": ("B01", 60),
    "blue": ("B02", 10),
    "green": ("B03", 10),
    "red": ("B04", 10),
    "rededge1": ("B05", 20),
    "rededge2": ("B06", 20),
    "rededge3": ("B07", 20),
    "nir": ("B08", 10),
    "nir08": ("B8A", 20),
    "nir09": ("B09", 60),
    "swir16": ("B11", 20),
    "swir22": ("B12", 20),
    "scl": ("SCL", 20),
}
# soil and green-vegetation reflectance per band (B01..B12 without B10)
_EXT = "https://stac-extensions.github.io/{}/v{}/schema.json"
_EXTENSIONS = [("projection", "2.0.0"), ("raster", "1.1.0"), ("view", "1.0.0"), ("grid", "1.1.0")]
_L2A = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
_SOIL = dict(
    zip(_L2A, (0.06, 0.08, 0.11, 0.15, 0.18, 0.2, 0.22, 0.24, 0.25, 0.25, 0.32, 0.26), strict=True)
)
_LEAF = dict(
    zip(_L2A, (0.03, 0.04, 0.08, 0.04, 0.12, 0.3, 0.38, 0.42, 0.44, 0.44, 0.22, 0.1), strict=True)
)


def tiny_archive(directory: str | Path, *, seed: int = 0, dates: int = 6, size: int = 64) -> Path:
    """Write a tiny Sentinel-2 L2A archive in Earth Search v1 layout; return items.json.

    Near Sokodé, Togo (EPSG:32631): ``dates`` acquisitions 30 days apart from
    2019-03-05, ``size`` x ``size`` pixels at 10 m, fields of crops whose greenness
    rises and falls through the season beside constant savanna, DNs stored with the
    baseline-04.00 shift (``raster:bands`` offset -0.1). Deterministic for a ``seed``.
    The full simulated archive of the demo will replace it.

    Examples
    --------
    >>> path = tiny_archive("/tmp/tiny")  # doctest: +SKIP
    >>> cube = xcrop.search((1.1, 8.9, 1.2, 9.1), catalog=str(path))  # doctest: +SKIP
    """
    import datetime as dt
    import json

    directory = Path(directory)
    rng = np.random.default_rng(seed)
    x0, y0 = 294000.0, 993000.0  # near Sokodé; a corner on the 60 m grid of every band
    n = size
    field = rng.random((n // 8 + 1, n // 8 + 1)) < 0.5
    crop = np.kron(field, np.ones((8, 8), bool))[:n, :n]
    items = []
    for k in range(dates):
        when = dt.datetime(2019, 3, 5, 10, 20, tzinfo=dt.timezone.utc) + dt.timedelta(days=30 * k)
        green = np.where(crop, np.sin(np.pi * k / max(dates - 1, 1)), 0.35)
        item = pystac.Item(
            f"S2A_31PBJ_{when:%Y%m%d}_0_L2A",
            geometry=None,
            bbox=None,
            datetime=when,
            properties={
                "platform": "sentinel-2a",
                "eo:cloud_cover": float(rng.uniform(0, 40)),
                "proj:code": "EPSG:32631",
                "grid:code": "MGRS-31PBJ",
                "s2:processing_baseline": "05.10",
                "view:sun_azimuth": 110.0,
                "view:sun_elevation": 60.0,
            },
            collection="sentinel-2-c1-l2a",
            stac_extensions=[_EXT.format(*e) for e in _EXTENSIONS],
        )
        for key, (band, res) in _ES_ASSETS.items():
            item.add_asset(
                key,
                pystac.Asset(
                    "placeholder",
                    media_type=pystac.MediaType.COG,
                    roles=["data"],
                    extra_fields={
                        "proj:transform": [res, 0, x0, 0, -res, y0],
                        "raster:bands": [
                            {"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}
                        ]
                        if band != "SCL"
                        else [{"nodata": 0}],
                    },
                ),
            )

        def pixels(item, band, rows, cols, green=green):
            if band == "SCL":
                return np.full(rows.shape, 4)
            scale = n // rows.shape[0]
            g = green[rows * scale, cols * scale]
            refl = (1 - g) * _SOIL[band] + g * _LEAF[band]
            refl = refl + rng.normal(0, 0.003, refl.shape)
            return np.clip(np.round(refl * 10000) + 1000, 1, 65535)

        items.append(localise_item(item, directory / "cogs", pixels, size_m=n * 10.0))
    path = directory / "items.json"
    path.write_text(json.dumps(pystac.ItemCollection(items).to_dict(), indent=1))
    return path
