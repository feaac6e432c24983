"""Zarr outputs on an object store: a real S3 API (moto's server) on 127.0.0.1, reached
through s3fs. Writes, a second writer refused by the lease, a writer killed with SIGKILL
and resumed with only the missing blocks, byte-identical chunks, and clear errors."""

from __future__ import annotations

import signal

import numpy as np
import pytest

import xcrop
from tests import test_io
from tests.test_io import expected, make_prob, start_writer, wait_for_blocks
from xcrop._io import RECORD, open_probability, to_zarr
from xcrop.errors import XcropError

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from .s3server import make_bucket, options, s3_server


@pytest.fixture(scope="module")
def s3():
    with s3_server() as endpoint:
        make_bucket(endpoint, "maps")
        yield endpoint


def _fs(endpoint):
    import s3fs

    return s3fs.S3FileSystem(**options(endpoint))


def _blocks(endpoint, key: str) -> int:
    try:
        names = _fs(endpoint).ls(f"maps/{key}/{RECORD}", refresh=True)
    except FileNotFoundError:
        return 0
    return sum(n.rsplit("/", 1)[-1][0].isdigit() for n in names)


def test_write_read_back_and_refuse_a_missing_bucket(s3):
    store = to_zarr(make_prob(), "s3://maps/a.zarr", storage_options=options(s3), progress=False)
    assert store == "s3://maps/a.zarr" and _blocks(s3, "a.zarr") == 16
    prob = open_probability(store, storage_options=options(s3))
    np.testing.assert_array_equal(prob.values, expected())
    assert prob.rio.crs.to_epsg() == 32631
    with pytest.raises(XcropError, match=r"bucket or container 'nobucket' does not exist"):
        to_zarr(make_prob(), "s3://nobucket/a.zarr", storage_options=options(s3))
    assert not _fs(s3).exists("nobucket")
    with pytest.raises(XcropError, match=r"No store at s3://maps/none\.zarr"):
        open_probability("s3://maps/none.zarr", storage_options=options(s3))


def test_a_killed_writer_resumes_with_only_the_missing_blocks_byte_identical(s3):
    url = "s3://maps/killed.zarr"
    writer = start_writer(url, delay=0.3, workers=1, storage_options=options(s3))
    try:
        wait_for_blocks(writer, lambda: _blocks(s3, "killed.zarr"), 3)
        with pytest.raises(XcropError, match=r"being written by another writer \(pid"):
            to_zarr(make_prob(), url, storage_options=options(s3), progress=False)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    done = _blocks(s3, "killed.zarr")
    assert 3 <= done < 16
    with pytest.raises(XcropError, match=r"incomplete: \d+ of 16 blocks are missing"):
        open_probability(url, storage_options=options(s3))
    test_io.CALLS.clear()
    to_zarr(make_prob(), url, storage_options=options(s3), progress=False)
    assert len(test_io.CALLS) == 16 - done  # only the missing blocks were computed
    whole = to_zarr(make_prob(), "s3://maps/whole.zarr", storage_options=options(s3),
                    progress=False)  # fmt: skip
    fs = _fs(s3)
    chunks = sorted(p.rsplit("/", 1)[-1] for p in fs.ls("maps/whole.zarr/crop_probability"))
    for name in chunks:
        a = fs.cat_file(f"maps/killed.zarr/crop_probability/{name}")
        b = fs.cat_file(f"maps/whole.zarr/crop_probability/{name}")
        assert a == b, name
    np.testing.assert_array_equal(
        open_probability(url, storage_options=options(s3)).values,
        open_probability(whole, storage_options=options(s3)).values,
    )
    assert not fs.exists(f"maps/killed.zarr/{RECORD}/.lease")


def test_composites_and_overwrites_on_the_object_store(s3):
    from tests.test_io_safety import composite_of

    comp = composite_of()
    opts = options(s3)
    store = xcrop.write_composite(comp, "s3://maps/c.zarr", storage_options=opts, progress=False)
    again = xcrop.open_composite(store, storage_options=opts)
    np.testing.assert_array_equal(again.data.values, comp.data.values)
    other = composite_of(nx=32)
    with pytest.raises(XcropError, match="holds another composite"):
        xcrop.write_composite(other, store, storage_options=opts, progress=False)
    xcrop.write_composite(other, store, overwrite=True, storage_options=opts, progress=False)
    np.testing.assert_array_equal(
        xcrop.open_composite(store, storage_options=opts).data.values, other.data.values
    )
    assert not _fs(s3).exists("maps/.c.zarr.xcrop-staging")


