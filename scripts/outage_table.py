"""Outages and bad inputs of issue 14, run against the xcrop on ``sys.path`` (this
checkout, or an older one first on PYTHONPATH): a STAC API (``rustac serve`` over real
Planetary Computer metadata) behind a real proxy on 127.0.0.1 that answers 503 or hangs,
a dead port, bad areas and dates, a truncated COG, a signed URL in the logs. Prints a
markdown row per case: seconds and the outcome's first line::

    PYTHONPATH=/path/to/old/checkout .venv/bin/python scripts/outage_table.py
    .venv/bin/python scripts/outage_table.py
"""

from __future__ import annotations

import importlib.util
import io
import logging
import socket
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
ITEMS = HERE.parent / "shared/data/stac-items/planetary-computer_sentinel-2-l2a_search-page.json"
BBOX, DAY = (173.6, 57.7, 174.1, 58.3), "2019-01-01"


def _flaky():
    spec = importlib.util.spec_from_file_location("flaky", HERE / "tests/flaky.py")
    module = sys.modules["flaky"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(name: str, func) -> None:
    t0 = time.perf_counter()
    try:
        out = f"ok: {func()}"
    except BaseException as e:  # the table records whatever happened
        out = f"{type(e).__name__}: {' '.join(str(e).split())}"
    print(f"| {name} | {time.perf_counter() - t0:.1f} | {out[:230].replace('|', '/')} |",
          flush=True)  # fmt: skip


def count(url: str, n: int) -> str:
    import xcrop

    found = xcrop.find_items(BBOX, DAY, catalog=url, collection="sentinel-2-l2a")
    return f"{len(found)} of {n} items"


def main() -> None:
    import xcrop
    from xcrop.datasets.serve import serve_items

    flaky = _flaky()
    print(f"xcrop from {Path(xcrop.__file__).parents[1]}\n")
    print("| case | s | outcome |\n|---|---|---|")
    search = xcrop.find_items
    with serve_items(ITEMS) as api:
        n = len(search(BBOX, DAY, catalog=api, collection="sentinel-2-l2a"))
        with flaky.FlakyProxy(api, fail=lambda _, t: t < 2.0) as proxy:
            row(
                "server answers 503 for its first 2 s",
                lambda: count(proxy.url, n),
            )
        with flaky.FlakyProxy(api, fail=lambda n, _: n < 3) as proxy:
            row(
                "three 503s in a row",
                lambda: count(proxy.url, n),
            )
        with flaky.FlakyProxy(api, fail=lambda *_: True, status=None) as proxy:
            kwargs = {}
            if hasattr(xcrop, "Network"):
                kwargs["network"] = xcrop.Network(timeout=5, retries=1)
            row("frozen server (hangs 30 s per request)" + (" [timeout 5 s, 1 retry]"
                if kwargs else " [no setting exists]"),
                lambda: search(BBOX, DAY, catalog=proxy.url, **kwargs))  # fmt: skip
        with socket.socket() as sock:  # a port nothing listens on (older checkouts have
            sock.bind(("127.0.0.1", 0))  # no xcrop.datasets.serve.free_port to ask)
            dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        row("dead server (nothing listens)", lambda: search(BBOX, DAY, catalog=dead))
        row(
            "reversed dates 2020-03-31/2019-03-01",
            lambda: search(BBOX, "2020-03-31/2019-03-01", catalog=api),
        )
        row("month 13: 2019-13-45", lambda: search(BBOX, "2019-13-45", catalog=api))
        row("latitude 200", lambda: search((173.6, 200, 174.1, 201), DAY, catalog=api))
        row("NaN in the bbox",
            lambda: dict(xcrop.search((173.6, 57.7, float("nan"), 58.3), DAY, catalog=api,
                                      collection="sentinel-2-l2a").sizes))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        import json

        import pystac

        from xcrop.datasets import localise_item

        item = pystac.Item.from_dict(json.loads(ITEMS.read_text())["features"][0])
        local = localise_item(item, tmp, lambda it, band, r, c: (1000 + r + c).astype("uint16"),
                              bands=("B04",))  # fmt: skip
        cog = Path(next(iter(local.assets.values())).href.removeprefix("file://"))
        data = cog.read_bytes()
        cog.write_bytes(data[: len(data) // 3])  # a broken download
        row(
            "truncated COG (a broken download)",
            lambda: xcrop.load([local], bands=["B04"], chunks=256).compute().shape,
        )
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger().addHandler(handler)
    signed = "https://x.blob.core.windows.net/c/B04.tif?st=2020&sig=SECRETSIGNATURE%3D"
    logging.getLogger("odc.loader._rio").error("Failed to load %s:%d", signed, 1)
    row(
        "signed URL in odc-stac's read-error log line",
        lambda: "secret printed" if "SECRET" in log.getvalue() else "redacted",
    )


if __name__ == "__main__":
    main()
