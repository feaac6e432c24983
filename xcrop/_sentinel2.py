"""Sentinel-2 L2A facts: band names, asset-key aliases, reflectance harmonisation.

Everything here works on STAC items (``pystac.Item``) and plain numbers; nothing loads
pixels. ``stac.py`` uses it to turn items from any source into one canonical layout.

Harmonisation policy
--------------------
Sentinel-2 L2A digital numbers (DN) become surface reflectance as
``reflectance = DN * scale + offset`` with ``scale = 1e-4``. Since processing baseline
04.00 (25 January 2022, and every Collection-1 reprocessing) ESA shifts DNs by
``BOA_ADD_OFFSET = -1000``, so ``offset = -0.1``; before it, ``offset = 0``. Sources
disagree on how they say so, which is why xcrop decides per acquisition:

``"auto"`` (default)
    1. Earth Search ``sentinel-2-l2a`` items carry ``earthsearch:boa_offset_applied``:
       when it is true, Element 84 already subtracted the offset from the DNs, so the
       offset is 0 even though ``raster:bands`` still says -0.1 (trusting it would
       subtract twice); when it is false the baseline decides (rule 3).
    2. Otherwise, an asset's ``raster:bands`` ``scale``/``offset`` is used
       (Earth Search ``sentinel-2-c1-l2a``: consistent, -0.1 on every item).
    3. Otherwise ``s2:processing_baseline`` >= 04.00 gives -0.1, older gives 0
       (Planetary Computer items have no ``raster:bands``).
    4. With none of these, offset 0.
``"raster"``
    Trust ``raster:bands`` only (missing: scale 1e-4, offset 0).
``"baseline"``
    Trust ``s2:processing_baseline`` only (missing: offset 0).
``"none"``
    ``DN * 1e-4`` for every item.
a callable ``f(item) -> float``
    Your own offset per item (for example a list of items whose flag you know to be
    wrong: Earth Search's flag is known to be wrong on some 2022 and 2025 items).

The offset chosen for each acquisition is kept as the ``boa_offset`` time coordinate of
the cube, so a wrong guess can be seen and corrected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import pystac

from .errors import MissingBandError, XcropInputError

__all__ = [
    "L2A_BANDS",
    "DEFAULT_BANDS",
    "REFLECTANCE_BANDS",
    "QUALITY_BANDS",
    "ASSET_ALIASES",
    "Harmonize",
    "canonical_band",
    "asset_keys",
    "normalise_item",
    "reflectance_scaling",
    "item_coords",
]

#: The L2A bands in wavelength order (L2A has no B10).
L2A_BANDS: tuple[str, ...] = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B11",
    "B12",
)
#: The bands of Kerner et al. (2020): every L2A band but B01, in this order.
REFLECTANCE_BANDS: tuple[str, ...] = L2A_BANDS[1:]
#: Non-reflectance bands xcrop knows: the scene classification map.
QUALITY_BANDS: tuple[str, ...] = ("SCL",)
#: What ``xcrop.search`` loads by default: the method's bands, B01 for the cloud score,
#: and SCL.
DEFAULT_BANDS: tuple[str, ...] = L2A_BANDS + QUALITY_BANDS

#: Asset keys and ``eo:bands`` names of other sources, mapped to canonical names.
#: Earth Search v1 uses common names; Planetary Computer uses the canonical ones.
ASSET_ALIASES: dict[str, str] = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
    "B8a": "B8A",
}

_KNOWN = set(L2A_BANDS) | set(QUALITY_BANDS) | {"B10"}
_DN_SCALE = 1e-4
_PB4_OFFSET = -0.1

Harmonize = Literal["auto", "raster", "baseline", "none"] | Callable[[pystac.Item], float]


def canonical_band(name: str) -> str | None:
    """The canonical Sentinel-2 name of a band or asset key, or None if unknown.

    Examples
    --------
    >>> canonical_band("red"), canonical_band("B04"), canonical_band("b8a"), canonical_band("B2")
    ('B04', 'B04', 'B8A', 'B02')
    """
    if name in _KNOWN:
        return name
    if name in ASSET_ALIASES:
        return ASSET_ALIASES[name]
    if len(name) == 2 and name[0] in "bB" and name[1].isdigit():  # Earth Engine's B2
        name = f"B0{name[1]}"
    upper = name.upper()
    if upper in _KNOWN:
        return upper
    return ASSET_ALIASES.get(name.lower())


def asset_keys(item: pystac.Item) -> dict[str, str]:
    """Map canonical band names to this item's asset keys.

    An asset counts when its key, or the name in its ``eo:bands``, is a known band.
    Duplicates in other formats (Earth Search's ``*-jp2`` twins) are ignored in favour
    of the GeoTIFF/COG.

    Examples
    --------
    >>> import pystac, datetime
    >>> item = pystac.Item("x", None, None, datetime.datetime(2020, 1, 1), {})
    >>> item.add_asset("red", pystac.Asset("red.tif", media_type="image/tiff"))
    >>> asset_keys(item)
    {'B04': 'red'}
    """
    found: dict[str, str] = {}
    for key, asset in item.assets.items():
        if key.endswith("-jp2") or (asset.media_type or "").startswith("image/jp2"):
            continue
        band = canonical_band(key)
        if band is None:
            eo = asset.extra_fields.get("eo:bands") or []
            if len(eo) == 1 and isinstance(eo[0], dict) and eo[0].get("name"):
                band = canonical_band(str(eo[0]["name"]))
        if band is not None and band not in found:
            found[band] = key
    return found


def _epsg(item: pystac.Item, asset: pystac.Asset | None = None) -> int | None:
    for fields in ((asset.extra_fields if asset else {}), item.properties):
        if fields.get("proj:epsg") is not None:
            return int(fields["proj:epsg"])
        code = fields.get("proj:code")
        if isinstance(code, str) and code.upper().startswith("EPSG:"):
            return int(code.split(":", 1)[1])
    return None


def normalise_item(item: pystac.Item, bands: Sequence[str] = DEFAULT_BANDS) -> pystac.Item:
    """A copy of ``item`` whose assets are exactly ``bands``, keyed by canonical names.

    Also writes ``proj:epsg`` where the item only has ``proj:code`` (Earth Search v1 in
    its newer items; stackstac cannot pick a CRS without it), and turns local file
    paths into ``file://`` URIs.

    Raises
    ------
    MissingBandError
        If the item has no asset for one of ``bands``.

    Examples
    --------
    >>> item = pystac.Item.from_file("tests/data/es-item.json")  # doctest: +SKIP
    >>> sorted(normalise_item(item, ["B04", "SCL"]).assets)  # doctest: +SKIP
    ['B04', 'SCL']
    """
    keys = asset_keys(item)
    missing = [b for b in bands if b not in keys]
    if missing:
        raise MissingBandError(
            f"STAC item {item.id!r} has no asset for band(s) {missing}; its assets are "
            f"{sorted(item.assets)}. Ask for bands it has (bands=...), or map the asset "
            f"keys to Sentinel-2 names in xcrop.ASSET_ALIASES (a dict, e.g. {{'red': 'B04'}})."
        )
    out = item.clone()
    out.assets = {}
    epsg = _epsg(item)
    if epsg is not None and "proj:epsg" not in out.properties:
        out.properties["proj:epsg"] = epsg
    for band in bands:
        # Asset.clone: deepcopy would copy its owner (the whole item) with every asset
        asset = item.assets[keys[band]].clone()
        asset.href = _uri(asset.href, asset)
        asset_epsg = _epsg(item, asset)
        if asset_epsg is not None and "proj:code" in asset.extra_fields:
            asset.extra_fields.setdefault("proj:epsg", asset_epsg)
        asset.owner = out
        out.assets[band] = asset
    return out


def _uri(href: str, asset: pystac.Asset) -> str:
    """A URI GDAL and odc-stac both read: local paths become ``file://`` URIs."""
    from pathlib import Path

    if "://" in href or href.startswith("/vsi"):
        return href
    if Path(href).is_absolute():  # never resolve a local path against an API's URL
        return Path(href).as_uri()
    absolute = asset.get_absolute_href() or href
    return absolute if "://" in absolute else Path(absolute).resolve().as_uri()


def _baseline(item: pystac.Item) -> float | None:
    value = item.properties.get("s2:processing_baseline")
    if value is None:
        value = item.properties.get("sentinel:processing_baseline")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _raster_band(asset: pystac.Asset | None) -> dict[str, Any]:
    if asset is None:
        return {}
    bands = asset.extra_fields.get("raster:bands") or []
    return bands[0] if bands and isinstance(bands[0], dict) else {}


def _baseline_offset(item: pystac.Item) -> float:
    baseline = _baseline(item)
    return _PB4_OFFSET if baseline is not None and baseline >= 4.0 else 0.0


def reflectance_scaling(
    item: pystac.Item, band: str, harmonize: Harmonize = "auto"
) -> tuple[float, float]:
    """``(scale, offset)`` turning this item's DNs of ``band`` into reflectance.

    Non-reflectance bands (SCL) get ``(1.0, 0.0)``. See the module docstring for the
    policies.

    Examples
    --------
    >>> import datetime
    >>> item = pystac.Item("x", None, None, datetime.datetime(2022, 6, 1),
    ...                    {"s2:processing_baseline": "04.00"})
    >>> reflectance_scaling(item, "B04")
    (0.0001, -0.1)
    >>> reflectance_scaling(item, "B04", "none")
    (0.0001, 0.0)
    """
    if band in QUALITY_BANDS:
        return 1.0, 0.0
    asset = item.assets.get(band) or item.assets.get(asset_keys(item).get(band, ""))
    raster = _raster_band(asset)
    scale = float(raster.get("scale", _DN_SCALE))
    if callable(harmonize):
        return _DN_SCALE, float(harmonize(item))
    if harmonize == "none":
        return _DN_SCALE, 0.0
    if harmonize == "baseline":
        return _DN_SCALE, _baseline_offset(item)
    if harmonize == "raster":
        return scale, float(raster.get("offset", 0.0))
    if harmonize != "auto":
        raise XcropInputError(
            f"harmonize={harmonize!r} is not a policy; use 'auto', 'raster', 'baseline', "
            "'none', or a function item -> offset."
        )
    applied = item.properties.get("earthsearch:boa_offset_applied")
    if applied is not None:
        return _DN_SCALE, 0.0 if applied else _baseline_offset(item)
    if "offset" in raster:
        return scale, float(raster["offset"])
    return _DN_SCALE, _baseline_offset(item)


def _mgrs(props: dict[str, Any]) -> str:
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"])
    code = props.get("grid:code")
    if isinstance(code, str) and code.startswith("MGRS-"):
        return code[5:]
    zone, band, square = (props.get(k) for k in ("mgrs:utm_zone", "mgrs:latitude_band",
                                                  "mgrs:grid_square"))  # fmt: skip
    if zone is not None and band is not None and square is not None:
        return f"{int(zone):02d}{band}{square}"
    return ""


def item_coords(item: pystac.Item, harmonize: Harmonize = "auto") -> dict[str, Any]:
    """Per-acquisition facts that become time coordinates of the cube.

    Keys: ``id``, ``collection``, ``platform``, ``mgrs_tile``, ``cloud_cover`` (%),
    ``processing_baseline``, ``boa_offset`` (the reflectance offset applied, from the
    harmonisation policy), ``sun_azimuth`` and ``sun_zenith`` (degrees; from
    ``s2:mean_solar_*`` on Planetary Computer or ``view:sun_*`` on Earth Search).
    """
    p = item.properties
    zenith = p.get("s2:mean_solar_zenith")
    if zenith is None and p.get("view:sun_elevation") is not None:
        zenith = 90.0 - float(p["view:sun_elevation"])
    azimuth = p.get("s2:mean_solar_azimuth", p.get("view:sun_azimuth"))
    baseline = _baseline(item)
    band = "B04" if "B04" in asset_keys(item) else next(iter(asset_keys(item)), "B04")
    return {
        "id": item.id,
        "collection": item.collection_id or "",
        "platform": str(p.get("platform", "")).lower(),
        "mgrs_tile": _mgrs(p),
        "cloud_cover": float(p.get("eo:cloud_cover", float("nan"))),
        "processing_baseline": float("nan") if baseline is None else baseline,
        "boa_offset": reflectance_scaling(item, band, harmonize)[1],
        "sun_azimuth": float("nan") if azimuth is None else float(azimuth),
        "sun_zenith": float("nan") if zenith is None else float(zenith),
    }


def check_bands(bands: Iterable[str]) -> tuple[str, ...]:
    """Canonical names for ``bands``, or an error naming the unknown ones."""
    out: list[str] = []
    unknown: list[str] = []
    for b in bands:
        c = canonical_band(b)
        (out if c else unknown).append(c or b)
    if unknown:
        raise MissingBandError(
            f"Unknown Sentinel-2 band(s) {unknown}; use names like {list(DEFAULT_BANDS)} "
            f"or Earth Search keys like {sorted(ASSET_ALIASES)[:6]}..."
        )
    return tuple(out)
