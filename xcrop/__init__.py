"""xcrop: cropland maps from Sentinel-2 time series, the xarray way.

``import xcrop`` registers the ``.cropmask`` accessor on xarray objects and gives the
public API below, in the order of the pipeline; the modules behind it are private
(``xcrop._stac``, ``xcrop._composite``, ...) and may change. Public modules: ``xcrop``,
``xcrop.plot`` (figures), ``xcrop.datasets`` (the simulated archive), ``xcrop.errors``.

1. Find and load a cube: :func:`search`, :func:`load`, :func:`find_items`.
2. Composite it: :func:`composite` (or ``cube.cropmask.composite()``) gives a
   :class:`Composite`.
3. Labels and samples: :func:`read_labels` and friends, :func:`sample`,
   :func:`sample_points`.
4. Train: :func:`train`, :func:`grid_search`, the baselines :func:`random_forest` and
   :func:`svm`.
5. Map: :func:`predict` (or ``composite.predict(model)``), :func:`to_zarr`, :func:`to_cog`.
6. Judge and measure: :func:`evaluate`, :func:`evaluate_map`, :func:`area`;
   :func:`suggest_labels` says where labels would help most.

The whole pipeline on simulated data: :func:`run_demo` (``xcrop demo``).

Examples
--------
>>> import xcrop
>>> cube = xcrop.search(bbox, "2019-03-01/2020-02-28")  # doctest: +SKIP
>>> prob = cube.cropmask.composite().predict(model)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _accessor  # noqa: F401  (registers .cropmask)
from ._extras import missing_extra as _missing_extra
from ._network import install_log_filter as _install_log_filter
from ._versions import VERSION as _VERSION
from ._versions import show_versions

# Grouped by pipeline stage, not sorted by name:
# isort: off
# 1. Finding and loading Sentinel-2 cubes
from ._catalog import CATALOGS, find_items
from ._cube import as_cube, require_bands
from ._network import Network
from ._reads import ReadError, read_failures
from ._sentinel2 import ASSET_ALIASES, DEFAULT_BANDS, L2A_BANDS, REFLECTANCE_BANDS
from ._stac import load, search

# 2. Compositing
from ._composite import Composite, composite, no_clear_share
from ._gee import read_gee_export

# 3. Labels and samples
from ._labels import (
    concat_labels,
    consensus,
    crowd_vote,
    join_labellers,
    mark_local,
    read_labels,
)
from ._points import sample_points
from ._sample import Samples, sample

# 5. Writing and reading maps and composites
from ._io import open_composite, open_probability, to_cog, to_zarr, write_composite

# 6. Evaluation, labels to add next, and area estimates
from ._active import suggest_labels
from ._areas import area, sample_for_area, write_sample_design
from ._estimation import AreaEstimate
from ._evaluation import (
    Predictor,
    evaluate,
    labeller_agreement,
    metrics,
    results_table,
    sensitivity,
    to_markdown,
)
from ._maps import evaluate_map, per_class_errors, read_map

# Errors
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

# isort: on

# 4-5. Names that need PyTorch or scikit-learn (the ``ml`` extra), imported on first use.
_LAZY = {
    "MultiHeadLSTM": "_model",
    "LSTMEnsemble": "_model",
    "load_model": "_model",
    "train": "_training",
    "grid_search": "_training",
    "predict": "_inference",
    "random_forest": "_baselines",
    "svm": "_baselines",
    "run_demo": "_demo",
    "DemoReport": "_demo",
}

if TYPE_CHECKING:  # what the lazy names are, for type checkers and the docs
    from ._baselines import random_forest, svm
    from ._demo import DemoReport, run_demo
    from ._inference import predict
    from ._model import LSTMEnsemble, MultiHeadLSTM, load_model
    from ._training import grid_search, train


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        try:
            module = import_module(f".{_LAZY[name]}", __name__)
        except ImportError as e:
            raise _missing_extra(f"xcrop.{name}", e) from e
        return getattr(module, name)
    raise AttributeError(f"module 'xcrop' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names (the lazy ones too) and the public modules, for completion."""
    return sorted({*__all__, "__version__", "plot", "datasets", "errors"})


_install_log_filter()  # signed URLs never reach a log line through the libraries we drive

__version__ = _VERSION


__all__ = [
    # 1. finding and loading
    "search",
    "load",
    "find_items",
    "CATALOGS",
    "Network",
    "ReadError",
    "read_failures",
    "as_cube",
    "require_bands",
    "L2A_BANDS",
    "REFLECTANCE_BANDS",
    "DEFAULT_BANDS",
    "ASSET_ALIASES",
    # 2. compositing
    "composite",
    "Composite",
    "no_clear_share",
    "read_gee_export",
    # 3. labels and samples
    "read_labels",
    "concat_labels",
    "join_labellers",
    "crowd_vote",
    "consensus",
    "mark_local",
    "sample",
    "Samples",
    "sample_points",
    # 4. models (the ml extra)
    "MultiHeadLSTM",
    "LSTMEnsemble",
    "load_model",
    "train",
    "grid_search",
    "random_forest",
    "svm",
    # 5. maps
    "predict",
    "to_zarr",
    "to_cog",
    "open_probability",
    "write_composite",
    "open_composite",
    # 6. evaluation and area
    "evaluate",
    "metrics",
    "sensitivity",
    "labeller_agreement",
    "results_table",
    "to_markdown",
    "Predictor",
    "read_map",
    "evaluate_map",
    "per_class_errors",
    "suggest_labels",
    "area",
    "AreaEstimate",
    "sample_for_area",
    "write_sample_design",
    # errors
    "XcropError",
    "XcropInputError",
    "XcropNetworkError",
    "CatalogUnreachableError",
    "CRSError",
    "CubeError",
    "EmptySearchError",
    "MissingBandError",
    "MissingExtraError",
    "ModelError",
    "UnknownCatalogError",
    # the demo and versions
    "run_demo",
    "DemoReport",
    "show_versions",
]
