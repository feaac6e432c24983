"""Statistics of real Sentinel-2 clouds and NDVI that keep the simulation honest.

The numbers below were measured with :func:`measure` on the eo-learn example patch (a
real 1 km x 1 km Sentinel-2 time series over Slovenia, 68 acquisitions of 2015-2017,
s2cloudless cloud probability and mask, NDVI from the real bands), published by the
eo-learn project under MIT. Only these few statistics are embedded, not the data; the
test suite measures them again from ``../shared/data/eolearn-slovenia-2015`` and checks
they still agree.

How the simulator uses them:

- ``CLOUD_COVER_QUANTILES``: the distribution of a scene's cloud fraction. Each
  simulated acquisition draws its cloud cover from it, skewed towards the cloudy end in
  the rainy season and the clear end in the dry season (``atmosphere.scene_cover``).
- ``CLOUD_CORRELATION_PX``: the e-folding length of the spatial autocorrelation of cloud
  probability in partly cloudy scenes, in 10 m pixels: the smoothing scale of the
  simulated cloud fields.
- ``THIN_CLOUD_FRACTION``: the share of pixels with cloud probability 0.2..0.6 but no
  cloud mask: thin cloud and haze that masks miss.
- ``NDVI_NOISE``: the robust standard deviation of NDVI between clear observations of
  the same vegetated pixel less than 10 days apart: the per-observation noise of the
  simulated surface.
- ``NDVI_RANGE``: the 5th and 95th percentile of clear-sky NDVI of forest through the
  year: the range of the simulated vegetation's greenness.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "CLOUD_COVER_QUANTILES",
    "CLOUD_CORRELATION_PX",
    "THIN_CLOUD_FRACTION",
    "NDVI_NOISE",
    "NDVI_RANGE",
    "measure",
]

#: Scene cloud fraction at quantiles 0, 0.1, ..., 1.
CLOUD_COVER_QUANTILES: tuple[float, ...] = (
    0.0, 0.0, 0.0, 0.0, 0.0, 0.139, 0.473, 0.908, 1.0, 1.0, 1.0
)  # fmt: skip
CLOUD_CORRELATION_PX: float = 17.0
THIN_CLOUD_FRACTION: float = 0.081
NDVI_NOISE: float = 0.034
NDVI_RANGE: tuple[float, float] = (0.218, 0.747)


def _correlation_length(field: np.ndarray, max_lag: int = 50) -> int:
    f = field - field.mean()
    spectrum = np.fft.fft2(f)
    ac = np.fft.ifft2(spectrum * np.conj(spectrum)).real
    ac /= ac[0, 0]
    for lag in range(1, max_lag):
        if (ac[0, lag] + ac[lag, 0]) / 2 < np.exp(-1):
            return lag
    return max_lag


def measure(path: str | Path) -> dict[str, object]:
    """Measure the statistics above from eo-learn's ``timeseries.npz``.

    Examples
    --------
    >>> measure("../shared/data/eolearn-slovenia-2015/timeseries.npz")  # doctest: +SKIP
    {'CLOUD_COVER_QUANTILES': (0.0, ...), ...}
    """
    d = np.load(path)
    mask, prob = d["cloud_mask"].astype(bool), d["cloud_probability"]
    data, ndvi, lulc = d["is_data"].astype(bool), d["ndvi"], d["lulc"]
    n = mask.shape[0]
    frac = (mask & data).reshape(n, -1).sum(1) / data.reshape(n, -1).sum(1)
    quantiles = tuple(float(q) for q in np.round(np.quantile(frac, np.linspace(0, 1, 11)), 3))
    partial = [i for i in range(n) if 0.05 < frac[i] < 0.95]
    corr = float(np.median([_correlation_length(prob[i]) for i in partial]))
    thin = float(((prob > 0.2) & (prob < 0.6) & ~mask & data).sum() / data.sum())
    clear = ~mask & (prob < 0.1)
    days = d["time"].astype("datetime64[D]").astype(int)
    vegetated = (lulc == 2) | (lulc == 3)
    diffs = [
        (ndvi[i + 1] - ndvi[i])[clear[i] & clear[i + 1] & vegetated]
        for i in range(n - 1)
        if days[i + 1] - days[i] <= 10
    ]
    diff = np.concatenate(diffs)
    noise = float(np.median(np.abs(diff)) / 0.6745 / np.sqrt(2))
    forest = lulc == 2
    series = [
        np.median(ndvi[i][clear[i] & forest]) for i in range(n) if (clear[i] & forest).sum() > 200
    ]
    lo, hi = np.percentile(series, [5, 95])
    return {
        "CLOUD_COVER_QUANTILES": quantiles,
        "CLOUD_CORRELATION_PX": corr,
        "THIN_CLOUD_FRACTION": round(thin, 3),
        "NDVI_NOISE": round(noise, 3),
        "NDVI_RANGE": (round(float(lo), 3), round(float(hi), 3)),
    }
