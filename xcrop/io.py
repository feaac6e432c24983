"""Write crop probabilities to Zarr (chunk by chunk, resumable) and to Cloud-Optimized GeoTIFF.

Zarr stores are format 2 with consolidated metadata, one Zarr chunk per dask chunk, the
CRS in a ``spatial_ref`` coordinate, and a record of finished blocks: the group
``_xcrop_blocks`` (the grid's signature in its attributes, one empty file ``i.j`` per
block, created once the block is written). A block touches only its own chunk and record
files, so threads and worker processes write without a lock, and a killed write resumes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import rasterio.shutil
import xarray as xr
import zarr
from dask.callbacks import Callback
from rasterio.crs import CRS
from tqdm.auto import tqdm

from .errors import CRSError, CubeError, XcropError

__all__ = [
    "to_zarr",
    "to_cog",
    "open_probability",
    "write_composite",
    "open_composite",
    "RECORD",
    "UINT8_SCALE",
]

#: The group inside a store that records the finished blocks.
RECORD = "_xcrop_blocks"
#: Step of the uint8 packing: 0..254 are probabilities k / 254, 255 is nodata.
UINT8_SCALE = np.float32(1 / 254)
_DTYPES = ("float32", "uint8")


def _encoding(dtype: str) -> dict:
    if dtype == "uint8":
        return {"dtype": "uint8", "scale_factor": UINT8_SCALE, "_FillValue": np.uint8(255)}
    if dtype == "float32":
        return {"dtype": "float32", "_FillValue": np.float32(np.nan)}
    raise XcropError(f"dtype={dtype!r} is not supported; use one of {_DTYPES}.")


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
    regular = {d: max(c) for d, c in zip(prob.dims, prob.chunks, strict=True) if not _regular(c)}
    prob = prob.chunk(regular) if regular else prob
    prob = prob.astype("float32").rename(prob.name or "crop_probability")
    if dtype == "uint8":
        prob = prob.clip(0, 1)
    prob = prob.rio.write_crs(prob.rio.crs)
    return prob.rio.write_transform(prob.rio.transform(recalc=True))


def _signature(prob: xr.DataArray, dtype: str) -> dict:
    return {
        "name": str(prob.name),
        "dims": list(prob.dims),
        "shape": list(prob.shape),
        "chunks": [c[0] for c in prob.chunks],
        "blocks": [len(c) for c in prob.chunks],
        "dtype": dtype,
        "transform": list(prob.rio.transform())[:6],
        "crs_wkt": prob.rio.crs.to_wkt(),
    }


def _stored_signature(path: Path) -> dict:
    try:
        return dict(zarr.open_group(path, mode="r", path=RECORD).attrs["xcrop"])
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError) as err:
        raise XcropError(
            f"{path} is not a store written by xcrop.to_zarr (or its first write stopped "
            "before the metadata was complete); pass overwrite=True to replace it."
        ) from err


def _differences(old: dict, new: dict) -> list[str]:
    out = [f"{k} {old[k]} (store) vs {new[k]}" for k in new if k != "crs_wkt" and old[k] != new[k]]
    if CRS.from_wkt(old["crs_wkt"]) != CRS.from_wkt(new["crs_wkt"]):
        out.append("a different CRS")
    return out


def _finished(path: Path) -> set[str]:
    return {p.name for p in (path / RECORD).iterdir() if not p.name.startswith(".")}


def _create(prob: xr.DataArray, path: Path, sig: dict) -> None:
    """Metadata and coordinates (no data), the record group, then consolidated metadata."""
    is_zarr = (path / ".zgroup").exists() or (path / "zarr.json").exists()
    if path.exists() and any(path.iterdir()) and not is_zarr:
        raise XcropError(f"{path} exists and is not a Zarr store; xcrop will not delete it.")
    ds = prob.to_dataset()
    ds[prob.name].encoding = {**prob.encoding, **_encoding(sig["dtype"]), "chunks": sig["chunks"]}
    ds.to_zarr(path, mode="w", compute=False, consolidated=False, zarr_format=2)
    group = zarr.open_group(path, mode="r+").create_group(RECORD)
    group.attrs.update({"xcrop": sig, "finished": "one empty file 'i.j' per written block"})
    zarr.consolidate_metadata(path)


def _write_block(
    block: np.ndarray, *, store: str, var: str, dims: tuple, block_info=None
) -> np.ndarray:
    """Write one block to its region of the store, then record it as finished."""
    (y0, y1), (x0, x1) = block_info[0]["array-location"]
    i, j = block_info[0]["chunk-location"]
    region = {dims[0]: slice(y0, y1), dims[1]: slice(x0, x1)}
    ds = xr.Dataset({var: (dims, block)})
    ds.to_zarr(store, region=region, mode="r+", consolidated=False, zarr_format=2)
    Path(store, RECORD, f"{i}.{j}").touch()
    return np.ones((1, 1), "uint8")


def _finish(store: str, _written: list) -> Path:
    return Path(store)


def _active_client():
    """The dask.distributed Client that ``dask.compute`` would use, or None."""
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    return client if type(client).__name__ == "Client" else None


def _in_flight(client) -> int:
    """Default blocks computed at once: one per worker thread (a block has hundreds of
    tasks, enough to keep every thread busy)."""
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return dask.config.get("num_workers", None) or os.cpu_count() or 1


def _compute(tasks: list, key: str, progress: bool, desc: str, in_flight: int | None) -> None:
    """Compute on the active scheduler, at most ``in_flight`` blocks at once (in row-major
    groups on local schedulers, a sliding window on dask.distributed), with a tqdm bar.

    Computing every block in one call lets dask's static ordering load all of a large
    area's time stacks before the first per-chunk choice exists; peak memory then grows
    with the area. Bounded groups keep it set by the chunk size.
    """
    client = _active_client()
    group = in_flight or _in_flight(client)
    bar = tqdm(total=len(tasks), desc=desc, unit="block", disable=not progress)
    with bar:
        if client is None:

            def tick(k, *_):
                if key is not None and isinstance(k, tuple) and k[0] == key:
                    bar.update()

            with Callback(posttask=tick):
                for start in range(0, len(tasks), group):
                    dask.compute(*tasks[start : start + group])
                    if key is None:  # no per-block key to count: count the groups
                        bar.update(len(tasks[start : start + group]))
        else:
            from distributed import as_completed

            running = as_completed(client.compute(tasks[:group]))
            pending = iter(tasks[group:])
            for future in running:
                future.result()  # raises the block's error, if any
                bar.update()
                task = next(pending, None)
                if task is not None:
                    running.add(client.compute(task))


def to_zarr(
    prob: xr.DataArray,
    store: str | os.PathLike,
    *,
    dtype: str = "float32",
    overwrite: bool = False,
    progress: bool = True,
    compute: bool = True,
    in_flight: int | None = None,
) -> Path | dask.delayed.Delayed:
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
        Path of a local directory (Zarr format 2, consolidated metadata).
    dtype
        ``"float32"`` (exact, NaN nodata) or ``"uint8"``: values clipped to 0..1 and
        packed as round(p * 254) with ``scale_factor`` 1/254 and ``_FillValue`` 255, so
        readers decode floats again; the quantisation error is at most 1/508.
    overwrite
        Replace an existing store. Without it, a store of the same grid (shape, chunks,
        dtype, transform, CRS) is completed: only its missing blocks are written, and a
        complete one is returned as it is, with nothing written; a store of another grid
        raises :class:`~xcrop.errors.XcropError`.
    progress
        Show a tqdm bar of the blocks written.
    compute
        Write now; with False, the metadata is written and a dask Delayed that writes
        the missing blocks (and returns the path) is returned.
    in_flight
        Blocks computed at once (default one per worker thread): it bounds peak memory
        at about ``in_flight`` chunks' time stacks, whatever the area. Halos of
        neighbouring chunks (the composite's cloud score) are read again by each group.

    Returns
    -------
    pathlib.Path or dask.delayed.Delayed
        The store's path (or the Delayed of the write).

    Examples
    --------
    >>> xcrop.to_zarr(prob, "togo.zarr", dtype="uint8")  # doctest: +SKIP
    PosixPath('togo.zarr')
    >>> xcrop.open_probability("togo.zarr").rio.crs  # doctest: +SKIP
    CRS.from_wkt('PROJCS["WGS 84 / UTM zone 31N", ...')
    """
    prob = _prepare(prob, dtype)
    path = Path(store)
    sig = _signature(prob, dtype)
    if overwrite or not path.exists() or not any(path.iterdir()):
        _create(prob, path, sig)
    elif problems := _differences(_stored_signature(path), sig):
        raise XcropError(
            f"{path} holds another grid ({'; '.join(problems)}); pass overwrite=True to "
            "replace it, or write to another path."
        )
    done = _finished(path)
    nby, nbx = sig["blocks"]
    todo = [(i, j) for i in range(nby) for j in range(nbx) if f"{i}.{j}" not in done]
    kwargs = {"store": str(path), "var": str(prob.name), "dims": prob.dims}
    written = da.map_blocks(
        _write_block, prob.data, **kwargs, chunks=((1,) * nby, (1,) * nbx), dtype="uint8",
        meta=np.empty((0, 0), "uint8"), name=f"xcrop-write-{dask.base.tokenize(prob.data, kwargs)}",
    )  # fmt: skip
    blocks = written.to_delayed()
    tasks = [blocks[i, j] for i, j in todo]
    if not compute:
        return dask.delayed(_finish)(str(path), tasks)
    if tasks:
        _compute(tasks, written.name, progress, f"writing {path.name}", in_flight)
    return path


