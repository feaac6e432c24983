"""Cloud and cloud-shadow scores of Sentinel-2 observations (numpy kernels, no xarray).

The score is the one Kerner et al. (2020) ran in Earth Engine, after Schmitt et al.
(2019), on reflectance 0..1:

- cloud = min(1, r(B02; .1, .5), r(B01; .1, .3), r(B01+B10; .15, .2) [with B10],
  r(B04+B03+B02; .2, .8), r(NDMI; -.1, .1), r(NDSI; .8, .6)) with
  r(v; a, b) = (v - a) / (b - a), clipped below at 0.001, then a 5 x 5 mean;
- shadow: dark (B08+B11+B12 < 0.3), not water (NDVI >= -0.1), not cloud (cloud <= 0.2)
  pixels where the cloud mask (cloud > 0.2) lands when projected away from the sun for
  cloud heights from 200 m up to ``max_height`` in 250 m steps; eroded by 1.5 px and
  dilated by 3 px, then a 3 x 3 max;
- quality = -max(cloud, shadow), a 5 x 5 mean; higher is better.

All of it at 20 m (2 x 2 means of the 10 m bands). Two deliberate departures from the
Earth Engine script, documented in docs/compositing.md: the shadow distance is
``height * tan(zenith)`` (the script's ``tan(90 deg - zenith)`` overshoots at high sun),
and heights stop at ``max_height`` (default 3 km) instead of 10 km, which bounds the halo
a chunk needs; pass ``max_height=10_000`` for the script's reach.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

__all__ = [
    "SCORE_BANDS",
    "SCL_CLOUDY",
    "SCL_INVALID",
    "cloud_score",
    "shadow_mask",
    "prepare",
    "finish",
    "quality",
    "quality_20m",
    "shadow_reach_px",
    "shift",
    "to_20m",
]

#: Bands the Schmitt score reads (B10 is used when present).
SCORE_BANDS = ("B01", "B02", "B03", "B04", "B08", "B11", "B12")
#: SCL classes that mark an observation as cloudy: shadow, medium/high cloud, cirrus.
SCL_CLOUDY = (3, 8, 9, 10)
#: SCL classes that are not observations at all: no data, saturated or defective.
SCL_INVALID = (0, 1)
_CLOUD_MASK = 0.2
_HEIGHT_STEP = 250.0


def _r(v: np.ndarray, a: float, b: float) -> np.ndarray:
    return (v - a) / (b - a)


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a - b) / (a + b)


def cloud_score(b: Mapping[str, np.ndarray]) -> np.ndarray:
    """Schmitt et al. cloud score of one observation (before the 5 x 5 mean).

    Examples
    --------
    >>> bright = {k: np.full((1, 1), 0.6) for k in ("B01", "B02", "B03", "B04", "B08")}
    >>> float(cloud_score({**bright, "B11": np.full((1, 1), 0.4)})[0, 0])  # bright, white
    1.0
    """
    score = np.minimum(1.0, _r(b["B02"], 0.1, 0.5))
    score = np.minimum(score, _r(b["B01"], 0.1, 0.3))
    if "B10" in b:
        score = np.minimum(score, _r(b["B01"] + b["B10"], 0.15, 0.2))
    score = np.minimum(score, _r(b["B04"] + b["B03"] + b["B02"], 0.2, 0.8))
    score = np.minimum(score, _r(_nd(b["B08"], b["B11"]), -0.1, 0.1))
    score = np.minimum(score, _r(_nd(b["B03"], b["B11"]), 0.8, 0.6))
    return np.maximum(score, 0.001)


def shadow_reach_px(zenith: float, max_height: float, res: float = 10.0) -> int:
    """How far (pixels of ``res`` metres) a shadow can fall from its cloud."""
    return int(np.ceil(max_height * np.tan(np.radians(min(zenith, 80.0))) / res))


def shift(field: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``field`` moved by ``dy`` rows and ``dx`` columns; zeros where nothing moved in.

    Examples
    --------
    >>> shift(np.arange(4).reshape(2, 2), 1, 0).tolist()
    [[0, 0], [0, 1]]
    """
    out = np.zeros_like(field)
    n, m = field.shape
    if abs(dy) >= n or abs(dx) >= m:
        return out
    out[max(dy, 0) : n + min(dy, 0), max(dx, 0) : m + min(dx, 0)] = field[
        max(-dy, 0) : n + min(-dy, 0), max(-dx, 0) : m + min(-dx, 0)
    ]
    return out


def shadow_mask(
    cloud: np.ndarray, azimuth: float, zenith: float, max_height: float, res: float = 20.0
) -> np.ndarray:
    """Where a cloud mask's shadows can fall: the union of its projections away from the
    sun for heights 200 m .. ``max_height`` (250 m steps)."""
    out = np.zeros_like(cloud, dtype=bool)
    if not cloud.any():
        return out
    az, tz = np.radians(azimuth), np.tan(np.radians(min(zenith, 80.0)))
    offsets = set()
    for height in np.arange(200.0, max_height + 1, _HEIGHT_STEP):
        dist = height * tz / res
        offsets.add((round(dist * np.cos(az)), round(-dist * np.sin(az))))
    for dy, dx in offsets:
        out |= shift(cloud, dy, dx)
    return out


