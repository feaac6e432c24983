"""How xcrop talks to servers: timeouts, retries with backoff, and secrets kept out of logs.

:class:`Network` holds the settings of every STAC request xcrop makes (a search, a page of
results, a static catalog over HTTP) and of GDAL's reads of remote COGs. :func:`redact`
removes signatures and tokens from URLs (Planetary Computer's SAS ``sig=``, AWS
``X-Amz-Signature``, ``token=``) in anything xcrop raises, and a logging filter does the
same for the log lines of the libraries that print URLs (odc-stac's read errors).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from .errors import XcropInputError

__all__ = ["Network", "redact"]

#: A URL's query string that carries a credential.
_SECRET_QUERY = re.compile(
    r"(?P<url>\b[a-z][a-z0-9+.-]*://[^\s?'\"<>]+)\?(?P<query>[^\s'\"<>]*"
    r"(?:sig|signature|token|credential|x-amz-security-token|key)=[^\s'\"<>]*?)"
    r"(?=[:;,.)]*(?:[\s'\"<>]|$))",  # a message's own ": ", "." or ")" stays
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the query strings of signed URLs replaced by ``?<redacted>``.

    Examples
    --------
    >>> redact("Failed to load https://a.blob.core.windows.net/b/B04.tif?st=1&sig=abc%3D: x")
    'Failed to load https://a.blob.core.windows.net/b/B04.tif?<redacted>: x'
    >>> redact("https://earth-search.aws.element84.com/v1/search?limit=10")
    'https://earth-search.aws.element84.com/v1/search?limit=10'
    """
    return _SECRET_QUERY.sub(lambda m: f"{m['url']}?<redacted>", text)


@dataclass(frozen=True)
class Network:
    """Timeouts and retries of xcrop's requests.

    Attributes
    ----------
    timeout
        Seconds to wait for a connection and then for each answer; a frozen server
        fails after this instead of blocking the search.
    retries
        Tries after the first one, on connection errors, timeouts and the answers
        429, 500, 502, 503 and 504.
    backoff
        The waits between tries: the first retry goes at once, then each waits
        ``backoff`` * 2, 4, 8, ... seconds (0, 2, 4, 8, 16 s by default: a server back
        within half a minute still answers), plus up to ``jitter * backoff`` seconds at
        random, and never more than ``backoff_max``.

    Examples
    --------
    >>> net = Network(timeout=10, retries=3)
    >>> net.waits()
    (0.0, 2.0, 4.0)
    """

    timeout: float = 30.0
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise XcropInputError(f"Network(timeout={self.timeout!r}): give seconds > 0.")
        if self.retries < 0 or self.backoff < 0 or self.jitter < 0:
            raise XcropInputError("Network: retries, backoff and jitter must be >= 0.")

    def waits(self) -> tuple[float, ...]:
        """The waits before each retry (as urllib3 spaces them), without their jitter."""
        return tuple(
            0.0 if k == 0 else float(min(self.backoff * 2**k, self.backoff_max))
            for k in range(self.retries)
        )

    def retry(self):
        """A ``urllib3.util.Retry`` for requests (POST searches included)."""
        from urllib3.util.retry import Retry

        # urllib3 retries once at once, then waits backoff_factor * 2 ** (n - 1) before retry n
        return Retry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            other=0,
            allowed_methods=None,  # a STAC search is a POST: retry it too (it is read-only)
            status_forcelist=(429, 500, 502, 503, 504),
            backoff_factor=self.backoff,
            backoff_max=self.backoff_max,
            backoff_jitter=self.jitter * self.backoff,
            respect_retry_after_header=True,
            raise_on_status=True,
        )

    def stac_io(self):
        """A pystac-client ``StacApiIO`` with these timeouts and retries."""
        from pystac_client.stac_api_io import StacApiIO

        return StacApiIO(timeout=self.timeout, max_retries=self.retry())

    def gdal_env(self) -> dict[str, str]:
        """GDAL's own retry and timeout settings for remote COG reads."""
        return {
            "GDAL_HTTP_MAX_RETRY": str(self.retries),
            "GDAL_HTTP_RETRY_DELAY": str(max(self.backoff, 0.1)),
            "GDAL_HTTP_TIMEOUT": str(int(max(self.timeout, 1))),
            "GDAL_HTTP_CONNECTTIMEOUT": str(int(max(self.timeout, 1))),
        }


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own handling
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


#: Loggers that print asset URLs (odc-stac's read errors, GDAL through rasterio, HTTP).
_URL_LOGGERS = ("odc.loader._rio", "odc.stac", "rasterio", "rasterio._env", "rasterio._err",
                "pystac_client", "urllib3.connectionpool")  # fmt: skip
_FILTER = _RedactFilter()


def install_log_filter() -> None:
    """Redact signed URLs in the log lines of the libraries xcrop drives (idempotent)."""
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
