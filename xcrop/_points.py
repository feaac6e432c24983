"""Sampling labelled points spread over many places and years, reading only windows.

Global labels are sparse: loading a datacube around each of thousands of points is the
data-transfer bottleneck the paper complained about. ``sample_points`` joins points that
lie close together (and share a season) into windows: chains of points closer than
``group_size`` share one, so no two windows read the same imagery, however the points
are laid out. Each window is searched once, loaded lazily around its points (window
reads: only the pixels asked for), composited as ``composite()`` does and sampled by
point indexing, so dask computes only the composite's chunks that hold points. Windows
are computed a few at a time with whatever dask scheduler is active (threads, or a
``dask.distributed`` cluster), each saved as it finishes when there is a checkpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd

from ._catalog import find_items, time_range
from ._cloudscore import SCORE_BANDS
from ._composite import composite
from ._io import active_client, default_in_flight
from ._network import Network, redact
from ._reads import ReadError
from ._sample import Samples, check_columns, pick_points
from ._sentinel2 import DEFAULT_BANDS, REFLECTANCE_BANDS
from ._stac import load
from .errors import EmptySearchError, XcropInputError

__all__ = ["sample_points"]

_EARTH_M = 6_371_000.0
MAX_WINDOW_M = 51_200.0
"""A window wider or taller than this (metres) is cut on a grid of this size: it keeps
each window's graph small (a 1024 px chunk is 10.24 km) at the cost of reading the
tiles on the cuts twice."""
CHUNKS = 1024
"""Chunk size (px) of a window's cube: as ``xcrop.search``'s default."""


_M_PER_DEGREE = 111_320.0  # of latitude, and of longitude at the equator


def _lon_shrink(lat):
    """How much shorter a degree of longitude is than one of latitude at ``lat``
    (degrees), floored near the poles."""
    return np.maximum(np.cos(np.radians(lat)), 0.05)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """A label per node of an undirected graph given by its edges ``pairs`` (m, 2)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs), bool), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _chains(lonlat: gpd.GeoDataFrame, link_m: float) -> np.ndarray:
    """A label per point: points closer than ``link_m`` metres, and chains of them,
    share a label (single linkage on the sphere)."""
    from scipy.spatial import cKDTree

    lon = np.radians(lonlat.geometry.x.to_numpy())
    lat = np.radians(lonlat.geometry.y.to_numpy())
    xyz = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    pairs = cKDTree(xyz * _EARTH_M).query_pairs(link_m, output_type="ndarray")
    return _components(len(xyz), pairs)


def _cells(lonlat: gpd.GeoDataFrame, cell_m: float) -> np.ndarray:
    """A key per point: the ~``cell_m`` square of a lon/lat grid it falls in."""
    dy = cell_m / _M_PER_DEGREE
    dx = dy / _lon_shrink(lonlat.geometry.y.to_numpy())
    gx = np.floor(lonlat.geometry.x.to_numpy() / dx).astype("int64")
    gy = np.floor(lonlat.geometry.y.to_numpy() / dy).astype("int64")
    return np.array([f"{a}_{b}" for a, b in zip(gx, gy, strict=True)], dtype=object)


def _extent_m(group: gpd.GeoDataFrame) -> float:
    west, south, east, north = group.total_bounds
    width = (east - west) * _M_PER_DEGREE * _lon_shrink(max(abs(south), abs(north)))
    return max(width, (north - south) * _M_PER_DEGREE)


