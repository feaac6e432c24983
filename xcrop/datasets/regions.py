"""Where the simulated archive lies: real UTM grids, real climates, real dates.

Two local regions in Togo (the paper's case), one in the dry-savanna north with one
rainy season and one in the wetter south with two; and global regions elsewhere, in
other climates and other years, some after processing baseline 04.00.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

__all__ = ["Region", "REGIONS", "rain", "mgrs_square", "sun_position"]


@dataclass(frozen=True)
class Region:
    """One simulated area: a window of a Sentinel-2 tile grid.

    Attributes
    ----------
    name
        Short name, also the region's file prefix.
    local
        True for the target area (Togo), False for a "global" area.
    climate
        Key of :func:`rain`.
    epsg, x0, y0
        UTM CRS and top-left corner (metres, on the 60 m grid of every band).
    lat, lon
        Approximate centre, for the sun position.
    start
        First acquisition; acquisitions every 5 days for ``days``.
    """

    name: str
    local: bool
    climate: str
    epsg: int
    x0: float
    y0: float
    lat: float
    lon: float
    start: dt.date
    days: int = 410

    @property
    def zone(self) -> int:
        return self.epsg % 100

    def dates(self, every: int = 5) -> list[dt.datetime]:
        """Acquisition times: every ``every`` days at 10:20 local solar time (UTC)."""
        hour = 10 + 20 / 60 - self.lon / 15
        first = dt.datetime.combine(self.start, dt.time()) + dt.timedelta(hours=hour)
        return [
            (first + dt.timedelta(days=d)).replace(microsecond=0, tzinfo=dt.timezone.utc)
            for d in range(0, self.days, every)
        ]


REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("togo-north", True, "sudanian", 32631, 193980, 1200000, 10.85, 0.2,
               dt.date(2019, 2, 15)),
        Region("togo-south", True, "guinean", 32631, 292500, 835020, 7.55, 1.12,
               dt.date(2019, 2, 15)),
        Region("kenya", False, "east-african", 32636, 694800, 30960, 0.28, 34.75,
               dt.date(2018, 1, 5)),
        Region("france", False, "temperate", 32631, 396180, 5350020, 48.3, 1.6,
               dt.date(2022, 9, 1)),
        Region("india", False, "monsoon", 32643, 581160, 3419040, 30.9, 75.85,
               dt.date(2022, 5, 1)),
        Region("brazil", False, "humid-south", 32721, 641280, 8611980, -12.55, -55.7,
               dt.date(2020, 8, 1)),
    )
}  # fmt: skip


def _bump(doy: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = (doy - centre + 182.5) % 365 - 182.5
    return np.exp(-0.5 * (d / width) ** 2)


def rain(climate: str, doy: np.ndarray | float) -> np.ndarray:
    """Relative rainfall 0..1 through the year (day of year ``doy``) of a climate.

    Examples
    --------
    >>> float(rain("sudanian", 225)) > 0.9 > 0.1 > float(rain("sudanian", 30))
    True
    """
    doy = np.asarray(doy, dtype="float64")
    shapes = {
        "sudanian": lambda d: _bump(d, 225, 45),  # May..Oct, peak August
        "guinean": lambda d: np.maximum(_bump(d, 160, 35), 0.8 * _bump(d, 280, 25)),
        "east-african": lambda d: np.maximum(_bump(d, 110, 30), 0.7 * _bump(d, 310, 25)),
        "monsoon": lambda d: _bump(d, 215, 30),
        "temperate": lambda d: 0.55 + 0.25 * np.cos(2 * np.pi * (d - 330) / 365),
        "humid-south": lambda d: _bump(d, 20, 70),
    }
    return np.clip(shapes[climate](doy), 0.0, 1.0)


_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_COL_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_LAT_BANDS = "CDEFGHJKLMNPQRSTUVWX"


def mgrs_square(zone: int, easting: float, northing: float, lat: float) -> str:
    """The MGRS grid zone and 100 km square of a UTM position, e.g. ``"31PAN"``.

    Examples
    --------
    >>> mgrs_square(31, 193980, 1200000, 10.85)
    '31PAN'
    """
    band = _LAT_BANDS[int((lat + 80) // 8)]
    column = _COL_SETS[(zone - 1) % 3][int(easting // 100000) - 1]
    northing = northing if lat >= 0 else northing - 10_000_000
    shift = 0 if zone % 2 else 5
    row = _ROW_LETTERS[int(northing // 100000 + shift) % 20]
    return f"{zone:02d}{band}{column}{row}"


def sun_position(when: dt.datetime, lat: float, lon: float) -> tuple[float, float]:
    """Approximate solar ``(azimuth, zenith)`` in degrees (azimuth clockwise from north).

    Examples
    --------
    >>> az, zen = sun_position(dt.datetime(2019, 6, 21, 10, 20), 10.85, 0.2)
    >>> 20 < zen < 40
    True
    """
    doy = when.timetuple().tm_yday
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + doy) / 365)
    solar_hour = when.hour + when.minute / 60 + lon / 15
    hour_angle = np.radians(15 * (solar_hour - 12))
    phi = np.radians(lat)
    cos_zen = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    zenith = np.arccos(np.clip(cos_zen, -1, 1))
    azimuth = np.arctan2(
        -np.sin(hour_angle), np.cos(phi) * np.tan(decl) - np.sin(phi) * np.cos(hour_angle)
    )
    return float(np.degrees(azimuth) % 360), float(np.degrees(zenith))
