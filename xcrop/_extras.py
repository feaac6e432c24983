"""Optional dependencies: imported when a function needs them; when one is missing, a
one-line :class:`~xcrop.errors.MissingExtraError` names the function, the package and the
extra that installs it."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["EXTRAS", "missing_extra", "require"]

#: Top-level module: (the package that provides it, the xcrop extra that installs it).
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("PyTorch", "ml"),
    "sklearn": ("scikit-learn", "ml"),
    "matplotlib": ("matplotlib", "plot"),
    "stackstac": ("stackstac", "stackstac"),
    "planetary_computer": ("planetary-computer", "planetary-computer"),
    "distributed": ("dask.distributed", "distributed"),
}


def missing_extra(what: str, err: ImportError, module: str | None = None) -> MissingExtraError:
    """The error for ``what`` (``"xcrop.evaluate"``) when importing ``module`` failed."""
    top = (err.name or module or "").split(".")[0]
    if top not in EXTRAS:  # not an extra's package: a broken install of something else
        return MissingExtraError(
            f"{what} could not import {err.name or module} ({err}); install or reinstall it.",
            name=err.name,
        )
    package, extra = EXTRAS[top]
    return MissingExtraError(
        f"{what} needs {package} (the {extra!r} extra): pip install '.[{extra}]' in "
        f"xcrop's clone ({err}).",
        name=err.name,
    )


def require(module: str, what: str) -> ModuleType:
    """``module`` imported, or a :class:`MissingExtraError` saying that ``what`` needs it.

    Examples
    --------
    >>> require("numpy", "xcrop.metrics").__name__
    'numpy'
    """
    try:
        return import_module(module)
    except ImportError as err:
        raise missing_extra(what, err, module) from err
