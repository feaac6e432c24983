"""The composite's dask graphs: ``da.blockwise`` where a stage's tasks read regular
blocks, one helper (:func:`_from_tasks`) where they do not.

A composite reads every band of every observation once. Four kinds of task, each a
numpy kernel of :mod:`xcrop._cloudscore` or :mod:`xcrop._mosaic`:

1. ``prepare``, per observation and spatial chunk: the score bands at 20 m and the
   per-pixel part of the quality (3 small layers);
2. ``quality``, per observation and chunk: the neighbourhood part, reading the prepared
   layers of the chunk and of just the neighbours it needs: as far as this observation's
   shadows reach on the sun's side, a few pixels elsewhere (``dask.array.overlap`` would
   pad every chunk on every side by the largest reach, in a dozen tasks per chunk);
3. ``pick``, per period and chunk: the best of the period's observations per pixel, and
   their bands, read from the cube's own chunks; only the period's observations are
   held in memory, never a chunk's whole time series;
4. ``settle`` per chunk: empty periods take the nearest period's choice; ``period`` per
   period and chunk: the composite's chunk, a view of the pick unless a pixel is filled
   from another period.

``settle`` and ``period`` are ``da.blockwise`` (``concatenate=False``: a task gets its
blocks as lists). The others go through :func:`_from_tasks`, the only function that
builds a graph by hand (a ``HighLevelGraph``, or a graph wrapped as an array expression
under dask's ``array.query-planning``): ``prepare`` reads only the score bands of its
observation (``da.blockwise`` over the band axis would make it wait on, and hold, every
band), ``quality`` each observation's own neighbours, ``pick`` a subset of the time
steps, the period's, in priority order, and the window reads below no block where an
observation's footprint misses a chunk.

The cube's chunks must hold one time step and one band each (stackstac's and odc-stac's
layout); :func:`xcrop.composite` rechunks others.

On a cube that can read any window (xcrop's own, :class:`xcrop._reads.CubeSource`),
:func:`window_quality_blocks` replaces steps 1 and 2: one task per observation and chunk
reads the score bands over the chunk grown by its halo and hands the chunk's part of
them on to ``pick``, so no chunk depends on another.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.task_spec import DataNode, List, Task, TaskRef

from ._cloudscore import prepare, to_20m
from ._mosaic import fill, pick, select, upsample

__all__ = [
    "prepare_blocks",
    "map_neighbourhood",
    "window_quality_blocks",
    "pick_blocks",
    "settle_blocks",
    "period_blocks",
]

Depth = tuple[tuple[int, int], tuple[int, int]]


class Block(NamedTuple):
    """A reference, in a task of :func:`_from_tasks`, to one block (or one shared value)
    of the graph: ``key`` as dask names it (``(array.name, *index)``)."""

    key: Any


class Output(NamedTuple):
    """An array :func:`_from_tasks` returns: its tasks' name, chunks and dtype."""

    name: str
    chunks: tuple[tuple[int, ...], ...]
    dtype: str


def _node(arg: Any) -> Any:
    """A task's argument as a task-spec node: :class:`Block` a reference to its key,
    lists and tuples of them a list node, anything else as it is."""
    if isinstance(arg, Block):
        return TaskRef(arg.key)
    if isinstance(arg, list) and arg and isinstance(arg[0], (Block, list)):
        return List(*map(_node, arg))
    return arg


