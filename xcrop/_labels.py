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

from .errors import XcropInputError

__all__ = [
    "TEXT_LABELS",
    "read_labels",
    "concat_labels",
    "join_labellers",
    "crowd_vote",
    "consensus",
    "mark_local",
]

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


def to_binary(values: pd.Series, mapping: Mapping[str, int] | None) -> pd.Series:
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
    if not len(geoms):  # nothing labelled: no centroid to take (nor a warning about degrees)
        return geoms
    if geoms.crs is not None and geoms.crs.is_geographic:
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
            raise XcropInputError(
                f"A table of labels needs coordinates: columns {lon!r}/{lat!r} (pass lon=, "
                f"lat= for other names) or a WKT 'sample_geom'; it has {list(source.columns)}."
            )
        return gpd.GeoDataFrame(source, geometry=geometry, crs=crs or "EPSG:4326")
    path = Path(source)
    if not path.exists():
        raise XcropInputError(
            f"No label file at {path}; give a shapefile, GeoPackage, GeoJSON or CSV."
        )
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
    long: bool = False,
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
    long
        True for a long table of several labellers' votes (one row per point and
        labeller, as Collect Earth Online exports crowd labels): rows that share an id or
        a location are votes for :func:`crowd_vote`, kept as they are.

    Returns
    -------
    geopandas.GeoDataFrame
        With ``.attrs["report"]``: rows read, kept, and dropped per reason (``read`` is
        ``kept`` plus the dropped counts).

    Notes
    -----
    Rows without a geometry, without a known label, or with coordinates that are not
    finite or not on the globe (``"invalid coordinates"``) are dropped. Unless ``long``,
    rows that share an id or a location (the central point to 1e-7 degrees, about 1 cm)
    are one point: when they agree on the label the first row is kept (with its
    location) and the others are counted as ``"duplicate"``; when they disagree every
    row of that point is dropped and counted as ``"conflicting labels"``, since neither
    label can be trusted.

    Examples
    --------
    >>> path = "togo-labels/crop_merged_v2/crop_merged_v2.shp"
    >>> crop = read_labels(path, label=1)  # doctest: +SKIP
    >>> crop.attrs["report"]  # doctest: +SKIP
    {'read': 688, 'kept': 688, 'dropped': {}}
    """
    frame = _read(source, lon, lat, crs)
    if frame.crs is None:
        raise XcropInputError("The labels have no CRS; pass crs='EPSG:4326' (or theirs).")
    read = len(frame)
    if isinstance(label, str):
        if label not in frame:
            raise XcropInputError(f"No label column {label!r}; columns are {list(frame.columns)}.")
        values = to_binary(frame[label], mapping)
    else:
        values = pd.Series(float(label), index=frame.index)
    if id and id not in frame:
        raise XcropInputError(f"No id column {id!r}; columns are {list(frame.columns)}.")
    ids = frame[id] if id else pd.Series(np.arange(read), index=frame.index)
    empty = frame.geometry.is_empty | frame.geometry.isna()
    invalid = ~empty & ~_valid_coordinates(frame.geometry)
    unlabelled = values.isna() & ~empty & ~invalid
    keep = ~empty & ~invalid & ~unlabelled
    points = _central_points(frame[keep]).to_crs(4326)
    out = gpd.GeoDataFrame(
        {"id": ids[keep].to_numpy(), "label": values[keep].astype("int8").to_numpy()},
        geometry=points.to_numpy(),
        crs=4326,
    )
    counts = {
        "no geometry": int(empty.sum()),
        "invalid coordinates": int(invalid.sum()),
        "no or unknown label": int(unlabelled.sum()),
    }
    if not long:
        out, repeated = _drop_repeated(out)
        counts.update(repeated)
    out.attrs["report"] = {
        "read": read,
        "kept": len(out),
        "dropped": {k: v for k, v in counts.items() if v},
    }
    return out


def _valid_coordinates(geoms: gpd.GeoSeries) -> np.ndarray:
    """True where every coordinate is finite and, in EPSG:4326, on the globe."""
    import shapely

    coords, index = shapely.get_coordinates(geoms.to_numpy(), return_index=True)
    finite = np.ones(len(geoms), bool)
    np.logical_and.at(finite, index, np.isfinite(coords).all(axis=1))
    valid = finite.copy()
    if finite.any():
        lonlat, where = shapely.get_coordinates(
            geoms[finite].to_crs(4326).to_numpy(), return_index=True
        )
        inside = np.isfinite(lonlat).all(axis=1)
        inside &= (np.abs(lonlat[:, 0]) <= 180) & (np.abs(lonlat[:, 1]) <= 90)
        ok = np.ones(int(finite.sum()), bool)
        np.logical_and.at(ok, where, inside)
        valid[finite] = ok
    return valid


def _drop_repeated(points: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, dict[str, int]]:
    """Rows that share an id or a location (1e-7 degrees) as one point: repeats with one
    label keep their first row (``"duplicate"``), with several they are all dropped
    (``"conflicting labels"``). ``points`` is in EPSG:4326."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(points)
    if n == 0:
        return points, {}
    id_code = pd.factorize(points["id"])[0]
    place = pd.MultiIndex.from_arrays([points.geometry.x.round(7), points.geometry.y.round(7)])
    place_code = pd.factorize(place)[0]
    # a graph of rows, ids and places: a point is a connected component
    k = n + id_code.max() + 1
    rows = np.arange(n)
    edges = coo_matrix(
        (np.ones(2 * n), (np.r_[rows, rows], np.r_[n + id_code, k + place_code])),
        shape=(k + place_code.max() + 1,) * 2,
    )
    component = connected_components(edges, directed=False)[1][:n]
    frame = pd.DataFrame({"c": component, "label": points["label"].to_numpy()})
    agree = frame.groupby("c")["label"].nunique() == 1
    conflict = ~agree.loc[component].to_numpy()
    duplicate = ~conflict & pd.Series(component).duplicated().to_numpy()
    keep = ~conflict & ~duplicate
    out = points[keep].reset_index(drop=True)
    out.attrs = dict(points.attrs)
    return out, {"duplicate": int(duplicate.sum()), "conflicting labels": int(conflict.sum())}


