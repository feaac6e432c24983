"""Finding items: date parsing, static catalogs, and the errors that say what to fix."""

from __future__ import annotations

import datetime as dt
import re

import pystac
import pytest

import xcrop
from xcrop._catalog import find_items, time_range

UTC = dt.timezone.utc
# the localised 35MNM window, in lon/lat
WINDOW = (26.999, -7.248, 27.011, -7.237)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2020", dt.datetime(2020, 1, 1), dt.datetime(2020, 12, 31, 23, 59, 59, 999999)),
        ("2020-02", dt.datetime(2020, 2, 1), dt.datetime(2020, 2, 29, 23, 59, 59, 999999)),
        ("2020-12", dt.datetime(2020, 12, 1), dt.datetime(2020, 12, 31, 23, 59, 59, 999999)),
        (
            "2019-03-01/2020-03-31",
            dt.datetime(2019, 3, 1),
            dt.datetime(2020, 3, 31, 23, 59, 59, 999999),
        ),
        ("2020-06-06T10:00:00Z/..", dt.datetime(2020, 6, 6, 10), None),
    ],
)
def test_time_range(text, start, end):
    got = time_range(text)
    assert got[0] == start.replace(tzinfo=UTC)
    assert got[1] == (end.replace(tzinfo=UTC) if end else None)


def test_time_range_rejects_garbage():
    with pytest.raises(xcrop.XcropInputError, match="ISO 8601") as err:
        time_range("last summer")
    assert not isinstance(err.value, xcrop.EmptySearchError)  # bad input, not "found nothing"


@pytest.mark.parametrize(
    "text",
    [
        "2020",
        "2020-06",
        "2020-02-29",
        "2019-03-01/2020-03-31",
        "2019-03-01T10:00:00Z/..",
        "../2020-01",
        "2019-12-31T23:00:00+02:00/2020-01-01",
    ],
)
def test_time_range_reads_dates_as_pystac_client_does(text):
    """Issue 20 item 5: xcrop keeps its own date reading (pystac-client's is private to
    ``ItemSearch``, passes a reversed range and raises a bare ``Exception`` on garbage),
    and it must mean what pystac-client means wherever both read a value: the same
    interval, to the second (pystac-client ends a day at 23:59:59, xcrop at .999999, so
    a scene stamped in the last second of the day is kept)."""
    from pystac_client.item_search import ItemSearch

    theirs = ItemSearch(url="http://127.0.0.1:9/search", datetime=text).get_parameters()
    ours = time_range(text)
    for mine, their in zip(ours, theirs["datetime"].split("/"), strict=True):
        if mine is None:
            assert their == ".."
        else:
            their_dt = dt.datetime.fromisoformat(their.replace("Z", "+00:00"))
            assert mine.replace(microsecond=0) == their_dt


def test_static_item_collection_filters_dates_and_clouds(pc_items, tmp_path):
    import json

    path = tmp_path / "items.json"
    path.write_text(json.dumps(pystac.ItemCollection(pc_items).to_dict()))
    june = find_items(WINDOW, "2020-06", catalog=str(path))
    assert len(june) == 6 and all(it.datetime.month == 6 for it in june)
    clear = find_items(WINDOW, "2020-06-01/2020-07-31", catalog=str(path), max_cloud=1.0)
    want = sorted(it.id for it in pc_items if it.properties["eo:cloud_cover"] <= 1.0)
    assert sorted(it.id for it in clear) == want and len(want) == 7
    assert [it.datetime for it in clear] == sorted(it.datetime for it in clear)


def test_static_catalog_json(pc_items, tmp_path):
    cat = pystac.Catalog("local", "a static catalog of localised items")
    cat.add_items([it.clone() for it in pc_items[:5]])
    cat.normalize_hrefs(str(tmp_path / "catalog"))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    found = find_items(
        WINDOW, "2020-07-01/2020-07-31", catalog=str(tmp_path / "catalog" / "catalog.json")
    )
    assert sorted(it.id for it in found) == sorted(it.id for it in pc_items[:5])
    cube = xcrop.search(WINDOW, "2020-07-26", catalog=str(tmp_path / "catalog" / "catalog.json"))
    assert cube.sizes["time"] == 1 and str(cube.id.values[0]).startswith("S2B_MSIL2A_20200726")