def _from_tasks(
    tasks: Mapping[tuple, tuple],
    outputs: Sequence[Output],
    deps: Sequence[da.Array] = (),
    shared: Mapping[str, Any] | None = None,
) -> list[da.Array]:
    """Arrays whose tasks are written out one by one: the ONLY place in xcrop that
    builds a dask graph by hand (``HighLevelGraph``, the ``dask.array.Array``
    constructor). The composite's irregular stages take it: the preparation (a task
    reads some bands of its observation, not all: ``da.blockwise`` would contract the
    band axis, or take a slice of it per band, an alias task per block), the sun-side
    neighbourhood (each observation reads its own neighbours), the reads and the pick
    that leave out observations whose footprint misses a chunk, and the pick of a
    period's observations (a subset of the time steps, in priority order, whose
    selection through ``Array.blocks`` would cost a task per block selected).

    Parameters
    ----------
    tasks
        ``{(name, *index): (func, *args)}``: in ``args`` a :class:`Block` (or a list,
        or a list of lists, of them) stands for the value of that key; ``name`` one of
        ``outputs``' or an intermediate layer's.
    outputs
        The arrays to return, in order; each name's tasks must cover its chunks.
    deps
        The arrays whose blocks the tasks read.
    shared
        ``{key: value}``: values held once in the graph (a reader), that tasks reach
        through ``Block(key)``.

    Returns
    -------
    list of dask.array.Array
    """
    if da.array_expr_enabled():  # dask's array query planning: see _from_tasks_expr
        return _from_tasks_expr(tasks, outputs, deps, shared)
    layers: dict[str, dict] = {}
    for key, (func, *args) in tasks.items():
        layers.setdefault(key[0], {})[key] = Task(key, func, *map(_node, args))
    if shared:
        first = next(iter(layers), outputs[0].name)  # no task at all: the reader alone
        for shared_key, value in shared.items():
            layers.setdefault(first, {})[shared_key] = DataNode(shared_key, value)
    outer: set = set()
    graph = HighLevelGraph.merge(*(d.__dask_graph__() for d in deps)) if deps else None
    for d in deps:
        outer.update(d.__dask_layers__())
    names = list(layers)
    every = {**(graph.layers if graph else {}), **layers}
    depends = {**(graph.dependencies if graph else {})}
    for k, name in enumerate(names):  # each layer may read the deps and those before it
        depends[name] = outer | set(names[:k])
    graph = HighLevelGraph(every, depends)
    return [
        da.Array(graph, out.name, out.chunks, meta=np.empty((0,) * len(out.chunks), out.dtype))
        for out in outputs
    ]


def _half1(size: int) -> int:
    return (size + 1) // 2


