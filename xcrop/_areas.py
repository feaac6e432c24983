"""Cropland area of a map with its confidence interval, and the sample design it needs.

``area(map, reference)`` is the good-practice estimate of Olofsson et al. (2014): the map
gives the strata (its classes: crop where the probability is at least ``threshold``), a
stratified random sample of reference labels corrects the map's errors. The strata's
areas are counted lazily, block by block, so a country's Zarr map never sits in memory;
pixel areas come from the CRS (constant in a projected CRS, per row on the ellipsoid in
a geographic one). ``sample_for_area(map, n)`` draws that sample: ``n`` pixels split
over the strata by a stated allocation, uniformly at random inside each, reproducible by
seed, for labellers as GeoJSON or a Collect Earth Online CSV.

The estimator itself, on plain arrays, is :mod:`xcrop._estimation`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Literal

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import rioxarray
import xarray as xr

from ._estimation import AreaEstimate, stratified_estimate
from ._sample import values_at
from .errors import CRSError, XcropInputError

__all__ = ["area", "sample_for_area", "mapped_areas", "pixel_areas", "write_sample_design"]

Kind = Literal["probability", "classes"]


def _open(map_) -> xr.DataArray:
    """A (y, x) DataArray of the map: given, a Zarr store of xcrop's (a path or an fsspec
    URL), or a raster file."""
    if isinstance(map_, xr.DataArray):
        da = map_
    elif "://" in str(map_):  # an xcrop store on an object store (fsspec URL)
        from ._io import open_probability

        da = open_probability(str(map_))
    else:
        path = Path(str(map_))
        if not path.exists():
            raise XcropInputError(f"No map at {path}; give a DataArray, a Zarr store or a GeoTIFF.")
        if path.is_dir() or path.suffix == ".zarr":
            from ._io import open_probability

            da = open_probability(path)
        else:
            raster = rioxarray.open_rasterio(path, chunks=True, masked=True)
            if not isinstance(raster, xr.DataArray):  # a file of several subdatasets (HDF, netCDF)
                raise XcropInputError(f"{path} holds several rasters; give a GeoTIFF.")
            da = raster
            if da.sizes.get("band", 1) != 1:
                raise XcropInputError(f"{path} has {da.sizes['band']} bands; give a one-band map.")
            da = da.squeeze("band", drop=True)
    if "band" in da.dims and da.sizes["band"] == 1:
        da = da.squeeze("band", drop=True)
    if set(da.dims) != {"y", "x"}:
        raise XcropInputError(f"A map has dims (y, x); this one has {da.dims}.")
    if da.rio.crs is None:
        raise CRSError("The map has no CRS; write one with .rio.write_crs(...).")
    return da.transpose("y", "x")


def _classes(values: np.ndarray, kind: Kind, threshold: float) -> np.ndarray:
    """Map classes as float (NaN where the map has no value): probability >= threshold is
    crop (1), else 0; a class map's own values."""
    values = np.asarray(values, "float64")
    if kind == "probability":
        return np.where(np.isnan(values), np.nan, (values >= threshold).astype("float64"))
    return values


def pixel_areas(map_: xr.DataArray) -> np.ndarray:
    """Hectares of one pixel in each row of a (y, x) map: ``|dx dy|`` in a projected CRS,
    the ellipsoidal area of the row's cell (WGS 84) in a geographic one.

    Examples
    --------
    >>> pixel_areas(prob)[:2]  # 10 m UTM pixels  # doctest: +SKIP
    array([0.01, 0.01])
    """
    da = _open(map_)
    transform = da.rio.transform()
    if transform.b or transform.d:
        raise XcropInputError("The map's grid is rotated; reproject it to a north-up grid first.")
    crs = da.rio.crs
    if not crs.is_geographic:
        unit = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
        return np.full(da.sizes["y"], abs(transform.a * transform.e) * unit**2 / 1e4)
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    dx, dy = abs(transform.a), abs(transform.e)
    lats = da.y.values.astype("float64")
    out = np.empty(len(lats))
    for i, lat in enumerate(lats):
        south, north = lat - dy / 2, lat + dy / 2
        lons = [0.0, dx, dx, 0.0]
        out[i] = abs(geod.polygon_area_perimeter(lons, [south, south, north, north])[0]) / 1e4
    return out


