"""Searches that survive a flaky server, fail in bounded time on a frozen or dead one, say
which URL failed after how many tries, keep finished windows, and never print secrets.

The servers are real: ``rustac serve`` behind a real HTTP proxy on 127.0.0.1 that answers
503 or hangs when told to (``tests/flaky.py``)."""

from __future__ import annotations

import logging
import re
import time

import numpy as np
import pandas as pd
import pytest

import xcrop
from xcrop import Network
from xcrop._catalog import find_items
from xcrop._network import redact
from xcrop.datasets.serve import free_port

from .flaky import FlakyProxy
from .test_stac import PC_WINDOW

DATES = "2020-06-10/2020-07-05"
FAST = Network(timeout=5, retries=3, backoff=0.2, jitter=0.1)


def search(url, network=FAST):
    return find_items(PC_WINDOW, DATES, catalog=url, collection="sentinel-2-l2a",
                      network=network)  # fmt: skip


def test_retries_ride_out_503s(stac_api):
    want = [it.id for it in search(stac_api)]
    with FlakyProxy(stac_api, fail=lambda n, _: n < 3) as proxy:
        got = [it.id for it in search(proxy.url)]
    assert got == want and len(got) == 5
    assert [s for _, _, s in proxy.requests[:4]] == [503, 503, 503, 200]


def test_a_server_back_after_two_seconds_is_waited_for(stac_api):
    """The old client retried 5 times within a fraction of a second and failed."""
    with FlakyProxy(stac_api, fail=lambda _, t: t < 2.0) as proxy:
        started = time.monotonic()
        items = search(proxy.url, Network(timeout=5))  # the defaults: 0, 2, 4, 8, 16 s
        took = time.monotonic() - started
    assert len(items) == 5 and 2.0 <= took < 20
    assert sum(s == 503 for _, _, s in proxy.requests) >= 2


def test_a_frozen_server_fails_in_bounded_time_naming_the_url(stac_api):
    with FlakyProxy(stac_api, fail=lambda n, _: True, status=None) as proxy:
        started = time.monotonic()
        with pytest.raises(xcrop.CatalogUnreachableError) as err:
            search(proxy.url, Network(timeout=1, retries=1, backoff=0.1))
        took = time.monotonic() - started
    assert took < 10, took  # two tries of 1 s (the old client waited for ever)
    assert proxy.url in str(err.value) and "2 tries" in str(err.value)
    assert "timeout 1 s" in str(err.value)


def test_a_dead_server_is_named_with_the_tries_made():
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(xcrop.CatalogUnreachableError, match=re.escape(url)) as err:
        search(url, Network(timeout=2, retries=2, backoff=0.2, jitter=0))
    assert "3 tries" in str(err.value) and time.monotonic() - started < 10


def test_backoff_waits_double_with_jitter_and_a_cap():
    net = Network(retries=6, backoff=1.0, backoff_max=10)
    assert net.waits() == (0.0, 2.0, 4.0, 8.0, 10.0, 10.0)
    retry = net.retry()
    assert retry.total == 6 and 503 in retry.status_forcelist and retry.allowed_methods is None
    assert retry.backoff_jitter == 0.5
    with pytest.raises(ValueError, match="timeout"):
        Network(timeout=0)


SIGNED = ("https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/35/M/NM/2020/06/11/"
          "B04.tif?st=2020-06-10T00%3A00%3A00Z&se=2020-06-12T00%3A00%3A00Z&sp=rl&sv=2021-06-08"
          "&sr=c&skoid=abc&sig=SECRETSIGNATURE%3D")  # fmt: skip


def test_signed_urls_are_redacted_in_messages_and_library_logs(caplog):
    assert "SECRET" not in redact(f"Failed to load {SIGNED}: 403") and "B04.tif?<redacted>" in (
        redact(f"Failed to load {SIGNED}: 403")
    )
    aws = "s3://b/k.tif?X-Amz-Credential=AKIA&X-Amz-Signature=SECRET2"
    assert "SECRET2" not in redact(aws) and "AKIA" not in redact(aws)
    plain = "http://127.0.0.1:8000/search?limit=10&bbox=1,2,3,4"
    assert redact(plain) == plain
    with caplog.at_level(logging.ERROR):
        # odc-stac's own log line for a failed read, through its own logger
        logging.getLogger("odc.loader._rio").error(
            "Failed to load %s:%d due to rasterio error: '%s'", SIGNED, 1, f"{SIGNED}: 403"
        )
    assert "Failed to load" in caplog.text and "SECRET" not in caplog.text


