"""``xcrop.show_versions()``: the versions a bug report needs, in one block of text."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import TextIO

__all__ = ["show_versions", "versions"]

NOT_INSTALLED = "not installed"

try:
    #: xcrop's own version (``xcrop.__version__``).
    VERSION = version("xcrop")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0+unknown"

#: The distributions whose versions a report shows, in the order it shows them.
PACKAGES = (
    "rasterio",
    "odc-stac",
    "odc-loader",
    "odc-geo",
    "pystac",
    "pystac-client",
    "xarray",
    "rioxarray",
    "dask",
    "distributed",
    "zarr",
    "fsspec",
    "numpy",
    "pandas",
    "scipy",
    "shapely",
    "pyproj",
    "geopandas",
    "torch",
    "scikit-learn",
    "matplotlib",
    "stackstac",
    "planetary-computer",
)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return NOT_INSTALLED
    except Exception as err:  # broken metadata: say so, never fail a bug report
        return f"unknown ({type(err).__name__})"


def _gdal() -> str:
    try:
        import rasterio

        return str(rasterio.__gdal_version__)
    except Exception:
        return NOT_INSTALLED


def _proj() -> str:
    try:
        import pyproj

        return str(pyproj.proj_version_str)
    except Exception:
        return NOT_INSTALLED


def _torch(installed: str) -> str:
    """torch's version and whether it sees CUDA (imported only when installed)."""
    if installed == NOT_INSTALLED:
        return installed
    try:
        import torch

        cuda = torch.cuda.is_available()
        built = getattr(torch.version, "cuda", None)
        return f"{installed} (CUDA available: {cuda}, built for CUDA {built or 'none'})"
    except Exception as err:
        return f"{installed} (cannot be imported: {type(err).__name__}: {err})"


def versions() -> dict[str, str]:
    """xcrop's, Python's, the platform's and the libraries' versions, by name;
    ``"not installed"`` for a library that is not.

    Examples
    --------
    >>> info = versions()
    >>> info["Python"] == platform.python_version()
    True
    """
    info = {
        "xcrop": VERSION,
        "Python": platform.python_version(),
        "Python build": " ".join(sys.version.split()),
        "platform": platform.platform(),
        "GDAL": _gdal(),
        "PROJ": _proj(),
    }
    for name in PACKAGES:
        info[name] = _version(name)
    info["torch"] = _torch(info["torch"])
    return info


def show_versions(file: TextIO | None = None) -> None:
    """Print the versions that a bug report needs (xcrop, Python, platform, GDAL, PROJ,
    odc-stac, dask, torch and CUDA, ...), one per line; paste them into the report. A
    library that is not installed shows as ``not installed``. Also ``xcrop show-versions``.

    Examples
    --------
    >>> show_versions()  # doctest: +SKIP
    xcrop: 0.1.0.dev0
    Python: 3.12.3
    ...
    """
    info = versions()
    width = max(map(len, info))
    out = file if file is not None else sys.stdout
    for name, value in info.items():
        print(f"{name + ':':<{width + 1}} {value}", file=out)
