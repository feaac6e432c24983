"""Write crop probabilities and composites to Zarr (chunk by chunk, resumable, safe) and
probabilities to Cloud-Optimized GeoTIFF.

Zarr stores are format 2 with consolidated metadata, one Zarr chunk per dask chunk, the
CRS in a ``spatial_ref`` coordinate, and a record (``_xcrop_blocks``, see
:mod:`xcrop._store`): the store's signature, one empty object ``i.j`` per finished
block, and the lease of the writer that holds it. A block touches only its own chunk
and record object, so threads and worker processes write without a lock, a killed write
resumes, a second writer refuses, and readers open only complete stores. Stores are
local paths or fsspec URLs.
"""

from __future__ import annotations

import os
import shutil
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

import dask
import dask.array as da
import numpy as np
import rasterio.shutil
import xarray as xr
import zarr
from dask.callbacks import Callback
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from ._atomic import check_folder
from ._memory import blocks_in_flight, budget_bytes
from ._progress import Progress
from ._store import RECORD, Lease, Target, refused
from .errors import CRSError, CubeError, XcropInputError

if TYPE_CHECKING:
    from dask.delayed import Delayed


def _chunks(data: xr.DataArray) -> tuple[tuple[int, ...], ...]:
    """The chunks of a dask-backed array (every array here has been chunked)."""
    if data.chunks is None:
        raise CubeError(f"{data.name!r} is not a dask array; chunk it first.")
    return data.chunks


__all__ = [
    "to_zarr",
    "to_cog",
    "open_probability",
    "write_composite",
    "open_composite",
    "RECORD",
    "UINT8_SCALE",
]

#: Attributes that size a write (see xcrop._memory), never written to a store.
_ESTIMATES = ("bytes_per_pixel", "bytes_fixed")
#: Step of the uint8 packing: 0..254 are probabilities k / 254, 255 is nodata.
UINT8_SCALE = np.float32(1 / 254)
_DTYPES = ("float32", "uint8")


def _encoding(dtype: str) -> dict:
    if dtype == "uint8":
        return {"dtype": "uint8", "scale_factor": UINT8_SCALE, "_FillValue": np.uint8(255)}
    if dtype == "float32":
        return {"dtype": "float32", "_FillValue": np.float32(np.nan)}
    raise XcropInputError(f"dtype={dtype!r} is not supported; use one of {_DTYPES}.")


def _regular(c: tuple[int, ...]) -> bool:
    return all(n == c[0] for n in c[:-1]) and c[-1] <= c[0]


def _prepare(prob: xr.DataArray, dtype: str) -> xr.DataArray:
    """Checked, float32, georeferenced and regularly chunked probabilities."""
    if not isinstance(prob, xr.DataArray) or prob.ndim != 2:
        raise CubeError("Expected a 2-D (y, x) DataArray of probabilities, e.g. model output.")
    if prob.rio.crs is None:
        raise CRSError("The probabilities have no CRS; set one with prob.rio.write_crs(...).")
    _encoding(dtype)
    if prob.chunks is None:
        prob = prob.chunk(dict.fromkeys(prob.dims, 1024))
    regular = {d: max(c) for d, c in zip(prob.dims, _chunks(prob), strict=True) if not _regular(c)}
    prob = prob.chunk(regular) if regular else prob
    prob = prob.astype("float32").rename(prob.name or "crop_probability")
    if dtype == "uint8":
        prob = prob.clip(0, 1)
    prob = prob.rio.write_crs(prob.rio.crs)
    return prob.rio.write_transform(prob.rio.transform(recalc=True))


def gdal_crs(crs) -> dict:
    """GDAL's own Zarr CRS attribute (``_CRS``): GDAL before 3.10 (Debian 12's 3.6, older
    QGIS) reads a Zarr array's CRS only from it, not from the CF ``grid_mapping``.

    Examples
    --------
    >>> gdal_crs(CRS.from_epsg(32631))["url"]
    'http://www.opengis.net/def/crs/EPSG/0/32631'
    """
    crs = CRS.from_user_input(crs)
    out = {"wkt": crs.to_wkt()}
    if (epsg := crs.to_epsg()) is not None:
        out["url"] = f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"
    return out


def _signature(prob: xr.DataArray, dtype: str) -> dict:
    return {
        "kind": "probability",
        "name": str(prob.name),
        "dims": list(prob.dims),
        "shape": list(prob.shape),
        "chunks": [c[0] for c in _chunks(prob)],
        "blocks": [len(c) for c in _chunks(prob)],
        "dtype": dtype,
        "transform": list(prob.rio.transform())[:6],
        "crs_wkt": prob.rio.crs.to_wkt(),
        "model_sha256": prob.attrs.get("model_sha256"),
        "head": prob.attrs.get("head"),
    }


