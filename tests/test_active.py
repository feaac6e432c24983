"""Where to label next: the most uncertain pixel of each cell, lazily or not."""

from __future__ import annotations

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401
import xarray as xr

from xcrop._active import cell_argmin, suggest_labels


def prob_map(values: np.ndarray) -> xr.DataArray:
    ny, nx = values.shape
    coords = {"y": 1_000_000 - 10 * np.arange(ny) - 5.0, "x": 300_000 + 10 * np.arange(nx) + 5.0}
    return xr.DataArray(values, dims=("y", "x"), coords=coords).rio.write_crs(32631)


def test_cell_argmin_known_answer():
    rows, cols, values = cell_argmin(np.arange(16, dtype="float32").reshape(4, 4), 2)
    assert rows.tolist() == [0, 0, 2, 2] and cols.tolist() == [0, 2, 0, 2]
    assert values.tolist() == [0.0, 2.0, 8.0, 10.0]


def test_one_point_per_cell_most_uncertain_first_and_each_chunk_read_once():
    values = np.full((40, 60), 0.9, "float32")
    values[5, 7], values[25, 47], values[33, 2] = 0.45, 0.52, 0.2  # one per 20 px cell
    values[0:20, 20:40] = np.nan  # a cell without data gives no point
    eager = suggest_labels(prob_map(values), 3, spacing=20)
    assert eager.probability.round(2).tolist() == [0.52, 0.45, 0.2]
    assert eager.crs.to_epsg() == 4326
    calls = []

    def counted(block):
        if block.size:  # not dask's meta probe
            calls.append(block.shape)
        return block

    lazy_data = da.from_array(values, chunks=20).map_blocks(counted, dtype="float32")
    lazy = suggest_labels(prob_map(values).copy(data=lazy_data), 3, spacing=20)
    assert len(calls) == 6  # the map is computed once, not again for the values
    np.testing.assert_array_equal(lazy.probability, eager.probability)
    np.testing.assert_array_equal(lazy.geometry.x, eager.geometry.x)


def test_suggestions_labelled_read_back_like_any_labels(tmp_path):
    """The loop closes: suggestions carry an empty label column; a labeller fills it and
    read_labels gives the points back, at the same places, ready to sample."""
    import xcrop

    values = np.full((40, 60), 0.9, "float32")
    values[5, 7], values[25, 47], values[33, 2] = 0.45, 0.52, 0.2
    points = suggest_labels(prob_map(values), 3, spacing=20)
    assert points.id.tolist() == [0, 1, 2] and points.label.isna().all()
    points["label"] = [1, 0, 1]  # what the labeller saw
    points.to_file(tmp_path / "next.geojson", driver="GeoJSON")
    back = xcrop.read_labels(tmp_path / "next.geojson")
    assert back.label.tolist() == [1, 0, 1] and back.id.tolist() == [0, 1, 2]
    np.testing.assert_allclose(back.geometry.x, points.geometry.x)