def open_probability(store: str | os.PathLike) -> xr.DataArray:
    """Open a store written by :func:`to_zarr`, lazily, as float32 probabilities with a CRS.

    Raises :class:`~xcrop.errors.XcropError` when blocks are missing (an interrupted
    write): calling ``to_zarr`` again with the same arguments resumes it.

    Examples
    --------
    >>> prob = xcrop.open_probability("togo.zarr")  # doctest: +SKIP
    >>> prob.dtype, prob.rio.crs.to_epsg()  # doctest: +SKIP
    (dtype('float32'), 32631)
    """
    path = Path(store)
    sig = _stored_signature(path)
    total = sig["blocks"][0] * sig["blocks"][1]
    missing = total - len(_finished(path))
    if missing:
        raise XcropError(
            f"{path} is incomplete: {missing} of {total} blocks are missing; call to_zarr "
            "again to resume (same probabilities, same dtype)."
        )
    ds = xr.open_zarr(path, decode_coords="all", consolidated=True)
    return ds[sig["name"]].astype("float32")


def write_composite(
    composite, store: str | os.PathLike, *, progress: bool = True, in_flight: int | None = None
) -> Path:
    """Compute a ``Composite`` into a Zarr store (``composite``, ``counts``, ``dates``), so
    that sampling and prediction read it instead of the imagery; replaces ``store``.

    The metadata is written first, then the spatial blocks by region, at most
    ``in_flight`` at once (default one per worker thread), so that memory is set by the
    chunk size, not by the area (see :func:`to_zarr`).

    Examples
    --------
    >>> xcrop.write_composite(cube.cropmask.composite(), "togo-composite.zarr")  # doctest: +SKIP
    >>> comp = xcrop.open_composite("togo-composite.zarr")  # doctest: +SKIP
    """
    ds = composite.to_dataset()
    for name in ds.variables:
        ds[name].encoding.pop("chunks", None)
    ds.to_zarr(store, mode="w", zarr_format=2, consolidated=True, compute=False)
    spatial = ds.drop_vars([v for v in ds.variables if not {"y", "x"} <= set(ds[v].dims)])
    edges = [np.cumsum((0, *c)) for c in ds["composite"].chunks[2:]]
    tasks = [
        spatial.isel(y=slice(y0, y1), x=slice(x0, x1)).to_zarr(
            store, region={"y": slice(y0, y1), "x": slice(x0, x1)}, zarr_format=2,
            consolidated=False, compute=False,
        )
        for y0, y1 in zip(edges[0][:-1], edges[0][1:], strict=True)
        for x0, x1 in zip(edges[1][:-1], edges[1][1:], strict=True)
    ]  # fmt: skip
    _compute(tasks, None, progress, f"writing {Path(store).name}", in_flight)
    return Path(store)


