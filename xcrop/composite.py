"""Least-cloudy 30-day composites with NDVI, lazily, one spatial chunk at a time.

Three lazy passes, each a numpy kernel mapped over dask blocks:

1. ``quality``: every observation's quality, one time step per task; for the Schmitt
   and SCL scores from the score bands averaged to 20 m, with a halo on the sun's side
   as wide as the farthest shadow (``dask.array.overlap``); for a user's score at 10 m;
2. ``choose``: per spatial chunk, all time steps of the quality: for each period and
   pixel, the time index of the best observation (ties: lower scene cloud cover, then
   earlier date), the count of usable observations, and, where a period has no valid
   observation, the index chosen in the nearest period that has one;
3. ``gather``: per band and spatial chunk, the chosen observations.

Memory per task is about ``times x chunk^2 x 4`` bytes (one band). Compute a large area
in bounded groups of chunks (``xcrop.to_zarr``, ``xcrop.write_composite`` do): in one
``compute`` dask's ordering loads every chunk's time stacks before choosing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .cloudscore import SCORE_BANDS, quality_20m, shadow_reach_px, to_20m
from .cube import as_cube, require_bands
from .errors import XcropError
from .sentinel2 import REFLECTANCE_BANDS

__all__ = ["Composite", "composite", "composite_data", "period_index", "choose", "gather", "USABLE"]

#: An observation counts as usable when its quality is at least this (cloudiness <= 0.2).
USABLE = -0.2
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
        """The series at labelled points: see :func:`xcrop.sample.sample`."""
        from .sample import sample

        return sample(self, labels, **kwargs)

    def predict(self, model, **kwargs) -> xr.DataArray:
        """Crop probability of every pixel, lazily: see :func:`xcrop.inference.predict`."""
        from .inference import predict

        return predict(self, model, **kwargs)

    def to_dataset(self) -> xr.Dataset:
        """The three arrays as one Dataset (``composite``, ``counts``, ``dates``)."""
        return xr.Dataset({"composite": self.data, "counts": self.counts, "dates": self.dates})


def composite_data(composite):
    """The composite DataArray of a :class:`Composite`; anything else (a composite
    DataArray from a Zarr store or an Earth Engine export) as it is."""
    return composite.data if isinstance(composite, Composite) else composite


def period_index(times: np.ndarray, start: np.datetime64, periods: int, days: int) -> np.ndarray:
    """The period (0..periods-1) of each time, or -1 outside.

    Examples
    --------
    >>> t = np.array(["2019-02-28", "2019-03-01", "2019-03-31", "2020-02-24"], "M8[ns]")
    >>> period_index(t, np.datetime64("2019-03-01"), 12, 30).tolist()
    [-1, 0, 1, -1]
    """
    offset = (times - np.datetime64(start, "ns")) / np.timedelta64(1, "D")
    index = np.floor(offset / days).astype("int64")
    return np.where((offset >= 0) & (index < periods), index, -1)


def choose(
    q: np.ndarray, period: np.ndarray, order: np.ndarray, periods: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best observation per period and pixel, with the counts of usable ones.

    Parameters
    ----------
    q
        Quality ``(T, h, w)`` (or a list of T ``(h, w)`` arrays), NaN for no observation.
    period
        ``(T,)`` period of each time step (-1: not used).
    order
        Time indices in priority order for ties (lower scene cloud cover, then earlier).
    periods
        Number of periods.

    Returns
    -------
    choice, counts
        ``int16`` ``(P, h, w)`` time index (-1: no data in any period), ``uint8`` counts.
        Periods without valid observations take the choice of the nearest period that
        has one (the earlier one on a tie) and keep a count of 0.
    """
    h, w = np.shape(q[0])[-2:]
    best = np.full((periods, h, w), -np.inf, "float32")
    choice = np.full((periods, h, w), -1, "int16")
    counts = np.zeros((periods, h, w), "uint8")
    for t in order:
        p = period[t]
        if p < 0:
            continue
        qt = q[t]
        better = qt > best[p]  # NaN compares False: no data never wins
        np.copyto(best[p], qt, where=better)
        choice[p][better] = t
        counts[p] += qt >= USABLE
    empty = choice < 0
    if empty.any():
        filled = choice.copy()
        for p in range(periods):
            hole = empty[p]
            for d in range(1, periods):
                if not hole.any():
                    break
                for other in (p - d, p + d):
                    if 0 <= other < periods:
                        take = hole & ~empty[other]
                        filled[p][take] = choice[other][take]
                        hole = hole & ~take
        choice = filled
    return choice, counts