def concat_labels(parts: Sequence[gpd.GeoDataFrame], *, renumber: bool = False) -> gpd.GeoDataFrame:
    """Label tables from :func:`read_labels` as one (e.g. a crop file and a non-crop file).

    Parameters
    ----------
    parts
        Outputs of :func:`read_labels`, in EPSG:4326; other columns (a ``year``) are kept.
    renumber
        For parts read without ``id=`` (ids are row numbers): number the rows of all
        parts one after the other (part 2's first row follows part 1's last row read), so
        that ids stay unique. Otherwise the same id in two parts is the same point.

    Returns
    -------
    geopandas.GeoDataFrame
        The rows of all parts; repeats between parts follow :func:`read_labels`' rule
        (agreeing repeats keep their first row, ``"duplicate"``; disagreeing ones are all
        dropped, ``"conflicting labels"``, e.g. one polygon in both a crop and a non-crop
        file). ``.attrs["report"]`` adds up the parts' reports and these drops.

    Examples
    --------
    >>> crop = read_labels("crop.shp", label=1)  # doctest: +SKIP
    >>> non = read_labels("noncrop.shp", label=0)  # doctest: +SKIP
    >>> labels = concat_labels([crop, non], renumber=True)  # doctest: +SKIP
    """
    if not parts:
        raise XcropInputError("concat_labels needs at least one table of labels.")
    reports = [p.attrs.get("report", {"read": len(p), "dropped": {}}) for p in parts]
    if renumber:
        offsets = np.cumsum([0, *(r["read"] for r in reports[:-1])])
        parts = [p.assign(id=p["id"].to_numpy() + o) for p, o in zip(parts, offsets, strict=True)]
    table = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326)
    out, repeated = _drop_repeated(table)
    dropped: dict[str, int] = {}
    for counts in (*(r.get("dropped", {}) for r in reports), repeated):
        for reason, count in counts.items():
            dropped[reason] = dropped.get(reason, 0) + count
    out.attrs = {
        "report": {
            "read": sum(r["read"] for r in reports),
            "kept": len(out),
            "dropped": {k: v for k, v in dropped.items() if v},
        }
    }
    return out


def join_labellers(
    sources: Mapping[str, str | Path | gpd.GeoDataFrame], *, id: str = "id"
) -> gpd.GeoDataFrame:
    """Several labellers' files of the same points, joined by ``id`` into one table.

    Parameters
    ----------
    sources
        Each labeller's name and file (or GeoDataFrame) holding ``id``, a geometry and
        one label column. Files may be in different CRSs and hold different points.
    id
        The id column shared by the files.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per id found in any file (an outer join), sorted by id: ``id``, one
        label column per labeller (in the order given, NaN where that labeller did not
        label the point) and the geometry in EPSG:4326, from the first labeller in name
        order who labelled the point. The result does not depend on the order of
        ``sources``. Ids that no labeller labelled (rows with an empty label) are
        dropped and counted in ``.attrs["report"]``.

    Examples
    --------
    >>> files = {"cn": "random_sample_cn.shp", "hrk": "random_sample_test.shp"}
    >>> table = join_labellers(files)  # doctest: +SKIP
    >>> table.attrs["report"]  # doctest: +SKIP
    {'read': 1000, 'kept': 355, 'dropped': {'no label': 645}}
    """
    if not sources:
        raise XcropInputError("join_labellers needs at least one labeller's file.")
    parts = {name: _labeller(name, source, id) for name, source in sources.items()}
    labels = pd.concat([part[name] for name, part in parts.items()], axis=1).sort_index()
    geometry = gpd.GeoSeries(index=labels.index, crs=4326)
    for name in sorted(parts, key=str):  # labelled rows first, then any row
        geometry = geometry.fillna(parts[name].geometry[parts[name][name].notna()])
    for name in sorted(parts, key=str):
        geometry = geometry.fillna(parts[name].geometry)
    labelled = labels.notna().any(axis=1)
    table = gpd.GeoDataFrame(
        labels[labelled].rename_axis(id).reset_index(),
        geometry=geometry[labelled].to_numpy(),
        crs=4326,
    )
    unlabelled = int((~labelled).sum())
    table.attrs["report"] = {
        "read": len(labels),
        "kept": len(table),
        "dropped": {"no label": unlabelled} if unlabelled else {},
    }
    return table


