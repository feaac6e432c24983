"""Sampling labelled points spread over many places and years, reading only windows.

Global labels are sparse: loading a datacube around each of thousands of points is the
data-transfer bottleneck the paper complained about. ``sample_points`` groups points
that lie close together (and share a season), searches the items of each group, loads a
small window around the group only (odc-stac reads just the COG tiles it needs), builds
the same composite as ``composite()`` and samples it. Groups run in parallel as dask
tasks (threads, or a ``dask.distributed`` cluster), and transient read errors are
retried.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pandas as pd

from ._network import Network, redact
from .catalog import find_items
from .cloudscore import SCORE_BANDS
from .composite import Composite, composite
from .errors import EmptySearchError, XcropError
from .sample import Samples, sample
from .sentinel2 import DEFAULT_BANDS, REFLECTANCE_BANDS
from .stac import load

__all__ = ["sample_points"]


def _groups(points: gpd.GeoDataFrame, cell_m: float) -> pd.Series:
    """A key per point: points in the same ~cell_m square (and season) share a window."""
    lat = np.radians(points.geometry.y.to_numpy())
    dy = cell_m / 111_320.0
    dx = cell_m / (111_320.0 * np.maximum(np.cos(lat), 0.05))
    gx = np.floor(points.geometry.x.to_numpy() / dx).astype("int64")
    gy = np.floor(points.geometry.y.to_numpy() / dy).astype("int64")
    return pd.Series([f"{a}_{b}" for a, b in zip(gx, gy, strict=True)], index=points.index)


def _season(year) -> tuple[str, str]:
    year = int(year)
    return f"{year}-03-01", f"{year}-03-01/{year + 1}-03-31"


def _window(group: gpd.GeoDataFrame, margin_m: float) -> tuple[float, float, float, float]:
    """The group's lon/lat bounds widened by ``margin_m`` metres."""
    west, south, east, north = group.total_bounds
    dy = margin_m / 111_320.0
    dx = dy / max(np.cos(np.radians(max(abs(south), abs(north)))), 0.05)
    return (west - dx, south - dy, east + dx, north + dy)


def _sample_group(group, datetime, start, area, load_bands, options, search, retries, saved):
    if saved is not None and saved.exists():
        return Samples.load(saved)  # finished by an earlier run
    for attempt in range(retries + 1):
        try:
            with dask.config.set(scheduler="sync"):  # one task per window: no nested pools
                items = find_items(area, datetime, **search)
                cube = load(items, area=area, bands=load_bands, chunks=4096)
                comp = composite(cube, start=start, **options)
                # data and counts in one pass: sampling the lazy composite computes them
                # one after the other, reading every file of the window twice
                data, counts = dask.compute(comp.data, comp.counts)
                out = sample(Composite(data, counts, comp.dates), group)
        except EmptySearchError:
            return None  # counted as "no imagery found" (searched again on a resume)
        except OSError as err:  # rasterio's read errors are OSErrors: retry them
            if attempt == retries:
                raise XcropError(
                    f"Reading the window {area} failed {retries + 1} times: {redact(str(err))}"
                ) from err
            time.sleep(0.5 * 2**attempt)
            continue
        if saved is not None:
            out.save(saved)  # kept whatever happens to the other windows
        return out
    return None


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
        raise XcropError(
            f"checkpoint={str(folder)!r}: its folder {folder.parent} does not exist; "
            "create it first or give another checkpoint folder."
        )
    if folder.exists() and not folder.is_dir():
        raise XcropError(f"checkpoint={str(folder)!r} is a file; give a folder.")
    folder.mkdir(exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise XcropError(f"checkpoint={str(folder)!r}: permission denied; give another folder.")
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
        Points closer than about this (metres, a grid cell) share one window.
    local
        Mark the samples as local (True) or global (False, the default).
    retries
        Tries again (after 0.5, 1, 2 ... s) a window whose reads failed.
    network
        Timeouts and retries of the STAC searches (see :class:`xcrop.Network`).
    checkpoint
        A folder (created if missing; its parent must exist) where each finished window
        is saved as it finishes. A run that stops (a server that dies midway, a killed
        process) keeps them, and the same call again reads them instead of the imagery:
        only the unfinished windows are searched and read. The file names are tokens of
        each window's points and settings, so other points or settings never reuse them.

    Returns
    -------
    Samples
        Like ``Composite.sample``; ``report`` adds points without imagery.

    Examples
    --------
    >>> crowd = xcrop.crowd_vote(table)  # doctest: +SKIP
    >>> samples = xcrop.sample_points(crowd, year="year", catalog="earth-search")  # doctest: +SKIP
    """
    if datetime is None and year is None:
        raise XcropError("Give datetime='YYYY-MM-DD/YYYY-MM-DD' or year='<column of years>'.")
    lonlat = points.to_crs(4326)
    keys = _groups(lonlat, group_size)
    if year is not None:
        keys = keys + "_" + lonlat[year].astype(int).astype(str)
    search = {"catalog": catalog, "collection": collection, "max_cloud": max_cloud,
              "network": network}  # fmt: skip
    source = {k: v for k, v in search.items() if k != "network"}  # timeouts change nothing
    folder = _checkpoint_folder(checkpoint)
    wanted = set(bands) | {"B04", "B08"} | (set(SCORE_BANDS) if score == "schmitt" else set())
    if scl or score == "scl":
        wanted.add("SCL")
    load_bands = [b for b in DEFAULT_BANDS if b in wanted]
    options = {
        "bands": list(bands),
        "score": score,
        "scl": scl,
        "max_cloud_height": max_cloud_height,
    }
    tasks, sizes = [], []
    for key, group in lonlat.groupby(keys, sort=True):
        start, when = _season(group[year].iloc[0]) if year is not None else (None, datetime)
        area = _window(group, window * 10.0)
        # the key is a token of everything the window's result depends on: two calls
        # (other catalogs, dates, labels) never share a key, nor a checkpoint file
        token = dask.base.tokenize(
            key, _fingerprint(group), when, start, area, load_bands, options, source
        )
        saved = folder / f"window-{token}.npz" if folder is not None else None
        args = (group, when, start, area, load_bands, options, search, retries, saved)
        tasks.append(dask.delayed(_sample_group)(*args, dask_key_name=f"xcrop-points-{token}"))
        sizes.append(len(group))
    results = dask.compute(*tasks)
    parts = [r for r in results if r is not None]
    no_imagery = sum(n for r, n in zip(results, sizes, strict=True) if r is None)
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
    report = {"read": len(points), "kept": len(out), "dropped": dropped, "windows": len(tasks)}
    if folder is not None:
        report["checkpoint"] = str(folder)
    is_local = np.full(len(out), bool(local)) if local is not None else out.is_local
    return Samples(out.X, out.y, is_local, out.ids, out.bands, out.counts, report)
