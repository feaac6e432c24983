"""Least-cloudy 30-day composites with NDVI, lazily, one spatial chunk at a time.

Per observation, its quality (the Schmitt cloud and shadow score at 20 m, SCL, or a
score the user gives); per period and pixel the observation of best quality wins (ties:
lower scene cloud cover, then earlier date), and a period without a valid observation
takes the nearest period's choice. The numeric kernels live in :mod:`xcrop._cloudscore`
and :mod:`xcrop._mosaic`, the dask graph that maps them over chunks in
:mod:`xcrop._graph`: every band of every observation is read once, and a task holds one
period's observations of one chunk, so memory follows the chunk size, not the area.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ._cloudscore import MARGIN_20M, SCORE_BANDS, finish, shadow_reach_px
from ._cube import as_cube, require_bands
from ._graph import (
    map_neighbourhood,
    period_blocks,
    pick_blocks,
    prepare_blocks,
    settle_blocks,
    window_quality_blocks,
    window_read_blocks,
)
from ._memory import composite_bytes
from ._mosaic import period_index
from ._reads import source_array, source_of
from ._sentinel2 import REFLECTANCE_BANDS
from .errors import MissingBandError, XcropInputError

__all__ = ["Composite", "composite", "no_clear_share"]

ScoreFunction = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Composite:
    """Least-cloudy composites of a cube, and what they were made of.

    Attributes
    ----------
    data
        ``float32`` (time, band, y, x): one observation per period and pixel, bands plus
        indices (``NDVI``); time labels are the periods' first days.
    counts
        ``uint8`` (time, y, x): usable observations per period (0 where the period was
        empty and filled from the nearest period, or where all were cloudy).
    dates
        ``datetime64[ns]`` (time, y, x): acquisition time of each chosen observation
        (NaT where the pixel has no data at all).
    """

    data: xr.DataArray
    counts: xr.DataArray
    dates: xr.DataArray

    def sample(self, labels, **kwargs):
        """The series at labelled points: see :func:`xcrop.sample`."""
        from ._sample import sample

        return sample(self, labels, **kwargs)

    def predict(self, model, **kwargs) -> xr.DataArray:
        """Crop probability of every pixel, lazily: see :func:`xcrop.predict`."""
        from ._inference import predict

        return predict(self, model, **kwargs)

    def to_dataset(self) -> xr.Dataset:
        """The three arrays as one Dataset (``composite``, ``counts``, ``dates``)."""
        return xr.Dataset({"composite": self.data, "counts": self.counts, "dates": self.dates})


def no_clear_share(counts: xr.DataArray) -> pd.Series:
    """The share of pixels with no usable observation in each period of a composite.

    Parameters
    ----------
    counts
        (time, y, x) usable observations per period and pixel (``Composite.counts``).

    Returns
    -------
    pandas.Series
        Indexed by the periods' time labels, values in 0..1.

    Examples
    --------
    >>> no_clear_share(comp.counts).max()  # doctest: +SKIP
    """
    if set(counts.dims) != {"time", "y", "x"}:
        raise XcropInputError(
            f"Observation counts must have dims (time, y, x); these have {counts.dims}."
        )
    share = (counts == 0).mean(("y", "x")).to_numpy().astype("float64")
    return pd.Series(share, index=counts.indexes["time"], name="no clear observation")


def _default_start(times: pd.DatetimeIndex) -> np.datetime64:
    first = times.min()
    year = first.year if first.month <= 3 else first.year + 1
    return np.datetime64(f"{year}-03-01", "ns")


def _score_kernel(names: list[str], score: ScoreFunction):
    def kernel(block: np.ndarray) -> np.ndarray:
        out = np.empty((block.shape[0], *block.shape[2:]), "float32")
        for i in range(block.shape[0]):
            bands = {n: block[i, k].astype("float32") for k, n in enumerate(names)}
            valid = np.isfinite(bands[names[0]])
            out[i] = np.where(valid, -np.asarray(score(bands), "float32"), np.nan)
        return out

    return kernel


def composite(
    cube: xr.DataArray | xr.Dataset,
    *,
    start: str | np.datetime64 | None = None,
    periods: int = 12,
    days: int = 30,
    score: str | ScoreFunction | xr.DataArray = "schmitt",
    scl: bool = True,
    bands: Sequence[str] = REFLECTANCE_BANDS,
    indices: Sequence[str] = ("ndvi",),
    max_cloud_height: float = 3000.0,
) -> Composite:
    """Least-cloudy composites of a Sentinel-2 cube, lazily.

    Parameters
    ----------
    cube
        (time, band, y, x) reflectance from ``xcrop.search``/``xcrop.load``, stackstac or
        odc-stac; time may be unsorted and contain duplicates.
    start
        First day of the first period; default the first 1 March in the cube.
    periods, days
        Number and length of the periods (the paper: 12 x 30 days).
    score
        ``"schmitt"`` (cloud and shadow score, with SCL classes when ``scl``), ``"scl"``
        (SCL alone), a function ``f(bands) -> cloudiness`` (0 clear .. 1 cloudy) of one
        observation's 10 m bands (a dict of 2-D arrays), or a (time, y, x) DataArray of
        cloudiness you already have (e.g. s2cloudless probabilities).
    scl
        Combine SCL classes 3, 8, 9, 10 (cloudy) and 0, 1 (invalid) with the score.
    bands, indices
        Bands of the composite and the indices appended (``"ndvi"``).
    max_cloud_height
        Highest cloud (m) whose shadow is looked for; sets the chunks' halo.

    Returns
    -------
    Composite

    Examples
    --------
    >>> comp = cube.cropmask.composite()  # doctest: +SKIP
    >>> comp.data.sizes["time"], list(comp.data.band.values)[-1]  # doctest: +SKIP
    (12, 'NDVI')
    """
    cube = as_cube(cube)
    if cube.sizes["y"] == 0 or cube.sizes["x"] == 0:
        raise XcropInputError(
            f"The cube has no pixels (y: {cube.sizes['y']}, x: {cube.sizes['x']}): the "
            "selection that made it is empty. Check its bounds and their order (y runs "
            "north to south: cube.sel(y=slice(north, south)))."
        )
    needed = list(bands)
    if (isinstance(score, str) and score == "scl") or (scl and "SCL" in cube.band.values):
        needed.append("SCL")
    if isinstance(score, str) and score == "schmitt":
        needed += [b for b in SCORE_BANDS if b not in needed]
    elif isinstance(score, str) and score != "scl":
        raise XcropInputError(
            f"score={score!r} is not known; use 'schmitt', 'scl', a function or a DataArray."
        )
    unknown = [i for i in indices if i.lower() != "ndvi"]
    if unknown:
        raise XcropInputError(f"Unknown index {unknown[0]!r}; xcrop computes 'ndvi'.")
    ndvi = len(indices) > 0
    if ndvi:
        needed += [b for b in ("B04", "B08") if b not in needed]
    _explain_missing(cube, bands, score)
    require_bands(cube, needed)
    use_scl = scl and "SCL" in cube.band.values
    times = pd.DatetimeIndex(cube.time.values)
    # numpy's stubs have no (datetime64, unit) overload of datetime64(); numpy takes it
    start = np.datetime64(start, "ns") if start is not None else _default_start(times)  # type: ignore[call-overload]
    period = period_index(times.values, start, periods, days)
    if not (period >= 0).any():
        raise XcropInputError(
            f"No acquisition of the cube ({times.min():%Y-%m-%d} .. {times.max():%Y-%m-%d}) "
            f"falls in the {periods} x {days}-day periods from {str(start)[:10]}; pass "
            "start=... inside the cube's dates."
        )
    cover = (
        cube.coords["cloud_cover"].values if "cloud_cover" in cube.coords else np.zeros(len(times))
    )
    order = np.lexsort((times.values, np.nan_to_num(np.asarray(cover, "float64"), nan=101.0)))
    azimuth, zenith = _sun(cube)

    chunked: xr.DataArray = (
        cube
        if isinstance(cube.data, da.Array)
        else cube.chunk({"time": 1, "band": 1, "y": 1024, "x": 1024})  # numpy: as a loader's
    )
    cube = _regular_chunks(chunked)
    data = cube.data.rechunk({0: 1, 1: 1})  # stackstac's and odc-stac's layout already
    position = {b: k for k, b in enumerate(cube.band.values.tolist())}
    if isinstance(score, xr.DataArray):
        q = _given_quality(cube, score, needed)
    elif callable(score):
        q = _score_quality(cube, needed, score)
    for_ndvi = [b for b in ("B04", "B08") if ndvi and b not in bands]  # read for NDVI only
    gathered = [*bands, *for_ndvi]
    shared, touch = None, None
    if not (isinstance(score, xr.DataArray) or callable(score)):
        # the Schmitt and SCL scores live at 20 m: choose there, gather at 10 m; 60 m bands
        # lose data at swath edges where the others have it: check them too
        extra = [b for b in bands if b in ("B01", "B09")]
        scored = _score_names(position, score, use_scl, extra)
        suns = [(float(a), float(z)) for a, z in zip(azimuth, zenith, strict=True)]
        reach = 0.0 if score == "scl" else max_cloud_height  # SCL alone: no shadows
        depths = [_depth(a, z, reach) for a, z in suns]
        finisher = partial(finish, score=score, max_height=max_cloud_height)
        source = source_of(cube)
        if source is not None:  # one read of each score band per chunk, halo included
            keep = [position[b] for b in gathered if b in scored]
            # an observation whose footprint misses a chunk gets no task there (it has
            # no data in it: its halo cannot make it usable), so a country's graph grows
            # with the items over each chunk, not with all
            touch = source.touching(data.chunks[2:], 0)
            q, kept = window_quality_blocks(
                source, data.chunks[2:], [position[n] for n in scored], scored, depths,
                finisher, suns, keep, score, use_scl, touch,
            )  # fmt: skip
            shared = (kept, {b: k for k, b in enumerate(keep)})
            # the other bands the pick needs, read where footprints touch; the cube's own
            # layer (every time, band and chunk) then stays out of the graph
            if source.shape == data.shape:
                others = [position[b] for b in gathered if position[b] not in keep]
                data = window_read_blocks(source, data.chunks[2:], others, touch)
        else:
            prepared = prepare_blocks(
                data, [position[n] for n in scored], scored, score, use_scl
            )  # fmt: skip
            q = map_neighbourhood(prepared, depths, finisher, suns)
    red_nir = (gathered.index("B04"), gathered.index("B08")) if ndvi else None
    members = [[int(t) for t in order if period[t] == p] for p in range(periods)]
    picked = pick_blocks(
        q.rechunk({0: 1}), data, [position[b] for b in gathered], members, red_nir,
        len(for_ndvi), shared, touch,
    )  # fmt: skip
    settled = settle_blocks(picked)
    names = [*bands, *(["NDVI"] if ndvi else [])]
    per_pixel, fixed = composite_bytes(
        int((period >= 0).sum()), int(cube.sizes["band"]), len(names), periods,
        min(data.chunksize[2:]),
    )  # fmt: skip
    labels = start + np.arange(periods) * np.timedelta64(days, "D")
    spatial = {"y": cube.y.values, "x": cube.x.values}
    crs = cube.rio.crs
    data = xr.DataArray(
        period_blocks(picked, settled, len(names)),
        dims=("time", "band", "y", "x"),
        coords={"time": labels, "band": np.array(names, dtype=object), **spatial},
        name="composite",
        attrs={
            "periods": periods,
            "days": days,
            "score": score if isinstance(score, str) else "custom",
            # what a write holds at its peak: per pixel of a block in flight, and fixed
            # (sizes the writers' blocks in flight to their memory budget)
            "bytes_per_pixel": per_pixel,
            "bytes_fixed": fixed,
        },
    ).rio.write_crs(crs)
    counts_da = xr.DataArray(
        settled[1].astype("uint8"),
        dims=("time", "y", "x"),
        coords={"time": labels, **spatial},
        name="counts",
    ).rio.write_crs(crs)
    stamps = times.values.astype("datetime64[ns]")
    dates = settled[0].map_blocks(_dates_block, stamps, dtype="datetime64[ns]")
    dates_da = xr.DataArray(
        dates, dims=("time", "y", "x"), coords={"time": labels, **spatial}, name="dates"
    ).rio.write_crs(crs)
    return Composite(data, counts_da, dates_da)


def _explain_missing(cube: xr.DataArray, bands: Sequence[str], score) -> None:
    """One line for the bands real exports often lack (B01, B09): which argument asks
    for them and how to do without."""
    have = {str(b) for b in cube.band.values}
    asked = [b for b in bands if b not in have]
    scored = [b for b in SCORE_BANDS if b not in have] if str(score) == "schmitt" else []
    if not asked and not scored:
        return
    parts = []
    if asked:
        kept = [b for b in bands if b in have]
        parts.append(
            f"bands= asks for {asked}, which the cube lacks: pass bands={kept} (the "
            "composite's bands, and the model's) or load them"
        )
    if scored:
        instead = (
            "or use score='scl' (the SCL classes alone)"
            if "SCL" in have
            else "or pass score= a function or a cloudiness array (the cube has no SCL "
            "for score='scl' either)"
        )
        parts.append(
            f"The Schmitt cloud score (score='schmitt', the default) needs {scored}: "
            f"load them {instead}"
        )
    raise MissingBandError("; ".join(parts) + f". The cube has {sorted(have)}.")


def _sun(cube: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    n = cube.sizes["time"]
    az = cube.coords["sun_azimuth"].values if "sun_azimuth" in cube.coords else np.full(n, np.nan)
    zen = cube.coords["sun_zenith"].values if "sun_zenith" in cube.coords else np.full(n, np.nan)
    az = np.where(np.isfinite(az.astype("float64")), az, 180.0).astype("float64")
    zen = np.where(np.isfinite(zen.astype("float64")), zen, 45.0).astype("float64")
    return az, zen


def _depth(
    azimuth: float, zenith: float, max_height: float
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Pixels (20 m) a chunk's quality reads beyond it, (before, after) rows and columns:
    shadows fall away from the sun, so on the sun's side as far as the farthest shadow,
    plus the score's windows (``MARGIN_20M``) everywhere."""
    reach = shadow_reach_px(zenith, max_height, 20.0) if max_height > 0 else 0
    az = np.radians(azimuth)
    dy, dx = reach * np.cos(az), -reach * np.sin(az)  # where shadows fall from a cloud

    def side(v: float) -> int:
        return MARGIN_20M + int(np.ceil(max(v, 0.0)))

    return ((side(dy), side(-dy)), (side(dx), side(-dx)))


