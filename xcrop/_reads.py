"""Reading the COGs of a cube: retries, errors that name the file and the item, gaps.

:class:`CubeSource` reads any window of a cube's (time, band) through odc-loader's
rasterio reader, so a slice of the cube reads only its pixels (wrapped by
``dask.array.from_array``, see :func:`source_array`); :class:`ReadDriver` is that
reader's driver with three changes:

- the GDAL settings of each load (HTTP retries and timeouts, from :class:`xcrop.Network`)
  travel with the tasks, so dask.distributed workers read with them too;
- a failed read is tried again (``retries`` times, waits doubling from ``backoff``),
  then raises :class:`ReadError` naming the file (signed URLs redacted), the item and
  the band, with GDAL's own reason (rasterio only says "see previous exception");
- with ``on_error="nodata"`` a read that still fails leaves its pixels as nodata (NaN in
  the cube, so the composite takes another date and the counts show it), is logged as a
  warning and counted: :func:`read_failures` says how many, per process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

import dask.array as da
import numpy as np
from dask.base import tokenize
from odc.loader._rio import RioDriver, RioReader, capture_rio_env

from ._network import Network, redact
from .errors import XcropError, XcropInputError

__all__ = ["ReadError", "ReadDriver", "CubeSource", "read_failures", "OnError"]

OnError = Literal["raise", "nodata"]
_LOG = logging.getLogger("xcrop.reads")
_FAILED: Counter[str] = Counter()
_LOCK = threading.Lock()
NODATA = 0


class ReadError(XcropError, OSError):
    """A COG that could not be read after every retry (named, with its item and band)."""


def read_failures(reset: bool = False) -> dict[str, int]:
    """Reads that failed and were left as nodata (``on_error="nodata"``) in this process,
    by file (signed URLs redacted); ``reset=True`` starts counting again.

    Examples
    --------
    >>> read_failures(reset=True)
    {}
    """
    with _LOCK:
        out = dict(_FAILED)
        if reset:
            _FAILED.clear()
    return out


def _reason(err: BaseException) -> str:
    """GDAL's reason: rasterio's message often only points at the previous exception."""
    if not str(err).strip():
        return f"{type(err).__name__} while reading (a damaged or truncated file?)"
    parts: list[str] = []
    seen: BaseException | None = err
    while seen is not None and len(parts) < 3:
        text = " ".join(str(seen).split())
        if text and "see previous exception" not in text.lower():
            parts.append(text)
        seen = seen.__cause__ or seen.__context__
    return redact("; ".join(parts) or type(err).__name__)


class _Reader(RioReader):
    def __init__(self, src, ctx, driver: ReadDriver) -> None:
        super().__init__(src, ctx)
        self._driver = driver

    def read(self, cfg, dst_geobox, *, dst=None, selection=None):
        import rasterio.errors

        drv, uri = self._driver, self._src.uri
        for attempt in range(drv.retries + 1):
            try:
                return super().read(cfg, dst_geobox, dst=dst, selection=selection)
            except (rasterio.errors.RasterioError, OSError, AssertionError, ValueError) as err:
                # a file cut short can even open with no geotransform, and odc-loader
                # then fails an assertion: every failure to read the file is a read error
                if attempt < drv.retries:
                    time.sleep(drv.backoff * 2**attempt)
                    continue
                item, band = drv.sources.get(uri, ("?", "?"))
                where = f"{redact(uri)} (band {band} of item {item})"
                tries = f"{drv.retries + 1} tr{'ies' if drv.retries else 'y'}"
                if drv.on_error == "raise":
                    raise ReadError(
                        f"Reading {where} failed after {tries}: {_reason(err)}. Check the "
                        "file (or that its server answers); pass on_error='nodata' to map "
                        "with this read left as a gap."
                    ) from err
                with _LOCK:
                    _FAILED[redact(uri)] += 1
                _LOG.warning("Left as nodata: %s failed after %s: %s", where, tries, _reason(err))
                empty = dst[0:0, 0:0] if dst is not None else np.ndarray((0, 0), cfg.dtype)
                return np.s_[0:0, 0:0], empty
        raise AssertionError("unreachable")  # pragma: no cover


class ReadDriver(RioDriver):
    """odc-loader's rasterio driver with xcrop's retries, errors and GDAL settings.

    Parameters
    ----------
    sources
        ``{href: (item id, band)}`` of the load, to name what failed.
    network
        Its GDAL settings (HTTP retries, timeouts) go with every read task.
    retries, backoff
        Tries again after a failed read (waits ``backoff`` * 1, 2, 4 ... s).
    on_error
        ``"raise"`` (default) or ``"nodata"``: leave a read that keeps failing as a gap.
    """

    def __init__(
        self,
        sources: Mapping[str, tuple[str, str]] | None = None,
        *,
        network: Network | None = None,
        retries: int = 2,
        backoff: float = 0.5,
        on_error: OnError = "raise",
    ) -> None:
        super().__init__()
        if on_error not in ("raise", "nodata"):
            raise XcropInputError(f"on_error={on_error!r}: use 'raise' or 'nodata'.")
        self.sources = dict(sources or {})
        for href, where in list(self.sources.items()):  # odc reads local paths as file://
            if "://" not in href:
                self.sources.setdefault(f"file://{os.path.abspath(href)}", where)
        self.network = network or Network()
        self.retries, self.backoff, self.on_error = retries, backoff, on_error

    def capture_env(self) -> dict[str, Any]:
        return {**capture_rio_env(), **self.network.gdal_env()}

    def open(self, src, ctx) -> _Reader:
        return _Reader(src, ctx, self)


def dn_to_reflectance(
    dn: np.ndarray, scale: np.ndarray, offset: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Numpy kernel: DN -> float32 ``DN * scale + offset``, NaN where DN is nodata (0);
    into ``out`` when given.

    Examples
    --------
    >>> dn = np.array([0, 2000], "uint16")
    >>> [round(float(v), 4) for v in dn_to_reflectance(dn, np.float32(1e-4), np.float32(-0.1))]
    [nan, 0.1]
    """
    if out is None:
        out = dn.astype(np.float32)
    else:
        out[...] = dn
    out *= scale
    out += offset
    out[dn == NODATA] = np.nan
    return out


