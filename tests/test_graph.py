"""The composite's graph (xcrop.graph): a numpy reference, its shape, dask's query planning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
from dask.core import get_dependencies

import xcrop
from xcrop._cloudscore import SCORE_BANDS, quality_20m, to_20m
from xcrop._mosaic import choose, gather, period_index

from .test_composite import START, _cloudy_cube

ROOT = Path(__file__).resolve().parents[1]
KW = {"start": START, "periods": 2, "days": 15, "bands": ["B02", "B08"]}


def _reference(cube, start, periods: int, days: int, bands: list[str]):
    """The Schmitt composite without dask: each scene's quality whole
    (:func:`quality_20m`), then :func:`choose` and :func:`gather` over the series."""
    values = cube.values
    names = list(cube.band.values)
    times = cube.time.values
    period = period_index(times, start, periods, days)
    q = np.stack([
        quality_20m(
            to_20m({n: values[t, k] for k, n in enumerate(names)}),
            float(cube.sun_azimuth[t]), float(cube.sun_zenith[t]), use_scl=False,
        )
        for t in range(len(times))
    ])  # fmt: skip
    choice20, counts20 = choose(q, period, np.lexsort((times, np.zeros(len(times)))), periods)
    shape = values.shape[2:]
    choice = np.repeat(np.repeat(choice20, 2, 1), 2, 2)[:, : shape[0], : shape[1]]
    counts = np.repeat(np.repeat(counts20, 2, 1), 2, 2)[:, : shape[0], : shape[1]]
    picked = {b: gather(values[:, names.index(b)], choice) for b in {*bands, "B04", "B08"}}
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (picked["B08"] - picked["B04"]) / (picked["B08"] + picked["B04"])
    data = np.stack([*(picked[b] for b in bands), ndvi], axis=1)
    dates = times.astype("datetime64[ns]")[np.maximum(choice, 0)]
    dates[choice < 0] = np.datetime64("NaT")
    return data, counts, dates


@pytest.mark.parametrize("chunks", [{"y": 16, "x": 24}, {"y": 32, "x": 32}])
def test_the_composite_equals_a_numpy_reference_bit_for_bit(chunks):
    cube = _cloudy_cube()
    comp = xcrop.composite(cube.chunk({"time": 1, "band": 1, **chunks}), **KW)
    data, counts, dates = _reference(cube, **KW)
    np.testing.assert_array_equal(comp.data.values, data)
    np.testing.assert_array_equal(comp.counts.values, counts)
    np.testing.assert_array_equal(comp.dates.values, dates)
    assert np.isfinite(data).all() and (counts > 0).any() and (counts < 3).any()


def test_a_prepare_task_depends_on_its_score_bands_blocks_alone():
    """A prepare task reads its observation's and chunk's blocks of the score bands and of
    no other band: the bands only the pick gathers (B05, B06 here) are read when their
    period is picked, not all at once ahead of it and held."""
    cube = _cloudy_cube().chunk({"time": 1, "band": 1, "y": 32, "x": 32})
    extra = cube.sel(band=["B02", "B03"]).assign_coords(band=["B05", "B06"])
    wide = xr.concat([cube, extra], "band")
    comp = xcrop.composite(wide, **{**KW, "bands": ["B02", "B05", "B06", "B08"]})
    graph = dict(comp.data.data.__dask_graph__())
    prepares = [k for k in graph if isinstance(k, tuple) and k[0].startswith("xcrop-prepare")]
    picks = [k for k in graph if isinstance(k, tuple) and k[0].startswith("xcrop-pick")]
    assert len(prepares) == cube.sizes["time"] * 9  # one per observation and chunk
    bands = list(wide.band.values)
    score = {bands.index(b) for b in SCORE_BANDS}
    for key in prepares:
        _, t, _, i, j = key
        deps = get_dependencies(graph, key)
        assert {d[1:] for d in deps} == {(t, b, i, j) for b in score}, key
        assert len({d[0] for d in deps}) == 1  # the cube's blocks, no copy between
    gathered = {d[2] for k in picks for d in get_dependencies(graph, k) if len(d) == 5}
    assert {bands.index("B05"), bands.index("B06")} <= gathered  # read by the pick


_STAGES = """
import json, sys
import dask.array as da
import numpy as np
from functools import partial
sys.path.insert(0, {root!r})
from tests.test_composite import _cloudy_cube
from xcrop._cloudscore import finish
from xcrop._graph import (
    map_neighbourhood, pick_blocks, prepare_blocks, settle_blocks, period_blocks
)
cube = _cloudy_cube()
data = da.from_array(cube.values, chunks=(1, 1, 32, 24))
names = list(cube.band.values)
prepared = prepare_blocks(data, list(range(len(names))), names, "schmitt", False)
finisher = partial(finish, score="schmitt", max_height=1000.0)
q = map_neighbourhood(prepared, [((30, 10), (10, 40))] * 6, finisher, [(120.0, 40.0)] * 6)
picked = pick_blocks(q, data, [1, 4], [[0, 1, 2], [3, 4, 5]], (0, 1))
settled = settle_blocks(picked)
out = np.concatenate([
    period_blocks(picked, settled, 3).compute().ravel(),
    settled.compute().ravel().astype("float32"),
])
np.save({path!r}, out)
print(json.dumps({{"planning": da.array_expr_enabled(), "type": type(picked).__module__}}))
"""


def _run(script: str, planning: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "DASK_ARRAY__QUERY_PLANNING": str(planning), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip


def test_the_graph_runs_under_dasks_array_query_planning(tmp_path):
    """Every stage of xcrop.graph under ``array.query-planning`` (dask's array
    expressions) gives the legacy graph's result bit for bit."""
    results = {}
    for planning in (False, True):
        path = tmp_path / f"{planning}.npy"
        done = _run(_STAGES.format(root=str(ROOT), path=str(path)), planning)
        assert done.returncode == 0, done.stderr[-3000:]
        info = json.loads(done.stdout.strip().splitlines()[-1])
        if planning and not info["planning"]:
            pytest.skip(f"dask {dask.__version__} has no array query planning")
        assert info["planning"] is planning
        assert ("_array_expr" in info["type"]) is planning
        results[planning] = np.load(path)
    np.testing.assert_array_equal(results[True], results[False])