def open_composite(store: str | os.PathLike):
    """A ``Composite`` from a store written by :func:`write_composite`, lazily, with its CRS.

    Examples
    --------
    >>> comp = xcrop.open_composite("togo-composite.zarr")  # doctest: +SKIP
    >>> prob = comp.predict(model)  # doctest: +SKIP
    """
    from .composite import Composite

    path = Path(store)
    if not (path / ".zmetadata").exists():
        raise XcropError(f"No composite store at {path}; write one with xcrop.write_composite.")
    ds = xr.open_zarr(path, decode_coords="all", consolidated=True)
    missing = {"composite", "counts", "dates"} - set(ds.data_vars)
    if missing:
        raise XcropError(f"{path} is not a composite store (no {sorted(missing)}).")
    return Composite(ds["composite"], ds["counts"], ds["dates"])


def _cog_lock(path: Path):
    """A lock for the GeoTIFF's writers: threads of this process, or the cluster's workers."""
    if _active_client() is None:
        return threading.Lock()
    from distributed import Lock

    return Lock(f"xcrop-cog-{path.resolve()}")


def to_cog(
    prob: xr.DataArray,
    path: str | os.PathLike,
    *,
    dtype: str = "float32",
    overview: bool = True,
    blocksize: int = 512,
) -> Path:
    """Write probabilities to a Cloud-Optimized GeoTIFF (DEFLATE, tiled, overviews).

    The dask chunks are computed on the active scheduler and written one at a time into
    a tiled GeoTIFF next to ``path`` (uncompressed, deleted afterwards); GDAL's COG
    driver then copies it with its overviews, tile by tile. Memory depends on the chunk
    size, not on the area. With a dask.distributed Client the workers must see ``path``.

    Parameters
    ----------
    prob
        (y, x) float probabilities in 0..1, NaN for nodata, with a CRS (rioxarray).
    path
        The ``.tif`` to write (replaced if it exists).
    dtype
        ``"float32"`` (nodata NaN) or ``"uint8"`` (round(p * 254), nodata 255, band
        scale 1/254: GDAL and rioxarray's ``mask_and_scale=True`` give floats back).
    overview
        Build overviews (average of the valid pixels) down to one tile.
    blocksize
        Tile size of the COG, a multiple of 16.

    Examples
    --------
    >>> xcrop.to_cog(prob, "togo.tif", dtype="uint8")  # doctest: +SKIP
    PosixPath('togo.tif')
    """
    prob = _prepare(prob, dtype)
    path = Path(path)
    prob.encoding = {**prob.encoding, **_encoding(dtype)}  # rioxarray encodes and sets nodata
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.tif")
    try:
        prob.rio.to_raster(
            tmp, driver="GTiff", tiled=True, blockxsize=256, blockysize=256,
            BIGTIFF="IF_SAFER", lock=_cog_lock(tmp), compute=True,
        )  # fmt: skip
        rasterio.shutil.copy(
            tmp, path, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=blocksize,
            OVERVIEWS="AUTO" if overview else "NONE", RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
        )  # fmt: skip
    finally:
        tmp.unlink(missing_ok=True)
    return path