def test_a_cog_is_uploaded_whole_and_equals_the_local_one(s3, tmp_path):
    import rasterio

    fs = _fs(s3)
    for dtype in ("float32", "uint8"):
        # 32 px tiles: overviews on a 96 px map
        local = xcrop.to_cog(make_prob(), tmp_path / f"m-{dtype}.tif", dtype=dtype, blocksize=32)
        url = f"s3://maps/m-{dtype}.tif"
        written = xcrop.to_cog(make_prob(), url, dtype=dtype, blocksize=32,
                               storage_options=options(s3))  # fmt: skip
        assert written == url
        fs.get_file(f"maps/m-{dtype}.tif", str(tmp_path / "down.tif"))
        with rasterio.open(local) as a, rasterio.open(tmp_path / "down.tif") as b:
            pa, pb = dict(a.profile), dict(b.profile)
            np.testing.assert_array_equal(pa.pop("nodata"), pb.pop("nodata"))  # NaN == NaN
            assert pa == pb and a.scales == b.scales and a.overviews(1) == b.overviews(1) != []
            np.testing.assert_array_equal(a.read(), b.read())
            np.testing.assert_array_equal(a.read(out_shape=(1, 8, 8)), b.read(out_shape=(1, 8, 8)))
    with pytest.raises(XcropError, match=r"bucket or container 'nobucket' does not exist"):
        xcrop.to_cog(make_prob(), "s3://nobucket/m.tif", storage_options=options(s3))
    assert not fs.exists("nobucket")


def test_refused_credentials_are_one_clear_line_for_writers_and_readers():
    with s3_server(auth=True) as endpoint:  # every key refused, as a wrong one would be
        bad = options(endpoint, key="nobody", secret="wrong")
        writes = [
            lambda: to_zarr(make_prob(), "s3://maps/a.zarr", storage_options=bad),
            lambda: xcrop.to_cog(make_prob(), "s3://maps/a.tif", storage_options=bad),
        ]
        for write in writes:
            test_io.CALLS.clear()
            with pytest.raises(XcropError, match=r"access denied .*check the credentials"):
                write()
            assert not test_io.CALLS  # refused before any block was computed
        with pytest.raises(XcropError, match=r"Cannot read s3://maps/a\.zarr: access denied"):
            open_probability("s3://maps/a.zarr", storage_options=bad)


def test_no_credentials_at_all_is_one_clear_line_for_readers(monkeypatch, tmp_path):
    """Regression: botocore's NoCredentialsError (not an OSError) came through as it was."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "FSSPEC_S3_KEY", "FSSPEC_S3_SECRET"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with s3_server() as endpoint:
        plain = {"client_kwargs": {"endpoint_url": endpoint}}
        for read in (open_probability, xcrop.open_composite):
            with pytest.raises(XcropError, match=r"no credentials .*check the credentials"):
                read("s3://maps/a.zarr", storage_options=plain)


def test_the_command_line_writes_and_reads_urls_with_credentials_from_the_environment(
    s3, tiny, tmp_path
):
    """`--out s3://...` was turned into a local folder `s3:/...` by click.Path."""
    import os
    import subprocess
    import sys

    import rasterio

    from tests.test_cli import xcrop_cli

    west, south, east, north = tiny.bbox("togo-north")
    small = f"{west},{south},{west + (east - west) / 3},{south + (north - south) / 3}"
    env = {"FSSPEC_S3_KEY": "xcrop-test-key", "FSSPEC_S3_SECRET": "xcrop-test-secret",
           "FSSPEC_S3_ENDPOINT_URL": s3}  # fmt: skip
    xcrop.MultiHeadLSTM((*xcrop.REFLECTANCE_BANDS, "NDVI")).save(tmp_path / "m.pt")

    def run(*args):
        command = [sys.executable, "-m", "xcrop._cli", *map(str, args)]
        return subprocess.run(command, env={**os.environ, **env}, capture_output=True,
                              text=True, cwd=tmp_path, timeout=600)  # fmt: skip

    made = run("composite", small, "2019-02-01/2020-04-30", "--catalog", tiny.items_path,
               "--collection", "sentinel-2-l2a", "--score", "scl",
               "--out", "s3://maps/cli.zarr")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "wrote s3://maps/cli.zarr" in made.stdout and not (tmp_path / "s3:").exists()
    mapped = run("predict", "s3://maps/cli.zarr", tmp_path / "m.pt", "--out",
                 "s3://maps/cli-map.zarr", "--cog", "s3://maps/cli-map.tif")  # fmt: skip
    assert mapped.returncode == 0, mapped.stderr
    prob = open_probability("s3://maps/cli-map.zarr", storage_options=options(s3))
    _fs(s3).get_file("maps/cli-map.tif", str(tmp_path / "map.tif"))
    with rasterio.open(tmp_path / "map.tif") as src:
        np.testing.assert_array_equal(src.read(1), prob.values)
    assert np.isfinite(prob.values).mean() > 0.9
    missing = run("composite", small, "2019", "--catalog", tiny.items_path,
                  "--out", "s3://nobucket/x.zarr")  # fmt: skip
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "'nobucket' does not exist; check the endpoint and credentials in the environment" in (
        missing.stderr
    )
    local_only = xcrop_cli("search", small, "2019", "--catalog", tiny.items_path,
                           "--out", "s3://maps/items.json")  # fmt: skip
    assert local_only.returncode == 2 and "give a local path here" in local_only.stderr
