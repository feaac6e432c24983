"""Reading labelled points as people make them, and reducing several labellers to one.

Labels come as shapefiles, GeoPackages, GeoJSON, Collect Earth Online CSVs or
(Geo)DataFrames, in any CRS, as points or polygons; a polygon becomes its central point.
Every function returns a GeoDataFrame in EPSG:4326 and says in ``.attrs["report"]`` what
it dropped and why: nothing is lost silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely import wkt

from .errors import XcropError

__all__ = ["TEXT_LABELS", "read_labels", "join_labellers", "crowd_vote", "consensus", "mark_local"]

#: Text labels understood as crop (1) or non-crop (0), compared case-insensitively.
TEXT_LABELS: dict[str, int] = {
    "crop": 1,
    "cropland": 1,
    "cultivated": 1,
    "yes": 1,
    "true": 1,
    "1": 1,
    "1.0": 1,
    "non-crop": 0,
    "noncrop": 0,
    "non crop": 0,
    "not crop": 0,
    "no": 0,
    "false": 0,
    "0": 0,
    "0.0": 0,
}


def _to_binary(values: pd.Series, mapping: Mapping[str, int] | None) -> pd.Series:
    """0/1 (float, NaN where missing or not understood) from numbers or text labels."""
    if pd.api.types.is_numeric_dtype(values):
        out = values.astype("float64")
        return out.where(out.isin([0, 1]))
    table = {**TEXT_LABELS, **{k.lower(): v for k, v in (mapping or {}).items()}}
    return values.map(
        lambda v: table.get(str(v).strip().lower(), np.nan) if pd.notna(v) else np.nan
    )


def _central_points(frame: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """Polygons to their centroid (or a point surely inside, for odd shapes); points kept."""
    geoms = frame.geometry
    if geoms.crs is not None and geoms.crs.is_geographic and len(geoms):
        geoms = geoms.to_crs(geoms.estimate_utm_crs())  # centroids in metres, not degrees
    centroids = geoms.centroid
    inside = centroids.within(geoms) | (geoms.geom_type == "Point")
    return centroids.where(inside, geoms.representative_point())


def _read(source, lon: str, lat: str, crs) -> gpd.GeoDataFrame:
    if isinstance(source, gpd.GeoDataFrame):
        return source.copy()
    if isinstance(source, (str, Path)) and str(source).lower().endswith(".csv"):
        source = pd.read_csv(source)
    if isinstance(source, pd.DataFrame):
        if lon in source and lat in source:
            geometry = gpd.points_from_xy(source[lon], source[lat])
        elif "sample_geom" in source:
            geometry = source["sample_geom"].map(wkt.loads)
        else:
            raise XcropError(
                f"A table of labels needs coordinates: columns {lon!r}/{lat!r} (pass lon=, "
                f"lat= for other names) or a WKT 'sample_geom'; it has {list(source.columns)}."
            )
        return gpd.GeoDataFrame(source, geometry=geometry, crs=crs or "EPSG:4326")
    path = Path(source)
    if not path.exists():
        raise XcropError(f"No label file at {path}; give a shapefile, GeoPackage, GeoJSON or CSV.")
    return gpd.read_file(path)


def read_labels(
    source: str | Path | pd.DataFrame | gpd.GeoDataFrame,
    *,
    label: str | int = "label",
    id: str | None = None,
    mapping: Mapping[str, int] | None = None,
    lon: str = "lon",
    lat: str = "lat",
    crs: str | int | None = None,
) -> gpd.GeoDataFrame:
    """Labelled points (``id``, ``label`` 0/1, point geometry in EPSG:4326).

    Parameters
    ----------
    source
        A vector file, a CSV (with ``lon``/``lat`` or a WKT ``sample_geom``), or a
        (Geo)DataFrame. Polygons become their central point.
    label
        The label column (numbers 0/1 or text such as ``Cropland``/``Non-crop``), or a
        constant for files that hold one class (``read_labels("crop.shp", label=1)``).
    id
        Column of point ids; default the row number.
    mapping
        Extra text labels, e.g. ``{"maize": 1}``.

    Returns
    -------
    geopandas.GeoDataFrame
        With ``.attrs["report"]``: rows read, kept, and dropped per reason.

    Examples
    --------
    >>> path = "togo-labels/crop_merged_v2/crop_merged_v2.shp"
    >>> crop = read_labels(path, label=1)  # doctest: +SKIP
    >>> crop.attrs["report"]  # doctest: +SKIP
    {'read': 688, 'kept': 688, 'dropped': {}}
    """
    frame = _read(source, lon, lat, crs)
    if frame.crs is None:
        raise XcropError("The labels have no CRS; pass crs='EPSG:4326' (or theirs).")
    read = len(frame)
    if isinstance(label, str):
        if label not in frame:
            raise XcropError(f"No label column {label!r}; columns are {list(frame.columns)}.")
        values = _to_binary(frame[label], mapping)
    else:
        values = pd.Series(float(label), index=frame.index)
    ids = frame[id] if id else pd.Series(np.arange(read), index=frame.index)
    empty = frame.geometry.is_empty | frame.geometry.isna()
    unlabelled = values.isna() & ~empty
    keep = ~empty & ~unlabelled
    points = _central_points(frame[keep]).to_crs(4326)
    out = gpd.GeoDataFrame(
        {"id": ids[keep].to_numpy(), "label": values[keep].astype("int8").to_numpy()},
        geometry=points.to_numpy(),
        crs=4326,
    )
    dropped = {
        k: int(v)
        for k, v in (("no geometry", empty.sum()), ("no or unknown label", unlabelled.sum()))
        if v
    }
    out.attrs["report"] = {"read": read, "kept": len(out), "dropped": dropped}
    return out


def join_labellers(
    sources: Mapping[str, str | Path | gpd.GeoDataFrame], *, id: str = "id"
) -> gpd.GeoDataFrame:
    """Several labellers' files of the same points, joined by ``id`` into one table.

    ``sources`` maps each labeller's name to a file (or GeoDataFrame) holding ``id``, a
    geometry and one label column. Files may be in different CRSs; the geometry of the
    first is kept (EPSG:4326) and so are its points: rows of other files with ids the
    first lacks are left out. Missing labels stay NaN.

    Examples
    --------
    >>> files = {"cn": "random_sample_cn.shp", "bm": "BM_Labels.shp"}
    >>> table = join_labellers(files)  # doctest: +SKIP
    """
    table = None
    for name, source in sources.items():
        frame = _read(source, "lon", "lat", None)
        columns = [c for c in frame.columns if c not in (id, frame.geometry.name)]
        if len(columns) != 1:
            raise XcropError(
                f"Labeller {name!r}: expected one label column beside {id!r}, found {columns}."
            )
        labels = _to_binary(frame[columns[0]], None).rename(name)
        part = gpd.GeoDataFrame(
            {id: frame[id].to_numpy(), name: labels.to_numpy()},
            geometry=frame.geometry.to_crs(4326).to_numpy(),
            crs=4326,
        )
        if table is None:
            table = part
        else:
            table = table.merge(part[[id, name]], on=id, how="left")
    assert table is not None
    return table


def crowd_vote(
    table: pd.DataFrame,
    labellers: Sequence[str] | None = None,
    *,
    id: str = "id",
    label: str = "label",
    threshold: float = 0.5,
) -> gpd.GeoDataFrame:
    """One label per point from several crowd labellers: mean of their labels > threshold.

    ``table`` is wide (one column per labeller, name them in ``labellers``) or long (one
    row per point and labeller, with ``id`` and ``label``; geometry of the first row). A
    mean exactly at the threshold counts as non-crop. Adds ``votes`` and ``agreement``
    (share of labellers agreeing with the result).
    """
    if labellers is None:
        long = table.assign(_v=_to_binary(table[label], None)).dropna(subset=["_v"])
        grouped = long.groupby(id, sort=False)
        mean, votes = grouped["_v"].mean(), grouped["_v"].size()
        first = grouped.head(1).set_index(id)
        geometry, crs = first.geometry.loc[mean.index], getattr(table, "crs", None)
    else:
        values = pd.concat([_to_binary(table[c], None) for c in labellers], axis=1)
        mean, votes = values.mean(axis=1), values.notna().sum(axis=1)
        mean.index = votes.index = table[id].to_numpy()
        geometry, crs = table.geometry.to_numpy(), table.crs
    decided = votes > 0
    result = (mean > threshold).astype("int8")
    agreement = np.where(result == 1, mean, 1 - mean)
    out = gpd.GeoDataFrame(
        {
            "id": mean.index,
            "label": result.to_numpy(),
            "votes": votes.to_numpy(),
            "agreement": agreement,
        },
        geometry=np.asarray(geometry),
        crs=crs,
    )
    out = out[decided.to_numpy()].reset_index(drop=True)
    out.attrs["report"] = {
        "read": len(mean),
        "kept": len(out),
        "dropped": {"no label": int((~decided).sum())} if (~decided).any() else {},
    }
    return out


def consensus(
    table: gpd.GeoDataFrame, labellers: Sequence[str], *, id: str = "id"
) -> gpd.GeoDataFrame:
    """Majority vote of several labellers; ties dropped and counted.

    Points without any label are dropped too; ``.attrs["report"]`` counts both.
    """
    values = pd.concat([_to_binary(table[c], None) for c in labellers], axis=1)
    crop, votes = values.sum(axis=1), values.notna().sum(axis=1)
    tie = (votes > 0) & (2 * crop == votes)
    none = votes == 0
    keep = ~tie & ~none
    out = gpd.GeoDataFrame(
        {
            "id": table[id].to_numpy()[keep],
            "label": (2 * crop > votes)[keep].astype("int8").to_numpy(),
            "votes": votes[keep].to_numpy(),
        },
        geometry=table.geometry.to_numpy()[keep],
        crs=table.crs,
    )
    dropped = {k: int(v) for k, v in (("tie", tie.sum()), ("no label", none.sum())) if v}
    out.attrs["report"] = {"read": len(table), "kept": len(out), "dropped": dropped}
    return out


def mark_local(labels: gpd.GeoDataFrame, region) -> gpd.GeoDataFrame:
    """Add ``is_local``: points inside ``region`` (a lon/lat bbox, a shapely geometry in
    EPSG:4326, or a GeoDataFrame/GeoSeries in any CRS)."""
    from shapely.geometry import box

    if isinstance(region, (gpd.GeoDataFrame, gpd.GeoSeries)):
        shape = region.to_crs(4326).union_all()
    elif isinstance(region, Sequence) and len(region) == 4:
        shape = box(*region)
    else:
        shape = region
    return labels.assign(is_local=labels.to_crs(4326).within(shape).to_numpy())