def test_a_failed_read_of_a_signed_url_keeps_its_secret(pc_items, caplog):
    """A real read through odc-stac of an asset whose signed URL answers nothing."""
    item = pc_items[0].clone()
    port = free_port()
    for asset in item.assets.values():
        asset.href = f"http://127.0.0.1:{port}/B.tif?se=2099&sig=SECRETSIGNATURE"
    cube = xcrop.load([item], bands=["B04"], chunks=64)
    with caplog.at_level(logging.INFO), pytest.raises(OSError) as err:
        cube.compute()
    assert "B.tif?<redacted>" in caplog.text  # odc-stac logged the failed read
    assert "SECRETSIGNATURE" not in caplog.text
    from xcrop._cli import _explain

    assert "SECRETSIGNATURE" not in _explain(err.value)


@pytest.mark.parametrize(
    "area, says",
    [
        ((1.0, 8.0, float("nan"), 9.0), "not a finite number"),
        ((1.0, 8.0, 2.0, 200.0), "latitude outside -90..90"),
        ((-190.0, 8.0, 2.0, 9.0), "longitude outside -180..180"),
        ((2.0, 8.0, 1.0, 9.0), "west > east"),
        ((1.0, 8.0, 2.0), "not four numbers"),
    ],
)
def test_bad_areas_are_refused_before_any_request(area, says):
    with pytest.raises(xcrop.XcropInputError, match=says):
        find_items(area, "2020", catalog=f"http://127.0.0.1:{free_port()}/v1")


@pytest.mark.parametrize(
    "dates, says",
    [
        ("2020-07-01/2020-06-01", "ends before it starts"),
        ("2019-13-45", "does not exist"),
        ("2020-02-30/2020-03-01", "does not exist"),
        ("last week", "Cannot read the date"),
    ],
)
def test_bad_dates_are_refused_before_any_request(dates, says):
    with pytest.raises(xcrop.XcropInputError, match=says):
        find_items(PC_WINDOW, dates, catalog=f"http://127.0.0.1:{free_port()}/v1")


def _labels(tiny):
    hand = tiny.labels / "hand"
    labels = pd.concat(
        [xcrop.read_labels(hand / "crop_points" / "crop_points.shp", label=1),
         xcrop.read_labels(hand / "noncrop_points" / "noncrop_points.shp", label=0)],
        ignore_index=True,
    )  # fmt: skip
    return labels.assign(id=np.arange(len(labels)))


def test_sample_points_keeps_finished_windows_when_the_server_dies_and_resumes(tiny, tmp_path):
    from xcrop.datasets.serve import serve_items

    labels = _labels(tiny)
    kwargs = dict(collection="sentinel-2-l2a", score="scl", bands=("B04", "B08"), window=2,
                  group_size=200.0, network=FAST)  # fmt: skip
    with serve_items(tiny.items_path) as api, dask_single_thread():
        whole = xcrop.sample_points(labels, "2019-02-01/2020-04-30", catalog=api, **kwargs)
        windows = whole.report["windows"]
        assert windows >= 4
        checkpoint = tmp_path / "windows"
        # the server dies after two windows' searches (each: the landing page twice, then 9
        # pages of results: 11 requests); one thread computes windows two by two, so the
        # first two are saved, the next two fail
        with FlakyProxy(api, fail=lambda n, _: n >= 22) as proxy:
            with pytest.raises(xcrop.CatalogUnreachableError, match=re.escape(proxy.url)):
                xcrop.sample_points(labels, "2019-02-01/2020-04-30", catalog=proxy.url,
                                    checkpoint=checkpoint, **kwargs)  # fmt: skip
        kept = sorted(checkpoint.glob("window-*.npz"))
        assert len(kept) == 2 < windows
        port = int(proxy.url.rsplit(":", 1)[1])  # the same URL again, the server healthy
        with FlakyProxy(api, fail=lambda n, _: False, port=port) as proxy:
            again = xcrop.sample_points(labels, "2019-02-01/2020-04-30", catalog=proxy.url,
                                        checkpoint=checkpoint, **kwargs)  # fmt: skip
        assert proxy.opens() == 2 * (windows - len(kept))  # only the unfinished windows
    order, want = np.argsort(again.ids), np.argsort(whole.ids)
    np.testing.assert_array_equal(again.ids[order], whole.ids[want])
    np.testing.assert_array_equal(again.X[order], whole.X[want])
    assert again.report["dropped"] == whole.report["dropped"]
    assert again.report["kept"] == whole.report["kept"]


def dask_single_thread():
    import dask

    return dask.config.set(scheduler="threads", num_workers=1)