def gather(band: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """``band`` ``(T, h, w)`` at the chosen time of each period ``(P, h, w)``; NaN at -1."""
    out = np.take_along_axis(band, np.maximum(choice, 0).astype("intp"), axis=0)
    out = out.astype("float32", copy=False)
    out[choice < 0] = np.nan
    return out


def _default_start(times: pd.DatetimeIndex) -> np.datetime64:
    first = times.min()
    year = first.year if first.month <= 3 else first.year + 1
    return np.datetime64(f"{year}-03-01", "ns")


def _quality_kernel(names, azimuth, zenith, score, use_scl, max_height):
    def kernel(block: np.ndarray, block_info=None) -> np.ndarray:
        t0 = block_info[0]["array-location"][0][0]
        out = np.empty((block.shape[0], 1, *block.shape[2:]), "float32")
        for i in range(block.shape[0]):
            bands = {n: block[i, k].astype("float32") for k, n in enumerate(names)}
            if callable(score):
                valid = np.isfinite(bands[names[0]])
                out[i, 0] = np.where(valid, -np.asarray(score(bands), "float32"), np.nan)
            else:
                out[i, 0] = quality_20m(
                    bands,
                    azimuth[t0 + i],
                    zenith[t0 + i],
                    score=score,
                    use_scl=use_scl,
                    max_height=max_height,
                )
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
    needed = list(bands)
    if (isinstance(score, str) and score == "scl") or (scl and "SCL" in cube.band.values):
        needed.append("SCL")
    if isinstance(score, str) and score == "schmitt":
        needed += [b for b in SCORE_BANDS if b not in needed]
    elif isinstance(score, str) and score != "scl":
        raise XcropError(
            f"score={score!r} is not known; use 'schmitt', 'scl', a function or a DataArray."
        )
    if any(i.lower() == "ndvi" for i in indices):
        needed += [b for b in ("B04", "B08") if b not in needed]
    require_bands(cube, needed)
    use_scl = scl and "SCL" in cube.band.values
    times = pd.DatetimeIndex(cube.time.values)
    start = np.datetime64(start, "ns") if start is not None else _default_start(times)
    period = period_index(times.values, start, periods, days)
    if not (period >= 0).any():
        raise XcropError(
            f"No acquisition of the cube ({times.min():%Y-%m-%d} .. {times.max():%Y-%m-%d}) "
            f"falls in the {periods} x {days}-day periods from {str(start)[:10]}; pass "
            "start=... inside the cube's dates."
        )
    cover = (
        cube.coords["cloud_cover"].values if "cloud_cover" in cube.coords else np.zeros(len(times))
    )
    order = np.lexsort((times.values, np.nan_to_num(np.asarray(cover, "float64"), nan=101.0)))
    azimuth, zenith = _sun(cube)

    cube = _even_chunks(cube)
    if isinstance(score, xr.DataArray):
        q = _given_quality(cube, score, needed)
    elif callable(score):
        q = _quality(cube, needed, score, use_scl, azimuth, zenith, max_cloud_height)
    else:  # the Schmitt and SCL scores live at 20 m: choose there, gather at 10 m
        # 60 m bands lose data at swath edges where the others have it: check them too
        extra = [b for b in bands if b in ("B01", "B09")]
        q = _quality_20m(cube, score, use_scl, azimuth, zenith, max_cloud_height, extra)
    q = q.rechunk({0: 1})
    choice_counts = da.blockwise(
        _choose_blocks, "kpyx", q, "tyx", period, None, order, None, periods, None,
        new_axes={"k": 2, "p": periods}, concatenate=False, dtype="int16",
    )  # fmt: skip
    choice, counts = choice_counts[0], choice_counts[1].astype("uint8")
    if q.shape[1:] != cube.shape[2:]:  # back from 20 m to the cube's chunks
        choice = _upsample(choice, cube.data.chunks[2:])
        counts = _upsample(counts, cube.data.chunks[2:])
    layers = [_gather(cube.sel(band=b).data, choice) for b in bands]
    names = list(bands)
    for index in indices:
        if index.lower() != "ndvi":
            raise XcropError(f"Unknown index {index!r}; xcrop computes 'ndvi'.")
        red = (
            layers[names.index("B04")]
            if "B04" in names
            else _gather(cube.sel(band="B04").data, choice)
        )
        nir = (
            layers[names.index("B08")]
            if "B08" in names
            else _gather(cube.sel(band="B08").data, choice)
        )
        layers.append(((nir - red) / (nir + red)).astype("float32"))
        names.append("NDVI")
    labels = start + np.arange(periods) * np.timedelta64(days, "D")
    spatial = {"y": cube.y.values, "x": cube.x.values}
    crs = cube.rio.crs
    data = xr.DataArray(
        da.stack(layers, axis=1),
        dims=("time", "band", "y", "x"),
        coords={"time": labels, "band": np.array(names, dtype=object), **spatial},
        name="composite",
        attrs={
            "periods": periods,
            "days": days,
            "score": score if isinstance(score, str) else "custom",
        },
    ).rio.write_crs(crs)
    counts_da = xr.DataArray(
        counts, dims=("time", "y", "x"), coords={"time": labels, **spatial}, name="counts"
    ).rio.write_crs(crs)
    stamps = times.values.astype("datetime64[ns]")
    dates = choice.map_blocks(_dates_block, stamps, dtype="datetime64[ns]")
    dates_da = xr.DataArray(
        dates, dims=("time", "y", "x"), coords={"time": labels, **spatial}, name="dates"
    ).rio.write_crs(crs)
    return Composite(data, counts_da, dates_da)


def _sun(cube: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    n = cube.sizes["time"]
    az = cube.coords["sun_azimuth"].values if "sun_azimuth" in cube.coords else np.full(n, np.nan)
    zen = cube.coords["sun_zenith"].values if "sun_zenith" in cube.coords else np.full(n, np.nan)
    az = np.where(np.isfinite(az.astype("float64")), az, 180.0).astype("float64")
    zen = np.where(np.isfinite(zen.astype("float64")), zen, 45.0).astype("float64")
    return az, zen


def _halo(
    azimuth: np.ndarray,
    zenith: np.ndarray,
    max_height: float,
    limit: int,
    res: float = 10.0,
    margin: int = 12,
) -> dict:
    """Overlap (before, after) per spatial axis: shadows fall away from the sun, so a
    chunk needs neighbours only on the sun's side, as far as the farthest shadow; plus
    the score's 5 x 5 windows at 20 m. Depths are even so the 20 m grid stays aligned."""
    reach = shadow_reach_px(float(np.max(zenith)), max_height, res)
    az = np.radians(azimuth)

    def even(v: float) -> int:
        return min(limit, 2 * int(np.ceil((v + margin) / 2)))

    rows = (even(reach * max(0.0, np.cos(az).max())), even(reach * max(0.0, -np.cos(az).min())))
    cols = (even(reach * max(0.0, -np.sin(az).min())), even(reach * max(0.0, np.sin(az).max())))
    return {0: 0, 1: 0, 2: rows, 3: cols}


def _quality(cube, needed, score, use_scl, azimuth, zenith, max_height) -> da.Array:
    """Quality from a user's score function, at 10 m, one time step per task."""
    names = [b for b in cube.band.values.tolist() if b in needed]
    stack = cube.sel(band=names).data.rechunk({0: 1, 1: -1})
    kernel = _quality_kernel(names, azimuth, zenith, score, use_scl, max_height)
    q = stack.map_blocks(kernel, dtype="float32", chunks=(stack.chunks[0], (1,), *stack.chunks[2:]))
    return q[:, 0]


def _even_chunks(cube: xr.DataArray) -> xr.DataArray:
    """Spatial chunks of even size (but the last), so 20 m blocks tile the 20 m grid."""
    sizes = {}
    for axis, dim in ((2, "y"), (3, "x")):
        first = cube.data.chunks[axis][0]
        if any(c % 2 for c in cube.data.chunks[axis][:-1]):
            sizes[dim] = first + first % 2
    return cube.chunk(sizes) if sizes else cube


def _coarsen_blocks(blocks: list[np.ndarray], names: list[str]) -> np.ndarray:
    """The (1, 1, h, w) blocks of each band of one time step, stacked at 20 m (see
    ``cloudscore.to_20m``): the bands are never concatenated at 10 m."""
    b20 = to_20m({n: b[0, 0] for n, b in zip(names, blocks, strict=True)})
    return np.stack([b20[n] for n in names])[None]


def _quality_20m(cube, score, use_scl, azimuth, zenith, max_height, extra=()) -> da.Array:
    names = [b for b in (*SCORE_BANDS, *extra, "B10", "SCL") if b in cube.band.values]
    names = list(dict.fromkeys(names))
    if not use_scl and score != "scl":
        names = [b for b in names if b != "SCL"]
    stack = cube.sel(band=names).data.rechunk({0: 1, 1: 1})
    b20 = da.blockwise(
        _coarsen_blocks, "tkyx", stack, "tbyx", names, None, new_axes={"k": len(names)},
        concatenate=False, adjust_chunks={"y": lambda c: (c + 1) // 2, "x": lambda c: (c + 1) // 2},
        dtype="float32",
    )  # fmt: skip
    kernel = _quality_kernel(names, azimuth, zenith, score, use_scl, max_height)
    # the halo: shadows (not for score="scl") plus the 5 x 5 windows, and never more
    # than a neighbouring chunk, which is all dask can overlap
    reach_height = 0.0 if score == "scl" else max_height
    smallest = min(b20.chunks[2] + b20.chunks[3])
    depth = _halo(azimuth, zenith, reach_height, smallest, res=20.0, margin=10)
    extended = da.overlap.overlap(b20, depth=depth, boundary="none")
    q = extended.map_blocks(
        kernel, dtype="float32", chunks=(extended.chunks[0], (1,), *extended.chunks[2:])
    )
    q = da.overlap.trim_internal(q, depth, boundary="none")
    return q[:, 0]


def _upsample(a: da.Array, chunks: tuple[tuple[int, ...], tuple[int, ...]]) -> da.Array:
    """20 m blocks to 10 m blocks of the given chunks (pixel repetition, cropped)."""

    def up(block: np.ndarray, block_info=None) -> np.ndarray:
        h, w = block_info[None]["chunk-shape"][-2:]
        return np.repeat(np.repeat(block, 2, axis=-2), 2, axis=-1)[..., :h, :w]

    return a.map_blocks(up, dtype=a.dtype, chunks=(*a.chunks[:-2], *chunks))


def _given_quality(cube: xr.DataArray, score: xr.DataArray, needed) -> da.Array:
    """Quality from a cloudiness array (time, y, x) the user already has (s2cloudless...)."""
    if set(score.dims) != {"time", "y", "x"} or score.sizes["time"] != cube.sizes["time"]:
        raise XcropError(
            f"A score array needs dims (time, y, x) matching the cube's {cube.sizes['time']} "
            f"time steps; got {dict(score.sizes)}."
        )
    ref = cube.sel(band=needed[0]).data
    cloudiness = da.asarray(score.transpose("time", "y", "x").data).rechunk(ref.chunks)
    return da.where(da.isnan(ref), np.float32(np.nan), -cloudiness.astype("float32"))


def _choose_blocks(blocks: list[np.ndarray], period, order, periods: int) -> np.ndarray:
    """``choose`` over the time blocks of one spatial chunk, without concatenating them."""
    choice, counts = choose([b[0] for b in blocks], period, order, periods)
    return np.stack([choice, counts.astype("int16")])


def _gather(band: da.Array, choice: da.Array) -> da.Array:
    band = band.rechunk({0: -1, 1: choice.chunks[1], 2: choice.chunks[2]})
    return da.map_blocks(gather, band, choice, dtype="float32", chunks=choice.chunks)


def _dates_block(choice: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    out = stamps[np.maximum(choice, 0)]
    out[choice < 0] = np.datetime64("NaT")
    return out
