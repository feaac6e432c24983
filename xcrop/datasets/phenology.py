"""What covers each cell on each day: green leaves, dry vegetation, soil, char, water.

Crops follow a calendar (sowing on bare tilled soil, a fast green-up, a plateau,
senescence and harvest back to bare soil), one or two seasons a year by climate, each
field a little earlier or later. Natural vegetation follows the rains smoothly and never
shows the bare-soil phase: that seasonal curve is what separates crop from the rest.
Confusable cases: wetland vegetation rises and falls with the flood like a crop,
irrigated plots are green in the dry season, burnt savanna turns dark and regrows.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .calibration import NDVI_NOISE
from .landscape import Landscape
from .regions import rain

__all__ = ["COMPONENTS", "CALENDARS", "cover_fractions"]

#: Cover components, in the order of the columns of :func:`cover_fractions`.
COMPONENTS = ("green", "dry", "soil", "char", "water", "built")

#: Crop calendars: (sowing day of year, season length in days, share of fields).
#: The first season is every crop field's; the second is a field's with that share.
CALENDARS: dict[str, list[tuple[float, float, float]]] = {
    "sudanian": [(170, 120, 1.0)],  # millet, sorghum, maize after the June onset
    "guinean": [(95, 110, 1.0), (245, 95, 0.6)],  # maize twice, around the short dry spell
    "east-african": [(75, 120, 1.0), (285, 90, 0.6)],  # long rains and short rains
    "monsoon": [(180, 105, 1.0), (315, 150, 0.8)],  # kharif rice, rabi wheat
    "temperate": [(288, 270, 1.0)],  # winter wheat: sown in October, harvested in July
    "humid-south": [(290, 110, 1.0), (40, 120, 0.7)],  # soy, then second-crop maize
}
_IRRIGATED = (330, 100)  # dry-season cycle of irrigated plots
#: Day of year around which savanna burns (mid dry season), per climate.
_BURN_DOY = {
    "sudanian": 15,
    "guinean": 20,
    "east-african": 40,
    "monsoon": 120,
    "temperate": 240,
    "humid-south": 230,
}


#: Per-observation jitter of the green fraction: NDVI changes by ~0.75 per unit of green
#: fraction in the middle of its range, so this gives the measured NDVI noise.
GREEN_JITTER = NDVI_NOISE / 0.75


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return expit(x)


def _season(day: float, sow: np.ndarray, length: np.ndarray, gmax: np.ndarray):
    """Green and dry fractions of one crop season (days since the region's start)."""
    since = day - sow
    long_season = length > 180  # winter crops: emergence, dormancy, main growth late
    main = np.where(long_season, since - (length - 120), since)
    green = gmax * _sigmoid((main - 28) / 6) * _sigmoid((length - 22 - since) / 5)
    green += np.where(long_season & (since > 10) & (since < length), 0.15, 0.0)
    green *= (since > 0) & (since < length + 15)
    after = day - (sow + length)
    dry = np.where((after > 0) & (after < 60), 0.45 * np.exp(-after / 25), 0.0)
    dry += np.where((since > length - 30) & (since <= length), 0.3, 0.0)
    return green, dry


def _occurrences(doy: float, start_doy: float, days: int) -> list[float]:
    """Day offsets (since the region's start) of a yearly date within the window."""
    first = (doy - start_doy) % 365
    return [first + 365 * k - 365 for k in range(3) if -200 < first + 365 * k - 365 < days]


def cover_fractions(
    land: Landscape,
    climate: str,
    day: float,
    start_doy: float,
    days: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per-cell cover fractions ``(cells, 6)`` on ``day`` days after the region's start.

    ``rng`` adds the per-observation jitter of greenness (see ``calibration.NDVI_NOISE``);
    columns are :data:`COMPONENTS` and sum to 1.
    """
    cls = land.cls
    k = len(cls)
    doy = (start_doy + day) % 365
    wet = float(rain(climate, doy - 20))  # vegetation answers the rain with a lag
    flood = float(rain(climate, doy - 45))
    frac = np.zeros((k, len(COMPONENTS)), "float32")
    green, dry = np.zeros(k, "float32"), np.zeros(k, "float32")

    crop = cls == 0
    for sow_doy, length, share in CALENDARS[climate]:
        takes = crop & (land.choice < share)
        for start in _occurrences(sow_doy, start_doy, days):
            g, d = _season(day, start + land.sow, length + land.length, land.gmax)
            green = np.where(takes, np.maximum(green, g), green)
            dry = np.where(takes, np.maximum(dry, d), dry)
    irrigated = cls == 9
    for start in _occurrences(_IRRIGATED[0], start_doy, days):
        g, d = _season(day, start + land.sow, _IRRIGATED[1] + land.length, land.gmax)
        green = np.where(irrigated, np.maximum(green, g), green)
        dry = np.where(irrigated, np.maximum(dry, d), dry)

    natural = {  # class: (base green, green amplitude with rain, dry in the dry season)
        1: (0.12, 0.45, 0.35),  # fallow
        2: (0.08, 0.50, 0.60),  # savanna
        3: (0.25, 0.38, 0.30),  # shrub
        4: (0.62, 0.20, 0.08),  # forest
        10: (0.08, 0.50, 0.60),  # burnt savanna
    }
    for code, (base, amp, dry_max) in natural.items():
        sel = cls == code
        green[sel] = base + amp * wet
        dry[sel] = dry_max * (1 - wet)
    wetland = cls == 8
    green[wetland] = 0.12 + 0.65 * flood**2
    frac[wetland, 4] = 0.45 * float(rain(climate, doy - 10)) ** 2

    burnt = cls == 10
    for fire in _occurrences(_BURN_DOY[climate], start_doy, days):
        since = day - (fire + land.burn)
        scar = burnt & (since >= 0)
        frac[:, 3] = np.maximum(frac[:, 3], np.where(scar, 0.8 * np.exp(-since / 35), 0))
        dry = np.where(scar & (since < 90), dry * 0.3, dry)

    jitter = rng.normal(0, GREEN_JITTER, k).astype("float32") * (green > 0.05)
    green = np.clip(green + jitter, 0, 0.95)
    frac[:, 0] = green * (1 - frac[:, 3])
    frac[:, 1] = np.clip(dry, 0, 1 - frac[:, 0] - frac[:, 3])
    frac[cls == 5] = (0, 0, 0, 0, 1, 0)
    frac[cls == 6] = (0, 0.05, 0.95, 0, 0, 0)
    frac[cls == 7] = (0.08, 0.02, 0.2, 0, 0, 0.7)
    frac[:, 2] = np.clip(1 - frac.sum(1) + frac[:, 2], 0, 1)
    return frac
