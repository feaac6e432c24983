"""Existing map rasters read at test points, and their metrics; a map's errors per class.

A map is a crop fraction (0..100, like Copernicus land cover), a probability (0..1, like
xcrop's own) or a class map (like GFSAD); in any CRS and resolution. Each point takes the
pixel that holds it; points outside the map or on nodata are excluded and counted.

:func:`per_class_errors` compares a whole probability map with a land-cover raster: for
each land-cover class, the share of its pixels mapped as crop (the recall of crop classes,
the false-positive rate of the others), counted chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import rioxarray  # also registers .rio
import xarray as xr

from ._evaluation import metrics
from ._extras import require
from ._labels import to_binary
from ._sample import pixel_of, values_at
from .errors import CRSError, XcropInputError

__all__ = ["MapKind", "read_map", "evaluate_map", "map_metrics", "per_class_errors"]

MapKind = Literal["fraction", "probability", "classes"]


def _raw_from_file(path: Path, points: gpd.GeoDataFrame, band: int):
    """Raw values at the points, where inside, the nodata value, scale and offset."""
    import rasterio

    with rasterio.open(path) as src:
        if src.crs is None:
            raise CRSError(f"{path} has no CRS; write one (e.g. rio edit-info --crs EPSG:4326).")
        if not 1 <= band <= src.count:
            raise XcropInputError(f"{path} has {src.count} band(s); band={band} does not exist.")
        xy = points.to_crs(src.crs).geometry
        rows, cols = pixel_of(src.transform, (src.height, src.width), xy.x, xy.y)
        inside = rows >= 0
        raw = np.full(len(points), np.nan)
        at = np.flatnonzero(inside)
        # rasterio reads only the blocks the points fall in; given the centres of the
        # pixels pixel_of chose, so that a point on an edge gets the same pixel as on an
        # array (values_at)
        xs, ys = src.transform * (cols[at] + 0.5, rows[at] + 0.5)
        raw[at] = [v[0] for v in src.sample(zip(xs, ys, strict=True), indexes=band)]
        return raw, inside, src.nodata, src.scales[band - 1], src.offsets[band - 1]


def _raw_from_array(da: xr.DataArray, points: gpd.GeoDataFrame, band: int):
    if "band" in da.dims:
        if not 1 <= band <= da.sizes["band"]:
            raise XcropInputError(
                f"The map has {da.sizes['band']} band(s); band={band} does not exist."
            )
        da = da.isel(band=band - 1)
    if set(da.dims) != {"y", "x"}:
        raise XcropInputError(
            f"A map must have dims (y, x) (and maybe band); this one has {da.dims}."
        )
    if da.rio.crs is None:
        raise CRSError("The map has no CRS; write one with .rio.write_crs(...).")
    raw, inside = values_at(da, points)
    nodata = da.rio.nodata if da.rio.nodata is not None else da.rio.encoded_nodata
    return raw, inside, nodata, 1.0, 0.0


def _map_values(
    source, points, *, kind, crop_classes, nodata, scale, band
) -> tuple[np.ndarray, dict]:
    """Map values at the points (NaN where excluded) and a report of what was excluded."""
    if kind not in ("fraction", "probability", "classes"):
        raise XcropInputError(f"kind must be 'fraction', 'probability' or 'classes', not {kind!r}.")
    if points.crs is None:
        raise CRSError("The points have no CRS; set one (e.g. points.set_crs(4326)).")
    if isinstance(source, xr.DataArray):
        raw, inside, own_nodata, file_scale, file_offset = _raw_from_array(source, points, band)
    else:
        path = Path(source)
        if not path.exists():
            raise XcropInputError(
                f"No map raster at {path}; give a GeoTIFF/COG path or a DataArray."
            )
        raw, inside, own_nodata, file_scale, file_offset = _raw_from_file(path, points, band)
    no_data = inside & ~np.isfinite(raw)
    for value in (own_nodata, nodata):
        if value is not None and not np.isnan(value):
            no_data |= inside & (raw == value)
    keep = inside & ~no_data
    values = np.full(len(points), np.nan)
    if kind == "classes":
        values[keep] = np.isin(raw[keep], np.asarray(crop_classes)).astype("float64")
    else:
        factor = scale if scale is not None else (0.01 if kind == "fraction" else 1.0)
        values[keep] = (raw[keep] * file_scale + file_offset) * factor
        bad = keep & ((values < 0) | (values > 1))
        if bad.any():
            found = np.unique(raw[bad])[:5].tolist()
            hint = "0..100" if kind == "fraction" else "0..1"
            raise XcropInputError(
                f"{int(bad.sum())} point(s) read map values {found} outside {hint} for a "
                f"{kind} map; pass nodata=<value> if they mark missing data, scale= if the "
                "map has another range, or kind='classes' for a class map."
            )
    dropped = {
        "outside the map": int((~inside).sum()),
        "no data at the pixel": int(no_data.sum()),
    }
    report = {
        "read": len(points),
        "kept": int(keep.sum()),
        "dropped": {k: v for k, v in dropped.items() if v},
    }
    return values, report


def read_map(
    source: str | Path | xr.DataArray,
    points: gpd.GeoDataFrame,
    *,
    kind: MapKind = "fraction",
    crop_classes: Sequence[float] = (2,),
    nodata: float | None = None,
    scale: float | None = None,
    band: int = 1,
) -> np.ndarray:
    """Values of a map raster at points, as crop probability (or 0/1 for class maps).

    Each point reads the pixel that contains it, after reprojecting the points to the
    raster's CRS (the raster may have any CRS and resolution). A file is read one pixel
    window per point, so a continental map costs only the blocks the points fall in.

    Parameters
    ----------
    source
        A raster file (GeoTIFF, COG, anything rasterio opens) or a DataArray (y, x) or
        (band, y, x) with a CRS (rioxarray).
    points
        Points in any CRS.
    kind
        ``"fraction"``: a crop fraction 0..100 (e.g. Copernicus land cover 100 m), read
        as probability ``value / 100``; ``"probability"``: values 0..1 (an xcrop map;
        the file's scale/offset tags are applied); ``"classes"``: a class map, read as 1
        where the class is in ``crop_classes``, else 0.
    crop_classes
        Class values meaning crop, for ``kind="classes"`` (GFSAD30: 2).
    nodata
        A value meaning "no data", besides the raster's own nodata and NaN.
    scale
        Factor from stored values to 0..1 (default 0.01 for fractions, 1 otherwise).
    band
        Band to read, 1-based.

    Returns
    -------
    numpy.ndarray
        float64 (N,), aligned with ``points``: NaN where the point is outside the raster
        or on nodata (those are counted in :func:`evaluate_map`'s ``report``).

    Examples
    --------
    >>> frac = read_map("copernicus_crops_100m.tif", test, kind="fraction")  # doctest: +SKIP
    >>> gfsad = read_map("gfsad30.tif", test, kind="classes", crop_classes=(2,))  # doctest: +SKIP
    """
    values, _ = _map_values(
        source, points, kind=kind, crop_classes=crop_classes, nodata=nodata, scale=scale,
        band=band,
    )  # fmt: skip
    return values


def evaluate_map(
    source: str | Path | xr.DataArray,
    test_labels: gpd.GeoDataFrame,
    *,
    kind: MapKind = "fraction",
    label: str = "label",
    threshold: float = 0.5,
    **read_options,
) -> dict:
    """Metrics of an existing map raster at labelled test points.

    ``read_options`` go to :func:`read_map` (``crop_classes``, ``nodata``, ``scale``,
    ``band``). A class map gives hard predictions, so its ``roc_auc`` is NaN. Points
    outside the map or on nodata are excluded and counted in ``result["report"]``.

    Examples
    --------
    >>> test = xcrop.consensus(table, ["cn", "bm", "bb", "hrk"])  # doctest: +SKIP
    >>> evaluate_map("gfsad30.tif", test, kind="classes")["report"]  # doctest: +SKIP
    {'read': 306, 'kept': 306, 'dropped': {}}
    """
    require("sklearn", "xcrop.evaluate_map")  # before the map is read
    if label not in test_labels:
        raise XcropInputError(
            f"No label column {label!r}; columns are {list(test_labels.columns)}."
        )
    values, report = _map_values(
        source, test_labels, kind=kind, crop_classes=read_options.pop("crop_classes", (2,)),
        nodata=read_options.pop("nodata", None), scale=read_options.pop("scale", None),
        band=read_options.pop("band", 1),
    )  # fmt: skip
    if read_options:
        raise XcropInputError(f"Unknown options {sorted(read_options)}; see xcrop.read_map.")
    keep = np.isfinite(values)
    if not keep.any():
        raise XcropInputError(
            f"No test point has a map value ({report['dropped']}); check that the map "
            "covers the test region and that its CRS is right."
        )
    y = to_binary(pd.Series(test_labels[label]).reset_index(drop=True), None).to_numpy()
    return {**map_metrics(y[keep], values[keep], kind, threshold=threshold), "report": report}


def map_metrics(y_true, values, kind: MapKind, *, threshold: float = 0.5) -> dict:
    """:func:`~xcrop.metrics` of map values read with :func:`read_map`: a class
    map's 0/1 values are hard predictions (no AUC), the others probabilities."""
    if kind == "classes":
        return metrics(y_true, pred=values, threshold=threshold)
    return metrics(y_true, values, threshold=threshold)


# -- errors per land-cover class ------------------------------------------------------------


def _spatial(data: xr.DataArray, what: str) -> xr.DataArray:
    """``data`` as (y, x): a single band dropped; anything else refused."""
    if "band" in data.dims:
        if data.sizes["band"] != 1:
            raise XcropInputError(f"The {what} has {data.sizes['band']} bands; pass one (y, x).")
        data = data.isel(band=0, drop=True)
    if set(data.dims) != {"y", "x"}:
        raise XcropInputError(f"The {what} must have dims (y, x); this one has {data.dims}.")
    return data.transpose("y", "x")


def _truth_on_grid(landcover: xr.DataArray, prob: xr.DataArray) -> xr.DataArray:
    """The land cover at the map's pixels: as it is on the same grid; a window of it
    (nearest pixel centre, within half a pixel) on a larger grid in the same CRS."""
    crs_map, crs_truth = prob.rio.crs, landcover.rio.crs
    same = landcover.shape == prob.shape and all(
        np.allclose(landcover[d].values, prob[d].values) for d in ("y", "x")
    )
    if same and (crs_map is None or crs_truth is None or crs_map == crs_truth):
        return landcover
    if crs_map is None or crs_truth is None or crs_map != crs_truth:
        raise XcropInputError(
            f"The land cover ({crs_truth}, {landcover.shape}) is not on the map's grid "
            f"({crs_map}, {prob.shape}); reproject it first, e.g. "
            "landcover.rio.reproject_match(prob, resampling=rasterio.enums.Resampling.nearest)."
        )
    res = abs(float(prob.rio.resolution()[0]))
    try:
        return landcover.sel(y=prob.y, x=prob.x, method="nearest", tolerance=res / 2)
    except KeyError:
        raise XcropInputError(
            "The land cover does not cover every pixel of the map (same CRS, but some map "
            "pixel has no land-cover pixel within half a pixel); pass a land cover that "
            "covers the map, on its grid."
        ) from None


def _class_counts(prob: np.ndarray, truth: np.ndarray, threshold: float, nodata) -> pd.DataFrame:
    """One chunk's counts per land-cover code: pixels with a probability, those at or
    above the threshold, their probabilities' sum, and pixels without a probability."""
    truth = np.asarray(truth).ravel()
    prob = np.asarray(prob, "float64").ravel()
    keep = np.ones(truth.shape, bool)
    if np.issubdtype(truth.dtype, np.floating):
        keep &= np.isfinite(truth)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        keep &= truth != nodata
    codes, inverse = np.unique(truth[keep], return_inverse=True)
    prob = prob[keep]
    finite = np.isfinite(prob)
    k = len(codes)
    return pd.DataFrame(
        {
            "pixels": np.bincount(inverse[finite], minlength=k),
            "crop_pixels": np.bincount(inverse[finite & (prob >= threshold)], minlength=k),
            "sum": np.bincount(inverse[finite], weights=prob[finite], minlength=k),
            "no_data": np.bincount(inverse[~finite], minlength=k),
        },
        index=pd.Index(codes, name="code"),
    )


def _sum_counts(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(parts).groupby(level="code").sum()


def per_class_errors(
    probability: xr.DataArray,
    landcover: xr.DataArray | str | Path,
    classes: Mapping[int, str] | None = None,
    *,
    crop_classes: Sequence[int] = (),
    threshold: float = 0.5,
) -> pd.DataFrame:
    """How a crop-probability map treats each class of a land-cover truth raster.

    For every land-cover class, the share of its pixels that the map calls crop
    (probability at or above ``threshold``): for a crop class that is the map's recall
    on it, for any other class its false-positive rate. The counts are made chunk by
    chunk and then summed (dask), so a map of any size is read once and never held in
    memory.

    Parameters
    ----------
    probability
        A crop-probability map (y, x), e.g. from :func:`xcrop.predict` or
        :func:`xcrop.open_probability`; numpy- or dask-backed. NaN is "no prediction".
    landcover
        Land-cover classes (integer codes) on the map's grid, as a DataArray (y, x) or a
        raster file (e.g. the simulated archive's ``truth/<region>_landcover.tif``, see
        :meth:`xcrop.datasets.Archive.truth`). A larger raster in the map's CRS and
        resolution is cut to the map's pixels; another grid must be reprojected first.
        Its nodata value, if any, is left out.
    classes
        Names of the codes (``{5: "water", ...}``); a code without a name is called
        ``"class <code>"``.
    crop_classes
        Codes that are crop (marked in the ``crop`` column).
    threshold
        Probability from which a pixel is mapped as crop (as in
        :func:`xcrop.metrics`).

    Returns
    -------
    pandas.DataFrame
        One row per class present in the land cover, in code order, indexed by its name
        (``class``); columns ``code``; ``crop`` (True for ``crop_classes``); ``pixels``,
        the class's pixels that have a probability; ``mapped_crop``, the share of those
        mapped as crop; ``mean_probability``; ``no_data``, the class's pixels without a
        probability (``mapped_crop`` and ``mean_probability`` are NaN when ``pixels`` is
        0).

    Raises
    ------
    XcropError
        When the map or the land cover is not (y, x), or they are not on one grid.

    Examples
    --------
    >>> import xarray as xr
    >>> prob = xr.DataArray([[0.9, 0.8, 0.2], [0.7, 0.6, 0.1]], dims=("y", "x"),
    ...                     coords={"y": [15.0, 5.0], "x": [5.0, 15.0, 25.0]})
    >>> cover = prob.copy(data=[[0, 0, 2], [5, 5, 2]])
    >>> table = per_class_errors(prob, cover, {0: "crop", 2: "savanna", 5: "water"},
    ...                          crop_classes=[0])
    >>> columns = ["crop", "pixels", "mapped_crop", "mean_probability"]
    >>> print(table[columns].reset_index().to_string(index=False))
      class  crop  pixels  mapped_crop  mean_probability
       crop  True       2          1.0              0.85
    savanna False       2          0.0              0.15
      water False       2          1.0              0.65


    Crops are found (recall 1.0), savanna is never mistaken for crop, water always is
    (a false-positive rate of 1.0). A simulated region's map against its truth file:

    >>> from xcrop.datasets.landscape import CLASSES, CROP_CLASSES
    >>> per_class_errors(xcrop.open_probability("togo-north.zarr"),
    ...                  archive.truth("togo-north", "landcover"), CLASSES,
    ...                  crop_classes=CROP_CLASSES)  # doctest: +SKIP
    """
    classes = dict(classes or {})
    prob = _spatial(probability, "probability map")
    if isinstance(landcover, xr.DataArray):
        truth = landcover
    else:
        path = Path(landcover)
        if not path.exists():
            raise XcropInputError(
                f"No land-cover raster at {path}; give a GeoTIFF path or a DataArray."
            )
        raster = rioxarray.open_rasterio(path)  # lazy: read by chunks below
        if not isinstance(raster, xr.DataArray):  # a file of several subdatasets (HDF, netCDF)
            raise XcropInputError(f"{path} holds several rasters; give a GeoTIFF.")
        truth = raster
    truth = _truth_on_grid(_spatial(truth, "land cover"), prob)
    nodata = truth.rio.nodata if truth.rio.nodata is not None else truth.rio.encoded_nodata
    if prob.chunks is None:  # numpy, or a file's lazy array: chunks of dask's size
        prob = prob.chunk("auto")
    values = prob.data
    codes = truth.chunk({"y": values.chunks[0], "x": values.chunks[1]}).data
    parts = [
        dask.delayed(_class_counts)(p, t, threshold, nodata)
        for p, t in zip(values.to_delayed().ravel(), codes.to_delayed().ravel(), strict=True)
    ]
    counts = dask.delayed(_sum_counts)(parts).compute()
    pixels = counts["pixels"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        mapped = np.where(pixels > 0, counts["crop_pixels"] / pixels, np.nan)
        mean = np.where(pixels > 0, counts["sum"] / pixels, np.nan)
    code = [int(c) if float(c).is_integer() else c for c in counts.index]
    crop = set(crop_classes)
    return pd.DataFrame(
        {
            "code": code,
            "crop": [c in crop for c in code],
            "pixels": pixels.astype("int64"),
            "mapped_crop": mapped,
            "mean_probability": mean,
            "no_data": counts["no_data"].to_numpy().astype("int64"),
        },
        index=pd.Index([classes.get(c, f"class {c}") for c in code], name="class"),
    )
