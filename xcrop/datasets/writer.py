"""Writing one simulated acquisition as a real source serves it: COGs and a STAC item.

Bands at their native resolution (10, 20, 60 m; 20 and 60 m are block means of the
10 m simulation), uint16 DN with nodata 0, the +1000 shift of processing baseline
>= 04.00 on acquisitions from 25 January 2022, SCL at 20 m. The item is in Earth Search
v1 layout (common-name asset keys, ``raster:bands`` scale/offset, ``view:sun_*``) or in
Planetary Computer layout (``B04``-style keys, no ``raster:bands``, ``s2:mean_solar_*``).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Executor
from pathlib import Path
from typing import Literal

import numpy as np
import pystac
from affine import Affine
from odc.geo import geom

from .._sentinel2 import L2A_BANDS
from .cogs import write_cog
from .regions import Region, mgrs_square

__all__ = ["Layout", "write_acquisition", "RESOLUTION", "ES_KEYS"]

Layout = Literal["earth-search", "planetary-computer"]
#: Native resolution (m) of each band.
RESOLUTION = {b: 10 if b in ("B02", "B03", "B04", "B08") else 20 for b in L2A_BANDS}
RESOLUTION.update(B01=60, B09=60, SCL=20)
#: Earth Search v1 asset keys.
ES_KEYS = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
    "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09",
    "B11": "swir16", "B12": "swir22", "SCL": "scl",
}  # fmt: skip
_BASELINE_04 = dt.datetime(2022, 1, 25, tzinfo=dt.timezone.utc)
_EXT = "https://stac-extensions.github.io/{}/schema.json"
_EXTENSIONS = {
    "earth-search": ["eo/v1.1.0", "projection/v1.1.0", "raster/v1.1.0", "view/v1.0.0",
                     "grid/v1.1.0", "mgrs/v1.0.0"],
    "planetary-computer": ["eo/v1.0.0", "projection/v1.0.0", "sat/v1.0.0"],
}  # fmt: skip


def block_mean(data: np.ndarray, k: int) -> np.ndarray:
    """Mean of k x k blocks (trailing rows/columns that fill no block are dropped);
    NaN where any pixel of the block is NaN (off-swath)."""
    n = data.shape[0] // k
    return data[: n * k, : n * k].reshape(n, k, n, k).mean(axis=(1, 3))


def _to_dn(refl: np.ndarray, shifted: bool) -> np.ndarray:
    dn = np.round(refl * 10000) + (1000 if shifted else 0)
    dn = np.clip(np.nan_to_num(dn, nan=0), 1, 65535)
    dn[np.isnan(refl)] = 0
    return dn.astype("uint16")


def _properties(
    region: Region,
    when: dt.datetime,
    layout: Layout,
    cover: float,
    sun: tuple[float, float],
    platform: str,
    nodata_pct: float,
) -> dict:
    tile = mgrs_square(region.zone, region.x0, region.y0, region.lat)
    baseline = "05.09" if when >= _BASELINE_04 else "02.14"
    props = {
        "platform": platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(cover, 4),
        "s2:processing_baseline": baseline,
        "s2:nodata_pixel_percentage": round(nodata_pct, 4),
        "xcrop:region": region.name,
    }
    if layout == "earth-search":
        props.update(
            {
                "proj:epsg": region.epsg,
                "grid:code": f"MGRS-{tile}",
                "mgrs:utm_zone": region.zone,
                "mgrs:latitude_band": tile[2],
                "mgrs:grid_square": tile[3:],
                "view:sun_azimuth": round(sun[0], 4),
                "view:sun_elevation": round(90 - sun[1], 4),
            }
        )
    else:
        props.update(
            {
                "proj:epsg": region.epsg,
                "s2:mgrs_tile": tile,
                "s2:mean_solar_azimuth": round(sun[0], 4),
                "s2:mean_solar_zenith": round(sun[1], 4),
                "platform": platform.replace("sentinel", "Sentinel")
                .replace("2a", "2A")
                .replace("2b", "2B"),
            }
        )
    return props


def write_acquisition(
    directory: Path,
    region: Region,
    when: dt.datetime,
    observed: np.ndarray,
    scl10: np.ndarray,
    *,
    cover: float,
    sun: tuple[float, float],
    platform: str,
    layout: Layout = "earth-search",
    pool: Executor | None = None,
) -> pystac.Item:
    """Write the COGs of one acquisition and return its STAC item (absolute hrefs).

    ``observed`` is reflectance ``(12, n, n)`` at 10 m in L2A_BANDS order, NaN off-swath;
    ``scl10`` the SCL codes at 10 m; ``pool`` writes the files in parallel.
    """
    n = observed.shape[1]
    tile = mgrs_square(region.zone, region.x0, region.y0, region.lat)
    letter = platform[-1].upper()
    item_id = f"S2{letter}_{tile}_{when:%Y%m%d}_0_L2A"
    if layout == "planetary-computer":
        item_id = f"S2{letter}_MSIL2A_{when:%Y%m%dT%H%M%S}_R000_T{tile}_{when:%Y%m%d}T000000"
    shifted = when >= _BASELINE_04
    crs = f"EPSG:{region.epsg}"
    folder = directory / item_id
    jobs = []
    for b, band in enumerate((*L2A_BANDS, "SCL")):
        res = RESOLUTION[band]
        k = res // 10
        if band == "SCL":
            data = scl10[::k, ::k].astype("uint8")
        else:
            refl = observed[b] if k == 1 else block_mean(observed[b], k)
            data = _to_dn(refl, shifted)
        key = ES_KEYS[band] if layout == "earth-search" else band
        transform = Affine(res, 0, region.x0, 0, -res, region.y0)
        jobs.append((band, key, res, data, transform))

    def write(job):
        return write_cog(folder / f"{job[1]}.tif", job[3], job[4], crs)

    paths = list(pool.map(write, jobs) if pool else map(write, jobs))
    nodata_pct = float(100 * np.isnan(observed[3]).mean())
    box = geom.box(region.x0, region.y0 - n * 10, region.x0 + n * 10, region.y0, crs)
    footprint = box.to_crs("EPSG:4326")
    item = pystac.Item(
        item_id,
        geometry=footprint.json,
        bbox=list(footprint.boundingbox),
        datetime=when,
        properties=_properties(region, when, layout, cover, sun, platform, nodata_pct),
        collection="sentinel-2-l2a",
        stac_extensions=[_EXT.format(e) for e in _EXTENSIONS[layout]],
    )
    for (band, key, res, data, transform), path in zip(jobs, paths, strict=True):
        fields = {
            "gsd": res,
            "proj:shape": list(data.shape),
            "proj:transform": list(transform)[:6],
            "proj:bbox": [region.x0, region.y0 - n * 10, region.x0 + n * 10, region.y0],
        }
        if band != "SCL":
            fields["eo:bands"] = [{"name": band}]
        if layout == "earth-search":
            raster = {"nodata": 0, "data_type": data.dtype.name, "spatial_resolution": res}
            if band != "SCL":
                raster.update(scale=0.0001, offset=-0.1 if shifted else 0.0)
            fields["raster:bands"] = [raster]
        roles = ["data"] if band == "SCL" else ["data", "reflectance"]
        item.add_asset(
            key,
            pystac.Asset(
                path.resolve().as_uri(),
                media_type=pystac.MediaType.COG,
                roles=roles,
                extra_fields=fields,
            ),
        )
    return item
