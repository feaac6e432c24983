"""Training tensors from a composite at labelled points: the pixel nearest each point.

``sample(composite, labels)`` returns :class:`Samples`: ``X`` (N, T, F) float32, ``y``,
``is_local``, ``ids``, the band names, the valid-observation counts and, optionally, each
sample's group (the field or place it belongs to). Points outside
the composite or on pixels without data are excluded and reported, never kept as zeros.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from ._atomic import replacing
from ._cube import composite_parts
from .errors import XcropInputError

__all__ = ["Samples", "sample", "pixel_index", "pixel_of", "values_at"]


@dataclass(frozen=True)
class Samples:
    """Labelled time series, ready for training.

    Attributes
    ----------
    X
        float32 (N, T, F): T periods, F features in ``bands`` order.
    y
        int8 (N,): 1 crop, 0 non-crop.
    is_local
        bool (N,): from the target region (True) or global (False).
    ids
        (N,) the labels' ids.
    bands
        Feature names, e.g. ``("B02", ..., "NDVI")``.
    counts
        uint8 (N, T): usable observations behind each period's value (0: filled).
    report
        What was read, kept and dropped, and why.
    groups
        (N,) the unit each sample belongs to (a field, a parcel, a location cell), or
        None: samples of one group are never split between training and validation by
        :func:`xcrop.train`, since neighbouring pixels of one field teach nothing new
        about the others.
    """

    X: np.ndarray
    y: np.ndarray
    is_local: np.ndarray
    ids: np.ndarray
    bands: tuple[str, ...]
    counts: np.ndarray
    report: dict = field(default_factory=dict, compare=False)
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.groups is not None and len(self.groups) != len(self.y):
            raise XcropInputError(
                f"groups has {len(self.groups)} values for {len(self.y)} samples; give one "
                "group per sample."
            )

    def __len__(self) -> int:
        return len(self.y)

    def concat(self, *others: Samples) -> Samples:
        """These samples followed by others with the same bands (e.g. local + global).

        Groups are kept when any part has them; a part without groups gives each of its
        samples a group of its own (``"#<part>:<row>"``)."""
        parts = (self, *others)
        if any(p.bands != self.bands for p in parts):
            raise XcropInputError("Samples with different bands cannot be concatenated.")
        groups = None
        if any(p.groups is not None for p in parts):
            rows = (np.arange(len(p)).astype(str) for p in parts)
            own = (np.char.add(f"#{k}:", r) for k, r in enumerate(rows))
            groups = np.concatenate(
                [p.groups if p.groups is not None else o for p, o in zip(parts, own, strict=True)]
            )
        return Samples(
            np.concatenate([p.X for p in parts]),
            np.concatenate([p.y for p in parts]),
            np.concatenate([p.is_local for p in parts]),
            np.concatenate([p.ids for p in parts]),
            self.bands,
            np.concatenate([p.counts for p in parts]),
            {"parts": [p.report for p in parts]},
            groups,
        )

    def to_torch(self):
        """A ``torch.utils.data.TensorDataset`` of ``(X, y, is_local)`` (float32, float32,
        bool), for a ``DataLoader``. Needs the ``ml`` extra (PyTorch)."""
        import torch
        from torch.utils.data import TensorDataset

        return TensorDataset(
            torch.from_numpy(np.ascontiguousarray(self.X, dtype="float32")),
            torch.from_numpy(self.y.astype("float32")),
            torch.from_numpy(self.is_local.astype(bool)),
        )

    def to_pandas(self) -> pd.DataFrame:
        """One row per sample: id, label, is_local, group (when there are groups), and
        ``<band>_<period>`` columns."""
        n, t, f = self.X.shape
        columns = [f"{b}_{p:02d}" for p in range(t) for b in self.bands]
        frame = pd.DataFrame(self.X.reshape(n, t * f), columns=columns)
        frame = frame.assign(id=self.ids, label=self.y, is_local=self.is_local)
        return frame if self.groups is None else frame.assign(group=self.groups)

    def save(self, path: str | Path) -> Path:
        """Save to a ``.npz`` file (no pickles; the report as JSON); read back with
        :meth:`load`. The file is written under a temporary name and renamed when
        complete, so a failed save leaves an older file as it was."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        with replacing(path, "the samples") as tmp, open(tmp, "wb") as f:
            arrays: dict[str, Any] = {
                "X": self.X,
                "y": self.y,
                "is_local": self.is_local,
                "ids": _plain(self.ids),
                "bands": np.array(self.bands),
                "counts": self.counts,
                "report": np.array(json.dumps(self.report, default=str)),
            }
            if self.groups is not None:
                arrays["groups"] = _plain(self.groups)
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Samples:
        """Samples saved with :meth:`save`."""
        with np.load(path, allow_pickle=False) as d:
            report = json.loads(str(d["report"])) if "report" in d.files else {}
            return cls(
                d["X"], d["y"], d["is_local"], d["ids"], tuple(d["bands"].tolist()), d["counts"],
                report, d["groups"] if "groups" in d.files else None,
            )  # fmt: skip