_OURS = {".zgroup", ".zattrs", ".zmetadata", "zarr.json", RECORD}


def _state(target: Target) -> str:
    """``absent`` (nothing, or an empty folder), ``creating`` (xcrop's own creation that
    stopped before its signature), ``ours`` (a store with xcrop's signature), ``zarr`` (a
    Zarr store xcrop did not write) or ``foreign`` (anything else)."""
    if target.is_empty():
        return "absent"
    attrs = target.record_attrs()
    if attrs is not None:
        return "ours" if "xcrop" in attrs else "creating"
    if not target.fs.isdir(target.root):
        return "foreign"
    names = {p.rstrip("/").rsplit("/", 1)[-1] for p in target.fs.ls(target.root, detail=False)}
    if RECORD in names:
        return "creating"  # xcrop's record without its signature: a copy that stopped
    if names <= _OURS and not names & {".zattrs", RECORD}:
        return "absent"  # a root group and nothing else: a creation that stopped at once
    return "zarr" if target.is_zarr() else "foreign"


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for k in new:
        if k == "crs_wkt" or old.get(k) == new[k]:
            continue
        if k == "model_sha256":
            out.append(f"another model (sha256 {str(old.get(k))[:12]} in the store)")
        else:
            out.append(f"{k} {old.get(k)} (store) vs {new[k]}")
    if "crs_wkt" in old and CRS.from_wkt(old["crs_wkt"]) != CRS.from_wkt(new["crs_wkt"]):
        out.append("a different CRS")
    return out


def _create(target: Target, ds: xr.Dataset, sig: dict) -> None:
    """Metadata and coordinates (no data) with a record of the creation; the signature is
    written last, so a creation that fails half-way (a full disk) is seen and redone."""
    root = zarr.open_group(target.zarr_store(), mode="w", zarr_format=2)
    root.create_group(RECORD).attrs.update({"xcrop_state": "creating"})
    # xarray builds the data's whole graph even with compute=False: give it zeros of the
    # same chunks instead (a country's composite graph took minutes and gigabytes here)
    template = ds.copy()
    for name, var in ds.data_vars.items():
        if isinstance(var.data, da.Array):
            zeros = da.zeros(var.shape, dtype=var.dtype, chunks=var.data.chunks)
            template[name] = var.copy(data=zeros)
    template.to_zarr(
        target.zarr_store(), mode="a", compute=False, consolidated=False, zarr_format=2
    )
    zarr.consolidate_metadata(target.zarr_store(), zarr_format=2)
    record = zarr.open_group(target.zarr_store(), mode="r+", path=RECORD, zarr_format=2)
    record.attrs.update({"xcrop": sig, "finished": "one empty object 'i.j' per written block"})


def _begin(
    target: Target, ds: xr.Dataset, sig: dict, *, overwrite: bool, what: str
) -> tuple[Target, Lease | None]:
    """The store to write into, created if needed, and the lease that holds it.

    A store xcrop did not write is never touched. ``overwrite`` writes a staging store
    beside the old one (resumed if an earlier overwrite stopped), which replaces the old
    one only once it is complete. Otherwise a store of the same signature is resumed and
    one of another signature refused.
    """
    target.check_parent(what)
    state = _state(target)
    if state == "foreign":
        raise XcropInputError(
            f"{target.url} exists and is not a Zarr store; xcrop will not delete it. "
            "Write to another path."
        )
    if state == "zarr":
        raise XcropInputError(
            f"{target.url} is a Zarr store that xcrop did not write; xcrop will not replace "
            "it. Write to another path (or delete it yourself)."
        )
    if state != "ours":
        _create(target, ds, sig)
        return target, Lease(target).acquire()
    if not overwrite:
        problems = _differences((target.record_attrs() or {})["xcrop"], sig)
        if not problems and not _missing(target, sig):
            return target, None  # complete: nothing to write, nothing touched
        lease = Lease(target).acquire()  # refuses while another writer holds the store
        if problems:
            lease.release()
            raise XcropInputError(
                f"{target.url} holds another {what} ({'; '.join(problems)}); pass "
                "overwrite=True to replace it, or write to another path."
            )
        return target, lease
    Lease(target).acquire().release()  # refuses to overwrite a store being written
    staged = target.sibling(f".{target.name}.xcrop-staging")
    staged_state = _state(staged)  # one look (each is a listing on an object store)
    if staged_state not in ("absent", "creating", "ours"):
        raise XcropInputError(f"{staged.url} is in the way of the overwrite; remove it first.")
    if staged_state == "ours":
        Lease(staged).acquire().release()  # not while another overwrite writes it
    staged.remove()  # an earlier overwrite's leftovers: always start afresh
    _create(staged, ds, sig)
    return staged, Lease(staged).acquire()