def _score_quality(cube: xr.DataArray, needed: list[str], score: ScoreFunction) -> da.Array:
    """Quality from a user's score function, at 10 m, one time step per task."""
    names = [b for b in cube.band.values.tolist() if b in needed]
    stack = cube.sel(band=names).data.rechunk({0: 1, 1: -1})
    kernel = _score_kernel(names, score)
    return stack.map_blocks(kernel, dtype="float32", drop_axis=1)


def _spatial_chunks(chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Regular chunks of the largest size, even (the 20 m blocks tile the 20 m grid),
    from the array's first pixel; a last chunk under half the size joins the one
    before. A window cut out of a cube (``cube.isel(x=...)``) starts and ends with
    slivers of the source chunks: as chunks of their own they cost a task per
    observation each and halos wider than themselves."""
    size = max(chunks)
    size += size % 2
    total = sum(chunks)
    out = [size] * (total // size)
    rest = total - sum(out)
    if rest and out and rest < size / 2:
        out[-1] += rest
    elif rest:
        out.append(rest)
    return tuple(out)


def _regular_chunks(cube: xr.DataArray) -> xr.DataArray:
    """The cube with :func:`_spatial_chunks` (unchanged when they are already so). On
    xcrop's own cubes the new chunks read only their pixels: dask fuses the slices into
    the reads."""
    sizes = {}
    for axis, dim in ((2, "y"), (3, "x")):
        wanted = _spatial_chunks(cube.data.chunks[axis])
        if wanted != cube.data.chunks[axis]:
            sizes[dim] = wanted
    if not sizes:
        return cube
    source = source_of(cube)
    if source is not None:  # one read per new chunk, not one per piece of the old ones
        wanted = tuple(sizes.get(d, c) for d, c in zip("yx", cube.data.chunks[2:], strict=True))
        return cube.copy(data=source_array(source, wanted))
    return cube.chunk(sizes)


def _score_names(position: dict, score: str, use_scl: bool, extra: list[str]) -> list[str]:
    """The bands the 20 m score reads, of those the cube has."""
    names = [b for b in (*SCORE_BANDS, *extra, "B10", "SCL") if b in position]
    names = list(dict.fromkeys(names))
    if not use_scl and score != "scl":
        names = [b for b in names if b != "SCL"]
    return names


def _given_quality(cube: xr.DataArray, score: xr.DataArray, needed) -> da.Array:
    """Quality from a cloudiness array (time, y, x) the user already has (s2cloudless...)."""
    if set(score.dims) != {"time", "y", "x"} or score.sizes["time"] != cube.sizes["time"]:
        raise XcropInputError(
            f"A score array needs dims (time, y, x) matching the cube's {cube.sizes['time']} "
            f"time steps; got {dict(score.sizes)}."
        )
    ref = cube.sel(band=needed[0]).data
    cloudiness = da.asarray(score.transpose("time", "y", "x").data).rechunk(ref.chunks)
    return da.where(da.isnan(ref), np.float32(np.nan), -cloudiness.astype("float32"))


def _dates_block(choice: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    out = stamps[np.maximum(choice, 0)]
    out[choice < 0] = np.datetime64("NaT")
    return out
