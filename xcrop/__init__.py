"""xcrop: cropland maps from Sentinel-2 time series, the xarray way.

``import xcrop`` registers the ``.cropmask`` accessor on xarray objects.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import accessor as _accessor  # noqa: F401  (registers .cropmask)
from .catalog import CATALOGS, find_items
from .composite import Composite, composite
from .cube import as_cube, require_bands
from .errors import (
    CatalogUnreachableError,
    CRSError,
    CubeError,
    EmptySearchError,
    MissingBandError,
    UnknownCatalogError,
    XcropError,
)
from .gee import read_gee_export
from .labels import consensus, crowd_vote, join_labellers, mark_local, read_labels
from .points import sample_points
from .sample import Samples, sample
from .sentinel2 import DEFAULT_BANDS, L2A_BANDS, REFLECTANCE_BANDS
from .stac import load, search

try:
    __version__ = version("xcrop")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "CATALOGS",
    "DEFAULT_BANDS",
    "L2A_BANDS",
    "REFLECTANCE_BANDS",
    "Composite",
    "Samples",
    "as_cube",
    "composite",
    "consensus",
    "crowd_vote",
    "join_labellers",
    "mark_local",
    "read_gee_export",
    "read_labels",
    "sample",
    "sample_points",
    "find_items",
    "load",
    "require_bands",
    "search",
    "CatalogUnreachableError",
    "CRSError",
    "CubeError",
    "EmptySearchError",
    "MissingBandError",
    "UnknownCatalogError",
    "XcropError",
]
