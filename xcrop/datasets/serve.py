"""Serving an ItemCollection with a real STAC API on loopback (``rustac serve``).

The demo and the tests search the simulated archive exactly as they would search Earth
Search: through pystac-client against a STAC API, here ``rustac serve`` from PyPI's
``rustac`` (in the ``dev`` extra).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from ..errors import XcropError

__all__ = ["rustac_executable", "serve_items"]


def rustac_executable() -> str | None:
    """The ``rustac`` command, on PATH or beside this Python, or None."""
    beside = Path(sys.executable).with_name("rustac")
    return shutil.which("rustac") or (str(beside) if beside.exists() else None)


@contextlib.contextmanager
def serve_items(path: str | Path, *, timeout: float = 30.0) -> Iterator[str]:
    """Run ``rustac serve`` over an ItemCollection on a free 127.0.0.1 port; yield its URL.

    Examples
    --------
    >>> with serve_items(archive.items_path) as url:  # doctest: +SKIP
    ...     cube = xcrop.search(bbox, catalog=url, collection="sentinel-2-l2a")
    """
    exe = rustac_executable()
    if exe is None:
        raise XcropError("rustac is not installed: pip install rustac (or 'xcrop[dev]').")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [exe, "serve", "--create-collections", "--addr", f"127.0.0.1:{port}", str(path)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(url, timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise XcropError(f"rustac serve did not start on {url}: {out}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
