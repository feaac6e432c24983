"""Where xcrop's Zarr outputs live, and the record that makes their writes safe.

A :class:`Target` is a store location (a local path or an fsspec URL) seen through
fsspec, so that the same code serves a laptop's disk and an object store. Inside every
store xcrop writes, the group ``_xcrop_blocks`` holds:

- in its attributes, ``xcrop``: the store's signature (what was written: grid, dtype,
  the model's hash...), set *last*, once the metadata is complete; a record group
  without it is a creation that stopped half-way, and is redone;
- one empty object ``i.j`` per finished spatial block (objects, not folders, so every
  object store has them); only these names count as finished blocks;
- ``.lease``: the writer that holds the store (owner, host, pid, expiry), renewed while
  it writes, so that a second writer refuses instead of mixing its blocks in.

Numbers and data never pass through here: only small JSON objects and listings.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import fsspec

from ._atomic import check_folder
from .errors import XcropInputError, XcropNetworkError

#: The group inside a store that records the signature and the finished blocks.
RECORD = "_xcrop_blocks"
LEASE = ".lease"
_BLOCK = re.compile(r"^\d+\.\d+$")
#: Seconds a lease lives without renewal (a writer renews it every third of that).
LEASE_SECONDS = 60.0


@dataclass
class Target:
    """A store location: ``fs`` (fsspec filesystem) and ``root`` (its path on ``fs``)."""

    url: str
    storage_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.url = os.fspath(self.url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = self.root.rstrip("/")
        self.local = "file" in _protocols(self.fs)

    @property
    def name(self) -> str:
        return self.root.rsplit("/", 1)[-1]

    def zarr_store(self, read_only: bool = False):
        """What zarr and xarray are given: a local path, or an fsspec-backed zarr store."""
        if self.local:
            return self.root
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(
            self.url, storage_options=self.storage_options or None, read_only=read_only
        )

    def key(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def exists(self) -> bool:
        return self.fs.exists(self.root)

    def is_empty(self) -> bool:
        if not self.fs.exists(self.root):
            return True
        if not self.fs.isdir(self.root):
            return False
        return not self.fs.ls(self.root, detail=False)

    def is_zarr(self) -> bool:
        return any(self.fs.exists(self.key(k)) for k in (".zgroup", "zarr.json"))

    def read_json(self, *parts: str) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(self.key(*parts)))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write_json(self, value: dict, *parts: str) -> None:
        self.fs.pipe_file(self.key(*parts), json.dumps(value).encode())

    def record_attrs(self) -> dict | None:
        """The record group's attributes, or None where there is no record group."""
        return self.read_json(RECORD, ".zattrs")

    def finished(self) -> set[str]:
        """Names ``i.j`` of the blocks recorded as written."""
        try:
            names = self.fs.ls(self.key(RECORD), detail=False)
        except FileNotFoundError:
            return set()
        return {n for n in (p.rstrip("/").rsplit("/", 1)[-1] for p in names) if _BLOCK.match(n)}

    def mark(self, i: int, j: int) -> None:
        self.fs.pipe_file(self.key(RECORD, f"{i}.{j}"), b"")

    def remove(self) -> None:
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)

    def sibling(self, name: str) -> Target:
        parent = self.root.rsplit("/", 1)[0] if "/" in self.root else ""
        path = f"{parent}/{name}" if parent else name
        if self.local:
            return Target(path)
        protocol = _protocols(self.fs)[0]
        return Target(f"{protocol}://{path}", self.storage_options)

    def replace_with(self, staged: Target) -> None:
        """Move a finished staging store onto this one (the old data go only now)."""
        if self.local:
            old = self.sibling(f".{self.name}.xcrop-old")
            old.remove()
            if self.exists():
                os.replace(self.root, old.root)
            os.replace(staged.root, self.root)
            old.remove()
        else:  # object stores have no rename: copy, the signature last, then delete the
            # staging objects; a copy that stops half-way leaves a record without its
            # signature, which every reader refuses and every writer redoes
            self.remove()
            signature = staged.key(RECORD, ".zattrs")
            objects = [p for p in staged.fs.find(staged.root) if p != signature]
            prefix = len(staged.root)
            self.fs.copy(objects, [self.root + p[prefix:] for p in objects])
            self.fs.copy(signature, self.key(RECORD, ".zattrs"))
            staged.remove()

    def check_parent(self, what: str) -> None:
        """Refuse early where the store cannot be made: a missing folder or bucket, no
        permission, credentials that the object store refuses."""
        if not self.local:
            bucket = self.root.split("/", 1)[0]
            try:
                self.fs.info(bucket)  # exists() says False for refused credentials too
            except FileNotFoundError:
                raise XcropInputError(
                    f"Cannot write {what} to {self.url}: the bucket or container {bucket!r} "
                    "does not exist; check storage_options and create the bucket first."
                ) from None
            except Exception as err:  # botocore's connection errors are not OSErrors
                refusal = refused(err, f"Cannot write {what} to {self.url}")
                if refusal is not None:
                    raise refusal from err
                raise XcropNetworkError(
                    f"Cannot write {what} to {self.url}: the object store did not answer "
                    f"({err}); check the endpoint in storage_options (or the environment)."
                ) from err
            return
        check_folder(self.root, what)  # exists and takes new files
        if self.exists() and not os.access(self.root, os.W_OK | os.X_OK):
            raise XcropInputError(f"Cannot write {what} to {self.root}: permission denied.")


