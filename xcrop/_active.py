"""Where to label next: the places a probability map is least certain about.

After a first model, new labels help most where the map hesitates (probability near 0.5).
The suggestions carry an empty ``label`` column: labelled, they read back with
``read_labels`` like any labels, join the training samples, and the map is predicted again
(the demo runs one such round).
``suggest_labels`` picks, in every ``spacing`` x ``spacing`` pixel cell, the pixel closest
to 0.5, then the ``n`` most uncertain of those, so suggestions are spread out rather than
clustered on one field edge. Lazy maps are reduced chunk by chunk.
"""

from __future__ import annotations

import dask.array as da
import geopandas as gpd
import numpy as np
import xarray as xr

from .errors import CRSError, XcropInputError

__all__ = ["suggest_labels", "cell_argmin"]


def cell_argmin(values: np.ndarray, spacing: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and value of the minimum of each ``spacing`` x ``spacing`` cell (NaN
    ignored; cells without a finite value are left out).

    Examples
    --------
    >>> v = np.arange(16, dtype="float32").reshape(4, 4)
    >>> cell_argmin(v, 2)[2].tolist()
    [0.0, 2.0, 8.0, 10.0]
    """
    ny, nx = values.shape
    py, px = -ny % spacing, -nx % spacing
    padded = np.pad(values.astype("float64"), ((0, py), (0, px)), constant_values=np.nan)
    cy, cx = padded.shape[0] // spacing, padded.shape[1] // spacing
    cells = padded.reshape(cy, spacing, cx, spacing).transpose(0, 2, 1, 3).reshape(cy, cx, -1)
    finite = np.isfinite(cells).any(axis=2)
    flat = np.where(np.isfinite(cells), cells, np.inf).argmin(axis=2)
    rows = np.arange(cy)[:, None] * spacing + flat // spacing
    cols = np.arange(cx)[None, :] * spacing + flat % spacing
    best = np.take_along_axis(cells, flat[..., None], axis=2)[..., 0]
    return rows[finite], cols[finite], best[finite]


def suggest_labels(prob: xr.DataArray, n: int = 50, *, spacing: int = 30) -> gpd.GeoDataFrame:
    """The ``n`` most uncertain places of a probability map, at most one per cell.

    Parameters
    ----------
    prob
        Crop probability (y, x) with a CRS, e.g. from ``comp.predict(model)``.
    n
        How many points.
    spacing
        Cell size in pixels: suggestions are at least a cell apart (about).

    Returns
    -------
    geopandas.GeoDataFrame
        Points in EPSG:4326 with ``id``, ``probability``, ``uncertainty`` (1 at p = 0.5, 0
        at p = 0 or 1) and an empty ``label``, most uncertain first; write with
        ``.to_file("next.geojson")`` for QGIS, fill ``label`` (1 crop, 0 non-crop), read it
        back with ``xcrop.read_labels(path)``, sample and add it to the training samples.

    Examples
    --------
    >>> points = suggest_labels(prob, 100)  # doctest: +SKIP
    >>> points.to_file("label_next.geojson")  # doctest: +SKIP
    """
    if prob.ndim != 2 or prob.rio.crs is None:
        raise CRSError("suggest_labels needs a (y, x) probability map with a CRS.")
    if n < 1 or spacing < 1:
        raise XcropInputError("n and spacing must be at least 1.")
    data = prob.transpose("y", "x").data
    if isinstance(data, da.Array):  # chunks aligned to the cells, reduced per chunk, once
        size = max(spacing, (max(data.chunksize) // spacing) * spacing)
        data = data.rechunk(size)
        parts = data.map_blocks(_block_candidates, spacing, dtype=object, chunks=(1, 1))
        found = parts.compute().ravel()
        starts = [np.cumsum((0, *c))[:-1] for c in data.chunks]
        grid = np.array(list(np.ndindex(*data.numblocks)))
        blocks = [(r + starts[0][i], c + starts[1][j], v, p)
                  for (i, j), (r, c, v, p) in zip(grid, found, strict=True)]  # fmt: skip
        rows, cols, vals, probs = (np.concatenate(a) for a in zip(*blocks, strict=True))
    else:
        rows, cols, vals, probs = _candidates(np.asarray(data), spacing)
    order = np.argsort(vals, kind="stable")[:n]
    rows, cols, vals, probs = rows[order], cols[order], vals[order], probs[order]
    x, y = prob["x"].values[cols], prob["y"].values[rows]
    points = gpd.GeoDataFrame(
        {
            "id": np.arange(len(rows)),
            "probability": probs.astype("float64"),
            "uncertainty": 1 - 2 * vals,
            "label": np.full(len(rows), np.nan),
        },
        geometry=gpd.points_from_xy(x, y),
        crs=prob.rio.crs,
    )
    return points.to_crs(4326)


def _candidates(values: np.ndarray, spacing: int):
    """Per cell: row, column, distance to 0.5 and probability of the most uncertain pixel."""
    rows, cols, distance = cell_argmin(np.abs(values - 0.5), spacing)
    return rows, cols, distance, values[rows, cols]


def _block_candidates(block: np.ndarray, spacing: int) -> np.ndarray:
    out = np.empty((1, 1), dtype=object)
    out[0, 0] = _candidates(block, spacing)
    return out