def _windows(lonlat: gpd.GeoDataFrame, link_m: float, margin_m: float, max_m: float) -> pd.Series:
    """A window key per point: chains of points closer than ``link_m``, joined again
    while their windows (bounds + ``margin_m``) overlap, then cut on a ``max_m`` grid
    where a window is wider than that."""
    import shapely

    labels = pd.Series(_chains(lonlat, link_m), index=lonlat.index)
    while True:  # windows that overlap are one window (their union can overlap another)
        groups = list(lonlat.groupby(labels))
        boxes = shapely.box(*np.array([_window(g, margin_m) for _, g in groups]).T)
        pairs = shapely.STRtree(boxes).query(boxes, predicate="intersects").T
        pairs = pairs[pairs[:, 0] < pairs[:, 1]]
        if not len(pairs):
            break
        merged = _components(len(groups), pairs)
        labels = labels.map(dict(zip([k for k, _ in groups], merged, strict=True)))
    keys = labels.astype(str)
    for label, group in lonlat.groupby(labels):
        if _extent_m(group) > max_m:
            keys[group.index] = f"{label}_" + pd.Series(_cells(group, max_m), index=group.index)
    return keys


def _season(year) -> tuple[str, str]:
    year = int(year)
    return f"{year}-03-01", f"{year}-03-01/{year + 1}-03-31"


def _window(group: gpd.GeoDataFrame, margin_m: float) -> tuple[float, float, float, float]:
    """The group's lon/lat bounds widened by ``margin_m`` metres."""
    west, south, east, north = group.total_bounds
    dy = margin_m / _M_PER_DEGREE
    dx = dy / _lon_shrink(max(abs(south), abs(north)))
    return (west - dx, south - dy, east + dx, north + dy)


@dataclass
class _Window:
    group: gpd.GeoDataFrame
    when: str | None
    start: str | None
    area: tuple[float, float, float, float]
    saved: Path | None

    def chunks(self) -> int:
        """About how many of its chunks hold points (to size a batch)."""
        side = _extent_m(self.group) / (CHUNKS * 10.0)
        return max(1, int(np.ceil(side))) ** 2


def _search(window: _Window, search: dict):
    """The window's items, None when there are none, or the error (kept, so that the
    windows found before it still finish)."""
    try:
        return find_items(window.area, window.when, **search)
    except EmptySearchError:
        return None  # counted as "no imagery found" (searched again on a resume)
    except Exception as err:  # raised once the windows found before it are saved
        return err


def _batches(windows: list[_Window], todo: list[int], target: int, most: int = 64):
    """The indices ``todo`` of ``windows`` in consecutive batches of about ``target``
    chunks (at most ``most`` windows)."""
    batch, size = [], 0
    for i in todo:
        batch.append(i)
        size += windows[i].chunks()
        if size >= target or len(batch) >= most:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _compute(picks: list, retries: int) -> list:
    """The picks computed together, tried again after 0.5, 1, 2 ... s when a read fails."""
    for attempt in range(retries + 1):
        try:
            return list(dask.compute(*[p.arrays() for p in picks]))
        except OSError as err:  # rasterio's read errors; xcrop's ReadError is one too
            if attempt == retries:
                raise ReadError(f"Reading failed {retries + 1} times: {redact(str(err))}") from err
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _fingerprint(group: gpd.GeoDataFrame) -> tuple:
    """What a group's result depends on, in plain values (tokenised the same in every run)."""
    columns = group.drop(columns=group.geometry.name)
    return (
        [str(i) for i in group.index],
        list(columns.columns),
        columns.astype(str).to_numpy().tolist(),
        group.geometry.to_wkb().tolist(),
    )


