"""Surface reflectance of the cover components in the twelve L2A bands.

Endmember spectra are typical values of the kind found in spectral libraries (USGS,
ECOSTRESS) resampled to Sentinel-2 bands: green leaves with the red edge and the NIR
plateau, dry grass and straw, a reddish lateritic soil, char, clear water, roofs and
roads. A pixel's reflectance is the linear mix of its cover fractions, with soil and
dry matter scaled by a per-pixel brightness, plus sensor noise.
"""

from __future__ import annotations

import numpy as np

from .._sentinel2 import L2A_BANDS

__all__ = ["ENDMEMBERS", "mix", "noise"]

#: Rows: COMPONENTS (green, dry, soil, char, water, built); columns: L2A_BANDS.
ENDMEMBERS = np.array(
    [
        # B01   B02   B03   B04   B05   B06   B07   B08   B8A   B09   B11   B12
        [0.030, 0.040, 0.085, 0.040, 0.120, 0.320, 0.400, 0.440, 0.460, 0.450, 0.220, 0.110],
        [0.070, 0.090, 0.130, 0.170, 0.210, 0.240, 0.270, 0.300, 0.320, 0.320, 0.420, 0.330],
        [0.080, 0.100, 0.140, 0.200, 0.230, 0.250, 0.270, 0.290, 0.300, 0.300, 0.380, 0.320],
        [0.040, 0.040, 0.050, 0.050, 0.060, 0.070, 0.070, 0.080, 0.080, 0.080, 0.100, 0.090],
        [0.070, 0.070, 0.060, 0.040, 0.030, 0.020, 0.020, 0.020, 0.015, 0.015, 0.010, 0.010],
        [0.140, 0.160, 0.180, 0.200, 0.210, 0.220, 0.230, 0.240, 0.250, 0.250, 0.280, 0.260],
    ],
    dtype="float32",
)
assert ENDMEMBERS.shape[1] == len(L2A_BANDS)
_BRIGHT = np.array([0, 1, 1, 0, 0, 1], dtype="float32")  # components scaled by brightness


def mix(fractions: np.ndarray, brightness: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Reflectance ``(bands, ...)`` from cover fractions ``(..., 6)`` and brightness ``(...)``.

    Examples
    --------
    >>> f = np.zeros((2, 2, 6), "float32"); f[..., 0] = 1
    >>> r = mix(f, np.ones((2, 2), "float32"), np.random.default_rng(0))
    >>> r.shape, bool(abs(r[3].mean() - 0.04) < 0.01)
    ((12, 2, 2), True)
    """
    weights = fractions.astype("float32") * (1 + (brightness[..., None] - 1) * _BRIGHT)
    flat = weights.reshape(-1, weights.shape[-1])
    refl = (ENDMEMBERS.T @ flat.T).reshape(ENDMEMBERS.shape[1], *fractions.shape[:-1])
    refl += noise(rng, refl.shape, 0.003)
    return refl


def noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean sensor noise of standard deviation ``sigma`` (uniform: 5x faster to draw
    than Gaussian, and nothing downstream depends on its shape)."""
    values = rng.random(shape, dtype=np.float32)
    values -= np.float32(0.5)
    values *= np.float32(sigma * np.sqrt(12))
    return values
