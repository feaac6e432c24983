"""A real S3 API on 127.0.0.1: moto's server (``moto_server``, from PyPI) in its own
process, started by the tests, reached through s3fs like any S3 endpoint."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from xcrop.datasets.serve import serve_process

KEY, SECRET = "xcrop-test-key", "xcrop-test-secret"


@contextlib.contextmanager
def s3_server(auth: bool = False) -> Iterator[str]:
    """Run moto's S3 server on a free port; yield its endpoint URL. With ``auth`` it
    checks every request's credentials (moto's IAM: no key is known, so all are refused)."""
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))

    def command(port: int) -> list[str]:
        return [exe, "-H", "127.0.0.1", "-p", str(port)]

    env = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if auth else {}
    # with auth, moto answers the probe (no credentials at all) with a 500: it is up
    ready = (lambda r: True) if auth else (lambda r: r.status_code < 500)
    with serve_process(command, "moto_server", ready=ready, env=env) as url:
        yield url


def options(endpoint: str, key: str = KEY, secret: str = SECRET) -> dict:
    """fsspec ``storage_options`` for the server (what a user passes for their S3)."""
    return {"key": key, "secret": secret, "endpoint_url": endpoint,
            "use_listings_cache": False}  # fmt: skip


def make_bucket(endpoint: str, name: str) -> None:
    import s3fs

    s3fs.S3FileSystem(**options(endpoint)).mkdir(name)
