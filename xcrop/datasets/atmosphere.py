"""Clouds, their shadows, haze, swath edges, noise, and the SCL band of each acquisition.

Cloud cover per scene is drawn from the distribution measured on real Sentinel-2 scenes
(``calibration.CLOUD_COVER_QUANTILES``), skewed to the cloudy end in the rainy season;
clouds are thresholded smooth random fields at the measured correlation length (plus a
four times larger scale), bright and white with soft edges; shadows are the cloud
opacity displaced away from the sun by ``height * tan(zenith)``; thin cirrus and haze
add a blue-heavy path radiance; some acquisitions lie at a swath edge (no data beyond a
slanted line). SCL follows what Sen2Cor does, misses included: faint cloud edges and
part of the shadows go unflagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._cloudscore import shift
from .calibration import CLOUD_CORRELATION_PX, CLOUD_COVER_QUANTILES, THIN_CLOUD_FRACTION
from .landscape import smooth_field
from .spectra import noise

__all__ = ["Sky", "draw_sky", "observe", "scl"]

_CLOUD = np.array([0.55, 0.55, 0.53, 0.52, 0.52, 0.52, 0.52, 0.52, 0.51, 0.45, 0.38, 0.28],
                  dtype="float32")  # fmt: skip
_HAZE = np.array([1.0, 0.9, 0.7, 0.55, 0.45, 0.4, 0.35, 0.3, 0.3, 0.25, 0.1, 0.05],
                 dtype="float32")  # fmt: skip


@dataclass(frozen=True)
class Sky:
    """The atmosphere of one acquisition over one region (all fields ``(n, n)``).

    ``opacity`` is the cloud's share of the signal (0 clear .. 1 opaque), ``cirrus`` the
    thin high cloud's, ``shadow`` the fraction of direct sun blocked, ``haze`` the
    path-radiance scale, ``valid`` False beyond the swath edge; ``cover`` is the scene
    cloud fraction (opacity > 0.35) over valid pixels, in percent.
    """

    opacity: np.ndarray
    cirrus: np.ndarray
    shadow: np.ndarray
    haze: np.ndarray
    valid: np.ndarray
    cover: float


def scene_cover(wet: float, rng: np.random.Generator) -> float:
    """Cloud fraction of a scene: the real distribution, skewed by the season's wetness."""
    u = rng.random() ** (2.0 ** (1.0 - 2.0 * wet))  # wet=1: cloudier, wet=0: clearer
    return float(np.interp(u, np.linspace(0, 1, 11), CLOUD_COVER_QUANTILES))


def draw_sky(
    n: int, wet: float, sun_azimuth: float, sun_zenith: float, rng: np.random.Generator
) -> Sky:
    """Draw the clouds, shadows, haze and swath edge of one acquisition."""
    cover = scene_cover(wet, rng)
    field = 0.7 * smooth_field((n, n), CLOUD_CORRELATION_PX, rng)
    field += 0.7 * smooth_field((n, n), 4 * CLOUD_CORRELATION_PX, rng)
    if cover <= 0.0:
        opacity = np.zeros((n, n), "float32")
    elif cover >= 1.0:
        opacity = np.clip(0.85 + 0.15 * field, 0.6, 1.0).astype("float32")
    else:
        threshold = np.quantile(field, 1 - cover)
        opacity = np.clip((field - threshold) / 0.35 + 0.35, 0, 1).astype("float32")
        opacity[field < threshold - 0.12] = 0
    thin = rng.random() < THIN_CLOUD_FRACTION * 4
    cirrus = np.clip(0.25 * smooth_field((n, n), 3 * CLOUD_CORRELATION_PX, rng) + 0.1, 0, 0.4)
    cirrus = (cirrus * thin).astype("float32")
    height = rng.uniform(800, 3000)  # metres
    reach = height * np.tan(np.radians(sun_zenith)) / 10  # pixels
    az = np.radians(sun_azimuth)  # shadows fall away from the sun
    dy, dx = round(reach * np.cos(az)), round(-reach * np.sin(az))
    shadow = np.clip(shift(opacity, dy, dx) - opacity, 0, 1).astype("float32") * 0.75
    haze = np.float32(rng.uniform(0, 0.04) + 0.06 * (1 - wet) * rng.random())
    haze = (haze * (1 + 0.3 * smooth_field((n, n), 8 * CLOUD_CORRELATION_PX, rng))).clip(0)
    valid = np.ones((n, n), bool)
    if rng.random() < 0.12:  # at the edge of the swath
        rows, cols = np.mgrid[0:n, 0:n]
        edge = rng.uniform(0.2, 0.8) * n + np.tan(np.radians(rng.uniform(-15, 15))) * (rows - n / 2)
        valid = cols < edge if rng.random() < 0.5 else cols > edge
    cloudy = (opacity > 0.35) & valid
    pct = float(100 * cloudy.sum() / max(valid.sum(), 1))
    return Sky(opacity, cirrus, shadow, haze.astype("float32"), valid, pct)


def observe(surface: np.ndarray, sky: Sky, rng: np.random.Generator) -> np.ndarray:
    """Top-of-canopy reflectance ``(bands, n, n)`` seen through ``sky``; NaN off-swath."""
    a, c = sky.opacity, sky.cirrus
    out = surface * ((1 - a) * (1 - c) * (1 - sky.shadow))[None]
    white = a * np.float32(rng.uniform(0.85, 1.3)) + (1 - a) * c * np.float32(0.8)
    for b in range(out.shape[0]):  # band by band: no (bands, n, n) temporaries
        out[b] += _CLOUD[b] * white + _HAZE[b] * sky.haze
        out[b] += noise(rng, out.shape[1:], 0.002)
        out[b][~sky.valid] = np.nan
    return out


def scl(surface: np.ndarray, landcover: np.ndarray, sky: Sky, rng: np.random.Generator):
    """The scene classification (Sen2Cor SCL codes) of an observation, at 10 m.

    0 no data, 3 cloud shadow, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified,
    8 cloud medium probability, 9 cloud high probability, 10 thin cirrus.
    """
    red, nir = surface[3], surface[7]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    out = np.where(ndvi > 0.35, 4, 5).astype("uint8")
    out[landcover == 5] = 6
    out[rng.random(out.shape) < 0.003] = 7
    out[(sky.shadow > 0.3) & (rng.random(out.shape) < 0.85)] = 3
    out[(sky.cirrus > 0.15) & (sky.opacity < 0.35)] = 10
    out[sky.opacity > 0.35] = 8
    out[sky.opacity > 0.7] = 9
    out[~sky.valid] = 0
    return out