def _aoi_geometry(aoi, da: xr.DataArray):
    """The area of interest in the map's CRS; refused when it misses the map."""
    from shapely.geometry import box

    if aoi is None:
        return None
    crs = da.rio.crs
    from ._catalog import geometry

    if isinstance(aoi, (str, Path)):
        path = Path(aoi)
        if not path.exists():
            raise XcropInputError(f"No area of interest at {path}; give a polygon file.")
        aoi = gpd.read_file(path)
    shape = geometry(aoi)  # lon/lat
    inside = gpd.GeoSeries([shape], crs=4326).to_crs(crs).iloc[0]
    if not inside.intersects(box(*da.rio.bounds())):
        raise XcropInputError(
            "The area of interest does not overlap the map; give the polygon of a place the "
            "map covers (any CRS: it is reprojected)."
        )
    return inside


def _dask(da: xr.DataArray) -> dask.array.Array:
    """The map's data as a dask array: its own chunks, or 1024 px blocks of a numpy map
    (the same blocks for counting and drawing)."""
    if isinstance(da.data, dask.array.Array):
        return da.data
    return dask.array.from_array(np.asarray(da.data), chunks=(1024, 1024))


def _blocks(chunks: tuple[tuple[int, ...], ...]):
    """``(i, j, rows, cols)`` of every block of a 2-D dask array's ``chunks``."""
    starts = [np.cumsum((0, *c)) for c in chunks]
    for i in range(len(chunks[0])):
        for j in range(len(chunks[1])):
            rows = slice(int(starts[0][i]), int(starts[0][i + 1]))
            cols = slice(int(starts[1][j]), int(starts[1][j + 1]))
            yield i, j, rows, cols


def _in_aoi(aoi, transform, rows: slice, cols: slice, shape) -> np.ndarray | bool:
    """Which pixels of the block at ``rows, cols`` lie in ``aoi`` (True: no aoi)."""
    if aoi is None:
        return True
    from affine import Affine
    from rasterio.features import geometry_mask

    block = transform * Affine.translation(cols.start, rows.start)
    return geometry_mask([aoi], out_shape=shape, transform=block, invert=True)


def _block_tally(values, strata, rows, cols, transform, aoi, row_area, kind, threshold):
    """Per (stratum, map class) of one block: area (ha) and pixel count."""
    classes = _classes(values, kind, threshold)
    strat = classes if strata is None else np.asarray(strata, "float64")
    ok = np.isfinite(classes) & np.isfinite(strat)
    ok &= _in_aoi(aoi, transform, rows, cols, values.shape)
    weights = np.broadcast_to(row_area[rows][:, None], values.shape)
    frame = pd.DataFrame({"stratum": strat[ok], "map_class": classes[ok], "ha": weights[ok]})
    return frame.groupby(["stratum", "map_class"]).ha.agg(["sum", "count"])


def _tally(da: xr.DataArray, strata, geom, kind, threshold) -> pd.DataFrame:
    """Area (ha) and pixels per (stratum, map class) and per block (of :func:`_dask`),
    inside the area of interest ``geom`` (in the map's CRS), computed lazily."""
    data = _dask(da)
    sblocks = None
    if strata is not None:
        sdata = strata.data if isinstance(strata.data, dask.array.Array) else None
        sdata = (
            dask.array.from_array(np.asarray(strata.values), chunks=data.chunks)
            if sdata is None
            else sdata.rechunk(data.chunks)
        )
        sblocks = sdata.to_delayed()
    row_area = pixel_areas(da)
    transform = da.rio.transform()
    parts, keys = [], []
    blocks = data.to_delayed()
    for i, j, rows, cols in _blocks(data.chunks):
        s = sblocks[i, j] if sblocks is not None else None
        parts.append(dask.delayed(_block_tally)(blocks[i, j], s, rows, cols, transform, geom,
                                                row_area, kind, threshold))  # fmt: skip
        keys.append((i, j))
    tallies = dask.compute(*parts)
    frame = pd.concat(
        [t.assign(block_i=k[0], block_j=k[1]) for t, k in zip(tallies, keys, strict=True)]
    ).reset_index()
    for column in ("stratum", "map_class"):  # whole classes as integers: 0 and 1, not 0.0
        if len(frame) and (frame[column] == frame[column].round()).all():
            frame[column] = frame[column].astype("int64")
    return frame