@contextmanager
def _writing(target: Target, written: Target, lease: Lease | None):
    """Around a write into ``written``: the lease is released whatever happens; a staged
    store replaces ``target`` only once the write has finished without an error."""
    try:
        yield
    finally:
        if lease is not None:
            lease.release()
    if written is not target:
        target.replace_with(written)


def _missing(target: Target, sig: dict) -> list[tuple[int, int]]:
    done = target.finished()
    nby, nbx = sig["blocks"]
    return [(i, j) for i in range(nby) for j in range(nbx) if f"{i}.{j}" not in done]


def _write_block(
    block: np.ndarray, *, store: str, options: dict, var: str, dims: tuple, block_info=None
) -> np.ndarray:
    """Write one block to its region of the store, then record it as finished."""
    (y0, y1), (x0, x1) = block_info[0]["array-location"]
    i, j = block_info[0]["chunk-location"]
    region = {dims[0]: slice(y0, y1), dims[1]: slice(x0, x1)}
    target = Target(store, options)
    ds = xr.Dataset({var: (dims, block)})
    ds.to_zarr(target.zarr_store(), region=region, mode="r+", consolidated=False, zarr_format=2)
    target.mark(i, j)
    return np.ones((1, 1), "uint8")


def _mark(_written, store: str, options: dict, i: int, j: int) -> None:
    Target(store, options).mark(i, j)


def _finish(store: str, _written: list) -> Path:
    return Path(store)


def active_client():
    """The dask.distributed Client that ``dask.compute`` would use, or None."""
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    return client if type(client).__name__ == "Client" else None


def default_in_flight(client) -> int:
    """Default blocks computed at once: one per worker thread (a block has hundreds of
    tasks, enough to keep every thread busy)."""
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return dask.config.get("num_workers", None) or os.cpu_count() or 1


def _without_estimates(array: xr.DataArray) -> tuple[xr.DataArray, tuple[float, float]]:
    """``array`` without the attributes that size a write, and their values: bytes per
    pixel of a block in flight (0 where absent) and the write's fixed bytes."""
    attrs = array.attrs
    found = (float(attrs.get("bytes_per_pixel", 0.0)), float(attrs.get("bytes_fixed", 0.0)))
    out = array.copy(deep=False)  # a new variable: the caller's attrs stay as they are
    out.attrs = {k: v for k, v in attrs.items() if k not in _ESTIMATES}
    return out, found


def _group(
    in_flight: int | None, block_bytes: float, fixed: float, memory_budget, what: str
) -> int:
    """Blocks computed at once: ``in_flight`` if given; on a dask.distributed cluster one
    per worker thread (the workers' own memory limits apply there); on the local
    schedulers one per thread, fewer where the memory budget needs it, and an error
    before any work where one block alone does not fit."""
    client = active_client()
    if in_flight is not None:
        return in_flight
    threads = default_in_flight(client)
    if client is not None:
        return threads
    fix = (
        "use smaller chunks (xcrop.search(chunks=...), xcrop composite --chunks) or give "
        "memory_budget="
    )
    budget = budget_bytes(memory_budget)
    return blocks_in_flight(int(block_bytes), budget, threads, what, fix, int(fixed))


def _compute(
    tasks: list, key: str | None, progress: bool, desc: str, in_flight: int | None
) -> None:
    """Compute on the active scheduler, at most ``in_flight`` blocks at once (in row-major
    groups on local schedulers, a sliding window on dask.distributed), with a progress
    bar (plain lines when stderr is not a terminal).

    Computing every block in one call lets dask's static ordering load all of a large
    area's time stacks before the first per-chunk choice exists; peak memory then grows
    with the area. Bounded groups keep it set by the chunk size. A task may be given as
    a function that builds it: it is built only when its group starts, and dropped
    after (a region write's Delayed holds ~18 MB of graph; all of a large area's at
    once grew memory with the area).
    """

    def built(task):
        return task() if callable(task) and not dask.is_dask_collection(task) else task

    client = active_client()
    group = in_flight or default_in_flight(client)
    bar = Progress(len(tasks), desc, "block", disable=not progress)
    with bar:
        if client is None:

            def tick(k, *_):
                if key is not None and isinstance(k, tuple) and k[0] == key:
                    bar.update()

            with Callback(posttask=tick):
                for start in range(0, len(tasks), group):
                    dask.compute(*(built(t) for t in tasks[start : start + group]))
                    if key is None:  # no per-block key to count: count the groups
                        bar.update(len(tasks[start : start + group]))
        else:
            from distributed import as_completed

            running = as_completed(client.compute([built(t) for t in tasks[:group]]))
            pending = iter(tasks[group:])
            for future in running:
                future.result()  # raises the block's error, if any
                bar.update()
                task = next(pending, None)
                if task is not None:
                    running.add(client.compute(built(task)))


