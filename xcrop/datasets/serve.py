"""Serving an ItemCollection with a real STAC API on loopback (``rustac serve``).

The demo and the tests search the simulated archive exactly as they would search Earth
Search: through pystac-client against a STAC API, here ``rustac serve`` from PyPI's
``rustac`` (in the ``dev`` extra).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from ..errors import XcropError, XcropInputError

__all__ = ["free_port", "rustac_executable", "serve_items", "serve_process"]


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
        raise XcropInputError(
            "rustac is not installed: pip install rustac (or '.[dev]' in xcrop's clone)."
        )
    with serve_process(
        lambda port: [exe, "serve", "--create-collections", "--addr", f"127.0.0.1:{port}",
                      str(path)],
        "rustac serve", timeout=timeout,
    ) as url:  # fmt: skip
        yield url


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_process(
    command: Callable[[int], list[str]],
    name: str,
    *,
    timeout: float = 30.0,
    ready: Callable[[requests.Response], bool] = lambda response: response.ok,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``command(port)``, a server on a free 127.0.0.1 port (with ``env`` added to
    this process's environment), until it answers its root URL as ``ready`` says; yield
    that URL, and stop the server afterwards.

    Examples
    --------
    >>> def moto(port):
    ...     return ["moto_server", "-p", str(port)]
    >>> with serve_process(moto, "moto") as url:  # doctest: +SKIP
    ...     print(url)
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # its output goes to a file, not a pipe: a server that logs every request would
    # block once a pipe nobody reads is full
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        command(port), stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready(requests.get(url, timeout=1)):
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                log.seek(0)
                out = log.read().decode(errors="replace")[-2000:]
                raise XcropError(f"{name} did not start on {url}: {out}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
