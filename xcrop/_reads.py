"""Reading the COGs of a cube: retries, errors that name the file and the item, gaps.

odc-stac reads each (time, band, chunk) through a *reader driver*; :class:`ReadDriver`
is rasterio's driver with three changes:

- the GDAL settings of each load (HTTP retries and timeouts, from :class:`xcrop.Network`)
  travel with the tasks, so dask.distributed workers read with them too;
- a failed read is tried again (``retries`` times, waits doubling from ``backoff``),
  then raises :class:`ReadError` naming the file (signed URLs redacted), the item and
  the band, with GDAL's own reason (rasterio only says "see previous exception");
- with ``on_error="nodata"`` a read that still fails leaves its pixels as nodata (NaN in
  the cube, so the composite takes another date and the counts show it), is logged as a
  warning and counted: :func:`read_failures` says how many, per process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from odc.loader._rio import RioDriver, RioReader, capture_rio_env

from ._network import Network, redact
from .errors import XcropError

__all__ = ["ReadError", "ReadDriver", "read_failures", "OnError"]

OnError = Literal["raise", "nodata"]
_LOG = logging.getLogger("xcrop.reads")
_FAILED: Counter[str] = Counter()
_LOCK = threading.Lock()


class ReadError(XcropError, OSError):
    """A COG that could not be read after every retry (named, with its item and band)."""


def read_failures(reset: bool = False) -> dict[str, int]:
    """Reads that failed and were left as nodata (``on_error="nodata"``) in this process,
    by file (signed URLs redacted); ``reset=True`` starts counting again.

    Examples
    --------
    >>> read_failures(reset=True)
    {}
    """
    with _LOCK:
        out = dict(_FAILED)
        if reset:
            _FAILED.clear()
    return out


def _reason(err: BaseException) -> str:
    """GDAL's reason: rasterio's message often only points at the previous exception."""
    if not str(err).strip():
        return f"{type(err).__name__} while reading (a damaged or truncated file?)"
    parts, seen = [], err
    while seen is not None and len(parts) < 3:
        text = " ".join(str(seen).split())
        if text and "see previous exception" not in text.lower():
            parts.append(text)
        seen = seen.__cause__ or seen.__context__
    return redact("; ".join(parts) or type(err).__name__)


class _Reader(RioReader):
    def __init__(self, src, ctx, driver: ReadDriver) -> None:
        super().__init__(src, ctx)
        self._driver = driver

    def read(self, cfg, dst_geobox, *, dst=None, selection=None):
        import rasterio.errors

        drv, uri = self._driver, self._src.uri
        for attempt in range(drv.retries + 1):
            try:
                return super().read(cfg, dst_geobox, dst=dst, selection=selection)
            except (rasterio.errors.RasterioError, OSError, AssertionError, ValueError) as err:
                # a file cut short can even open with no geotransform, and odc-loader
                # then fails an assertion: every failure to read the file is a read error
                if attempt < drv.retries:
                    time.sleep(drv.backoff * 2**attempt)
                    continue
                item, band = drv.sources.get(uri, ("?", "?"))
                where = f"{redact(uri)} (band {band} of item {item})"
                tries = f"{drv.retries + 1} tr{'ies' if drv.retries else 'y'}"
                if drv.on_error == "raise":
                    raise ReadError(
                        f"Reading {where} failed after {tries}: {_reason(err)}. Check the "
                        "file (or that its server answers); pass on_error='nodata' to map "
                        "with this read left as a gap."
                    ) from err
                with _LOCK:
                    _FAILED[redact(uri)] += 1
                _LOG.warning("Left as nodata: %s failed after %s: %s", where, tries, _reason(err))
                empty = dst[0:0, 0:0] if dst is not None else np.ndarray((0, 0), cfg.dtype)
                return np.s_[0:0, 0:0], empty
        raise AssertionError("unreachable")  # pragma: no cover


class ReadDriver(RioDriver):
    """odc-loader's rasterio driver with xcrop's retries, errors and GDAL settings.

    Parameters
    ----------
    sources
        ``{href: (item id, band)}`` of the load, to name what failed.
    network
        Its GDAL settings (HTTP retries, timeouts) go with every read task.
    retries, backoff
        Tries again after a failed read (waits ``backoff`` * 1, 2, 4 ... s).
    on_error
        ``"raise"`` (default) or ``"nodata"``: leave a read that keeps failing as a gap.
    """

    def __init__(
        self,
        sources: Mapping[str, tuple[str, str]] | None = None,
        *,
        network: Network | None = None,
        retries: int = 2,
        backoff: float = 0.5,
        on_error: OnError = "raise",
    ) -> None:
        super().__init__()
        if on_error not in ("raise", "nodata"):
            raise XcropError(f"on_error={on_error!r}: use 'raise' or 'nodata'.")
        self.sources = dict(sources or {})
        for href, where in list(self.sources.items()):  # odc reads local paths as file://
            if "://" not in href:
                self.sources.setdefault(f"file://{os.path.abspath(href)}", where)
        self.network = network or Network()
        self.retries, self.backoff, self.on_error = retries, backoff, on_error

    def capture_env(self) -> dict[str, Any]:
        return {**capture_rio_env(), **self.network.gdal_env()}

    def open(self, src, ctx) -> _Reader:
        return _Reader(src, ctx, self)