# the store's path, or with compute=False the Delayed write
@overload
def to_zarr(
    prob: xr.DataArray,
    store: str | os.PathLike,
    *,
    dtype: str = ...,
    overwrite: bool = ...,
    progress: bool = ...,
    compute: Literal[True] = ...,
    in_flight: int | None = ...,
    storage_options: dict | None = ...,
    memory_budget: int | str | None = ...,
) -> Path | str: ...


@overload
def to_zarr(
    prob: xr.DataArray,
    store: str | os.PathLike,
    *,
    dtype: str = ...,
    overwrite: bool = ...,
    progress: bool = ...,
    compute: Literal[False],
    in_flight: int | None = ...,
    storage_options: dict | None = ...,
    memory_budget: int | str | None = ...,
) -> Delayed: ...


@overload
def to_zarr(
    prob: xr.DataArray,
    store: str | os.PathLike,
    *,
    dtype: str = ...,
    overwrite: bool = ...,
    progress: bool = ...,
    compute: bool = ...,
    in_flight: int | None = ...,
    storage_options: dict | None = ...,
    memory_budget: int | str | None = ...,
) -> Path | str | Delayed: ...


def to_zarr(
    prob: xr.DataArray,
    store: str | os.PathLike,
    *,
    dtype: str = "float32",
    overwrite: bool = False,
    progress: bool = True,
    compute: bool = True,
    in_flight: int | None = None,
    storage_options: dict | None = None,
    memory_budget: int | str | None = None,
) -> Path | str | Delayed:
    """Write probabilities to a Zarr store block by block, resuming an interrupted write.

    Each dask chunk becomes one Zarr chunk (irregular chunks are first rechunked to the
    largest chunk size) and one dask task on the active scheduler (the threaded one, or
    a ``dask.distributed`` Client if one is active), so memory depends on the chunk size,
    not on the area.

    Parameters
    ----------
    prob
        (y, x) float probabilities in 0..1, NaN for nodata, with a CRS (rioxarray).
    store
        A local path or an fsspec URL (Zarr format 2, consolidated metadata).
    dtype
        ``"float32"`` (exact, NaN nodata) or ``"uint8"``: values clipped to 0..1 and
        packed as round(p * 254) with ``scale_factor`` 1/254 and ``_FillValue`` 255, so
        readers decode floats again; the quantisation error is at most 1/508.
    overwrite
        Replace an existing store written by xcrop. The new store is written beside it
        (``.NAME.xcrop-staging``) and replaces it only once complete, so a failed
        overwrite loses nothing (calling it again starts the new store afresh). Without it, a store
        of the same signature (grid, chunks, dtype, transform, CRS, model hash, head) is
        completed: only its missing blocks are written, and a complete one is returned
        as it is; a store of another signature raises :class:`~xcrop.errors.XcropError`.
        A folder or Zarr store that xcrop did not write is never touched.
    progress
        Show the blocks written: a tqdm bar on a terminal or in a notebook, otherwise
        (a log file, a batch job) a plain line per tenth of the blocks, on stderr.
    compute
        Write now; with False, the metadata is written and a dask Delayed that writes
        the missing blocks (and returns the path) is returned. That Delayed holds no
        lease: do not start a second writer on the store while it runs.
    in_flight
        Blocks computed at once (default: one per worker thread, fewer if the memory
        budget needs it): it bounds peak memory at about ``in_flight`` blocks, whatever
        the area. On cubes xcrop does not read itself (stackstac, numpy), halos of
        neighbouring chunks (the composite's cloud score) are read again by each group.
    storage_options
        fsspec options for a URL ``store`` (credentials, endpoint).
    memory_budget
        Bytes (or ``"1.5GB"``) the write may use on the local schedulers; by default
        75 % of the memory this process may use (the machine's, or its cgroup's limit
        when smaller), less what it already holds; ``False`` for no budget. Blocks in
        flight are limited to what fits, from the estimate the composite and the
        prediction carry (``bytes_per_pixel``); if one block does not fit, an
        :class:`~xcrop.errors.XcropError` says so before any work.

    Returns
    -------
    pathlib.Path or str or dask.delayed.Delayed
        The store's path (the URL for remote stores), or the Delayed of the write.

    Raises
    ------
    XcropError
        A store of another signature (another grid, dtype, model or head), one that is
        being written by another writer (its lease is live), or a path that is not
        xcrop's own store.

    Examples
    --------
    >>> xcrop.to_zarr(prob, "togo.zarr", dtype="uint8")  # doctest: +SKIP
    PosixPath('togo.zarr')
    >>> xcrop.open_probability("togo.zarr").rio.crs  # doctest: +SKIP
    CRS.from_wkt('PROJCS["WGS 84 / UTM zone 31N", ...')
    """
    prob, (per_pixel, fixed) = _without_estimates(_prepare(prob, dtype))
    block = (per_pixel or 8.0) * _chunks(prob)[0][0] * _chunks(prob)[1][0]
    group = _group(in_flight, block, fixed, memory_budget, "the map")
    target = Target(os.fspath(store), storage_options or {})
    sig = _signature(prob, dtype)
    prob = prob.rio.write_coordinate_system()  # CF standard_name/units on x and y
    prob.attrs["_CRS"] = gdal_crs(prob.rio.crs)
    ds = prob.to_dataset()
    ds[prob.name].encoding = {**prob.encoding, **_encoding(dtype), "chunks": sig["chunks"]}
    written, lease = _begin(target, ds, sig, overwrite=overwrite, what="probability map")
    if not compute and lease is not None:  # the Delayed runs later: it holds no lease
        lease.release()
        lease = None
    with _writing(target, written, lease):
        todo = _missing(written, sig)
        nby, nbx = sig["blocks"]
        kwargs = {"store": written.url, "options": written.storage_options,
                  "var": str(prob.name), "dims": prob.dims}  # fmt: skip
        blocks = da.map_blocks(
            _write_block, prob.data, **kwargs, chunks=((1,) * nby, (1,) * nbx), dtype="uint8",
            meta=np.empty((0, 0), "uint8"), token="xcrop-write",
        )  # fmt: skip
        if not compute:
            if written is not target:
                raise XcropInputError("compute=False cannot overwrite a store; remove it first.")
            delayed = blocks.to_delayed()
            return dask.delayed(_finish)(_result(target), [delayed[i, j] for i, j in todo])
        # each group's blocks are cut from the lazy graph when the group starts: no
        # optimised copy of a whole country's graph is ever made (to_delayed did that)
        tasks = [partial(_one_block, blocks, i, j) for i, j in todo]
        if tasks:
            _compute(tasks, None, progress, f"writing {target.name}", group)
    return _result(target)


