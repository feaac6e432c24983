"""Zarr and COG outputs: real stores on disk, the threaded scheduler, a process-based
dask.distributed cluster, and a writer killed with SIGKILL then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr

import xcrop
from xcrop._io import RECORD, open_probability, to_cog, to_zarr
from xcrop.errors import CRSError, XcropError

ROOT = Path(__file__).resolve().parents[1]
SHAPE, CHUNKS = (96, 128), (24, 32)  # 4 x 4 = 16 blocks
#: (row, col) of the first pixel of every block the test field computed, in this process.
CALLS: list[tuple[int, int]] = []


def field(delay: float = 0.0, block_info=None) -> np.ndarray:
    """A smooth probability field with scattered NaNs and one all-NaN block (the first)."""
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    CALLS.append((y0, x0))
    time.sleep(delay)
    r, c = np.mgrid[y0:y1, x0:x1]
    p = (0.5 + 0.5 * np.sin(r / 7.0) * np.cos(c / 11.0)).astype("float32")
    p[((3 * r + c) % 17 == 0) | ((r < CHUNKS[0]) & (c < CHUNKS[1]))] = np.nan
    return p


def make_prob(shape=SHAPE, chunks=CHUNKS, delay: float = 0.0) -> xr.DataArray:
    """Lazy (y, x) probabilities on a 10 m UTM grid, as a predictor returns them."""
    data = da.map_blocks(
        field, delay=delay, chunks=da.core.normalize_chunks(chunks, shape), dtype="float32",
        meta=np.empty((0, 0), "float32"),
    )  # fmt: skip
    y = 1_000_000 - 10.0 * np.arange(shape[0]) - 5
    x = 600_000 + 10.0 * np.arange(shape[1]) + 5
    prob = xr.DataArray(data, dims=("y", "x"), coords={"y": y, "x": x}, name="crop_probability")
    return prob.rio.write_crs("EPSG:32631")


def expected(shape=SHAPE) -> np.ndarray:
    return field(block_info={None: {"array-location": [(0, shape[0]), (0, shape[1])]}})


def recorded(store: Path) -> int:
    return sum(not p.name.startswith(".") for p in (store / RECORD).iterdir())


def files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}


@pytest.mark.parametrize("dtype, tol", [("float32", 0.0), ("uint8", 1 / 508 + 1e-6)])
def test_round_trip_keeps_values_nan_crs_and_transform(tmp_path, dtype, tol):
    prob = make_prob()
    store = to_zarr(prob, tmp_path / "p.zarr", dtype=dtype, progress=False)
    out = open_probability(store)
    assert out.dtype == "float32" and out.chunks == prob.chunks
    values, ref = out.values, expected()
    np.testing.assert_array_equal(np.isnan(values), np.isnan(ref))
    assert np.nanmax(np.abs(values - ref)) <= tol
    assert out.rio.crs.to_epsg() == 32631
    assert out.rio.transform() == prob.rio.transform()
    # any xarray reader gets the CRS back; uint8 is stored packed and decoded to floats
    raw = xr.open_zarr(store, decode_coords="all")
    assert raw.rio.crs.to_epsg() == 32631
    assert raw["crop_probability"].encoding["dtype"] == dtype
    assert not (store / "crop_probability" / "0.0").exists()  # all NaN: no chunk, but recorded
    assert recorded(store) == 16


def test_irregular_chunks_become_regular_zarr_chunks(tmp_path, capsys):
    prob = make_prob().chunk({"y": (30, 20, 46), "x": (64, 64)})
    out = open_probability(to_zarr(prob, tmp_path / "p.zarr"))
    assert "6/6" in capsys.readouterr().err  # the progress bar, threaded scheduler
    assert out.chunks == ((46, 46, 4), (64, 64))
    np.testing.assert_array_equal(out.values, expected())


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_cog_is_tiled_with_overviews_crs_transform_and_nodata(tmp_path, dtype):
    prob = make_prob()
    path = to_cog(prob, tmp_path / "p.tif", dtype=dtype, blocksize=64)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32631
        assert src.transform == prob.rio.transform()
        assert src.profile["tiled"] and src.block_shapes == [(64, 64)]
        assert src.overviews(1) == [2]
        assert src.dtypes[0] == dtype
        assert np.isnan(src.nodata) if dtype == "float32" else src.nodata == 255
    back = rioxarray.open_rasterio(path, mask_and_scale=True)[0]
    np.testing.assert_array_equal(np.isnan(back.values), np.isnan(expected()))
    assert np.nanmax(np.abs(back.values - expected())) <= (0 if dtype == "float32" else 1 / 508)
    assert not list(tmp_path.glob(".*tmp*"))


def test_threads_and_distributed_processes_write_identical_stores(tmp_path):
    distributed = pytest.importorskip("distributed")
    threaded = to_zarr(make_prob(), tmp_path / "threads.zarr", dtype="uint8", progress=False)
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    with cluster, distributed.Client(cluster):
        spread = to_zarr(make_prob(), tmp_path / "dist.zarr", dtype="uint8", progress=True)
        cog = to_cog(make_prob(), tmp_path / "dist.tif", dtype="uint8")
    xr.testing.assert_identical(open_probability(threaded), open_probability(spread))
    assert files(threaded) == files(spread)
    with rasterio.open(cog) as src:
        assert src.nodata == 255
        np.testing.assert_array_equal(
            src.read(1), np.where(np.isnan(expected()), 255, np.round(expected() * 254))
        )


def start_writer(store, *, delay: float, workers: int, **kwargs) -> subprocess.Popen:
    """A real writer process: ``to_zarr(make_prob(delay=...), store, **kwargs)`` on
    ``workers`` threads, to be killed by the test."""
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    code = (
        "import dask\nfrom tests.test_io import make_prob\nfrom xcrop._io import to_zarr\n"
        f"with dask.config.set(scheduler='threads', num_workers={workers}):\n"
        f"    to_zarr(make_prob(delay={delay}), {str(store)!r}, progress=False{args})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)


def wait_for_blocks(writer: subprocess.Popen, blocks, at_least: int) -> None:
    """Wait until ``blocks()`` (the count recorded) reaches ``at_least`` while the writer
    still runs."""
    deadline = time.monotonic() + 120
    while blocks() < at_least:
        assert writer.poll() is None, "the writer ended before it was killed"
        assert time.monotonic() < deadline, f"the writer recorded {blocks()} blocks in 120 s"
        time.sleep(0.02)


def test_killed_write_resumes_only_missing_blocks_and_matches(tmp_path):
    store = tmp_path / "p.zarr"
    writer = start_writer(store, delay=0.2, workers=2, dtype="uint8")
    try:
        wait_for_blocks(writer, lambda: recorded(store) if (store / RECORD).exists() else 0, 3)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    done = recorded(store)
    assert 3 <= done < 16
    with pytest.raises(XcropError, match=f"{16 - done} of 16 blocks are missing.*resume"):
        open_probability(store)

    missing = [
        (i * CHUNKS[0], j * CHUNKS[1])
        for i in range(4)
        for j in range(4)
        if not (store / RECORD / f"{i}.{j}").exists()
    ]
    CALLS.clear()
    to_zarr(make_prob(), store, dtype="uint8", progress=False)
    assert sorted(CALLS) == missing and len(missing) == 16 - done
    CALLS.clear()
    whole = to_zarr(make_prob(), tmp_path / "whole.zarr", dtype="uint8", progress=False)
    assert len(CALLS) == 16
    assert files(store) == files(whole)
    xr.testing.assert_identical(open_probability(store), open_probability(whole))


def test_complete_store_is_left_alone(tmp_path):
    store = to_zarr(make_prob(), tmp_path / "p.zarr", progress=False)
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*")}
    CALLS.clear()
    assert to_zarr(make_prob(), store, progress=True) == store
    assert CALLS == [] and before == {p: p.stat().st_mtime_ns for p in store.rglob("*")}


def test_other_grid_refuses_and_overwrite_replaces(tmp_path):
    store = to_zarr(make_prob(), tmp_path / "p.zarr", progress=False)
    wider = make_prob(shape=(96, 160))
    with pytest.raises(
        XcropError, match=r"another probability map \(shape \[96, 128\].*overwrite=True"
    ):
        to_zarr(wider, store, progress=False)
    with pytest.raises(XcropError, match=r"dtype float32 \(store\) vs uint8"):
        to_zarr(make_prob(), store, dtype="uint8", progress=False)
    shifted = make_prob().assign_coords(x=make_prob().x + 10)
    with pytest.raises(XcropError, match="transform"):
        to_zarr(shifted, store, progress=False)
    CALLS.clear()
    to_zarr(make_prob(), store, overwrite=True, progress=False)
    assert len(CALLS) == 16  # the record was cleared with the rest
    to_zarr(wider, store, overwrite=True, progress=False)
    out = open_probability(store)
    assert out.shape == (96, 160) and recorded(store) == 20
    np.testing.assert_array_equal(out.values, expected((96, 160)))


def test_compute_false_writes_metadata_then_blocks(tmp_path):
    delayed = to_zarr(make_prob(), tmp_path / "p.zarr", compute=False)
    with pytest.raises(XcropError, match="16 of 16 blocks are missing"):
        open_probability(tmp_path / "p.zarr")
    assert dask.compute(delayed)[0] == tmp_path / "p.zarr"
    np.testing.assert_array_equal(open_probability(tmp_path / "p.zarr").values, expected())


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(CRSError, match="write_crs"):
        to_zarr(make_prob().drop_vars("spatial_ref"), tmp_path / "a.zarr")
    with pytest.raises(XcropError, match="use one of"):
        to_zarr(make_prob(), tmp_path / "a.zarr", dtype="float16")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(XcropError, match="not a Zarr store"):
        to_zarr(make_prob(), other, overwrite=True)
    assert (other / "todo.txt").exists()
    with pytest.raises(XcropError, match="not a store written by xcrop"):
        open_probability(other)


def test_write_composite_round_trip_by_blocks(tmp_path):
    from xcrop._composite import Composite

    rng = np.random.default_rng(0)
    coords = {
        "time": np.datetime64("2019-03-01") + np.arange(12) * np.timedelta64(30, "D"),
        "y": 1_000_000 - 10 * np.arange(50) - 5.0,
        "x": 300_000 + 10 * np.arange(70) + 5.0,
    }
    values = rng.random((12, 2, 50, 70), dtype="float32")
    values[:, :, 3, 4] = np.nan
    data = xr.DataArray(values, dims=("time", "band", "y", "x"),
                        coords={**coords, "band": ["B04", "NDVI"]}, name="composite")  # fmt: skip
    counts = xr.DataArray(rng.integers(0, 6, (12, 50, 70)).astype("uint8"),
                          dims=("time", "y", "x"), coords=coords, name="counts")  # fmt: skip
    dates = xr.DataArray(coords["time"][:, None, None] + np.zeros((12, 50, 70), "timedelta64[ns]"),
                         dims=("time", "y", "x"), coords=coords, name="dates")  # fmt: skip
    comp = Composite(*(a.rio.write_crs("EPSG:32631").chunk({"y": 16, "x": 32})
                       for a in (data, counts, dates)))  # fmt: skip
    store = xcrop.write_composite(comp, tmp_path / "c.zarr", progress=False, in_flight=3)
    again = xcrop.open_composite(store)
    np.testing.assert_array_equal(again.data.values, values)
    np.testing.assert_array_equal(again.counts.values, counts.values)
    np.testing.assert_array_equal(again.dates.values, dates.values)
    assert again.data.rio.crs.to_epsg() == 32631 and list(again.data.band.values) == ["B04", "NDVI"]
    with pytest.raises(XcropError, match="write_composite"):
        xcrop.open_composite(tmp_path / "nothing.zarr")