def _labeller(name: str, source, id: str) -> gpd.GeoDataFrame:
    """One labeller's file as labels (column ``name``) and geometry, indexed by id."""
    frame = _read(source, "lon", "lat", None)
    if id not in frame:
        raise XcropInputError(
            f"Labeller {name!r}: no id column {id!r} (pass id=); columns are {list(frame.columns)}."
        )
    columns = [c for c in frame.columns if c not in (id, frame.geometry.name)]
    if len(columns) != 1:
        raise XcropInputError(
            f"Labeller {name!r}: expected one label column beside {id!r}, found {columns}."
        )
    repeated = frame[id][frame[id].duplicated()].unique()
    if len(repeated):
        raise XcropInputError(
            f"Labeller {name!r}: ids {sorted(repeated)[:5]} appear more than once; each id "
            "must be one point (drop the repeated rows from that file)."
        )
    return gpd.GeoDataFrame(
        {name: to_binary(frame[columns[0]], None).to_numpy()},
        geometry=frame.geometry.to_crs(4326).to_numpy(),
        index=pd.Index(frame[id].to_numpy(), name=id),
        crs=4326,
    )


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
        long = table.assign(_v=to_binary(table[label], None)).dropna(subset=["_v"])
        grouped = long.groupby(id, sort=False)
        mean, votes = grouped["_v"].mean(), grouped["_v"].size()
        first = grouped.head(1).set_index(id)
        geometry, crs = first.geometry.loc[mean.index], getattr(table, "crs", None)
    else:
        values = pd.concat([to_binary(table[c], None) for c in labellers], axis=1)
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
    table: gpd.GeoDataFrame,
    labellers: Sequence[str],
    *,
    id: str = "id",
    quorum: int | None = None,
) -> gpd.GeoDataFrame:
    """Majority vote of several labellers on the points that enough of them labelled.

    Parameters
    ----------
    table
        One row per point, one label column per labeller (the output of
        :func:`join_labellers`).
    labellers
        The label columns that vote.
    id
        The id column.
    quorum
        The fewest labels a point needs to be voted on; default every labeller named
        (the paper's test set: points all four labelled).

    Returns
    -------
    geopandas.GeoDataFrame
        ``id``, ``label``, ``votes`` and the geometry of the points kept. Points without
        any label (``"no label"``), with fewer than ``quorum`` (``"below quorum"``) and
        ties (``"tie"``) are dropped and counted in ``.attrs["report"]``.

    Examples
    --------
    >>> table = join_labellers(files)  # doctest: +SKIP
    >>> consensus(table, ["cn", "bm", "bb", "hrk"]).attrs["report"]  # doctest: +SKIP
    {'read': 355, 'kept': 306, 'dropped': {'below quorum': 4, 'tie': 45}}
    """
    labellers = list(labellers)
    quorum = len(labellers) if quorum is None else quorum
    if not 1 <= quorum <= len(labellers):
        raise XcropInputError(
            f"quorum={quorum}: give 1..{len(labellers)} (the number of labellers named)."
        )
    values = pd.concat([to_binary(table[c], None) for c in labellers], axis=1)
    crop, votes = values.sum(axis=1), values.notna().sum(axis=1)
    none = votes == 0
    short = ~none & (votes < quorum)
    tie = ~none & ~short & (2 * crop == votes)
    keep = (~tie & ~none & ~short).to_numpy()
    out = gpd.GeoDataFrame(
        {
            "id": table[id].to_numpy()[keep],
            "label": (2 * crop > votes)[keep].astype("int8").to_numpy(),
            "votes": votes[keep].to_numpy(),
        },
        geometry=table.geometry.to_numpy()[keep],
        crs=table.crs,
    )
    counts = (("no label", none.sum()), ("below quorum", short.sum()), ("tie", tie.sum()))
    dropped = {k: int(v) for k, v in counts if v}
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