def _one_block(blocks: da.Array, i: int, j: int) -> da.Array:
    return blocks.blocks[i, j]


def _result(target: Target) -> Path | str:
    return Path(target.root) if target.local else target.url


def _complete_signature(target: Target, kind: str, again: str) -> dict:
    """The signature of a complete store of ``kind``, or an error that says what to do."""
    try:
        attrs = target.record_attrs()
    except Exception as err:
        refusal = refused(err, f"Cannot read {target.url}")
        if refusal is None:
            raise
        raise refusal from err
    if attrs is None or "xcrop" not in attrs:
        if not target.exists():
            raise XcropInputError(f"No store at {target.url}: check the path (or URL).")
        raise XcropInputError(
            f"{target.url} is not a store written by xcrop (or its first write stopped "
            f"before the metadata was complete); {again}."
        )
    sig = attrs["xcrop"]
    if sig.get("kind", "probability") != kind:
        raise XcropInputError(
            f"{target.url} holds a {sig.get('kind')} store, not a {kind}; {again}."
        )
    total = sig["blocks"][0] * sig["blocks"][1]
    missing = len(_missing(target, sig))
    if missing:
        raise XcropInputError(
            f"{target.url} is incomplete: {missing} of {total} blocks are missing; {again} "
            "to resume (same inputs: only the missing blocks are written)."
        )
    return sig


def open_probability(
    store: str | os.PathLike, *, storage_options: dict | None = None
) -> xr.DataArray:
    """Open a store written by :func:`to_zarr`, lazily, as float32 probabilities with a CRS.

    Raises :class:`~xcrop.errors.XcropError` when blocks are missing (an interrupted
    write): calling ``to_zarr`` again with the same arguments resumes it.

    Examples
    --------
    >>> prob = xcrop.open_probability("togo.zarr")  # doctest: +SKIP
    >>> prob.dtype, prob.rio.crs.to_epsg()  # doctest: +SKIP
    (dtype('float32'), 32631)
    """
    target = Target(os.fspath(store), storage_options or {})
    sig = _complete_signature(target, "probability", "call to_zarr again")
    ds = xr.open_zarr(target.zarr_store(read_only=True), decode_coords="all", consolidated=True)
    prob = ds[sig["name"]].astype("float32")
    prob.attrs.pop("_CRS", None)  # GDAL's copy of the CRS: rioxarray reads spatial_ref
    return prob