def _bounds(key: Any, shape: tuple[int, ...]) -> tuple[list[slice], tuple]:
    """The smallest slices (step 1) holding ``key`` on each axis, and what is left to
    apply to them (ints drop their axis, steps and index arrays stay, shifted)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis or k is None for k in key) or len(key) > len(shape):
        raise IndexError(f"xcrop's cube reader takes ints, slices and arrays, not {key!r}")
    key = key + (slice(None),) * (len(shape) - len(key))
    outer: list[slice] = []
    inner: list[slice | np.ndarray | int] = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            picked = range(*k.indices(n))
            if not picked:
                outer.append(slice(0, 0))
                inner.append(slice(None))
                continue
            lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
            first, last = picked[0] - lo, picked[-1] - lo
            stop = last + 1 if picked.step > 0 else (last - 1 if last > 0 else None)
            outer.append(slice(lo, hi))
            inner.append(slice(first, stop, picked.step))
        elif isinstance(k, list | np.ndarray):  # dask passes fancy indices on too
            index = np.asarray(k)
            if index.dtype == bool:
                index = np.flatnonzero(index)
            index = np.where(index < 0, index + n, index).astype("int64")
            lo, hi = (int(index.min()), int(index.max()) + 1) if index.size else (0, 0)
            outer.append(slice(lo, hi))
            inner.append(index - lo)
        else:
            i = int(k) + n if int(k) < 0 else int(k)
            if not 0 <= i < n:
                raise IndexError(f"index {k} is out of bounds for an axis of size {n}")
            outer.append(slice(i, i + 1))
            inner.append(0)
    return outer, tuple(inner)


class CubeSource:
    """A (time, band, y, x) float32 reflectance cube as an array that reads on indexing.

    ``source[t, b, ys, xs]`` reads exactly that window of each file (through
    :class:`ReadDriver`, so with its retries and errors) into the cube's grid, turns DN
    into reflectance (``DN * scale + offset`` in float32, NaN where DN is nodata) and
    returns it. Wrapped by ``dask.array.from_array``, a slice of the cube taken later
    (``cube.isel(x=...)``, a neighbour's halo) reads only its own pixels: dask fuses
    the slice into the read. Files whose footprint misses a window are not opened.

    Parameters
    ----------
    hrefs
        ``hrefs[t][b]``: the file of band ``b`` of time step ``t`` (None: no such band).
    footprints
        Per time step, the item's footprint in the grid's CRS (an odc-geo Geometry) or
        None (read everywhere).
    scaling
        ``(T, B, 2)`` scale and offset.
    geobox
        The cube's pixel grid.
    driver
        The :class:`ReadDriver` that opens and reads the files.
    ids, bands
        The items' ids and the bands' names, in the cube's order.
    aoi
        An area (odc-geo Geometry in the grid's CRS) outside which pixels are NaN; the
        footprints should already end at its edge, so that windows outside it are not
        read at all.
    """

    def __init__(
        self,
        hrefs,
        footprints,
        scaling: np.ndarray,
        geobox,
        driver: ReadDriver,
        ids,
        bands,
        aoi=None,
    ) -> None:
        from odc.loader.types import RasterLoadParams

        self.aoi = aoi
        self.ids, self.bands = list(ids), list(bands)
        self.hrefs = [list(row) for row in hrefs]
        self.footprints = list(footprints)
        self.scaling = np.asarray(scaling, "float32")
        self.geobox = geobox
        self.driver = driver
        self.env = driver.capture_env()
        self.cfg = RasterLoadParams(
            dtype="uint16", fill_value=NODATA, resampling="nearest", fail_on_error=True
        )
        self.shape = (len(self.hrefs), self.scaling.shape[1], *geobox.shape.yx)
        self.dtype = np.dtype("float32")
        self.ndim = 4

    def __getitem__(self, key: Any) -> np.ndarray:
        from odc.loader.types import RasterSource

        (ts, bs, ys, xs), rest = _bounds(key, self.shape)
        if any(s.stop == s.start for s in (ts, bs, ys, xs)):  # nothing asked: no read
            size = (ts.stop - ts.start, bs.stop - bs.start, ys.stop - ys.start, xs.stop - xs.start)
            return np.empty(size, "float32")[rest]
        window = self.geobox[ys, xs]
        out = np.full((ts.stop - ts.start, bs.stop - bs.start, *window.shape.yx), np.nan, "f4")
        extent = window.extent
        state = self.driver.new_load(self.geobox)
        with self.driver.restore_env(self.env, state) as ctx:
            for i, t in enumerate(range(ts.start, ts.stop)):
                footprint = self.footprints[t]
                if footprint is not None and not footprint.intersects(extent):
                    continue
                for k, b in enumerate(range(bs.start, bs.stop)):
                    href = self.hrefs[t][b]
                    if href is None:
                        continue
                    dn = np.full(window.shape.yx, NODATA, "uint16")
                    reader = self.driver.open(RasterSource(href, band=1), ctx)
                    reader.read(self.cfg, window, dst=dn)
                    scale, offset = self.scaling[t, b]
                    dn_to_reflectance(dn, scale, offset, out=out[i, k])
        if self.aoi is not None and not self.aoi.contains(extent):  # on the area's edge
            out[:, :, ~inside_mask(self.aoi, window)] = np.nan
        return out[rest]

    def touching(self, chunks: tuple[tuple[int, ...], tuple[int, ...]], margin: int) -> np.ndarray:
        """``(T, ny, nx)`` bool: whether time step ``t``'s footprint overlaps chunk
        ``(i, j)`` of the grid grown by ``margin`` pixels on every side (more than
        touching its edge; True where no footprint is known). Where it does not, the
        step reads nothing there: the graph can leave it out of that chunk."""
        import shapely

        ys, xs = (np.cumsum([0, *c]) for c in chunks)
        a = self.geobox.affine
        top, bottom = ys[:-1, None] - margin, ys[1:, None] + margin
        left, right = xs[None, :-1] - margin, xs[None, 1:] + margin
        # corners in the grid's CRS (north-up: x from columns, y from rows)
        x0, x1 = a.c + a.a * left, a.c + a.a * right
        y0, y1 = a.f + a.e * top, a.f + a.e * bottom
        boxes = shapely.box(
            *np.broadcast_arrays(np.minimum(x0, x1), np.minimum(y0, y1),
                                 np.maximum(x0, x1), np.maximum(y0, y1))
        ).ravel()  # fmt: skip
        tree = shapely.STRtree(boxes)
        out = np.ones((len(self.footprints), len(chunks[0]), len(chunks[1])), bool)
        for t, footprint in enumerate(self.footprints):
            if footprint is not None:
                hit = np.zeros(boxes.size, bool)
                near = tree.query(footprint.geom, predicate="intersects")
                # a chunk that only touches the edge holds no pixel of the footprint
                hit[near[~shapely.touches(boxes[near], footprint.geom)]] = True
                out[t] = hit.reshape(out.shape[1:])
        return out

    def __dask_tokenize__(self):
        return (
            "xcrop.CubeSource", self.hrefs, self.scaling, self.geobox, self.env,
            self.driver.on_error, self.driver.retries, self.driver.backoff,
            None if self.aoi is None else self.aoi.wkt,
        )  # fmt: skip

    def window(self, times: np.ndarray, bands: np.ndarray, ys: slice, xs: slice) -> CubeSource:
        """The sub-cube of these time steps, bands and pixels, as a source of its own."""
        out = object.__new__(CubeSource)
        out.__dict__.update(self.__dict__)
        out.ids = [self.ids[t] for t in times]
        out.bands = [self.bands[b] for b in bands]
        out.hrefs = [[self.hrefs[t][b] for b in bands] for t in times]
        out.footprints = [self.footprints[t] for t in times]
        out.scaling = self.scaling[np.ix_(times, bands)]
        out.geobox = self.geobox[ys, xs]
        out.shape = (len(out.hrefs), len(out.bands), *out.geobox.shape.yx)
        return out


def inside_mask(aoi, geobox) -> np.ndarray:
    """``(y, x)`` bool: the pixels of ``geobox`` inside ``aoi`` (an odc-geo Geometry in the
    grid's CRS): those whose centre it holds, as GDAL rasterises (rasterio's
    ``geometry_mask``). On a 10 m north-up grid a pixel goes with the 2 x 2 block of the
    20 m grid (on multiples of 20 m, as xcrop snaps its grids) that holds it: the cloud
    score and the counts live at 20 m, so both halves of a 20 m pixel are in or out."""
    from affine import Affine
    from rasterio.features import geometry_mask

    a = geobox.affine
    if not (a.a == 10 and a.e == -10 and a.b == 0 and a.d == 0):
        return geometry_mask(
            [aoi.geom], out_shape=geobox.shape.yx, transform=a, invert=True
        )  # fmt: skip
    height, width = geobox.shape.yx
    left, top = np.floor(a.c / 20) * 20, np.ceil(a.f / 20) * 20
    cols = ((a.c + 10 * np.arange(width) - left) // 20).astype(int)
    rows = ((top - (a.f - 10 * np.arange(height))) // 20).astype(int)
    coarse = geometry_mask(
        [aoi.geom], out_shape=(rows[-1] + 1, cols[-1] + 1),
        transform=Affine(20, 0, left, 0, -20, top), invert=True,
    )  # fmt: skip
    return coarse[np.ix_(rows, cols)]


def source_array(source: CubeSource, chunks: int | tuple) -> da.Array:
    """``source`` as a dask array of window reads (``chunks``: spatial, per time step
    and band); slices of it are fused into its reads."""
    token = tokenize(source)
    spatial = (chunks, chunks) if isinstance(chunks, int) else tuple(chunks)
    return da.from_array(
        source,
        chunks=(1, 1, *spatial),
        name=f"xcrop-read-{token}",
        asarray=False,
        fancy=True,  # with fancy=False dask (2026.8) never fuses a slice into the read
        lock=False,
        meta=np.empty((0, 0, 0, 0), "float32"),
    )


_SELECTIONS = ("getitem-", "xcrop-read-", "original-xcrop-read-")


def source_of(cube) -> CubeSource | None:
    """The :class:`CubeSource` that ``cube`` (a DataArray) is a plain selection of
    (``isel``/``sel`` of whole time steps and bands and a window of pixels), as a
    source of its own; None for anything else (arithmetic, another loader, numpy)."""
    data = cube.data
    if not isinstance(data, da.Array) or cube.dims != ("time", "band", "y", "x"):
        return None
    layers = data.dask.layers
    if not all(str(name).startswith(_SELECTIONS) for name in layers):
        return None
    found = [
        getattr(node, "value", node)  # the object itself, or a DataNode holding it
        for name, layer in layers.items()
        if str(name).startswith("original-xcrop-read-")
        for node in layer.values()
    ]
    found = [node for node in found if isinstance(node, CubeSource)]
    if len(found) != 1 or "id" not in cube.coords:
        return None
    source = found[0]
    if len(set(source.ids)) != len(source.ids):  # an item twice: ids do not say which
        return None
    where = {item: t for t, item in enumerate(source.ids)}
    times = [where.get(item) for item in cube.coords["id"].values.tolist()]
    position = {band: b for b, band in enumerate(source.bands)}
    bands = [position.get(str(band)) for band in cube.band.values.tolist()]
    if None in times or None in bands or len(set(times)) != len(times):
        return None
    grid = source.geobox
    spans = []
    for name, coords, size in (("y", grid.coords["y"].values, grid.shape.y),
                               ("x", grid.coords["x"].values, grid.shape.x)):  # fmt: skip
        mine = np.asarray(cube[name].values, "float64")
        if not mine.size:
            return None
        start = int(np.argmin(np.abs(coords - mine[0])))
        stop = start + mine.size
        if stop > size or not np.array_equal(coords[start:stop], mine):
            return None
        spans.append(slice(start, stop))
    return source.window(np.array(times), np.array(bands), *spans)
