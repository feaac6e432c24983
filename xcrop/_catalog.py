"""Finding Sentinel-2 items: named STAC APIs, any STAC API URL, or a static catalog.

This module only finds items (``pystac.ItemCollection``); ``stac.py`` loads them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import pystac
import shapely
import shapely.geometry
import shapely.validation

from ._network import Network, redact
from .errors import (
    CatalogUnreachableError,
    EmptySearchError,
    UnknownCatalogError,
    XcropInputError,
)

__all__ = ["Catalog", "CATALOGS", "find_items", "Area", "Datetime"]

#: A lon/lat bounding box ``(west, south, east, north)``, a shapely geometry in
#: EPSG:4326, a GeoJSON geometry, Feature or FeatureCollection, or a GeoDataFrame or
#: GeoSeries in any CRS (its union).
Area: TypeAlias = Sequence[float] | shapely.geometry.base.BaseGeometry | Mapping[str, Any] | Any
#: ``"2019-03-01/2020-03-31"``, ``"2020"``, ``"2020-06"``, an open range ``"../2020-06-30"``,
#: a ``datetime``/``date``, or a ``(start, end)`` pair of them (``None`` for open).
Datetime: TypeAlias = str | dt.date | Sequence[str | dt.date | None]


@dataclass(frozen=True)
class Catalog:
    """A named STAC API that xcrop knows.

    Attributes
    ----------
    url
        The STAC API root.
    collection
        The Sentinel-2 L2A collection searched when none is given.
    signer
        Dotted name of a function ``f(item) -> item`` that signs asset hrefs, with the
        extra that provides it, or None.
    """

    url: str
    collection: str
    signer: tuple[str, str] | None = None


#: The STAC APIs known by name.
CATALOGS: dict[str, Catalog] = {
    "earth-search": Catalog("https://earth-search.aws.element84.com/v1", "sentinel-2-c1-l2a"),
    "planetary-computer": Catalog(
        "https://planetarycomputer.microsoft.com/api/stac/v1",
        "sentinel-2-l2a",
        signer=("planetary_computer.sign_inplace", "planetary-computer"),
    ),
}


def _geometry(area: Area) -> shapely.geometry.base.BaseGeometry:
    """The area as a lon/lat shapely geometry: a bbox, a shapely geometry, GeoJSON (a
    geometry, Feature or FeatureCollection), or a GeoDataFrame/GeoSeries in any CRS."""
    shape = _shape(area)
    if shape is not None:
        if shape.is_empty or not shape.is_valid or shape.area == 0:
            problem = (
                "is empty" if shape.is_empty else "has no area" if shape.is_valid else
                f"is not a valid geometry ({shapely.validation.explain_validity(shape)})"
            )  # fmt: skip
            raise XcropInputError(
                f"The area {problem}; give a polygon (or a bbox) in lon/lat "
                "(shapely's make_valid repairs self-intersections)."
            )
        return shape
    try:
        box = [float(v) for v in area]
    except (TypeError, ValueError):
        box = []
    if len(box) != 4:
        problem = "is not four numbers"
    elif not all(math.isfinite(v) for v in box):
        problem = "has a value that is not a finite number (NaN or inf)"
    elif not all(-180 <= v <= 180 for v in box[::2]):
        problem = "has a longitude outside -180..180"
    elif not all(-90 <= v <= 90 for v in box[1::2]):
        problem = "has a latitude outside -90..90"
    elif box[0] > box[2] or box[1] > box[3]:
        problem = "has west > east or south > north"
    else:
        return shapely.geometry.box(*box)
    raise XcropInputError(
        f"bbox {tuple(area) if isinstance(area, Sequence) else area!r} {problem}; give "
        "(west, south, east, north) in degrees (lon/lat), west <= east, south <= north."
    )


def geometry(area: Area) -> shapely.geometry.base.BaseGeometry:
    """An area of interest as a lon/lat shapely geometry: a bbox, a shapely geometry,
    GeoJSON (a geometry, Feature or FeatureCollection), or a GeoDataFrame/GeoSeries in
    any CRS; an empty or invalid one is refused in one line.

    Examples
    --------
    >>> geometry((1.0, 8.9, 1.2, 9.1)).bounds
    (1.0, 8.9, 1.2, 9.1)
    """
    return _geometry(area)


def _shape(area: Area) -> shapely.geometry.base.BaseGeometry | None:
    """A geometry given as one (shapely, GeoJSON, geopandas), or None for a bbox."""
    if isinstance(area, shapely.geometry.base.BaseGeometry):
        return area
    if hasattr(area, "to_crs") and hasattr(area, "geometry"):  # GeoDataFrame / GeoSeries
        if getattr(area, "crs", None) is None:
            raise XcropInputError(
                "The area's GeoDataFrame has no CRS; set it (area.set_crs(4326) for lon/lat)."
            )
        return area.to_crs(4326).geometry.union_all()
    if isinstance(area, Mapping):
        if area.get("type") == "FeatureCollection":
            return shapely.union_all(
                [shapely.geometry.shape(f["geometry"]) for f in area.get("features", [])]
            )
        if area.get("type") == "Feature":
            return shapely.geometry.shape(area["geometry"])
        return shapely.geometry.shape(area)
    return None


def is_box(shape: shapely.geometry.base.BaseGeometry) -> bool:
    """Whether an area's geometry (from :func:`_geometry`) is its own bounding box."""
    return shape.equals(shapely.geometry.box(*shape.bounds))