def _to20(a: np.ndarray) -> np.ndarray:
    """2 x 2 block mean (odd edges padded by repetition)."""
    h, w = a.shape[-2:]
    if h % 2 or w % 2:
        pad = [(0, 0)] * (a.ndim - 2) + [(0, h % 2), (0, w % 2)]
        a = np.pad(a, pad, mode="edge")
    rows = a[..., 0::2, :] + a[..., 1::2, :]  # pairs of whole rows first: contiguous reads
    s = rows[..., 0::2] + rows[..., 1::2]
    s *= np.float32(0.25)
    return s


def to_20m(bands: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The 20 m version of 10 m bands: means of 2 x 2 pixels, NaN where any of the four has
    no data; SCL (native 20 m) keeps its class codes.

    An observation is chosen per 20 m cell and then gives all four 10 m pixels their
    values: a cell is usable only where all four have data, else one of its pixels would
    be NaN in the composite though the cell counted as a clear view."""
    out = {}
    for name, v in bands.items():
        if name == "SCL":
            out[name] = _max20(v)
            continue
        missing = np.isnan(v)
        if not missing.any():  # the common case: a plain mean
            out[name] = _to20(v.astype("float32", copy=False))
            continue
        mean = _to20(np.where(missing, np.float32(0), v).astype("float32"))
        complete = _to20((~missing).astype("float32")) == 1
        out[name] = np.where(complete, mean, np.nan).astype("float32")
    return out


def _max20(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[-2:]
    if h % 2 or w % 2:
        a = np.pad(a, [(0, h % 2), (0, w % 2)], mode="edge")
    return np.fmax(np.fmax(a[0::2, 0::2], a[1::2, 0::2]), np.fmax(a[0::2, 1::2], a[1::2, 1::2]))


def prepare(
    bands: Mapping[str, np.ndarray], *, score: str = "schmitt", use_scl: bool = True
) -> np.ndarray:
    """The per-pixel part of an observation's quality, from its 20 m bands.

    Parameters
    ----------
    bands
        20 m bands of one observation (see :func:`to_20m`); SCL as class codes.
    score, use_scl
        As in :func:`quality_20m`.

    Returns
    -------
    numpy.ndarray
        ``float32`` ``(3, h, w)``: the cloudiness before its 5 x 5 mean (the Schmitt
        cloud score, or the SCL cloudy flag for ``score="scl"``), NaN where the pixel is
        not an observation (a band without data, or SCL 0/1); shadow candidates (dark and
        not water: 1); the SCL cloudy flag (1), zeros without SCL.

    Examples
    --------
    >>> clear = {b: np.full((2, 2), 0.05, "float32") for b in SCORE_BANDS}
    >>> prepare(clear)[:, 0, 0].astype(float).round(3).tolist()  # dark, clear: a candidate
    [0.001, 1.0, 0.0]
    """
    # usable only where every band has data (60 m bands lose more at swath edges)
    data = [np.isfinite(v) for k, v in bands.items() if k != "SCL"] or [np.isfinite(bands["SCL"])]
    valid = np.logical_and.reduce(data)
    scl = bands.get("SCL") if use_scl or score == "scl" else None
    out = np.zeros((3, *valid.shape), "float32")
    if scl is not None:
        valid &= ~np.isin(scl, SCL_INVALID) & np.isfinite(scl)
        out[2] = np.isin(scl, SCL_CLOUDY)
    if score == "scl":
        if scl is None:
            raise ValueError("score='scl' needs the SCL band")
        out[0] = out[2]
    else:  # NaN (no data) compares False: never dark, never a shadow candidate
        out[0] = cloud_score(bands)
        dark = (bands["B08"] + bands["B11"] + bands["B12"]) < 0.3
        out[1] = dark & (_nd(bands["B08"], bands["B04"]) >= -0.1)
    out[0][~valid] = np.nan
    return out


#: Pixels (20 m) beyond a chunk that its quality reads besides the shadows' reach: the
#: 5 x 5 means (2 + 2), the shadow's erosion (1) and its dilation and 3 x 3 max (4).
MARGIN_20M = 9


def finish(
    prepared: np.ndarray,
    azimuth: float,
    zenith: float,
    *,
    score: str = "schmitt",
    max_height: float = 3000.0,
    core: tuple[slice, slice] = (slice(None), slice(None)),
) -> np.ndarray:
    """Quality of an observation from :func:`prepare`'s layers: the neighbourhood part.

    ``prepared`` may extend beyond the pixels wanted (``core``): by the shadows' reach
    on the sun's side and :data:`MARGIN_20M` on every side, the core's quality is the
    one of the whole scene. Returns ``float32`` ``(h, w)`` of the core, NaN where no
    observation.
    """
    raw, candidates, flagged = prepared
    valid = np.isfinite(raw)
    core = _full(core, raw.shape)
    # the morphology (1 + 4 px) and the last mean (2 px) read 7 px around the core
    region = _grow(core, raw.shape, 7)
    if score == "scl":
        cloudiness = flagged[region]
    else:
        cloud = _valid_mean(raw, valid)  # on the whole extent: clouds cast shadows inward
        is_cloud = cloud > _CLOUD_MASK
        shadow = shadow_mask(is_cloud, azimuth, zenith, max_height)[region]
        shadow &= (candidates[region] > 0) & ~is_cloud[region]
        cloudiness = np.maximum(cloud[region], _open_shadow(shadow))
        np.maximum(cloudiness, flagged[region], out=cloudiness)
    inner = tuple(
        slice(c.start - r.start, c.stop - r.start) for c, r in zip(core, region, strict=True)
    )
    q = -_valid_mean(cloudiness, valid[region])[inner]
    return np.where(valid[core], q, np.nan).astype("float32")


def _full(core: tuple[slice, slice], shape: tuple[int, ...]) -> tuple[slice, slice]:
    (rows, cols), (ny, nx) = core, shape[-2:]
    return slice(*rows.indices(ny)[:2]), slice(*cols.indices(nx)[:2])


def _grow(core: tuple[slice, ...], shape: tuple[int, ...], by: int) -> tuple[slice, ...]:
    return tuple(
        slice(max(s.start - by, 0), min(s.stop + by, n))
        for s, n in zip(core, shape[-2:], strict=True)
    )


def _open_shadow(shadow: np.ndarray) -> np.ndarray:
    """Erode by a disk of 1.5 px (a 3 x 3 square), dilate by a disk of 3 px, then a 3 x 3
    max: the dilation and the max together are a dilation by three rectangles (the disk
    is a union of three, each widened by one pixel), and rectangles are separable."""
    if not shadow.any():
        return np.zeros(shadow.shape, "float32")
    s = ndimage.minimum_filter(shadow.view(np.uint8), 3, mode="constant", cval=0)
    if not s.any():
        return np.zeros(shadow.shape, "float32")
    out = ndimage.maximum_filter(s, (3, 9), mode="constant")
    np.maximum(out, ndimage.maximum_filter(s, (7, 7), mode="constant"), out=out)
    np.maximum(out, ndimage.maximum_filter(s, (9, 3), mode="constant"), out=out)
    return out.astype("float32")


def quality_20m(
    bands: Mapping[str, np.ndarray],
    azimuth: float,
    zenith: float,
    *,
    score: str = "schmitt",
    use_scl: bool = True,
    max_height: float = 3000.0,
) -> np.ndarray:
    """Quality (-cloudiness, 0 best .. -1 worst) of one observation from its 20 m bands
    (see :func:`to_20m`); NaN where any band has no data or SCL says invalid. ``score`` is
    ``"schmitt"`` (with SCL classes combined when ``use_scl`` and SCL is present) or
    ``"scl"`` (SCL alone). :func:`prepare` then :func:`finish` on the whole scene."""
    prepared = prepare(bands, score=score, use_scl=use_scl)
    return finish(prepared, azimuth, zenith, score=score, max_height=max_height)


def _valid_mean(values: np.ndarray, valid: np.ndarray, size: int = 5) -> np.ndarray:
    """``size`` x ``size`` mean over the pixels with data only: no-data pixels and the
    array's edges do not dilute it, so a window and a whole scene give the same value."""
    if valid.all():  # the count is then separable: edges only
        total = ndimage.uniform_filter(values.astype("float32"), size, mode="constant")
        count = [
            ndimage.uniform_filter1d(np.ones(n, "float32"), size, mode="constant")
            for n in valid.shape
        ]
        return (total / np.multiply.outer(*count)).astype("float32")
    weight = valid.astype("float32")
    total = ndimage.uniform_filter(
        np.where(valid, values, 0).astype("float32"), size, mode="constant"
    )
    count = ndimage.uniform_filter(weight, size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, 0).astype("float32")


def quality(
    bands: Mapping[str, np.ndarray],
    azimuth: float,
    zenith: float,
    *,
    score: str = "schmitt",
    use_scl: bool = True,
    max_height: float = 3000.0,
) -> np.ndarray:
    """:func:`quality_20m` of 10 m bands, back at 10 m (NaN where a pixel has no data).

    Examples
    --------
    >>> clear = {b: np.full((4, 4), 0.05) for b in SCORE_BANDS}
    >>> clear["B08"] = np.full((4, 4), 0.4)
    >>> round(float(quality(clear, 120.0, 30.0)[0, 0]), 4)
    -0.001
    """
    shape = next(iter(bands.values())).shape
    # usable only where every band has data (60 m bands lose more at swath edges)
    data = [np.isfinite(v) for k, v in bands.items() if k != "SCL"] or [np.isfinite(bands["SCL"])]
    valid = np.logical_and.reduce(data)
    q = quality_20m(
        to_20m(bands), azimuth, zenith, score=score, use_scl=use_scl, max_height=max_height
    )
    q10 = np.repeat(np.repeat(q, 2, axis=0), 2, axis=1)[: shape[0], : shape[1]]
    return np.where(valid, q10, np.nan).astype("float32")
