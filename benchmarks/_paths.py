"""The benchmarks' output paths, checked on the command line before a long run."""

from __future__ import annotations

import argparse
from pathlib import Path

from xcrop._atomic import check_folder
from xcrop.errors import XcropInputError


def writable(path: str) -> Path:
    """An argparse ``type`` for an output file (``--markdown``): its folder must exist and
    take a new file, checked when the arguments are read, not after the run.

    Examples
    --------
    >>> writable("/proc/table.md")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: Cannot write the table to /proc/table.md: /proc takes no new ...
    """
    try:
        check_folder(path, "the table")
    except XcropInputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return Path(path)