def _parse_instant(value: str | dt.date | None, end: bool) -> dt.datetime | None:
    if value is None or value in ("", ".."):
        return None
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day)
        if end:
            stamp += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    else:
        text = str(value).strip()
        m = re.fullmatch(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", text)
        if m:
            y, mo, d = int(m[1]), int(m[2] or 1), int(m[3] or 1)
            try:
                stamp = dt.datetime(y, mo, d)
            except ValueError as err:
                raise XcropInputError(
                    f"The date {text!r} does not exist ({err}); give a real date as "
                    "YYYY-MM-DD, YYYY-MM or YYYY."
                ) from err
            if end:
                if m[3]:
                    stamp += dt.timedelta(days=1)
                elif m[2]:
                    stamp = dt.datetime(y + (mo == 12), mo % 12 + 1, 1)
                else:
                    stamp = dt.datetime(y + 1, 1, 1)
                stamp -= dt.timedelta(microseconds=1)
        else:
            try:
                stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as err:
                raise XcropInputError(
                    f"Cannot read the date {text!r}; use ISO 8601 such as "
                    "'2019-03-01/2020-03-31', '2020-06' or '2020'."
                ) from err
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp


def time_range(datetime: Datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The closed UTC interval a ``datetime`` argument covers (None for an open end).

    Examples
    --------
    >>> start, end = time_range("2020-06")
    >>> start.isoformat(), end.isoformat()
    ('2020-06-01T00:00:00+00:00', '2020-06-30T23:59:59.999999+00:00')
    """
    if datetime is None:
        return None, None
    parts: list[str | dt.date | None]
    if isinstance(datetime, str):
        parts = list(datetime.split("/"))
        if len(parts) == 1:
            parts = [parts[0], parts[0]]
    elif isinstance(datetime, dt.date):
        parts = [datetime, datetime]
    else:
        parts = list(datetime)
    if len(parts) != 2:
        raise XcropInputError(f"datetime {datetime!r} must be one instant or a start/end pair.")
    start, end = _parse_instant(parts[0], end=False), _parse_instant(parts[1], end=True)
    if start is not None and end is not None and start > end:
        raise XcropInputError(
            f"datetime {datetime!r} ends before it starts; give START/END with START first."
        )
    return start, end


def _interval(datetime: Datetime | None) -> str | None:
    start, end = time_range(datetime)
    if start is None and end is None:
        return None
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return "/".join(
        ".." if t is None else t.astimezone(dt.timezone.utc).strftime(fmt) for t in (start, end)
    )


def _is_static(catalog: str) -> bool:
    if "://" not in catalog or catalog.startswith("file://"):
        return True
    return catalog.lower().endswith((".json", ".geojson"))


def _signer(catalog: Catalog) -> Callable[[Any], Any] | None:
    if catalog.signer is None:
        return None
    dotted, extra = catalog.signer
    module, name = dotted.rsplit(".", 1)
    try:
        return getattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        warnings.warn(
            f"Items from {catalog.url} need signed hrefs to be read; install the "
            f"'{extra}' extra (pip install '.[{extra}]' in xcrop's clone) to sign them.",
            stacklevel=3,
        )
        return None


def _cloud_ok(item: pystac.Item, max_cloud: float | None) -> bool:
    if max_cloud is None:
        return True
    cover = item.properties.get("eo:cloud_cover")
    return cover is None or float(cover) <= max_cloud


def _parse_static(
    source: str, href: str, network: Network | None = None
) -> tuple[list[pystac.Item], list[str]]:
    """Read and parse a static catalog, collection, ItemCollection or item (no cache).

    Returns the items and the local files read besides ``href`` (a catalog's children).
    """
    io = (network or Network()).stac_io() if "://" in href else None
    try:
        if io is not None:
            data = io.read_json(href)
        else:
            data = json.loads(Path(href).read_text())
    except Exception as err:
        raise CatalogUnreachableError(
            f"Could not read the static catalog {redact(source)!r}: {redact(_first_line(err))}"
        ) from err
    if data.get("type") == "FeatureCollection":
        collection = pystac.ItemCollection.from_dict(data, preserve_dict=False)
        root = Path(href).resolve().parent if "://" not in href else None
        items = list(collection)
        if root is not None:
            for item in items:
                for asset in item.assets.values():
                    if "://" not in asset.href and not Path(asset.href).is_absolute():
                        asset.href = str(root / asset.href)
        return items, []
    if data.get("type") == "Feature":
        return [pystac.Item.from_file(href, stac_io=io)], []
    container = pystac.read_file(href, stac_io=io)
    if not isinstance(container, pystac.Catalog):  # a Collection is a Catalog
        raise XcropInputError(
            f"{redact(source)!r} is not a catalog, collection, ItemCollection or item."
        )
    container.make_all_asset_hrefs_absolute()
    items = list(container.get_items(recursive=True))
    files = [c.self_href for c, _, _ in container.walk()] + [it.get_self_href() for it in items]
    return items, [p for f in files if (p := _local_path(f))]


@dataclass(frozen=True)
class _Static:
    """A parsed static source, with what the search filters on computed once."""

    items: tuple[pystac.Item, ...]
    shapes: tuple[shapely.geometry.base.BaseGeometry | None, ...]
    times: tuple[dt.datetime | None, ...]
    files: tuple[tuple[str, int, int], ...]  # (path, mtime_ns, size) of every file read

    @classmethod
    def of(cls, items: list[pystac.Item], files: list[str]) -> _Static:
        times = []
        for item in items:
            when = item.datetime or item.common_metadata.start_datetime
            if when is not None and when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            times.append(when)
        shapes = [shapely.geometry.shape(it.geometry) if it.geometry else None for it in items]
        return cls(tuple(items), tuple(shapes), tuple(times), _stats(files))

    def fresh(self) -> bool:
        try:
            return _stats([path for path, _, _ in self.files]) == self.files
        except OSError:
            return False


def _stats(paths: list[str]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in paths:
        st = os.stat(path)
        out.append((path, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _local_path(href: str | None) -> str | None:
    if not href:
        return None
    if href.startswith("file://"):
        href = href[7:]
    return None if "://" in href else str(Path(href).resolve())


#: Parsed local static sources, most recently used last; keyed on (path, mtime, size) and
#: checked against the stats of every file they were read from (a catalog's children too).
_STATIC_CACHE: OrderedDict[tuple[str, int, int], _Static] = OrderedDict()
_STATIC_CACHE_SIZE = 8
_STATIC_LOCK = threading.Lock()


def _read_static(source: str, network: Network | None = None) -> _Static:
    """A static source, parsed once per version of its files (local files are cached)."""
    href = source[7:] if source.startswith("file://") else source
    if "://" not in href and not Path(href).exists():
        raise UnknownCatalogError(
            f"No catalog at {source!r}: not a known name ({sorted(CATALOGS)}), not a URL, "
            "and no such file. Give one of the names, a STAC API URL, or the path of a "
            "catalog.json, collection.json or ItemCollection."
        )
    if "://" in href:  # remote: no cheap way to tell a change, read it every time
        return _Static.of(_parse_static(source, href, network)[0], [])
    key = _stats([str(Path(href).resolve())])[0]
    # one lock for reading too: dask threads searching the same file wait for one parse
    with _STATIC_LOCK:
        hit = _STATIC_CACHE.get(key)
        if hit is not None and hit.fresh():
            _STATIC_CACHE.move_to_end(key)
            return hit
        items, others = _parse_static(source, href)
        entry = _Static.of(items, sorted({key[0], *others}))
        _STATIC_CACHE[key] = entry
        _STATIC_CACHE.move_to_end(key)
        while len(_STATIC_CACHE) > _STATIC_CACHE_SIZE:
            _STATIC_CACHE.popitem(last=False)
        return entry


def _search_static(
    source: str,
    geometry: shapely.geometry.base.BaseGeometry,
    datetime: Datetime | None,
    collection: str | None,
    max_cloud: float | None,
    network: Network | None = None,
) -> list[pystac.Item]:
    start, end = time_range(datetime)
    static = _read_static(source, network)
    found = []
    for item, shape, when in zip(static.items, static.shapes, static.times, strict=True):
        if collection and item.collection_id and item.collection_id != collection:
            continue
        if shape is not None and not shape.intersects(geometry):
            continue
        if when is not None and ((start and when < start) or (end and when > end)):
            continue
        if _cloud_ok(item, max_cloud):
            found.append(item.clone())  # the cached items stay as read
    return found


def _tries(network: Network) -> str:
    if not network.retries:
        return f"1 try, timeout {network.timeout:g} s"
    waits = ", ".join(f"{w:g}" for w in network.waits())
    return (
        f"{network.retries + 1} tries, timeout {network.timeout:g} s each, waits {waits} s "
        "between them"
    )


def _search_api(
    url: str,
    geometry: shapely.geometry.base.BaseGeometry,
    datetime: Datetime | None,
    collection: str,
    max_cloud: float | None,
    modifier: Callable[[Any], Any] | None,
    max_items: int | None,
    network: Network,
) -> list[pystac.Item]:
    import pystac_client
    from pystac_client.conformance import ConformanceClasses

    try:
        client = pystac_client.Client.open(
            url, modifier=modifier, stac_io=network.stac_io(), timeout=network.timeout
        )
    except Exception as err:
        raise CatalogUnreachableError(
            f"Could not open the STAC API at {url} ({_tries(network)}): "
            f"{redact(_first_line(err))}. Check the URL and your network connection, "
            "or search a static catalog (a path to catalog.json) instead."
        ) from err
    kwargs: dict[str, Any] = {
        "collections": [collection],
        "datetime": _interval(datetime),
        "max_items": max_items,
    }
    if geometry.equals(shapely.geometry.box(*geometry.bounds)):
        kwargs["bbox"] = list(geometry.bounds)
    else:
        kwargs["intersects"] = shapely.geometry.mapping(geometry)
    if max_cloud is not None and client.conforms_to(ConformanceClasses.QUERY):
        kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
    try:
        items = list(client.search(**kwargs).items())
    except Exception as err:
        raise CatalogUnreachableError(
            f"The STAC API at {url} failed to answer the search for collection "
            f"{collection!r} ({_tries(network)}): {redact(_first_line(err))}. Try again "
            "later, or give more time with network=xcrop.Network(timeout=..., retries=...)."
        ) from err
    return [item for item in items if _cloud_ok(item, max_cloud)]


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]


def find_items(
    area: Area,
    datetime: Datetime | None = None,
    *,
    catalog: str = "earth-search",
    collection: str | None = None,
    max_cloud: float | None = None,
    max_items: int | None = None,
    network: Network | None = None,
) -> pystac.ItemCollection:
    """Find Sentinel-2 L2A items over ``area`` and ``datetime``.

    Parameters
    ----------
    area
        Lon/lat bbox ``(west, south, east, north)``, or a geometry in EPSG:4326.
    datetime
        Time range, e.g. ``"2019-03-01/2020-03-31"``; inclusive.
    catalog
        ``"earth-search"``, ``"planetary-computer"``, any STAC API URL, or the path/URL
        of a static catalog, collection or ItemCollection (searched in-process).
    collection
        The collection id; defaults to the named catalog's Sentinel-2 L2A collection
        (``sentinel-2-c1-l2a`` on Earth Search). Static catalogs are not filtered
        unless it is given.
    max_cloud
        Keep items with ``eo:cloud_cover`` <= this (percent).
    max_items
        Stop after this many items (APIs only).
    network
        Timeouts and retries of the requests (default :class:`xcrop.Network()`: 30 s,
        5 retries with exponential backoff and jitter).

    Returns
    -------
    pystac.ItemCollection
        Sorted by datetime then id.

    Raises
    ------
    UnknownCatalogError, XcropInputError (a malformed area or date), CatalogUnreachableError,
    EmptySearchError

    Examples
    --------
    >>> bbox = (1.0, 8.9, 1.1, 9.0)  # lon/lat, near Sokodé, Togo
    >>> items = find_items(bbox, "2020-06", catalog="earth-search")  # doctest: +SKIP
    """
    geometry = _geometry(area)
    time_range(datetime)  # dates checked before any request
    network = network or Network()
    if catalog in CATALOGS:
        known = CATALOGS[catalog]
        collection = collection or known.collection
        items = _search_api(
            known.url, geometry, datetime, collection, max_cloud, _signer(known), max_items,
            network,
        )  # fmt: skip
    elif _is_static(catalog):
        items = _search_static(catalog, geometry, datetime, collection, max_cloud, network)
    elif "://" in catalog:
        items = _search_api(
            catalog, geometry, datetime, collection or "sentinel-2-l2a", max_cloud, None, max_items,
            network,
        )  # fmt: skip
    else:
        raise UnknownCatalogError(f"Unknown catalog {catalog!r}; known names: {sorted(CATALOGS)}.")
    if not items:
        raise EmptySearchError(
            f"No Sentinel-2 item found in {catalog!r} (collection {collection!r}) for "
            f"area {tuple(round(v, 5) for v in geometry.bounds)} (lon/lat), datetime "
            f"{datetime!r}, max_cloud={max_cloud}. Widen the dates or the area, raise "
            "max_cloud, or check the collection name."
        )
    items.sort(
        key=lambda it: (it.datetime or dt.datetime.min.replace(tzinfo=dt.timezone.utc), it.id)
    )
    return pystac.ItemCollection(items, clone_items=False)