def _plain(a: np.ndarray) -> np.ndarray:
    """An array ``np.savez`` stores without pickles: numbers as they are, others as text."""
    a = np.asarray(a)
    return a if a.dtype.kind in "biuU" else a.astype(str)


def pixel_index(da: xr.DataArray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the pixel containing each (x, y) in the array's CRS (-1: outside).

    A point on the edge between two pixels belongs to the one to its east/south
    (pixels are half-open intervals ``[left, right)`` x ``(bottom, top]``). An array one
    pixel high or wide has square pixels (as xcrop's grids): its other axis, or the
    transform written in its ``spatial_ref``, gives the size.
    """
    return pixel_of(_transform(da), (da.sizes["y"], da.sizes["x"]), x, y)


def values_at(da: xr.DataArray, points: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Values of a (y, x) DataArray with a CRS at the pixels that hold ``points`` (any CRS),
    and whether each point is on it: float64 (N,), NaN off the array; bool (N,).

    Examples
    --------
    >>> values, inside = values_at(prob, test_points)  # doctest: +SKIP
    """
    xy = points.to_crs(da.rio.crs).geometry
    rows, cols = pixel_index(da, xy.x.to_numpy(), xy.y.to_numpy())
    inside = rows >= 0
    out = np.full(len(points), np.nan)
    if inside.any():
        sel = {"y": xr.DataArray(rows[inside], dims="n"), "x": xr.DataArray(cols[inside], dims="n")}
        out[inside] = da.transpose("y", "x").isel(**sel).values
    return out, inside


def _transform(da: xr.DataArray):
    """The array's affine transform; rioxarray cannot infer it along an axis of one pixel
    (it falls back to the identity, which puts every point outside)."""
    from affine import Affine

    ny, nx = da.sizes["y"], da.sizes["x"]
    if ny > 1 and nx > 1:
        return da.rio.transform()
    stored = da.rio.transform(recalc=False)
    if stored != Affine.identity():
        return stored
    if ny == nx == 1:
        raise XcropInputError(
            "A one-pixel array has no pixel size; write its transform first "
            "(da.rio.write_transform(...))."
        )
    xs, ys = da.x.values.astype("float64"), da.y.values.astype("float64")
    res = abs(xs[1] - xs[0]) if nx > 1 else abs(ys[1] - ys[0])
    dx = res if nx == 1 else xs[1] - xs[0]
    dy = -res if ny == 1 else ys[1] - ys[0]
    return Affine(dx, 0.0, xs[0] - dx / 2, 0.0, dy, ys[0] - dy / 2)


def pixel_of(
    transform, shape: tuple[int, int], x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pixel_index` for a grid given by its affine ``transform`` and (height, width)
    ``shape``, e.g. a rasterio dataset's; rotated grids go through the inverse transform."""
    x, y = np.asarray(x, "float64"), np.asarray(y, "float64")
    finite = np.isfinite(x) & np.isfinite(y)  # NaN / inf points are outside every grid
    x, y = np.where(finite, x, 0.0), np.where(finite, y, 0.0)
    if transform.b == 0 and transform.d == 0:  # north-up: exact at pixel edges
        col = np.floor((x - transform.c) / transform.a).astype("int64")
        row = np.floor((y - transform.f) / transform.e).astype("int64")
    else:
        inv = ~transform
        col = np.floor(inv.a * x + inv.b * y + inv.c).astype("int64")
        row = np.floor(inv.d * x + inv.e * y + inv.f).astype("int64")
    inside = finite & (row >= 0) & (row < shape[0]) & (col >= 0) & (col < shape[1])
    return np.where(inside, row, -1), np.where(inside, col, -1)


@dataclass(frozen=True)
class Picked:
    """The lazy values at the points that fall inside a composite, and what became of
    the others: :func:`sample` in two steps, so several picks compute together."""

    values: xr.DataArray  # (n, time, band), lazy
    counts: xr.DataArray | None  # (n, time)
    labels: gpd.GeoDataFrame
    valid: np.ndarray
    inside: np.ndarray

    def arrays(self) -> list[xr.DataArray]:
        """What to compute: the values, and the counts when there are any."""
        return [self.values] if self.counts is None else [self.values, self.counts]

    def samples(
        self,
        computed: Sequence[xr.DataArray],
        *,
        label: str,
        id: str,
        local: bool | None,
        group: str | None = None,
    ) -> Samples:
        """The samples, given :meth:`arrays` computed (``label``, ``id``, ``group``:
        columns its callers have checked with :func:`check_columns` before any work)."""
        labels, valid, inside = self.labels, self.valid, self.inside
        values = np.asarray(computed[0].values, "float32")
        complete = np.isfinite(values).all(axis=(1, 2))
        keep = np.flatnonzero(inside)[complete]
        if self.counts is not None:
            n_counts = np.asarray(computed[1].values)[complete].astype("uint8")
        else:
            n_counts = np.full((len(keep), values.shape[1]), 255, "uint8")
        if local is not None:
            is_local = np.full(len(keep), bool(local))
        elif "is_local" in labels:
            is_local = labels["is_local"].to_numpy(bool)[keep]
        else:
            is_local = np.ones(len(keep), bool)
        dropped = {
            "invalid coordinates": int((~valid).sum()),
            "outside the composite": int((~inside & valid).sum()),
            "no data at the pixel": int((~complete).sum()),
        }
        report = {
            "read": len(labels),
            "kept": len(keep),
            "dropped": {k: v for k, v in dropped.items() if v},
        }
        return Samples(
            X=values[complete],
            y=labels[label].to_numpy()[keep].astype("int8"),
            is_local=is_local,
            ids=labels[id].to_numpy()[keep],
            bands=tuple(str(b) for b in self.values.band.values),
            counts=n_counts,
            report=report,
            groups=None if group is None else labels[group].to_numpy()[keep],
        )


def check_columns(labels: pd.DataFrame, **columns: str | None) -> None:
    """Refuse, before any work, a column the labels do not have: ``columns`` maps each
    argument (``label=``, ``id=``, ``group=``) to the column it names (None: none).

    Examples
    --------
    >>> check_columns(pd.DataFrame({"label": [1], "pid": [7]}), label="label", id="id")
    Traceback (most recent call last):
    ...
    xcrop.errors.XcropInputError: No column 'id' among ['label', 'pid']; give id= one of them.
    """
    for arg, column in columns.items():
        if column is not None and column not in labels:
            hint = " (the field or place of each label) or None" if arg == "group" else ""
            raise XcropInputError(
                f"No column {column!r} among {list(labels.columns)}; give {arg}= one of them{hint}."
            )


def pick_points(composite, labels: gpd.GeoDataFrame) -> Picked:
    """The composite at the pixel of each point, lazily: a dask-backed composite then
    computes only the chunks that hold points."""
    data, counts = composite_parts(composite)
    if data.rio.crs is None:
        raise XcropInputError("The composite has no CRS; write one with .rio.write_crs(...).")
    valid = np.isfinite(labels.geometry.x.to_numpy()) & np.isfinite(labels.geometry.y.to_numpy())
    points = labels.to_crs(data.rio.crs)
    rows, cols = pixel_index(data, points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
    inside = (rows >= 0) & valid
    sel = {"y": xr.DataArray(rows[inside], dims="n"), "x": xr.DataArray(cols[inside], dims="n")}
    values = data.isel(sel).transpose("n", "time", "band")
    picked_counts = counts.isel(sel).transpose("n", "time") if counts is not None else None
    return Picked(values, picked_counts, labels, valid, inside)


def sample(
    composite,
    labels: gpd.GeoDataFrame,
    *,
    label: str = "label",
    id: str = "id",
    local: bool | None = None,
    group: str | None = None,
) -> Samples:
    """The composite's series at the pixel nearest each labelled point.

    Parameters
    ----------
    composite
        A ``Composite`` or a composite DataArray (time, band, y, x) with a CRS.
    labels
        Points (any CRS) with ``label`` (0/1) and ``id`` columns, e.g. from
        ``xcrop.read_labels``; an ``is_local`` column is used when present.
    local
        Mark every sample as local (True) or global (False), overriding ``is_local``.
    group
        A column naming the unit each label belongs to (a field or parcel id, a location
        cell), kept as :attr:`Samples.groups`: :func:`xcrop.train` then validates on
        whole groups, so that early stopping and calibration are judged on fields the
        model has not seen. Give it whenever several labels come from one field.

    Examples
    --------
    >>> samples = comp.sample(read_labels("crop.shp", label=1))  # doctest: +SKIP
    >>> samples.X.shape  # doctest: +SKIP
    (688, 12, 12)
    """
    check_columns(labels, label=label, id=id, group=group)  # before the composite is read
    picked = pick_points(composite, labels)
    computed = dask.compute(*picked.arrays())  # data and counts in one pass
    return picked.samples(computed, label=label, id=id, local=local, group=group)
