"""Reading COGs: a failed read names the file, the item and the band; transient HTTP
errors are retried (GDAL's retries, configured by xcrop.Network, and xcrop's own); gaps
are allowed only when asked for, and counted. Real COG files, served over real HTTP with
Range requests by a server on 127.0.0.1 that fails when told to (tests/flaky.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

import xcrop
from xcrop import Network

from .flaky import FlakyFiles
from .test_stac import PC_WINDOW

B04 = ["B04"]


def _over_http(items, root: Path, url: str, sig: str = ""):
    out = []
    for item in items:
        item = item.clone()
        for asset in item.assets.values():
            path = Path(asset.href.removeprefix("file://"))
            if path.is_relative_to(root):
                asset.href = f"{url}/{path.relative_to(root)}{sig}"
        out.append(item)
    return out


def _truncated(item, tmp_path: Path):
    """The item with its red band cut to a third of its bytes (a broken download)."""
    item = item.clone()
    asset = item.assets["B04"] if "B04" in item.assets else item.assets["red"]
    data = Path(asset.href.removeprefix("file://")).read_bytes()
    bad = tmp_path / "B04.tif"
    bad.write_bytes(data[: len(data) // 3])
    asset.href = str(bad)
    return item


def test_a_corrupt_cog_is_named_with_its_item_and_band(pc_items, tmp_path):
    bad = _truncated(pc_items[0], tmp_path)
    cube = xcrop.load([bad, pc_items[1]], bands=B04, area=PC_WINDOW, chunks=64)
    with pytest.raises(xcrop.ReadError) as err:
        cube.compute()
    message = str(err.value)
    assert str(tmp_path / "B04.tif") in message and f"item {bad.id}" in message
    assert "band B04" in message and "3 tries" in message and "on_error='nodata'" in message
    assert "TIFF" in message  # GDAL's own reason, not only "see previous exception"
    assert "\n" not in message


def test_gaps_are_nodata_only_when_allowed_and_counted(pc_items, tmp_path, caplog):
    bad = _truncated(pc_items[0], tmp_path)
    xcrop.read_failures(reset=True)
    whole = xcrop.load(pc_items[:2], bands=B04, area=PC_WINDOW, chunks=64).compute()
    with caplog.at_level(logging.WARNING, logger="xcrop.reads"):
        gappy = xcrop.load([bad, pc_items[1]], bands=B04, area=PC_WINDOW, chunks=64,
                           on_error="nodata").compute()  # fmt: skip
    broken = (gappy.id == bad.id).values
    assert broken.sum() == 1
    assert np.isnan(gappy.values[broken]).all()  # the broken read: nodata, not zeros
    assert not np.isnan(whole.values[broken]).all()
    np.testing.assert_array_equal(gappy.values[~broken], whole.values[~broken])  # intact
    failures = xcrop.read_failures(reset=True)
    assert list(failures) == [f"file://{tmp_path / 'B04.tif'}"]
    assert next(iter(failures.values())) >= 1
    assert "Left as nodata" in caplog.text and bad.id in caplog.text
    with pytest.raises(xcrop.XcropError, match=r"on_error='skip'.*'raise' or 'nodata'"):
        xcrop.load([bad], bands=B04, on_error="skip")


def test_transient_http_errors_are_retried(pc_items, cog_dir):
    local = xcrop.load(pc_items[:2], bands=B04, area=PC_WINDOW, chunks=64).compute()

    def fail(n, path):  # the first two requests of each file answer 503
        return sum(p == path for p, _ in files.requests) < 2

    with FlakyFiles(cog_dir, fail) as files:
        items = _over_http(pc_items[:2], cog_dir, files.url)
        cube = xcrop.load(items, bands=B04, area=PC_WINDOW, chunks=64,
                          network=Network(retries=3, backoff=0.1))  # fmt: skip
        remote = cube.compute()
    np.testing.assert_array_equal(remote.values, local.values)
    assert sum(s == 503 for _, s in files.requests) >= 2


def test_a_file_that_keeps_failing_names_the_url_without_its_signature(pc_items, cog_dir):
    with FlakyFiles(cog_dir, lambda n, path: path.endswith(".tif")) as files:
        items = _over_http(pc_items[:1], cog_dir, files.url, sig="?se=2099&sig=SECRET")
        cube = xcrop.load(items, bands=B04, area=PC_WINDOW, chunks=64,
                          network=Network(retries=1, backoff=0.1))  # fmt: skip
        with pytest.raises(xcrop.ReadError) as err:
            cube.compute()
    message = str(err.value)
    assert re.search(rf"{re.escape(files.url)}/\S+\.tif\?<redacted>", message), message
    assert "SECRET" not in message and f"item {items[0].id}" in message
