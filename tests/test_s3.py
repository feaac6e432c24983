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
from xcrop.errors import XcropError
from xcrop.io import RECORD, open_probability, to_zarr

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