def mapped_areas(
    map_,
    *,
    kind: Kind = "probability",
    threshold: float = 0.5,
    aoi=None,
) -> pd.Series:
    """Hectares of each map class (crop 1 and non-crop 0 of a probability map), counted
    lazily block by block, inside ``aoi`` when given (a polygon, GeoDataFrame or file).

    Examples
    --------
    >>> mapped_areas("togo.zarr")  # doctest: +SKIP
    map_class
    0.0    48123.4
    1.0    12004.9
    """
    da = _open(map_)
    tally = _tally(da, None, _aoi_geometry(aoi, da), kind, threshold)
    return tally.groupby("map_class")["sum"].sum().rename("ha")


def area(
    map_,
    reference: gpd.GeoDataFrame,
    *,
    strata: xr.DataArray | None = None,
    threshold: float = 0.5,
    aoi=None,
    kind: Kind = "probability",
    label: str = "label",
    variance: str = "laplace",
) -> AreaEstimate:
    """Cropland area with its 95 % confidence interval, and the map's accuracies, from a map
    and a stratified random sample of reference labels (Olofsson et al. 2014).

    Parameters
    ----------
    map_
        The map: a (y, x) DataArray, an xcrop Zarr store or a one-band GeoTIFF; a crop
        probability (``kind="probability"``: crop where ``>= threshold``) or classes
        (``kind="classes"``, any number of them). NaN (or nodata) is outside the area.
    reference
        Points with their reference label (``label`` column, as ``xcrop.read_labels``
        gives: 1 crop, 0 non-crop, or the classes of a class map), drawn by stratified
        random sampling of the strata, e.g. by :func:`sample_for_area`.
    strata
        The sample's strata, when not the map's classes: a (y, x) DataArray of stratum
        numbers on the map's grid (Stehman 2014's estimator then gives areas and
        accuracies alike).
    threshold
        Probability from which a pixel is mapped crop.
    aoi
        Only the map inside this polygon (shapely, GeoJSON, GeoDataFrame in any CRS, or a
        vector file); points outside it are left out and counted.
    label
        The reference points' label column.
    variance
        ``"laplace"`` (default) or ``"wald"`` (Olofsson et al.'s formulas); see
        :func:`xcrop._estimation.stratified_estimate`.

    Returns
    -------
    AreaEstimate
        ``table`` (per class: mapped and estimated hectares, 95 % interval, user's and
        producer's accuracies with standard errors), ``error_matrix`` (area
        proportions), ``overall``; ``report`` counts the points used and left out.
        ``estimate.area(1)`` is cropland's ``(ha, lower, upper)``.

    Examples
    --------
    >>> design = xcrop.sample_for_area("togo.zarr", 600, seed=0)  # doctest: +SKIP
    >>> labelled = xcrop.read_labels("design_labelled.geojson")  # doctest: +SKIP
    >>> xcrop.area("togo.zarr", labelled).area(1)  # doctest: +SKIP
    (1.21e6, 1.13e6, 1.29e6)
    """
    da = _open(map_)
    if kind not in ("probability", "classes"):
        raise XcropInputError(f"kind must be 'probability' or 'classes', not {kind!r}.")
    if not isinstance(reference, gpd.GeoDataFrame):
        raise XcropInputError("reference must be a GeoDataFrame of points (xcrop.read_labels).")
    if label not in reference:
        raise XcropInputError(
            f"The reference points have no {label!r} column; columns are "
            f"{list(reference.columns)}. Give label= the column of the reference labels."
        )
    if reference.crs is None:
        raise CRSError("The reference points have no CRS; set one (points.set_crs(4326)).")
    if not len(reference):
        raise XcropInputError(
            "No labelled reference point: label the sample design first (its label column: "
            "1 crop, 0 non-crop, or the map's classes)."
        )
    if strata is not None and (strata.shape != da.shape or set(strata.dims) != {"y", "x"}):
        raise XcropInputError(f"strata must be a (y, x) DataArray of the map's shape {da.shape}.")
    labels = pd.to_numeric(reference[label], errors="coerce").to_numpy("float64")
    map_class = _classes(values_at(da, reference)[0], kind, threshold)
    stratum = map_class if strata is None else values_at(strata, reference)[0]
    keep = np.isfinite(labels) & np.isfinite(map_class) & np.isfinite(stratum)
    report = {
        "read": len(reference),
        "unlabelled": int((~np.isfinite(labels)).sum()),
        "outside_map": int((np.isfinite(labels) & ~np.isfinite(map_class)).sum()),
    }
    geom = _aoi_geometry(aoi, da)
    if geom is not None:
        inside = reference.to_crs(da.rio.crs).within(geom).to_numpy()
        report["outside_aoi"] = int((keep & ~inside).sum())
        keep &= inside
    report["used"] = int(keep.sum())
    if report["used"] == 0:
        raise XcropInputError(
            f"None of the {len(reference)} reference points has a label and lies on the map; "
            "check the label column and that the points cover the map."
        )
    tally = _tally(da, strata, geom, kind, threshold)
    stratum_area = tally.groupby("stratum")["sum"].sum()
    mapped = tally.groupby("map_class")["sum"].sum()
    return stratified_estimate(
        stratum_area, stratum[keep], map_class[keep], labels[keep], mapped_area=mapped,
        variance=variance, report=report,
    )  # fmt: skip


