"""Files written whole or not at all: a temporary name beside the target, renamed onto it
only once the writer has finished (a full disk or a crash leaves the old file as it was);
and the check, before any work, that the target's folder takes new files."""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | os.PathLike, what: str = "the file") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block ends
    without an error, delete it otherwise. A folder that takes no new file is refused
    first, in one line naming ``what`` (:func:`check_folder`).

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with replacing(target) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> target.read_text()
    'whole'
    """
    path = Path(path)
    check_folder(path, what)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: Why a folder takes no new file, by errno.
WRITE_ERRORS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
}


def check_folder(path: str | os.PathLike, what: str) -> None:
    """Raise :class:`~xcrop.errors.XcropInputError`, before any work, unless the folder of
    ``path`` exists and takes a new file (a probe file is made and removed at once; this
    catches what permission bits do not: root in ``/proc``, read-only mounts).

    Examples
    --------
    >>> check_folder("/proc/map.tif", "the map")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xcrop.errors.XcropInputError: Cannot write the map to /proc/map.tif: /proc takes no new ...
    """
    from .errors import XcropInputError

    path = Path(path).absolute()
    parent = path.parent
    if not parent.is_dir():
        above = next(p for p in (parent, *parent.parents) if p.exists() or p == p.parent)
        if above.exists() and not above.is_dir():
            raise XcropInputError(
                f"Cannot write {what} to {path}: {above} is a file, not a folder; choose "
                "another path."
            )
        raise XcropInputError(
            f"Cannot write {what} to {path}: its folder {parent} does not exist; create it "
            "first or choose another path."
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".xcrop-write-test-", dir=parent)
    except OSError as err:
        reason = WRITE_ERRORS.get(err.errno or 0, err.strerror or "it refused a file")
        raise XcropInputError(
            f"Cannot write {what} to {path}: {parent} takes no new files ({reason})."
        ) from err
    os.close(fd)
    os.unlink(probe)
