"""No lost data and no mixed stores: writers refuse what is not theirs, never delete before
the new data are safe, hold a lease against a second writer, record composites' blocks,
and fail loudly on a full disk (a real small tmpfs, where the test may mount one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr

import xcrop
from tests.test_io import (
    CHUNKS,
    ROOT,
    expected,
    make_prob,
    recorded,
    start_writer,
    wait_for_blocks,
)
from xcrop._io import RECORD, open_probability, to_cog, to_zarr
from xcrop.errors import XcropError


def model_prob(sha: str, head: str = "local") -> xr.DataArray:
    return make_prob().assign_attrs(model_sha256=sha, head=head)


def test_resume_with_another_model_or_head_refuses(tmp_path):
    store = tmp_path / "p.zarr"
    to_zarr(model_prob("a" * 64), store, compute=False)  # metadata only: an unfinished write
    with pytest.raises(XcropError, match=r"another model \(sha256 aaaaaaaaaaaa"):
        to_zarr(model_prob("b" * 64), store, progress=False)
    with pytest.raises(XcropError, match=r"head local \(store\) vs global"):
        to_zarr(model_prob("a" * 64, head="global"), store, progress=False)
    assert recorded(store) == 0
    to_zarr(model_prob("a" * 64), store, progress=False)
    np.testing.assert_array_equal(open_probability(store).values, expected())


def test_predict_maps_carry_their_models_hash():
    torch = pytest.importorskip("torch")
    from tests.test_predict import composite_of, model_of

    del torch
    comp = composite_of()
    a, b = xcrop.predict(comp, model_of(seed=1)), xcrop.predict(comp, model_of(seed=2))
    assert len(a.attrs["model_sha256"]) == 64 and a.attrs["model_sha256"] != b.attrs["model_sha256"]


def test_a_second_writer_refuses_while_the_first_writes_and_resumes_after_a_kill(tmp_path):
    store = tmp_path / "p.zarr"
    writer = start_writer(store, delay=0.3, workers=1)
    try:
        wait_for_blocks(writer, lambda: recorded(store) if (store / RECORD).exists() else 0, 1)
        with pytest.raises(XcropError, match=r"being written by another writer \(pid"):
            to_zarr(make_prob(), store, progress=False)
        with pytest.raises(XcropError, match="being written by another writer"):
            to_zarr(make_prob(), store, overwrite=True, progress=False)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert recorded(store) < 16
    to_zarr(make_prob(), store, progress=False)  # the dead writer's lease is taken over
    np.testing.assert_array_equal(open_probability(store).values, expected())
    assert not (store / RECORD / ".lease").exists()


def test_a_zarr_store_xcrop_did_not_write_is_never_replaced(tmp_path):
    store = tmp_path / "theirs.zarr"
    xr.Dataset({"v": ("x", np.arange(3))}).to_zarr(store, zarr_format=2)
    for overwrite in (False, True):
        with pytest.raises(XcropError, match="xcrop did not write"):
            to_zarr(make_prob(), store, overwrite=overwrite, progress=False)
    np.testing.assert_array_equal(xr.open_zarr(store)["v"].values, np.arange(3))


def failing(block_info=None) -> np.ndarray:
    (y0, _), (x0, _) = block_info[None]["array-location"]
    if (y0, x0) == (CHUNKS[0], CHUNKS[1]):
        raise OSError("disk full (simulated by the test's input)")
    return np.full(CHUNKS, 0.25, "float32")


def test_a_failed_overwrite_keeps_the_old_store_and_a_rerun_finishes(tmp_path):
    store = to_zarr(make_prob(), tmp_path / "p.zarr", progress=False)
    bad = make_prob().copy(data=da.map_blocks(failing, chunks=make_prob().chunks, dtype="float32"))
    with pytest.raises(OSError, match="simulated"):
        to_zarr(bad, store, overwrite=True, progress=False)
    np.testing.assert_array_equal(open_probability(store).values, expected())  # intact
    staged = tmp_path / ".p.zarr.xcrop-staging"
    assert staged.exists() and 0 < recorded(staged) < 16
    half = make_prob() * 0 + 0.5
    to_zarr(half, store, overwrite=True, progress=False)
    assert (open_probability(store).values[np.isfinite(expected())] == 0.5).all()  # not mixed
    assert not staged.exists()


def test_a_creation_that_stopped_before_its_signature_is_redone(tmp_path):
    store = tmp_path / "p.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=2)
    root.create_group(RECORD).attrs.update({"xcrop_state": "creating"})  # what a crash leaves
    with pytest.raises(XcropError, match="metadata was complete"):
        open_probability(store)
    to_zarr(make_prob(), store, progress=False)
    np.testing.assert_array_equal(open_probability(store).values, expected())


def composite_of(ny: int = 40, nx: int = 48, chunks: int = 16):
    from xcrop._composite import Composite

    rng = np.random.default_rng(0)
    coords = {
        "time": np.datetime64("2019-03-01") + np.arange(12) * np.timedelta64(30, "D"),
        "y": 1_000_000 - 10 * np.arange(ny) - 5.0,
        "x": 300_000 + 10 * np.arange(nx) + 5.0,
    }
    data = xr.DataArray(rng.random((12, 2, ny, nx), dtype="float32"),
                        dims=("time", "band", "y", "x"),
                        coords={**coords, "band": ["B04", "NDVI"]}, name="composite")  # fmt: skip
    counts = xr.DataArray(rng.integers(0, 6, (12, ny, nx)).astype("uint8"),
                          dims=("time", "y", "x"), coords=coords, name="counts")  # fmt: skip
    dates = xr.DataArray(coords["time"][:, None, None] + np.zeros((12, ny, nx), "timedelta64[ns]"),
                         dims=("time", "y", "x"), coords=coords, name="dates")  # fmt: skip
    return Composite(*(a.rio.write_crs("EPSG:32631").chunk({"y": chunks, "x": chunks})
                       for a in (data, counts, dates)))  # fmt: skip


def broken(comp, bad=(1, 1)):
    """The composite with one spatial block that fails to compute (a corrupt source)."""
    from xcrop._composite import Composite

    def boom(block, block_info=None):
        if tuple(block_info[0]["chunk-location"][2:]) == bad:
            raise OSError("corrupt source COG (simulated)")
        return block

    data = comp.data.copy(data=comp.data.data.map_blocks(boom, dtype="float32"))
    return Composite(data, comp.counts, comp.dates)


def test_composite_writes_refuse_other_folders_and_record_their_blocks(tmp_path):
    folder = tmp_path / "results"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "notes.txt").write_text("keep me")
    comp = composite_of()
    for overwrite in (False, True):
        with pytest.raises(XcropError, match="not a Zarr store; xcrop will not delete it"):
            xcrop.write_composite(comp, folder, overwrite=overwrite, progress=False)
    assert (folder / "sub" / "notes.txt").read_text() == "keep me"

    store = tmp_path / "c.zarr"
    with pytest.raises(OSError, match="simulated"):
        xcrop.write_composite(broken(comp), store, progress=False, in_flight=1)
    with pytest.raises(XcropError, match=r"incomplete: \d+ of 9 blocks are missing"):
        xcrop.open_composite(store)
    xcrop.write_composite(comp, store, progress=False)  # resumes: the missing blocks
    again = xcrop.open_composite(store)
    np.testing.assert_array_equal(again.data.values, comp.data.values)
    np.testing.assert_array_equal(again.counts.values, comp.counts.values)


def test_a_composite_store_can_be_resaved_onto_itself(tmp_path):
    comp = composite_of()
    store = xcrop.write_composite(comp, tmp_path / "c.zarr", progress=False)
    with pytest.raises(XcropError, match=r"holds another composite.*overwrite=True"):
        xcrop.write_composite(composite_of(nx=32), store, progress=False)
    opened = xcrop.open_composite(store)
    xcrop.write_composite(opened, store, overwrite=True, progress=False)  # reads itself
    again = xcrop.open_composite(store)
    np.testing.assert_array_equal(again.data.values, comp.data.values)
    np.testing.assert_array_equal(again.dates.values, comp.dates.values)
    assert again.data.rio.crs.to_epsg() == 32631
    with pytest.raises(XcropError, match="a composite store, not a probability"):
        open_probability(store)
    copy = xcrop.write_composite(xcrop.open_composite(store), tmp_path / "copy.zarr",
                                 progress=False)  # fmt: skip
    np.testing.assert_array_equal(xcrop.open_composite(copy).data.values, comp.data.values)


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs (a full disk), where this process may mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_cog_on_a_full_disk_is_refused_before_work_and_leaves_nothing(small_disk):
    prob = make_prob(shape=(1024, 1024), chunks=(256, 256))
    with pytest.raises(XcropError, match=r"Not enough space for .*MB are free"):
        to_cog(prob, small_disk / "map.tif")
    assert list(small_disk.iterdir()) == []


def test_cog_write_that_fails_midway_raises_and_keeps_the_old_file(tmp_path):
    """A file-size limit (RLIMIT_FSIZE) makes GDAL's writes fail as on a full disk."""
    old = to_cog(make_prob(), tmp_path / "map.tif")
    before = old.read_bytes()
    code = (
        "import resource\nfrom tests.test_io import make_prob\nfrom xcrop._io import to_cog\n"
        "from xcrop.errors import XcropError\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
        "try:\n"
        f"    to_cog(make_prob(shape=(1024, 1024), chunks=(256, 256)), {str(old)!r})\n"
        "except XcropError as e:\n    print('XcropError:', e)\nelse:\n    print('wrote')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert "XcropError: Writing" in done.stdout and "left as it was" in done.stdout, done
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif"]
    with rasterio.open(old) as src:
        assert src.shape == (96, 128)


def test_zarr_on_a_full_disk_fails_then_resumes_once_space_is_freed(small_disk):
    store = small_disk / "p.zarr"
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 900_000)
    noise = make_prob(shape=(256, 256), chunks=(64, 64))
    rng = np.random.default_rng(0)
    values = rng.random((256, 256), dtype="float32")
    noise = noise.copy(data=da.from_array(values, chunks=64))
    with pytest.raises(OSError):
        to_zarr(noise, store, progress=False)
    with pytest.raises(XcropError, match=r"incomplete|metadata was complete"):
        open_probability(store)
    filler.unlink()
    to_zarr(noise, store, progress=False)
    np.testing.assert_array_equal(open_probability(store).values, values)


