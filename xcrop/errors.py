"""The one family of errors xcrop raises; every message says what to do about it.

``except xcrop.XcropError`` catches all of them. Below it:

- :class:`XcropInputError` (also a ``ValueError``): an argument, a file or a model that xcrop
  cannot use as given; the message says what to give instead.
- :class:`XcropNetworkError` (also a ``ConnectionError``, so an ``OSError``): a STAC API,
  a catalog or an object store that did not answer; trying again later may work.
- :class:`EmptySearchError` (also a ``ValueError``): a search that ran and found nothing.
- :class:`MissingExtraError` (also an ``ImportError``): a function whose optional
  dependency is not installed; the message names the extra to install.

A read of a file that still fails after its retries is :class:`xcrop.ReadError` (an
``XcropError`` and an ``OSError``).
"""

from __future__ import annotations

__all__ = [
    "XcropError",
    "XcropInputError",
    "XcropNetworkError",
    "UnknownCatalogError",
    "CatalogUnreachableError",
    "EmptySearchError",
    "MissingBandError",
    "CubeError",
    "CRSError",
    "ModelError",
    "MissingExtraError",
]


class XcropError(Exception):
    """Base class of every error raised by xcrop."""


class XcropInputError(XcropError, ValueError):
    """An argument, a file or a model that xcrop cannot use as given (a ``ValueError``)."""


class XcropNetworkError(XcropError, ConnectionError):
    """A server that did not answer: a STAC API, a remote catalog, an object store (an
    ``OSError``, never a ``ValueError``)."""


class UnknownCatalogError(XcropInputError):
    """A catalog name that xcrop does not know, or a path that does not exist."""


class CatalogUnreachableError(XcropNetworkError):
    """A STAC API or static catalog that could not be opened."""


class EmptySearchError(XcropError, ValueError):
    """A search that ran and matched no item (an area, dates or a cloud limit with no
    imagery); a malformed area or date is an :class:`XcropInputError`."""


class MissingBandError(XcropInputError):
    """A cube or an item without a band that the method needs."""


class CubeError(XcropInputError):
    """A cube of the wrong shape: missing dimensions, wrong dtype, no coordinates."""


class CRSError(XcropInputError):
    """A cube without a CRS, or with one that does not match."""


class ModelError(XcropInputError):
    """A model file that cannot be read, or a model used on data it was not trained for."""


class MissingExtraError(XcropError, ImportError):
    """A function whose optional dependency (an extra: ``ml``, ``plot``, ``stackstac``...)
    is not installed."""