_COMPOSITE = """
import numpy as np, dask.array as da
print(np.asarray(da.ones(2)).dtype)
import sys
sys.path.insert(0, {root!r})
import xcrop
from tests.test_composite import START, _cloudy_cube
cube = _cloudy_cube().chunk({{"time": 1, "band": 1, "y": 32, "x": 32}})
comp = xcrop.composite(cube, start=START, periods=2, days=15, bands=["B02", "B08"])
print(float(np.nansum(comp.data.values)))
"""


def test_a_composite_under_dasks_array_query_planning():
    """The whole composite (xarray around the graph) under query planning: where dask's
    array expressions cannot yet stand in for its arrays in xarray, the reason."""
    done = _run(_COMPOSITE.format(root=str(ROOT)), True)
    lines = done.stdout.strip().splitlines()
    if lines and lines[0] == "object":  # np.asarray of a dask array: not its values
        pytest.skip(
            f"dask {dask.__version__}'s array-expression Array (array.query-planning) has "
            "no __array__ (np.asarray gives an object array of Arrays), so xarray's "
            "DataArray.values of a dask-backed cube holds Arrays, not numbers: "
            "composite() fails in reading the cube's coordinates, before xcrop.graph"
        )
    assert done.returncode == 0, done.stderr[-3000:]
    plain = xcrop.composite(_cloudy_cube().chunk({"time": 1, "band": 1, "y": 32, "x": 32}), **KW)
    assert float(lines[-1]) == float(np.nansum(plain.data.values))