def test_store_paths_with_a_missing_folder_are_refused_before_work(tmp_path):
    with pytest.raises(XcropError, match="does not exist"):
        to_zarr(make_prob(), tmp_path / "no" / "such" / "p.zarr")
    with pytest.raises(XcropError, match="does not exist"):
        to_cog(make_prob(), tmp_path / "no" / "p.tif")
    assert not (tmp_path / "no").exists()
    assert Path(tmp_path).exists()


def test_zarr_map_carries_gdals_crs_attribute_and_cf_coordinates(tmp_path):
    import json
    import shutil

    from rasterio.crs import CRS

    store = to_zarr(make_prob(), tmp_path / "p.zarr", progress=False)
    attrs = json.loads((store / "crop_probability" / ".zattrs").read_text())
    assert CRS.from_wkt(attrs["_CRS"]["wkt"]) == CRS.from_epsg(32631)
    assert attrs["_CRS"]["url"].endswith("/EPSG/0/32631")
    for dim, name in (("x", "projection_x_coordinate"), ("y", "projection_y_coordinate")):
        coord = json.loads((store / dim / ".zattrs").read_text())
        assert coord["standard_name"] == name and coord["units"] == "metre"
    with rasterio.open(f'ZARR:"{store}":/crop_probability') as src:  # rasterio's own GDAL
        assert src.crs == CRS.from_epsg(32631) and src.transform.c == 600_000
    prob = open_probability(store)
    assert "_CRS" not in prob.attrs and prob.rio.crs.to_epsg() == 32631
    gdalinfo = shutil.which("gdalinfo")  # Debian 12's GDAL 3.6 reads only _CRS
    if gdalinfo is None:
        pytest.skip("no gdalinfo on PATH (apt-get install gdal-bin) for the GDAL 3.6 check")
    done = subprocess.run([gdalinfo, f'ZARR:"{store}":/crop_probability'], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert 'PROJCRS["WGS 84 / UTM zone 31N"' in done.stdout, done.stdout[:500]


def test_outputs_in_a_folder_that_takes_no_files_are_refused_before_work(tmp_path):
    """Root passes every permission bit: /proc still takes no files (was a raw
    FileNotFoundError from zarr, and 'not enough space: 0 MB' for the COG)."""
    with pytest.raises(XcropError, match=r"/proc takes no new files"):
        to_zarr(make_prob(), "/proc/p.zarr", progress=False)
    with pytest.raises(XcropError, match=r"/proc takes no new files"):
        to_cog(make_prob(), "/proc/p.tif")
    afile = tmp_path / "notes.txt"
    afile.write_text("a file where a folder is expected")
    with pytest.raises(XcropError, match=r"notes\.txt is a file, not a folder"):
        to_zarr(make_prob(), afile / "p.zarr", progress=False)
    with pytest.raises(XcropError, match=r"notes\.txt is a file, not a folder"):
        xcrop.write_composite(composite_of(), afile / "c.zarr", progress=False)
    assert afile.read_text() == "a file where a folder is expected"