def _allocate(pixels: pd.Series, n: int, allocation, min_per_stratum: int) -> dict[Hashable, int]:
    """Points per stratum: ``"proportional"`` to its pixels with at least
    ``min_per_stratum`` each (Olofsson et al.'s advice for rare classes), ``"equal"``, or a
    mapping of stratum -> points."""
    if isinstance(allocation, Mapping):
        out = {h: int(allocation.get(h, 0)) for h in pixels.index}
        missing = [h for h in pixels.index if out[h] <= 0]
        if missing:
            raise XcropInputError(
                f"allocation gives no points to strata {missing}; give each some."
            )
        return out
    k = len(pixels)
    if allocation == "equal":
        base = np.full(k, n // k)
        base[: n - base.sum()] += 1
        return dict(zip(pixels.index, base.tolist(), strict=True))
    if allocation != "proportional":
        raise XcropInputError(
            f"allocation={allocation!r}; use 'proportional', 'equal' or a mapping of "
            "stratum -> points."
        )
    share = pixels.to_numpy("float64") / pixels.sum()
    floor = min(min_per_stratum, n // k)
    fixed = np.zeros(k, bool)
    while True:  # proportional, then the strata below the floor raised to it
        free = n - floor * fixed.sum()
        raw = np.where(fixed, floor, free * share / share[~fixed].sum())
        low = ~fixed & (raw < floor)
        if not low.any():
            break
        fixed |= low
    take = np.floor(raw).astype("int64")
    for i in np.argsort(-(raw - take), kind="stable")[: n - take.sum()]:
        take[i] += 1  # largest remainders
    return dict(zip(pixels.index, take.tolist(), strict=True))


def sample_for_area(
    map_,
    n: int,
    *,
    allocation: str | Mapping[Hashable, int] = "proportional",
    min_per_stratum: int = 50,
    seed: int = 0,
    threshold: float = 0.5,
    aoi=None,
    kind: Kind = "probability",
) -> gpd.GeoDataFrame:
    """A stratified random sample of the map's pixels for reference labelling.

    Parameters
    ----------
    map_
        As for :func:`area`; its classes are the strata.
    n
        Points in all.
    allocation
        ``"proportional"`` (to each stratum's pixels, but at least ``min_per_stratum``
        each: a rare class needs enough points for its accuracy), ``"equal"``, or a
        mapping ``{stratum: points}``.
    seed
        The same seed and map give the same points.
    threshold, aoi, kind
        As for :func:`area`.

    Returns
    -------
    geopandas.GeoDataFrame
        One point per sampled pixel centre, in lon/lat: ``id``, ``stratum`` (the map
        class), ``value`` (the map's value there), ``label`` (empty, for the labeller).
        Write it with :func:`write_sample_design`; label it, read it back with
        ``xcrop.read_labels`` and give it to :func:`area`.

    Examples
    --------
    >>> design = xcrop.sample_for_area("togo.zarr", 600, seed=0)  # doctest: +SKIP
    >>> write_sample_design(design, "design.csv")  # Collect Earth Online  # doctest: +SKIP
    """
    da = _open(map_)
    if int(n) < 1:
        raise XcropInputError(f"n={n}; give the number of points to draw (at least 1).")
    geom = _aoi_geometry(aoi, da)
    tally = _tally(da, None, geom, kind, threshold)
    pixels = tally.groupby("stratum")["count"].sum()
    if not len(pixels):
        raise XcropInputError(
            "The map has no value" + (" inside the area of interest" if aoi is not None else "")
            + ": there is nothing to sample."
        )  # fmt: skip
    if int(n) < len(pixels):
        raise XcropInputError(
            f"n={n} cannot cover the map's {len(pixels)} strata; draw more points."
        )
    plan = _allocate(pixels, int(n), allocation, min_per_stratum)
    rng = np.random.default_rng(seed)
    data = _dask(da)
    where = {(i, j): (rows, cols) for i, j, rows, cols in _blocks(data.chunks)}
    transform = da.rio.transform()
    picks = []  # (row, col, stratum, value)
    for h, want in plan.items():
        blocks = tally[tally.stratum == h].sort_values(["block_i", "block_j"])
        counts = blocks["count"].to_numpy("int64")
        if want > counts.sum():
            raise XcropInputError(
                f"Stratum {h} has {counts.sum()} pixels; it cannot give {want} points."
            )
        per_block = rng.multivariate_hypergeometric(counts, want)
        for (bi, bj), k in zip(blocks[["block_i", "block_j"]].to_numpy(), per_block, strict=True):
            if k == 0:
                continue
            rows, cols = where[bi, bj]
            values = np.asarray(data[rows, cols].compute(), "float64")
            ok = _classes(values, kind, threshold) == h
            ok &= _in_aoi(geom, transform, rows, cols, values.shape)
            chosen = np.sort(rng.choice(np.flatnonzero(ok.ravel()), size=int(k), replace=False))
            r, c = np.divmod(chosen, values.shape[1])
            picks += [(rows.start + a, cols.start + b, h, values[a, b])
                      for a, b in zip(r, c, strict=True)]  # fmt: skip
    r, c, strata, v = (np.array(x) for x in zip(*picks, strict=True))
    xs, ys = da.x.values[c.astype(int)], da.y.values[r.astype(int)]
    points = gpd.GeoDataFrame(
        {"id": np.arange(len(r)), "stratum": strata,
         "value": v, "label": np.full(len(r), np.nan)},
        geometry=gpd.points_from_xy(xs, ys), crs=da.rio.crs,
    ).to_crs(4326)  # fmt: skip
    points.attrs["allocation"] = {str(k): v for k, v in plan.items()}
    return points


def write_sample_design(points: gpd.GeoDataFrame, path: str | Path) -> Path:
    """Write a sample design for labellers: ``.geojson`` (GeoJSON, lon/lat) or ``.csv``
    in Collect Earth Online's plot-file form (``PLOTID``, ``LON``, ``LAT``, then the other
    columns).

    Examples
    --------
    >>> write_sample_design(design, "design.csv")  # doctest: +SKIP
    PosixPath('design.csv')
    """
    from ._atomic import replacing

    path = Path(path)
    lonlat = points.to_crs(4326)
    if path.suffix.lower() == ".csv":
        table = pd.DataFrame(
            {"PLOTID": lonlat["id"].to_numpy(), "LON": lonlat.geometry.x.round(7),
             "LAT": lonlat.geometry.y.round(7)}
        )  # fmt: skip
        for column in lonlat.columns:
            if column not in ("id", "geometry"):
                table[column] = lonlat[column].to_numpy()
        with replacing(path, "the sample design") as tmp:
            table.to_csv(tmp, index=False)
    elif path.suffix.lower() in (".geojson", ".json"):
        with replacing(path, "the sample design") as tmp:
            lonlat.to_file(tmp, driver="GeoJSON")
    else:
        raise XcropInputError(f"{path}: write a sample design as .geojson or .csv (Collect Earth).")
    return path