def _composite_signature(ds: xr.Dataset) -> dict:
    data = ds["composite"]
    return {
        "kind": "composite",
        "shape": list(data.shape),
        "chunks": [c[0] for c in _chunks(data)[2:]],
        "blocks": [len(c) for c in _chunks(data)[2:]],
        "bands": [str(b) for b in data.band.values],
        "time": [str(t) for t in data.time.values],
        "transform": list(data.rio.transform())[:6],
        "crs_wkt": data.rio.crs.to_wkt() if data.rio.crs is not None else None,
    }


def write_composite(
    composite,
    store: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
    in_flight: int | None = None,
    storage_options: dict | None = None,
    memory_budget: int | str | None = None,
) -> Path | str:
    """Compute a ``Composite`` into a Zarr store (``composite``, ``counts``, ``dates``), so
    that sampling and prediction read it instead of the imagery.

    The metadata is written first, then the spatial blocks by region, at most
    ``in_flight`` at once (default one per worker thread), so that memory is set by the
    chunk size, not by the area (see :func:`to_zarr`). Each block is recorded once
    written, and :func:`open_composite` opens only complete stores; calling again with
    the same composite resumes an interrupted write, and ``overwrite=True`` replaces
    an existing composite store only once the new one is complete (so a store can be
    re-saved from itself; an interrupted overwrite starts afresh when called again). A
    folder or store that xcrop did not write is never touched.

    Examples
    --------
    >>> xcrop.write_composite(cube.cropmask.composite(), "togo-composite.zarr")  # doctest: +SKIP
    >>> comp = xcrop.open_composite("togo-composite.zarr")  # doctest: +SKIP
    """
    ds = composite.to_dataset()
    ds["composite"], (per_pixel, fixed) = _without_estimates(ds["composite"])
    data = ds["composite"]
    if data.chunks is None:
        ds = ds.chunk(dict.fromkeys(("y", "x"), 1024))
    spatial_chunks = dict(zip(("y", "x"), ds["composite"].chunks[2:], strict=True))
    regular = {d: max(c) for d, c in spatial_chunks.items() if not _regular(c)}
    ds = ds.unify_chunks().chunk(regular) if regular else ds.unify_chunks()
    for name in ds.variables:
        ds[name].encoding = {}  # a store's own encoding (chunks, dtype, filters) would leak
    chunk_px = ds["composite"].chunks[2][0] * ds["composite"].chunks[3][0]
    outputs = ds["composite"].sizes["time"] * (ds["composite"].sizes["band"] * 4 + 9)
    group = _group(in_flight, (per_pixel or 3 * outputs) * chunk_px, fixed, memory_budget,
                   "the composite")  # fmt: skip
    target = Target(os.fspath(store), storage_options or {})
    sig = _composite_signature(ds)
    written, lease = _begin(target, ds, sig, overwrite=overwrite, what="composite")
    with _writing(target, written, lease):
        spatial = ds.drop_vars([v for v in ds.variables if not {"y", "x"} <= set(ds[v].dims)])
        edges = [np.cumsum((0, *c)) for c in ds["composite"].chunks[2:]]
        store = written.zarr_store()

        def block(i: int, j: int):
            """The write of block (i, j) and its record, built when its group starts."""
            (y0, y1), (x0, x1) = edges[0][i : i + 2], edges[1][j : j + 2]
            region = {"y": slice(int(y0), int(y1)), "x": slice(int(x0), int(x1))}
            part = spatial.isel(region).to_zarr(
                store, region=region, zarr_format=2, consolidated=False, compute=False
            )
            return dask.delayed(_mark)(part, written.url, written.storage_options, i, j)

        tasks = [partial(block, i, j) for i, j in _missing(written, sig)]
        if tasks:
            _compute(tasks, None, progress, f"writing {target.name}", group)
    return _result(target)


