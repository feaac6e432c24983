"""The best observation per period and pixel: numpy kernels (no xarray, no dask).

Earth Engine's ``qualityMosaic`` per 30-day period: the observation of highest quality
wins, ties go to the scene with the lower cloud cover, then to the earlier date. A
period without any valid observation takes the choice of the nearest period that has
one and keeps a count of 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["USABLE", "period_index", "select", "fill", "choose", "gather", "pick", "upsample"]

#: An observation counts as usable when its quality is at least this (cloudiness <= 0.2).
USABLE = -0.2


def period_index(times: np.ndarray, start: np.datetime64, periods: int, days: int) -> np.ndarray:
    """The period (0..periods-1) of each time, or -1 outside.

    Examples
    --------
    >>> t = np.array(["2019-02-28", "2019-03-01", "2019-03-31", "2020-02-24"], "M8[ns]")
    >>> period_index(t, np.datetime64("2019-03-01"), 12, 30).tolist()
    [-1, 0, 1, -1]
    """
    # numpy's stubs have no (datetime64, unit) overload of datetime64(); numpy takes it
    offset = (times - np.datetime64(start, "ns")) / np.timedelta64(1, "D")  # type: ignore[call-overload]
    index = np.floor(offset / days).astype("int64")
    return np.where((offset >= 0) & (index < periods), index, -1)


def select(q: Sequence[np.ndarray], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The best of one period's observations per pixel.

    Parameters
    ----------
    q
        Quality ``(h, w)`` of each observation, in priority order (the first wins ties);
        NaN where it is no observation.
    labels
        What to record for each observation (its time index).

    Returns
    -------
    choice, counts
        ``int16`` label of the best observation (-1: none valid), ``uint8`` number of
        usable ones (quality >= :data:`USABLE`).

    Examples
    --------
    >>> q = [np.array([[-0.5, np.nan]]), np.array([[-0.1, np.nan]])]
    >>> choice, counts = select(q, [7, 3])
    >>> choice.tolist(), counts.tolist()
    ([[3, -1]], [[1, 0]])
    """
    shape = np.shape(q[0]) if len(q) else (0, 0)
    best = np.full(shape, -np.inf, "float32")
    choice = np.full(shape, -1, "int16")
    counts = np.zeros(shape, "uint8")
    for qt, label in zip(q, labels, strict=True):
        np.putmask(choice, qt > best, label)  # NaN compares False: no data never wins
        np.fmax(best, qt, out=best)
        counts += qt >= USABLE
    return choice, counts