def refused(err: Exception, doing: str) -> XcropInputError | None:
    """The one line for credentials an object store refused (``PermissionError``) or that
    are missing (botocore's ``NoCredentialsError``, no OSError), after ``doing`` ("Cannot
    read s3://..."); None for any other error."""
    if isinstance(err, PermissionError):
        problem = "access denied"
    elif "credentials" in str(err).lower():
        problem = "no credentials"
    else:
        return None
    return XcropInputError(
        f"{doing}: {problem} ({err}); check the credentials in storage_options (or the "
        "environment)."
    )


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    """Hold a store for one writer: a ``.lease`` object in the record, renewed by a
    thread while the writer works, released at the end.

    A lease that has expired, or whose writer was a process of this host that is no
    longer alive (a killed writer), is taken over; any other live lease refuses.
    """

    def __init__(self, target: Target, seconds: float = LEASE_SECONDS) -> None:
        self.target, self.seconds = target, seconds
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _value(self) -> dict:
        return {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "expires": time.time() + self.seconds,
        }

    def _held_by_other(self) -> dict | None:
        held = self.target.read_json(RECORD, LEASE)
        if not held or held.get("owner") == self.owner:
            return None
        if held.get("expires", 0) < time.time():
            return None
        if held.get("host") == socket.gethostname() and not _alive(int(held.get("pid", 0))):
            return None
        return held

    def acquire(self) -> Lease:
        held = self._held_by_other()
        if held is None:
            self.target.write_json(self._value(), RECORD, LEASE)
            time.sleep(0.05)  # a writer that raced us wrote last: read back who holds it
            held = self._held_by_other()
        if held is not None:
            left = max(0, round(held["expires"] - time.time()))
            raise XcropInputError(
                f"{self.target.url} is being written by another writer (pid {held.get('pid')} "
                f"on {held.get('host')}); wait until it has finished. If that writer is "
                f"dead, its lease expires in {left} s, or delete "
                f"{self.target.key(RECORD, LEASE)}."
            )
        self._thread = threading.Thread(target=self._renew, daemon=True, name="xcrop-lease")
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.target.write_json(self._value(), RECORD, LEASE)
            except OSError:  # a renewal that fails leaves the lease to expire
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        held = self.target.read_json(RECORD, LEASE)
        if held and held.get("owner") == self.owner:
            self.target.fs.rm_file(self.target.key(RECORD, LEASE))

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