def open_composite(store: str | os.PathLike, *, storage_options: dict | None = None):
    """A ``Composite`` from a store written by :func:`write_composite`, lazily, with its CRS.

    Raises :class:`~xcrop.errors.XcropError` for a store whose write did not finish
    (calling ``write_composite`` again resumes it) or that is not a composite store.

    Examples
    --------
    >>> comp = xcrop.open_composite("togo-composite.zarr")  # doctest: +SKIP
    >>> prob = comp.predict(model)  # doctest: +SKIP
    """
    from ._composite import Composite

    target = Target(os.fspath(store), storage_options or {})
    _complete_signature(target, "composite", "write it with xcrop.write_composite")
    ds = xr.open_zarr(target.zarr_store(read_only=True), decode_coords="all", consolidated=True)
    missing = {"composite", "counts", "dates"} - set(ds.data_vars)
    if missing:
        raise XcropInputError(f"{target.url} is not a composite store (no {sorted(missing)}).")
    return Composite(ds["composite"], ds["counts"], ds["dates"])


def _cog_lock(path: Path):
    """A lock for the GeoTIFF's writers: threads of this process, or the cluster's workers."""
    if active_client() is None:
        return threading.Lock()
    from distributed import Lock

    return Lock(f"xcrop-cog-{path.resolve()}")


def _check_cog_target(path: Path, prob: xr.DataArray) -> None:
    """Refuse before any work where the GeoTIFF cannot be written or would not fit."""
    if path.is_dir():
        raise XcropInputError(f"{path} is a folder; give the path of a .tif file.")
    check_folder(path, "the GeoTIFF")  # exists and takes new files
    parent = path.parent
    # the uncompressed tiled copy (with overviews, a third more) plus, at worst, as much
    # again for the compressed COG beside it until the rename
    need = 2 * prob.size * (4 + 4 / 3) if prob.dtype == "float32" else 2 * prob.size * 4 / 3
    free = shutil.disk_usage(parent).free
    if free < need:
        raise XcropInputError(
            f"Not enough space for {path}: writing it needs up to {need / 1e6:,.1f} MB, "
            f"{free / 1e6:,.1f} MB are free in {parent}. Free some space or write elsewhere."
        )


def _verify_cog(path: Path, prob: xr.DataArray) -> None:
    """Read every tile of the written file back: a truncated file fails here."""
    with rasterio.open(path) as src:
        if (src.height, src.width) != prob.shape or src.crs is None:
            raise XcropInputError(f"{path} was written with the wrong grid or no CRS.")
        levels = [1, *src.overviews(1)]
    for level in levels:
        opts = {} if level == 1 else {"OVERVIEW_LEVEL": levels.index(level) - 1}
        with rasterio.open(path, **opts) as src:
            step = max(src.block_shapes[0][0], 1) * 8
            for row in range(0, src.height, step):
                src.read(1, window=((row, min(row + step, src.height)), (0, src.width)))