def fill(choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Periods without a choice (-1) take the nearest period's (the earlier on a tie).

    Returns the filled ``choice`` ``(P, h, w)`` and, per period and pixel, the period
    its choice comes from (itself where it had one, or where no period has one).

    Examples
    --------
    >>> filled, source = fill(np.array([[4], [-1], [9]], "int16"))
    >>> filled.ravel().tolist(), source.ravel().tolist()
    ([4, 4, 9], [0, 0, 2])
    """
    periods = choice.shape[0]
    source = np.broadcast_to(
        np.arange(periods, dtype="int16").reshape(-1, *[1] * (choice.ndim - 1)), choice.shape
    ).copy()
    empty = choice < 0
    if not empty.any():
        return choice, source
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
                    source[p][take] = other
                    hole = hole & ~take
    return filled, source


def choose(
    q: np.ndarray, period: np.ndarray, order: np.ndarray, periods: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best observation per period and pixel of a whole series, with the usable counts.

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
        ``int16`` ``(P, h, w)`` time index (-1: no data in any period), ``uint8`` counts;
        empty periods filled as in :func:`fill`.
    """
    picks = []
    for p in range(periods):
        members = [t for t in order if period[t] == p]
        choice, counts = select([q[t] for t in members], members)
        if not members:
            choice = np.full(np.shape(q[0])[-2:], -1, "int16")
            counts = np.zeros(choice.shape, "uint8")
        picks.append((choice, counts))
    choice, _ = fill(np.stack([c for c, _ in picks]))
    return choice, np.stack([n for _, n in picks])


def gather(band: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """``band`` ``(T, h, w)`` at the chosen time of each period ``(P, h, w)``; NaN at -1."""
    out = np.take_along_axis(band, np.maximum(choice, 0).astype("intp"), axis=0)
    out = out.astype("float32", copy=False)
    out[choice < 0] = np.nan
    return out


def upsample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A 20 m array at 10 m: each pixel repeated 2 x 2, cropped to ``shape``; as it is
    when it already has that shape."""
    if a.shape[-2:] == tuple(shape):
        return a
    return np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)[..., : shape[0], : shape[1]]


def pick(
    choice: np.ndarray,
    members: Sequence[int],
    bands: Sequence[Sequence[np.ndarray]],
    ndvi: tuple[int, int] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The chosen observations of one period, band by band, NaN where none was chosen.

    Parameters
    ----------
    choice
        Time index chosen per pixel (from :func:`select`), at the bands' resolution or
        half of it (20 m, repeated to 10 m).
    members
        The period's time indices; ``bands[k]`` holds the ``(h, w)`` bands of
        ``members[k]``.
    bands
        Per member, its bands (the same order for all).
    ndvi
        Positions of the red and near-infrared bands: append NDVI of the picked values.
    out
        Where to write the result (C-contiguous ``float32``, the shape returned).

    Returns
    -------
    numpy.ndarray
        ``float32`` ``(bands [+ 1], h, w)``.

    Examples
    --------
    >>> one, two = [np.full((1, 2), 1.0)], [np.full((1, 2), 2.0)]
    >>> pick(np.array([[5, 8]]), [5, 8], [one, two])[0].tolist()
    [[1.0, 2.0]]
    """
    h, w = bands[0][0].shape if bands else choice.shape
    count = len(bands[0]) if bands else 0
    if out is None:
        out = np.empty((count + (ndvi is not None), h, w), "float32")
    elif not out.flags.c_contiguous:
        raise ValueError("pick(out=...) needs a C-contiguous float32 array")
    choice = upsample(choice, (h, w)).reshape(-1)
    where = {t: np.flatnonzero(choice == t) for t in members}
    first = max(range(len(members)), key=lambda m: len(where[members[m]]), default=0)
    if members and 2 * len(where[members[first]]) >= choice.size:
        _copy_mostly_one(out[:count], bands, members, where, first)
    else:
        _take_stacked(out[:count], bands, members, choice)
    np.put(out[:count], np.flatnonzero(choice < 0) + np.arange(count)[:, None] * (h * w), np.nan)
    if ndvi is not None:
        red, nir = out[ndvi[0]], out[ndvi[1]]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[-1] = (nir - red) / (nir + red)
    return out


def _copy_mostly_one(out, bands, members, where, first) -> None:
    """Most pixels take one observation (clear-sky ties go to the same scene): copy its
    bands whole, then the other observations' pixels by index."""
    for k in range(out.shape[0]):
        np.copyto(out[k], bands[first][k], casting="same_kind")
        for m, t in enumerate(members):
            if m != first and len(where[t]):
                np.put(out[k], where[t], np.take(bands[m][k], where[t]))


def _take_stacked(out, bands, members, choice) -> None:
    """Mixed choices: stack the period's observations band by band, one ``take`` each."""
    n = choice.size
    lookup = np.zeros(max(members, default=0) + 2, "intp")
    lookup[list(members)] = np.arange(len(members))
    flat = lookup[choice] * n + np.arange(n)
    stacked = np.empty((len(members), *out.shape[1:]), "float32")  # reused: fresh pages cost
    for k in range(out.shape[0]):
        np.stack([layers[k] for layers in bands], out=stacked, casting="same_kind")
        np.take(stacked.reshape(-1), flat, out=out[k].reshape(-1))
