"""The simulated ground: fields and patches, land cover, and each patch's calendar.

A region is cut into Voronoi cells of smallholder size (0.2..2 ha, mean ~0.8 ha); each
cell gets one land-cover class from smooth random "cultivation" and "woodiness" fields,
a river with wetland and riparian forest, villages with crops around them, some bare
and burnt land, and irrigated plots beside water where the climate has them. Numpy
only; deterministic for a ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["CLASSES", "CROP_CLASSES", "CONFUSABLE", "Landscape", "make_landscape", "smooth_field"]

#: Land-cover codes of the simulation.
CLASSES: dict[int, str] = {
    0: "crop",
    1: "fallow",
    2: "savanna",
    3: "shrub",
    4: "forest",
    5: "water",
    6: "bare",
    7: "built",
    8: "wetland",
    9: "irrigated crop",
    10: "burnt savanna",
}
CROP_CLASSES = (0, 9)
#: Classes that photo-interpreters (and models) confuse with crop or with non-crop.
CONFUSABLE = (1, 8, 9, 10)
_IRRIGATING = {"guinean", "monsoon"}


@dataclass(frozen=True)
class Landscape:
    """Per-pixel maps and per-cell attributes of one region.

    ``cell`` indexes the per-cell arrays (``cls``; ``sow``, ``length`` and ``burn``, day
    offsets from the calendar; ``gmax``, peak green fraction; ``choice``, a uniform draw
    that picks optional seasons); ``landcover`` is ``cls[cell]``; ``edge`` is each pixel's
    distance (px) to the nearest cell boundary; ``brightness`` a per-pixel soil
    brightness factor.
    """

    cell: np.ndarray
    cls: np.ndarray
    sow: np.ndarray
    length: np.ndarray
    gmax: np.ndarray
    choice: np.ndarray
    burn: np.ndarray
    edge: np.ndarray
    brightness: np.ndarray

    @property
    def landcover(self) -> np.ndarray:
        return self.cls[self.cell]

    @property
    def crop(self) -> np.ndarray:
        return np.isin(self.landcover, CROP_CLASSES)


def smooth_field(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth Gaussian random field, mean 0, std 1, correlation ~``scale_px`` pixels.

    Made at a coarse resolution and interpolated, so it costs little at any size.
    """
    step = max(1, int(scale_px // 4))
    coarse = (shape[0] // step + 3, shape[1] // step + 3)
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), scale_px / step, mode="wrap")
    fine = ndimage.zoom(field, step, order=1)[: shape[0], : shape[1]]
    return (fine - fine.mean()) / (fine.std() + 1e-12)


def _cells(n: int, rng: np.random.Generator, mean_px: float = 80.0):
    count = max(4, int(n * n / mean_px))
    seeds = rng.uniform(0, n, size=(count, 2))
    rows, cols = np.mgrid[0:n, 0:n]
    _, cell = cKDTree(seeds).query(np.column_stack([rows.ravel() + 0.5, cols.ravel() + 0.5]))
    cell = cell.reshape(n, n).astype("int32")
    boundary = (np.diff(cell, axis=0, prepend=cell[:1]) != 0) | (
        np.diff(cell, axis=1, prepend=cell[:, :1]) != 0
    )
    edge = ndimage.distance_transform_edt(~boundary).astype("float32")
    return seeds, cell, edge


def _river(n: int, rng: np.random.Generator) -> np.ndarray:
    """Distance (px) of each pixel to a meandering river crossing the region."""
    rows = np.arange(n)
    phase, wavelength = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.2) * n
    centre = n * rng.uniform(0.3, 0.7) + 0.12 * n * np.sin(2 * np.pi * rows / wavelength + phase)
    cols = np.arange(n)[None, :]
    return np.abs(cols - centre[:, None]).astype("float32")


def make_landscape(n: int, climate: str, rng: np.random.Generator) -> Landscape:
    """Draw the land cover and the per-cell calendar of an ``n`` x ``n`` px region.

    Examples
    --------
    >>> land = make_landscape(96, "sudanian", np.random.default_rng(0))
    >>> land.landcover.shape, bool(0.15 < land.crop.mean() < 0.6)
    ((96, 96), True)
    """
    seeds, cell, edge = _cells(n, rng)
    k = len(seeds)
    si, sj = np.clip(seeds.astype(int), 0, n - 1).T
    cultivation = smooth_field((n, n), n / 4, rng)[si, sj]
    woody = smooth_field((n, n), n / 6, rng)[si, sj]
    river_map = _river(n, rng)
    river = river_map[si, sj]
    u = rng.random(k)

    cls = np.full(k, 2, "uint8")  # savanna
    cls[woody > 0.4] = 3  # shrub
    cls[woody > 1.1] = 4  # forest
    farmed = cultivation + 0.35 * rng.standard_normal(k) > -0.1
    cls[farmed] = np.where(u[farmed] < 0.8, 0, 1)  # crop, some fallow
    burnt = (cls == 2) & (rng.random(k) < (0.3 if climate == "sudanian" else 0.12))
    cls[burnt] = 10
    cls[rng.random(k) < 0.02] = 6  # bare rock / laterite
    villages = rng.uniform(0, n, size=(max(1, n * n // 150000), 2))
    near_village = cKDTree(villages).query(seeds)[0] < min(15.0, max(4.0, n / 40))
    cls[near_village & (rng.random(k) < 0.7)] = 7
    riparian = river < max(6.0, n / 25)
    cls[riparian & (rng.random(k) < 0.5)] = 4
    cls[riparian & (rng.random(k) < 0.35)] = 8  # wetland
    if climate in _IRRIGATING:
        irrigated = (river < max(10.0, n / 12)) & (cls != 8) & (rng.random(k) < 0.35)
        cls[irrigated] = 9

    # the river channel is water whatever cell it crosses: one extra "cell"
    cls = np.append(cls, np.uint8(5))
    cell = np.where(river_map < max(1.5, n / 160), k, cell).astype("int32")
    k += 1

    sow = rng.normal(0, 9, size=k).astype("float32")  # days relative to the calendar
    length = rng.uniform(-12, 12, size=k).astype("float32")
    gmax = rng.uniform(0.62, 0.9, size=k).astype("float32")
    choice = rng.random(k).astype("float32")
    burn = rng.uniform(-40, 40, size=k).astype("float32")  # days around the burn season
    brightness = 1 + 0.06 * smooth_field((n, n), 12, rng) + 0.02 * rng.standard_normal((n, n))
    return Landscape(
        cell=cell,
        cls=cls,
        sow=sow,
        length=length,
        gmax=gmax,
        choice=choice,
        burn=burn,
        edge=edge,
        brightness=brightness.astype("float32"),
    )