def _write_tiles_here(prob: xr.DataArray, path: Path) -> None:
    """A tiled GeoTIFF of ``prob`` written by this process, its dask chunks computed a
    few at a time on the active scheduler (workers need not see ``path``)."""
    # the values rioxarray would write: xarray's CF encoding (uint8: round(p * 254), 255)
    encoded = xr.conventions.encode_cf_variable(prob.variable)
    packed = "scale_factor" in prob.encoding
    profile = {
        "driver": "GTiff", "height": prob.sizes["y"], "width": prob.sizes["x"], "count": 1,
        "dtype": encoded.dtype, "crs": prob.rio.crs, "transform": prob.rio.transform(),
        "nodata": encoded.attrs.get("_FillValue", np.nan), "tiled": True,
        "blockxsize": 256, "blockysize": 256, "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    data = encoded.data if isinstance(encoded.data, da.Array) else da.from_array(encoded.data)
    starts = [np.cumsum((0, *c))[:-1] for c in data.chunks]
    blocks = [(i, j) for i in range(data.numblocks[0]) for j in range(data.numblocks[1])]
    step = default_in_flight(active_client())
    with rasterio.open(path, "w", **profile) as dst:
        if packed:
            dst.scales = (float(encoded.attrs["scale_factor"]),)
        for k in range(0, len(blocks), step):
            part = blocks[k : k + step]
            values = dask.compute(*[data.blocks[i, j] for i, j in part])
            for (i, j), block in zip(part, values, strict=True):
                window = ((starts[0][i], starts[0][i] + block.shape[0]),
                          (starts[1][j], starts[1][j] + block.shape[1]))  # fmt: skip
                dst.write(block, 1, window=window)


def _upload(local: Path, url: str, storage_options: dict) -> None:
    """Copy the finished file to ``url`` (one object, whole or not at all on object
    stores), then check its size there."""
    target = Target(url, storage_options)
    target.fs.put_file(str(local), target.root)
    size = target.fs.info(target.root)["size"]
    if size != local.stat().st_size:
        raise OSError(f"{url} holds {size} bytes after the upload, not {local.stat().st_size}")


def to_cog(
    prob: xr.DataArray,
    path: str | os.PathLike,
    *,
    dtype: str = "float32",
    overview: bool = True,
    blocksize: int = 512,
    storage_options: dict | None = None,
) -> Path | str:
    """Write probabilities to a Cloud-Optimized GeoTIFF (DEFLATE, tiled, overviews).

    The dask chunks are computed on the active scheduler and written one at a time into
    a tiled GeoTIFF next to ``path`` (uncompressed, deleted afterwards); GDAL's COG
    driver then copies it with its overviews, tile by tile, to a temporary name, which
    is read back tile by tile and only then renamed to ``path``: a failed write (a full
    disk) raises and leaves ``path`` as it was. Memory depends on the chunk size, not on
    the area. With a dask.distributed Client the workers must see ``path``.

    ``path`` may be an fsspec URL (``s3://bucket/togo.tif``, ``gs://``, ``az://``): the
    file is then made and verified in a local temporary folder (this process writes the
    chunks the scheduler computes, so workers need no shared disk) and uploaded in one
    piece with fsspec, with ``storage_options`` as for :func:`to_zarr`; an object store
    shows the old object until the new one is complete. (GDAL's ``/vsis3/`` could write
    in place, but would take its credentials from GDAL's settings rather than
    ``storage_options``, and its COG driver needs a local temporary file anyway.)

    Parameters
    ----------
    prob
        (y, x) float probabilities in 0..1, NaN for nodata, with a CRS (rioxarray).
    path
        The ``.tif`` to write (replaced if it exists, once the new one is verified).
    dtype
        ``"float32"`` (nodata NaN) or ``"uint8"`` (round(p * 254), nodata 255, band
        scale 1/254: GDAL and rioxarray's ``mask_and_scale=True`` give floats back).
    overview
        Build overviews (average of the valid pixels) down to one tile.
    blocksize
        Tile size of the COG, a multiple of 16.
    storage_options
        For a URL ``path``: fsspec's options (credentials, ``endpoint_url``).

    Raises
    ------
    XcropError
        A path that cannot be written, too little free space (checked before any work),
        or a write that failed (GDAL's error in the message).

    Examples
    --------
    >>> xcrop.to_cog(prob, "togo.tif", dtype="uint8")  # doctest: +SKIP
    PosixPath('togo.tif')
    """
    prob = _prepare(prob, dtype)
    if "://" in os.fspath(path):
        return _cog_to_url(prob, os.fspath(path), dtype, overview, blocksize, storage_options)
    path = Path(path)
    _check_cog_target(path, prob)
    prob.encoding = {**prob.encoding, **_encoding(dtype)}  # rioxarray encodes and sets nodata
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.tif")
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial.tif")
    try:
        prob.rio.to_raster(
            tmp, driver="GTiff", tiled=True, blockxsize=256, blockysize=256,
            BIGTIFF="IF_SAFER", lock=_cog_lock(tmp), compute=True,
        )  # fmt: skip
        _make_cog(tmp, partial, overview, blocksize)
        _verify_cog(partial, prob)
        os.replace(partial, path)
    except (OSError, RasterioError) as err:
        raise XcropInputError(
            f"Writing {path} failed ({str(err).splitlines()[0] if str(err) else type(err).__name__}"
            f"); {path} was left as it was. Check free space and permissions, then try again."
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return path


def _make_cog(tiled: Path, out: Path, overview: bool, blocksize: int) -> None:
    rasterio.shutil.copy(
        tiled, out, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=blocksize,
        OVERVIEWS="AUTO" if overview else "NONE", RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
    )  # fmt: skip


def _cog_to_url(
    prob: xr.DataArray,
    url: str,
    dtype: str,
    overview: bool,
    blocksize: int,
    storage_options: dict | None,
) -> str:
    import tempfile

    Target(url, storage_options or {}).check_parent("the GeoTIFF")  # before any work
    prob.encoding = {**prob.encoding, **_encoding(dtype)}
    with tempfile.TemporaryDirectory(prefix="xcrop-cog-") as folder:
        local = Path(folder) / url.rstrip("/").rsplit("/", 1)[-1]
        _check_cog_target(local, prob)  # room for it in the temporary folder
        tiled = local.with_name(f".{local.name}.tmp.tif")
        try:
            _write_tiles_here(prob, tiled)
            _make_cog(tiled, local, overview, blocksize)
            tiled.unlink()
            _verify_cog(local, prob)
            _upload(local, url, storage_options or {})
        except (OSError, RasterioError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise XcropInputError(
                f"Writing {url} failed ({reason}); {url} was left as it was. Check free "
                f"space in {tempfile.gettempdir()}, the credentials and the bucket, then "
                "try again."
            ) from err
    return url
