"""xcrop: cropland maps from Sentinel-2 time series, the xarray way.

``import xcrop`` registers the ``.cropmask`` accessor on xarray objects.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import accessor as _accessor  # noqa: F401  (registers .cropmask)
from ._extras import missing_extra
from ._network import Network, install_log_filter
from ._reads import ReadError, read_failures
from ._versions import show_versions
from .areas import area, sample_for_area
from .catalog import CATALOGS, find_items
from .composite import Composite, composite
from .cube import as_cube, require_bands
from .errors import (
    CatalogUnreachableError,
    CRSError,
    CubeError,
    EmptySearchError,
    MissingBandError,
    MissingExtraError,
    ModelError,
    UnknownCatalogError,
    XcropError,
    XcropInputError,
    XcropNetworkError,
)
from .evaluation import evaluate, labeller_agreement, metrics, sensitivity
from .gee import read_gee_export
from .io import open_composite, open_probability, to_cog, to_zarr, write_composite
from .labels import (
    concat_labels,
    consensus,
    crowd_vote,
    join_labellers,
    mark_local,
    read_labels,
)
from .maps import evaluate_map, per_class_errors, read_map
from .points import sample_points
from .sample import Samples, sample
from .sentinel2 import DEFAULT_BANDS, L2A_BANDS, REFLECTANCE_BANDS
from .stac import load, search

#: Names that need PyTorch or scikit-learn (the ``ml`` extra), imported on first use.
_LAZY = {
    "MultiHeadLSTM": "model",
    "LSTMEnsemble": "model",
    "load_model": "model",
    "train": "training",
    "grid_search": "training",
    "predict": "inference",
    "random_forest": "baselines",
    "svm": "baselines",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        try:
            module = import_module(f".{_LAZY[name]}", __name__)
        except ImportError as e:
            raise missing_extra(f"xcrop.{name}", e) from e
        return getattr(module, name)
    raise AttributeError(f"module 'xcrop' has no attribute {name!r}")


install_log_filter()  # signed URLs never reach a log line through the libraries we drive

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
    "Network",
    "ReadError",
    "Samples",
    "area",
    "as_cube",
    "composite",
    "concat_labels",
    "consensus",
    "crowd_vote",
    "join_labellers",
    "mark_local",
    "read_gee_export",
    "read_labels",
    "sample",
    "read_failures",
    "sample_points",
    "sample_for_area",
    "find_items",
    "load",
    "require_bands",
    "search",
    "show_versions",
    "CatalogUnreachableError",
    "CRSError",
    "CubeError",
    "EmptySearchError",
    "MissingBandError",
    "MissingExtraError",
    "UnknownCatalogError",
    "XcropError",
    "XcropInputError",
    "XcropNetworkError",
    "ModelError",
    "evaluate",
    "evaluate_map",
    "labeller_agreement",
    "metrics",
    "read_map",
    "per_class_errors",
    "sensitivity",
    "open_composite",
    "open_probability",
    "write_composite",
    "to_cog",
    "to_zarr",
    *_LAZY,
]
