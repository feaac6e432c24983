"""The one family of errors xcrop raises; every message says what to do about it."""

from __future__ import annotations

__all__ = [
    "XcropError",
    "UnknownCatalogError",
    "CatalogUnreachableError",
    "EmptySearchError",
    "MissingBandError",
    "CubeError",
    "CRSError",
    "ModelError",
]


class XcropError(ValueError):
    """Base class of every error raised by xcrop."""


class UnknownCatalogError(XcropError):
    """A catalog name that xcrop does not know, or a path that does not exist."""


class CatalogUnreachableError(XcropError):
    """A STAC API or static catalog that could not be opened."""


class EmptySearchError(XcropError):
    """A search that matched no item."""


class MissingBandError(XcropError):
    """A cube or an item without a band that the method needs."""


class CubeError(XcropError):
    """A cube of the wrong shape: missing dimensions, wrong dtype, no coordinates."""


class CRSError(XcropError):
    """A cube without a CRS, or with one that does not match."""


class ModelError(XcropError):
    """A model file that cannot be read, or a model used on data it was not trained for."""
