"""A real S3 API on 127.0.0.1: moto's server (``moto_server``, from PyPI) in its own
process, started by the tests, reached through s3fs like any S3 endpoint."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from .flaky import free_port

KEY, SECRET = "xcrop-test-key", "xcrop-test-secret"


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Run moto's S3 server on a free port; yield its endpoint URL."""
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url, timeout=1).status_code < 500:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start on {url}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def options(endpoint: str, key: str = KEY, secret: str = SECRET) -> dict:
    """fsspec ``storage_options`` for the server (what a user passes for their S3)."""
    return {"key": key, "secret": secret, "endpoint_url": endpoint,
            "use_listings_cache": False}  # fmt: skip


def make_bucket(endpoint: str, name: str) -> None:
    import s3fs

    s3fs.S3FileSystem(**options(endpoint)).mkdir(name)