def _checkpoint_folder(checkpoint: str | os.PathLike | None) -> Path | None:
    if checkpoint is None:
        return None
    folder = Path(checkpoint)
    if not folder.parent.is_dir():
        raise XcropInputError(
            f"checkpoint={str(folder)!r}: its folder {folder.parent} does not exist; "
            "create it first or give another checkpoint folder."
        )
    if folder.exists() and not folder.is_dir():
        raise XcropInputError(f"checkpoint={str(folder)!r} is a file; give a folder.")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as err:
        raise XcropInputError(
            f"checkpoint={str(folder)!r}: cannot create it ({err.strerror}); give another folder."
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise XcropInputError(
            f"checkpoint={str(folder)!r}: permission denied; give another folder."
        )
    return folder


def sample_points(
    points: gpd.GeoDataFrame,
    datetime: str | None = None,
    *,
    catalog: str = "earth-search",
    collection: str | None = None,
    max_cloud: float | None = None,
    year: str | None = None,
    window: int = 32,
    group_size: float = 2000.0,
    bands: Sequence[str] = REFLECTANCE_BANDS,
    score: str = "schmitt",
    scl: bool = True,
    max_cloud_height: float = 3000.0,
    local: bool | None = False,
    group: str | None = None,
    retries: int = 2,
    network: Network | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> Samples:
    """Composite series at labelled points, reading only windows around them.

    Parameters
    ----------
    points
        Labelled points (any CRS) with ``id`` and ``label`` columns.
    datetime
        The search range for every point (e.g. ``"2019-03-01/2020-03-31"``); or give
        ``year``: a column with each point's year, whose season runs from 1 March.
    catalog, collection, max_cloud
        As for :func:`xcrop.search`.
    window
        Pixels (10 m) loaded around the points of a group on each side. Shadows cast by
        clouds outside the window are not seen by the Schmitt score: make it larger than
        ``max_cloud_height * tan(zenith) / 10`` to match :func:`composite` exactly.
    group_size
        Points closer than this (metres), and chains of such points, share one window:
        its imagery is searched and read once for all of them (a window wider than
        50 km is cut in 51.2 km squares). The default joins points whose 32 px margins
        nearly touch; larger values read fewer windows but composite the ground
        between the points of a window's chunks too.
    local
        Mark the samples as local (True) or global (False, the default).
    group
        A column naming each point's field or place, kept as ``Samples.groups`` (see
        :func:`xcrop.sample`).
    retries
        Tries again (after 0.5, 1, 2 ... s) windows whose reads failed.
    network
        Timeouts and retries of the STAC searches and of the reads (see
        :class:`xcrop.Network`).
    checkpoint
        A folder (created if missing; its parent must exist) where each finished window
        is saved as it finishes. A run that stops (a server that dies midway, a killed
        process) keeps them, and the same call again reads them instead of the imagery:
        only the unfinished windows are searched and read. The file names are tokens of
        each window's points and settings, so other points or settings never reuse them.

    Returns
    -------
    Samples
        Like ``Composite.sample``, window by window; ``report`` adds the number of
        ``windows`` and the points without imagery.

    Examples
    --------
    >>> crowd = xcrop.crowd_vote(table)  # doctest: +SKIP
    >>> samples = xcrop.sample_points(crowd, year="year", catalog="earth-search")  # doctest: +SKIP
    """
    if datetime is None and year is None:
        raise XcropInputError("Give datetime='YYYY-MM-DD/YYYY-MM-DD' or year='<column of years>'.")
    if group_size <= 0 or window < 0:
        raise XcropInputError(
            f"group_size={group_size} and window={window}: give group_size > 0 (metres) "
            "and window >= 0 (pixels)."
        )
    if datetime is not None:
        time_range(datetime)  # reversed or malformed dates: one clear line, before any search
    if year is not None and year not in points.columns:
        raise XcropInputError(
            f"year={year!r}: the points have no such column; give the column of years "
            f"(one of {[c for c in points.columns if c != points.geometry.name]}) or datetime=."
        )
    if not {"label", "id"} <= set(points.columns):
        raise XcropInputError(
            f"points need a 'label' (0/1) and an 'id' column; they have {list(points.columns)}: "
            "rename yours, or make them with xcrop.read_labels(points, label=..., id=...)."
        )
    check_columns(points, group=group)
    if len(points) == 0:
        raise XcropInputError("points is empty: give at least one labelled point.")
    if points.crs is None:
        raise XcropInputError(
            "points have no CRS; set the one their coordinates are in, e.g. "
            "points.set_crs(4326) for longitude/latitude."
        )
    lonlat = points.to_crs(4326)
    finite = np.isfinite(lonlat.geometry.x.to_numpy()) & np.isfinite(lonlat.geometry.y.to_numpy())
    invalid, lonlat = int((~finite).sum()), lonlat[finite]
    seasons = (
        lonlat[year].astype(int).astype(str)
        if year is not None
        else pd.Series("", index=lonlat.index)
    )
    search = {"catalog": catalog, "collection": collection, "max_cloud": max_cloud,
              "network": network}  # fmt: skip
    source = {k: v for k, v in search.items() if k != "network"}  # timeouts change nothing
    folder = _checkpoint_folder(checkpoint)
    wanted = set(bands) | {"B04", "B08"} | (set(SCORE_BANDS) if score == "schmitt" else set())
    if scl or score == "scl":
        wanted.add("SCL")
    load_bands = [b for b in DEFAULT_BANDS if b in wanted]
    options: dict[str, Any] = {
        "bands": list(bands),
        "score": score,
        "scl": scl,
        "max_cloud_height": max_cloud_height,
    }
    windows: list[_Window] = []
    for season, points_of_season in lonlat.groupby(seasons, sort=True):
        keys = _windows(points_of_season, group_size, window * 10.0, MAX_WINDOW_M)
        for _, near in points_of_season.groupby(keys, sort=True):
            start, when = _season(season) if year is not None else (None, datetime)
            area = _window(near, window * 10.0)
            # a token of everything the window's result depends on: two calls (other
            # catalogs, dates, labels) never share a checkpoint file
            groups = () if group is None else (group, near[group].to_numpy())
            token = dask.base.tokenize(
                _fingerprint(near), when, start, area, load_bands, options, source, CHUNKS,
                *groups,
            )  # fmt: skip
            saved = folder / f"window-{token}.npz" if folder is not None else None
            windows.append(_Window(near, when, start, area, saved))
    windows.sort(key=lambda w: (w.when, w.area[1], w.area[0]))  # neighbours together
    results: dict[int, Samples | None] = {}
    todo = []
    for i, w in enumerate(windows):
        if w.saved is not None and w.saved.exists():
            results[i] = Samples.load(w.saved)  # finished by an earlier run
        else:
            todo.append(i)
    target = 2 * default_in_flight(active_client())
    for batch in _batches(windows, todo, target):
        found = dask.compute(*[dask.delayed(_search)(windows[i], search) for i in batch])
        picks, where = [], []
        for i, items in zip(batch, found, strict=True):
            w = windows[i]
            if items is None:
                results[i] = None
            elif not isinstance(items, BaseException):
                cube = load(items, area=w.area, bands=load_bands, chunks=CHUNKS, network=network)
                picks.append(pick_points(composite(cube, start=w.start, **options), w.group))
                where.append(i)
        for i, pick, computed in zip(where, picks, _compute(picks, retries), strict=True):
            out = pick.samples(computed, label="label", id="id", local=None, group=group)
            if windows[i].saved is not None:
                out.save(windows[i].saved)  # kept whatever happens to the other windows
            results[i] = out
        failed = [items for items in found if isinstance(items, BaseException)]
        if failed:
            raise failed[0]
    parts = [r for r in (results[i] for i in range(len(windows))) if r is not None]
    no_imagery = sum(len(w.group) for i, w in enumerate(windows) if results[i] is None)
    if not parts:
        raise EmptySearchError(
            f"No imagery found for any of the {len(points)} points in {catalog!r} "
            f"({datetime or 'per-point years'}); check the dates and the catalog."
        )
    out = parts[0].concat(*parts[1:])
    dropped: dict[str, int] = {}
    for part in parts:
        for reason, count in part.report["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
    if no_imagery:
        dropped["no imagery found"] = no_imagery
    if invalid:
        dropped["invalid coordinates"] = dropped.get("invalid coordinates", 0) + invalid
    report = {"read": len(points), "kept": len(out), "dropped": dropped, "windows": len(windows)}
    if folder is not None:
        report["checkpoint"] = str(folder)
    is_local = np.full(len(out), bool(local)) if local is not None else out.is_local
    return Samples(out.X, out.y, is_local, out.ids, out.bands, out.counts, report, out.groups)
