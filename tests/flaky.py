"""A real HTTP server on 127.0.0.1 in front of another one, that fails when told to: the
outages of a STAC API (503s, a server that dies midway, one that never answers), made
with real sockets and real HTTP, not mocks of the client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class FlakyProxy:
    """Forward to ``upstream``, except while ``fail(n, seconds)`` says so for request
    ``n`` (0-based) at ``seconds`` after start: then answer ``status`` (or hang, for
    ``status=None``, until the client gives up). Links in the answers are rewritten to
    point at the proxy, so a client that follows them stays behind it."""

    def __init__(
        self,
        upstream: str,
        fail: Callable[[int, float], bool],
        status: int | None = 503,
        port: int = 0,
    ):
        self.upstream, self.fail, self.status = upstream.rstrip("/"), fail, status
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status answered)
        self._lock = threading.Lock()
        self._start = time.monotonic()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                with proxy._lock:
                    n = len(proxy.requests)
                    failing = proxy.fail(n, time.monotonic() - proxy._start)
                    proxy.requests.append((self.command, self.path, 0))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if failing and proxy.status is None:
                    time.sleep(30)  # a frozen server: the client must time out first
                    return
                if failing:
                    self._answer(n, proxy.status, b'{"code": "unavailable"}')
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                up = requests.request(self.command, proxy.upstream + self.path, data=body or None,
                                      headers=headers, timeout=30)  # fmt: skip
                text = up.content.replace(proxy.upstream.encode(), proxy.url.encode())
                self._answer(n, up.status_code, text, up.headers.get("Content-Type"))

            def _answer(self, n, status, body, kind="application/json"):
                with proxy._lock:
                    method, path, _ = proxy.requests[n]
                    proxy.requests[n] = (method, path, status)
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def opens(self) -> int:
        """Requests of the API's landing page: one pair per search a client makes."""
        return sum(1 for method, path, _ in self.requests if (method, path) == ("GET", "/"))


class FlakyFiles:
    """Serve the files under ``root`` over HTTP with Range requests (as object stores do),
    answering ``status`` to the requests for which ``fail(n, path)`` is true."""

    def __init__(self, root, fail: Callable[[int, str], bool], status: int = 503):
        from pathlib import Path

        self.root, self.fail, self.status = Path(root), fail, status
        self.requests: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        files = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def _serve(self, head: bool):
                path = self.path.split("?", 1)[0]
                with files._lock:
                    n = len(files.requests)
                    failing = files.fail(n, path)
                target = files.root / path.lstrip("/")
                if failing or not target.is_file():
                    status = files.status if failing else 404
                    with files._lock:
                        files.requests.append((path, status))
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = target.read_bytes()
                status, body = 200, data
                if rng := self.headers.get("Range"):
                    start, _, end = rng.removeprefix("bytes=").partition("-")
                    start, end = int(start), min(int(end or len(data) - 1), len(data) - 1)
                    status, body = 206, data[start : end + 1]
                with files._lock:
                    files.requests.append((path, status))
                self.send_response(status)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyFiles:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