def _half(chunks: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(map(_half1, chunks))


def _from_tasks_expr(
    tasks: Mapping[tuple, tuple],
    outputs: Sequence[Output],
    deps: Sequence[da.Array],
    shared: Mapping[str, Any] | None,
) -> list[da.Array]:
    """:func:`_from_tasks` under dask's array query planning (``array.query-planning``),
    whose arrays are expressions without a graph constructor: each output an
    expression over the tasks and the dependencies' graphs, lowered (dask 2026.8 has
    no public way to wrap a graph, hence its private ``from_graph``)."""
    from dask.array._array_expr._collection import from_graph

    dsk: dict = {}
    for d in deps:
        dsk.update(d.__dask_graph__())
    for shared_key, value in (shared or {}).items():
        dsk[shared_key] = DataNode(shared_key, value)
    for key, (func, *args) in tasks.items():
        dsk[key] = Task(key, func, *map(_node, args))
    out = []
    for o in outputs:
        keys = [k for k in tasks if k[0] == o.name]
        meta = np.empty((0,) * len(o.chunks), o.dtype)
        out.append(from_graph(dsk, meta, o.chunks, keys, o.name.rsplit("-", 1)[0]))
    return out


def _prepare(blocks: list[np.ndarray], names: list[str], score: str, use_scl: bool):
    b20 = to_20m({n: b[0, 0] for n, b in zip(names, blocks, strict=True)})
    return prepare(b20, score=score, use_scl=use_scl)[None]


def prepare_blocks(
    data: da.Array, positions: Sequence[int], names: Sequence[str], score: str, use_scl: bool
) -> da.Array:
    """:func:`xcrop._cloudscore.prepare` of the 20 m score bands of each observation and
    chunk, through :func:`_from_tasks`: one task per observation and chunk, which reads
    that observation's and chunk's blocks of the score bands and of no other band.

    ``da.blockwise`` would either hand each task every band of its observation and chunk
    (the band axis contracted: all of them read before the period's pick needs them, and
    held until it runs) or, the score bands passed one by one (``data[:, p : p + 1]``),
    add an alias task per band and block (a quarter more tasks than the whole composite
    after optimisation, which does not fuse them away).

    Parameters
    ----------
    data
        ``(T, B, Y, X)`` chunked one time step and one band per chunk.
    positions, names
        Where the score bands are on the band axis, and their names.
    score, use_scl
        As :func:`xcrop._cloudscore.prepare`.

    Returns
    -------
    dask.array.Array
        ``(T, 3, Y/2, X/2)`` ``float32``, one time step per chunk.
    """
    name = f"xcrop-prepare-{tokenize(data, positions, names, score, use_scl)}"
    n_times, _, ny, nx = data.numblocks
    dsk = {
        (name, t, 0, i, j): (
            _prepare,
            [Block((data.name, t, b, i, j)) for b in positions],
            list(names),
            score,
            use_scl,
        )
        for t in range(n_times)
        for i in range(ny)
        for j in range(nx)
    }
    chunks = (data.chunks[0], (3,), _half(data.chunks[2]), _half(data.chunks[3]))
    return _from_tasks(dsk, [Output(name, chunks, "float32")], [data])[0]


def _reach(chunks: tuple[int, ...], index: int, before: int, after: int):
    """Blocks along one axis that a chunk extended by (before, after) reads, the slice
    of each, and where the chunk itself lies in the extended range."""
    bounds = np.cumsum([0, *chunks])
    start, stop = bounds[index], bounds[index + 1]
    lo, hi = max(start - before, 0), min(stop + after, bounds[-1])
    blocks = [a for a in range(len(chunks)) if bounds[a] < hi and bounds[a + 1] > lo]
    slices = [
        slice(int(max(lo - bounds[a], 0)), int(min(hi, bounds[a + 1]) - bounds[a])) for a in blocks
    ]
    return blocks, slices, slice(int(start - lo), int(stop - lo))


def _window(func: Callable, grid, rows, cols, core, *args) -> np.ndarray:
    extended = np.concatenate(
        [
            np.concatenate([b[0, :, r, c] for b, c in zip(line, cols, strict=True)], axis=-1)
            for line, r in zip(grid, rows, strict=True)
        ],
        axis=-2,
    )
    return func(extended, *args, core=core)[None]


def map_neighbourhood(
    prepared: da.Array, depths: Sequence[Depth], func: Callable, args: Sequence[tuple]
) -> da.Array:
    """``func(extended, *args[t], core=...)`` per observation ``t`` and chunk, through
    :func:`_from_tasks` (each observation reads its own neighbours).

    Parameters
    ----------
    prepared
        ``(T, k, Y, X)``, one time step and all ``k`` layers per chunk.
    depths
        Per observation, ((before, after) rows, (before, after) columns) its chunks grow
        by, clipped at the array's edges: ``extended`` is the ``(k, h, w)`` block grown
        so from the neighbours it reaches, and only those.
    func, args
        ``func(extended, *args[t], core=(rows, cols))`` gives the chunk's ``(h, w)``
        result; ``core`` is where the chunk lies in ``extended``.

    Returns
    -------
    dask.array.Array
        ``(T, Y, X)`` ``float32``, one time step per chunk.
    """
    name = f"xcrop-quality-{tokenize(prepared, depths, func, args)}"
    _, _, ny, nx = prepared.numblocks
    dsk = {}
    for t, ((top, bottom), (left, right)) in enumerate(depths):
        for i in range(ny):
            rows, row_slices, core_rows = _reach(prepared.chunks[2], i, top, bottom)
            for j in range(nx):
                cols, col_slices, core_cols = _reach(prepared.chunks[3], j, left, right)
                grid = [[Block((prepared.name, t, 0, a, b)) for b in cols] for a in rows]
                core = (core_rows, core_cols)
                dsk[(name, t, i, j)] = (
                    _window, func, grid, row_slices, col_slices, core, *args[t]
                )  # fmt: skip
    chunks = (prepared.chunks[0], *prepared.chunks[2:])
    return _from_tasks(dsk, [Output(name, chunks, "float32")], [prepared])[0]


def _window_quality(
    source, t: int, positions: list[int], names: list[str], window, core20, keep: list[int],
    shape: tuple[int, int], sun: tuple[float, float], finish: Callable, score: str,
    use_scl: bool,
):  # fmt: skip
    """One observation's quality over a chunk (of ``shape``) from ONE read of its score
    bands over the chunk grown by its halo (``window``; the chunk is ``core20`` of it at
    20 m), and the chunk's part of the bands at ``keep`` (read once, for the pick too)."""
    ys, xs = window
    cy, cx = core20
    bands = np.stack([source[t, p, ys, xs] for p in positions])  # only these bands
    b20 = to_20m(dict(zip(names, bands, strict=True)))
    q = finish(prepare(b20, score=score, use_scl=use_scl), *sun, core=core20)
    rows = slice(2 * cy.start, 2 * cy.start + shape[0])
    cols = slice(2 * cx.start, 2 * cx.start + shape[1])
    return q[None], bands[keep, rows, cols][None]


def _band(pair, k: int) -> np.ndarray:
    return pair[1][:, k : k + 1]


def _extent(bounds: np.ndarray, index: int, before: int, after: int, size: int):
    """A chunk's rows at 10 m (``bounds``: the chunks' edges) grown by (before, after)
    rows at 20 m, clipped to the array; and where the chunk lies in that range at 20 m."""
    start, stop = int(bounds[index]) // 2, (int(bounds[index + 1]) + 1) // 2
    lo, hi = max(start - before, 0), min(stop + after, (size + 1) // 2)
    return slice(2 * lo, min(2 * hi, size)), slice(start - lo, stop - lo)


def window_quality_blocks(
    source,
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
    positions: Sequence[int],
    names: Sequence[str],
    depths: Sequence[Depth],
    func: Callable,
    args: Sequence[tuple],
    keep: Sequence[int],
    score: str,
    use_scl: bool,
    touch: np.ndarray | None = None,
) -> tuple[da.Array, da.Array]:
    """Quality ``(T, Y/2, X/2)`` and the bands at ``keep`` ``(T, K, Y, X)`` of a cube
    that can read any window (:class:`xcrop._reads.CubeSource`): per observation and
    chunk one read of the score bands (at ``positions``) over the chunk grown by
    ``depths[t]`` (20 m rows and columns), then :func:`prepare` and ``func`` (the
    neighbourhood part) on it. No chunk depends on another: a group of blocks written
    alone reads its halos, not its neighbours' whole chunks. ``touch`` ``(T, ny, nx)``:
    where False (the observation's footprint misses the chunk: no pixel of it can be
    chosen there, whatever its halo holds) no task is made; :func:`pick_blocks` must
    then be given the same ``touch``."""
    token = tokenize(
        source, chunks, positions, names, depths, func, args, keep, score, use_scl, touch
    )
    name, src = f"xcrop-wquality-{token}", f"xcrop-wsource-{token}"
    qname, bname = f"xcrop-wq-{token}", f"xcrop-wbands-{token}"
    ny, nx = len(chunks[0]), len(chunks[1])
    height, width = sum(chunks[0]), sum(chunks[1])
    positions, names = list(positions), list(names)
    keep_at = [positions.index(b) for b in keep]  # where each kept band is in the read
    reads: dict = {}
    qs: dict = {}
    kept: dict = {}
    rows, cols = (np.cumsum([0, *c]) for c in chunks)  # once, not per task
    for t, ((top, bottom), (left, right)) in enumerate(depths):
        for i in range(ny):
            ys, cy = _extent(rows, i, top, bottom, height)
            for j in range(nx):
                if touch is not None and not touch[t, i, j]:
                    continue
                xs, cx = _extent(cols, j, left, right, width)
                reads[(name, t, i, j)] = (
                    _window_quality, Block(src), t, positions, names, (ys, xs), (cy, cx), keep_at,
                    (chunks[0][i], chunks[1][j]), tuple(args[t]), func, score, use_scl,
                )  # fmt: skip
                qs[(qname, t, i, j)] = (operator.getitem, Block((name, t, i, j)), 0)
                for k in range(len(keep)):
                    kept[(bname, t, k, i, j)] = (_band, Block((name, t, i, j)), k)
    t_chunks = (1,) * len(depths)
    q, bands = _from_tasks(
        {**reads, **qs, **kept},
        [
            Output(qname, (t_chunks, _half(chunks[0]), _half(chunks[1])), "float32"),
            Output(bname, (t_chunks, (1,) * len(keep), *chunks), "float32"),
        ],
        shared={src: source},
    )
    return q, bands


def _read_block(source, t: int, b: int, ys: slice, xs: slice) -> np.ndarray:
    return source[t : t + 1, b : b + 1, ys, xs]


def window_read_blocks(
    source,
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
    bands: Sequence[int],
    touch: np.ndarray,
) -> da.Array:
    """The cube ``(T, B, Y, X)`` of a source that reads any window, in ``chunks``, with
    tasks only for the ``bands`` asked and where ``touch`` ``(T, ny, nx)`` is True (its
    other blocks do not exist: only :func:`pick_blocks` given the same ``touch`` may
    use it). Unlike the cube's own layer (every time step, band and chunk: millions of
    keys over a country), the graph holds only the reads the composite makes."""
    token = tokenize(source, chunks, list(bands), touch)
    name, src = f"xcrop-wread-{token}", f"xcrop-wreadsource-{token}"
    bounds = [np.cumsum([0, *c]) for c in chunks]
    dsk: dict = {}
    for t, i, j in zip(*np.nonzero(touch), strict=True):
        ys = slice(int(bounds[0][i]), int(bounds[0][i + 1]))
        xs = slice(int(bounds[1][j]), int(bounds[1][j + 1]))
        for b in bands:
            dsk[(name, int(t), b, int(i), int(j))] = (_read_block, Block(src), int(t), b, ys, xs)
    t_steps, n_bands = source.shape[:2]
    out = Output(name, ((1,) * t_steps, (1,) * n_bands, *chunks), "float32")
    return _from_tasks(dsk, [out], shared={src: source})[0]


def _pick(q_blocks, band_blocks, members, shape, nv, ndvi, extra) -> np.ndarray:
    out = np.empty((nv + 2, *shape), "float32")
    if not members:  # a period without acquisitions
        out[:-2], out[-2], out[-1] = np.nan, -1, 0
        return out[None]
    choice, counts = select([b[0] for b in q_blocks], members)
    choice = upsample(choice, shape)  # once, for the pick and the choice layer
    pick(choice, members, [[b[0, 0] for b in line] for line in band_blocks], ndvi, out=out[:-2])
    if extra and ndvi is not None:  # NDVI before the bands gathered only for it
        out[-3 - extra : -2] = np.roll(out[-3 - extra : -2], 1, axis=0)
    out[-2] = choice
    out[-1] = upsample(counts, shape)
    return out[None]


def pick_blocks(
    q: da.Array,
    data: da.Array,
    positions: Sequence[int],
    members: Sequence[Sequence[int]],
    ndvi: tuple[int, int] | None,
    extra: int = 0,
    shared: tuple[da.Array, dict[int, int]] | None = None,
    touch: np.ndarray | None = None,
) -> da.Array:
    """``(P, V + 2, Y, X)`` per period: the bands at ``positions`` and NDVI (computed from
    the bands at ``ndvi``) of the best observation per pixel among the period's
    ``members`` (time indices in priority order) by quality ``q`` (``(T, Y, X)`` or at
    20 m ``(T, Y/2, X/2)``, chunked like the cube), NaN where none; the last ``extra``
    bands (read for NDVI only) after NDVI; then the chosen time index (-1: none) and the
    usable count. ``shared``: an array ``(T, K, Y, X)`` holding some bands already
    read (by :func:`window_quality_blocks`) and ``{position: k}`` of those it holds.
    ``touch`` ``(T, ny, nx)``: members to leave out of chunk ``(i, j)`` where False (their
    footprint misses it: they would read nothing but NaN there)."""
    token = tokenize(q, data, positions, members, ndvi, extra, shared, touch)
    name = f"xcrop-pick-{token}"
    held, index = shared if shared is not None else (None, {})

    def key(t: int, b: int, i: int, j: int) -> tuple:
        if held is not None and b in index:
            return Block((held.name, t, index[b], i, j))
        return Block((data.name, t, b, i, j))

    _, _, ny, nx = data.numblocks
    nv = len(positions) + (ndvi is not None)
    dsk = {}
    for p, every in enumerate(members):
        for i in range(ny):
            for j in range(nx):
                times = every if touch is None else [t for t in every if touch[t, i, j]]
                shape = (data.chunks[2][i], data.chunks[3][j])
                dsk[(name, p, 0, i, j)] = (
                    _pick,
                    [Block((q.name, t, i, j)) for t in times],
                    [[key(t, b, i, j) for b in positions] for t in times],
                    list(times),
                    shape,
                    nv,
                    ndvi,
                    extra,
                )
    chunks = ((1,) * len(members), (nv + 2,), *data.chunks[2:])
    deps = [q, data] if held is None else [q, data, held]
    return _from_tasks(dsk, [Output(name, chunks, "float32")], deps)[0]


def _settle(blocks: list[list[np.ndarray]]) -> np.ndarray:
    choice = np.stack([b[0][0, -2] for b in blocks]).astype("int16")
    filled, source = fill(choice)
    counts = np.stack([b[0][0, -1] for b in blocks]).astype("int16")
    return np.stack([filled, counts, source])


def settle_blocks(picked: da.Array) -> da.Array:
    """Per chunk, every period's choice settled (``da.blockwise``: one task per chunk).

    Parameters
    ----------
    picked
        ``(P, V + 2, Y, X)`` of :func:`pick_blocks`.

    Returns
    -------
    dask.array.Array
        ``(3, P, Y, X)`` ``int16``, one chunk per spatial chunk: per period the chosen
        time index with empty periods filled from the nearest one (-1: no data in any),
        the usable count, and the period each choice comes from.
    """
    periods = picked.shape[0]
    return da.blockwise(
        _settle, "kqij", picked, "pvij", new_axes={"k": 3, "q": periods},
        concatenate=False, align_arrays=False, dtype=np.dtype("int16"),
        meta=np.empty((0, 0, 0, 0), "int16"), name=f"xcrop-settle-{tokenize(picked)}",
    )  # fmt: skip


def _period(
    blocks: list[list[np.ndarray]], settled: list[list[np.ndarray]], number: np.ndarray, nv: int
) -> np.ndarray:
    p = int(number[0])
    out = blocks[p][0][:, :nv]  # a view: no copy unless a pixel is filled from elsewhere
    source = settled[0][0][2, p]
    holes = source != p
    if holes.any():
        out = out.copy()
        for other in np.unique(source[holes]):
            at = holes & (source == other)
            out[0][:, at] = blocks[other][0][0, :nv][:, at]
    return out


def period_blocks(picked: da.Array, settled: da.Array, nv: int) -> da.Array:
    """The composite: the first ``nv`` layers of each period's picks with empty periods
    filled (``da.blockwise``: one task per period and chunk).

    Parameters
    ----------
    picked
        ``(P, nv + 2, Y, X)`` of :func:`pick_blocks`.
    settled
        ``(3, P, Y, X)`` of :func:`settle_blocks`.
    nv
        Bands (and indices) of the composite.

    Returns
    -------
    dask.array.Array
        ``(P, nv, Y, X)`` ``float32``, one period per chunk.
    """
    periods = picked.shape[0]
    which = da.arange(periods, chunks=1)  # hands each task its period
    return da.blockwise(
        _period, "pcij", picked, "qvij", settled, "kzij", which, "p", nv, None,
        new_axes={"c": nv}, concatenate=False, align_arrays=False, dtype=np.dtype("float32"),
        meta=np.empty((0, 0, 0, 0), "float32"),
        name=f"xcrop-period-{tokenize(picked, settled, nv)}",
    )  # fmt: skip