def test_empty_search_says_what_was_searched(pc_items, tmp_path):
    import json

    path = tmp_path / "items.json"
    path.write_text(json.dumps(pystac.ItemCollection(pc_items).to_dict()))
    with pytest.raises(xcrop.EmptySearchError) as err:
        find_items((10.0, 10.0, 10.1, 10.1), "2021-01", catalog=str(path), max_cloud=5)
    msg = str(err.value)
    assert "2021-01" in msg and "(10.0, 10.0, 10.1, 10.1)" in msg and "max_cloud=5" in msg
    assert "Widen" in msg


def test_unknown_catalog_lists_the_known_ones():
    with pytest.raises(xcrop.UnknownCatalogError, match=r"earth-search.*planetary-computer"):
        find_items(WINDOW, "2020", catalog="earth-serch")


def test_unreachable_api_names_the_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(xcrop.CatalogUnreachableError, match=re.escape(f"127.0.0.1:{port}/v1")):
        find_items(WINDOW, "2020", catalog=url)


def test_a_network_failure_is_a_network_error_not_a_value_error():
    """A STAC URL on a closed loopback port: XcropNetworkError (an OSError), which
    ``except ValueError`` (bad input) does not catch, and ``except XcropError`` does."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    quick = xcrop.Network(timeout=2, retries=0)
    for call in (
        lambda: find_items(WINDOW, "2020", catalog=f"http://127.0.0.1:{port}/v1", network=quick),
        lambda: xcrop.search(WINDOW, "2020", catalog=f"http://127.0.0.1:{port}/v1", network=quick),
    ):
        with pytest.raises(xcrop.XcropNetworkError) as err:
            try:
                call()
            except ValueError as wrong:  # pragma: no cover - the old family
                raise AssertionError(f"a network failure was a ValueError: {wrong!r}") from wrong
        assert isinstance(err.value, OSError) and isinstance(err.value, xcrop.XcropError)
        assert not isinstance(err.value, ValueError)


def test_bad_bbox_is_explained():
    with pytest.raises(xcrop.XcropError, match="west, south, east, north"):
        find_items((27.0, -7.0, 26.0, -8.0), "2020", catalog="earth-search")


def test_static_file_is_parsed_once_until_it_changes(pc_items, tmp_path, monkeypatch):
    import json
    import os

    from xcrop import _catalog as catalog

    calls = []
    parse = catalog._parse_static

    def counting(source, href):
        calls.append(href)
        return parse(source, href)

    monkeypatch.setattr(catalog, "_parse_static", counting)
    path = tmp_path / "items.json"
    path.write_text(json.dumps(pystac.ItemCollection(pc_items).to_dict()))
    for when in ("2020-06", "2020-07", "2020-06-01/2020-07-31", "2020-06"):
        find_items(WINDOW, when, catalog=str(path))
    assert len(calls) == 1
    # the same file by another spelling of its path is the same entry
    find_items(WINDOW, "2020-06", catalog=f"file://{tmp_path}/./items.json")
    assert len(calls) == 1
    # callers get copies: changing them does not change what the next search sees
    june = find_items(WINDOW, "2020-06", catalog=str(path))
    june[0].properties["eo:cloud_cover"] = 1000.0
    june[0].assets.clear()
    again = find_items(WINDOW, "2020-06", catalog=str(path))
    assert again[0].properties["eo:cloud_cover"] < 100 and again[0].assets
    assert len(calls) == 1
    # a rewrite (new size) and a touch (new mtime only) are both read again
    path.write_text(json.dumps(pystac.ItemCollection(pc_items[:3]).to_dict()))
    assert len(find_items(WINDOW, "2020-06-01/2020-07-31", catalog=str(path))) == 3
    assert len(calls) == 2
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    find_items(WINDOW, "2020-06-01/2020-07-31", catalog=str(path))
    find_items(WINDOW, "2020-06-01/2020-07-31", catalog=str(path))
    assert len(calls) == 3


def test_static_catalog_cache_sees_a_changed_item_file(pc_items, tmp_path):
    cat = pystac.Catalog("local", "a static catalog of localised items")
    cat.add_items([it.clone() for it in pc_items[:5]])
    cat.normalize_hrefs(str(tmp_path / "catalog"))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    root = str(tmp_path / "catalog" / "catalog.json")
    first = find_items(WINDOW, "2020-06-01/2020-07-31", catalog=root)
    assert len(first) == 5
    # catalog.json itself is unchanged; one of its item files is not
    item = pystac.Item.from_file(first[0].get_self_href())
    item.properties["eo:cloud_cover"] = 99.5
    item.save_object(include_self_link=False, dest_href=first[0].get_self_href())
    changed = find_items(WINDOW, "2020-06-01/2020-07-31", catalog=root, max_cloud=99.0)
    assert first[0].id not in [it.id for it in changed] and len(changed) == 4
