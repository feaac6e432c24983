"""Real Sentinel-2 series with crop labels (WorldCereal test resources) as xcrop inputs.

The helpers behind ``bench_real_data.py`` (issue 17 item 1): loaders that turn the
files of ``../shared/data/worldcereal`` (see its README) into xcrop cubes, composites
and :class:`xcrop.Samples`; the spatial folds; the models as small fit functions; the
out-of-fold metrics.

Data and how it becomes samples
-------------------------------
``points`` (East Africa, 500 labelled points, season 2017). WorldCereal already made 12
monthly composites (2016-12 .. 2017-11) of 10 bands (B02 B03 B04 B05 B06 B07 B08 B8A B11
B12) as DN; reflectance = DN / 1e4, 65535 = no data (a whole month at once). The points
are laid out as the pixels of a small image (row by row, an arbitrary CRS: the places
are not used here), each month dated its 15th, and composited BY XCROP
(``xcrop.composite``) from 2016-12-01 in 12 x 30-day periods: the 15ths fall one per
period, every observation scores as clear (a score function of zeros: WorldCereal has
composited already), so a month with data is kept as it is and a missing month takes
xcrop's rule for an empty period, the nearest period's observation (the earlier one on a
tie; ``xcrop._mosaic.fill``), with a count of 0. NDVI is xcrop's, of the chosen B04/B08.
``xcrop.sample`` then reads each point's series and drops (and counts) points without
data in any month (none in this file).

``clipA`` / ``clipB`` (Flanders, 64 x 64 px at 10 m, EPSG:32631): every dated L2A
acquisition of a season, 10 m bands B02 B03 B04 B08, 20 m bands B05 B06 B07 B8A B11 B12
and SCL repeated 2 x 2 onto the 10 m grid (both grids share their upper-left corner),
DN x 1e-4, sun angles as time coordinates: a real (time, band, y, x) cube that
``xcrop.as_cube`` accepts. DN 0 is no data (NaN); the data's README says none occurs,
but clip B has one (B08 of 2018-12-12 at row 43, col 40): xcrop chooses observations at
20 m, picks that one there, and the pixel's composite is NaN, so ``xcrop.sample`` drops
it (4,095 of 4,096 pixels kept). There is no B01 or B09:
``composite()`` says so and names the way out, ``bands=`` without B09 and
``score="scl"`` (the Schmitt score needs B01), which is what is used. The composite has
the same 10 bands + NDVI as the points, in the same order. Every pixel is labelled (LPIS
LC 11, temporary crops, is crop; 13 grassland, 60 and 99 no crop parcel are not).

Season dates. Site A's labels are the 2018 LPIS, site B's the 2019 one; the clips run
Aug of the year before to the end of Nov of the label year. The 12 periods start on
1 December of the year before (A 2017-12-01 .. 2018-11-25, B 2018-12-01 .. 2019-11-25):
from winter cereals' winter cover through the summer crops' (maize, potatoes, beet)
growth to their harvest in Sept-Nov, all inside the clips' dates (xcrop's default start,
the first 1 March in the cube, 2018-03-01 for A, would miss the winter before and end in
February 2019, its last two periods after the data: filled copies). The points'
periods also start on 1 December, so the same period is the same calendar month in every
set: the global samples a model borrows line up in time with its local ones.

Spatial folds (why)
-------------------
Points: ~2.2 km cells of a lon/lat grid (``xcrop._points._cells``, ``cell_m=2200``) are
kept whole, folded by ``StratifiedGroupKFold`` (default 5 folds). The 49 coordinates
that carry two records (the same point in two collections, < 1 m apart) and points of
the same field share a cell. The data's own ``h3_l3_cell`` (H3 level 3, ~60 km) has only
7 cells, the 29 non-crop points in 3 of them, and one cell holds 234 crop points: folds
of those are whole regions with one class, and the pooled out-of-fold AUC of the random
forest and the SVM falls to 0.62 and 0.61 (0.87 and 0.92 with the fine cells), their
best accuracy is calling everything crop: they rank regions, not fields. So the fine
cells are the default; ``cell_m=None`` (``--cell-m 0``) folds by the H3 cells instead.

Clips: contiguous blocks of an ``n_blocks x n_blocks`` grid (default 2 x 2: the four 32 x 32
quadrants, 320 m, aligned with the 20 m grid), block ``b`` (row-major) in fold
``b % folds``; pixels within ``buffer`` px (default 4, 40 m) of an inner block border
are dropped from training and test alike, so a test pixel is at least 80 m from any
training pixel: the composite's SCL score averages 5 x 5 px at 20 m (it ties
neighbours' choices together), and a parcel's edge pixels are the ones most alike
across a border. Parcels wider than the buffer still cross it (most of site A's crop
is one 1,249 px area of crop type 1200 reaching into all four quadrants): without parcel
ids (the labels are rasterised classes) the clips measure generalisation to other parts
of the same few parcels and to the parcels of other quadrants, not to new farms; the
points (other fields, 2.2 km cells apart) are the harder test.

Validation groups (``Samples.groups``)
--------------------------------------
Inside each training fold, ``xcrop.train`` splits the local samples again to stop its
members early and to calibrate them. The samples carry their unit (``group=`` of
``xcrop.sample``) so that split keeps it whole too, as a user with several pixels per
field should: the points' location cells (the folds' own unit), the clips' 16 x 16 px
cells (:data:`CELL_PX`, 160 m). Without groups, pixels a few metres from a member's
training pixels validate it, its validation loss keeps falling while it learns those
parcels, and it trains on past the epoch that generalises (clip A: AUC 0.943 without
groups, 0.946 with 8 px cells, 0.949 with connected areas of one land-cover and crop
code, 0.953 with 16 px cells, chosen after these; docs/experiment.md).

Training and global sets
------------------------
Local = the training folds of the set: all of them for the points (~400), for a clip a
stratified draw of ``train_pixels`` (default 500) per fold; tests use every held-out
pixel. Global (multi-headed LSTM only) = labels from elsewhere, at most
``global_per_source`` (default 500, stratified) from each other source: for the points
both clips' pixels (1,000), for a clip the other clip's pixels and the 500 points
(1,000). The draws depend on ``data_seed`` and the fold only, not on the model's seed:
the seed spread is the models' own (initial weights, validation split, shuffling and
dropout of the LSTMs; the forest's bootstraps; the SVM has no randomness).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import xcrop
from xcrop._points import _cells
from xcrop._sentinel2 import REFLECTANCE_BANDS

#: Where the data lives: ``../shared/data/worldcereal`` next to the repository.
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "worldcereal"
POINTS_FILE = "worldcereal_public_extractions_2017.npz"
CLIP_FILES = {
    "clipA": "worldcereal_clip_00002806639B424A.npz",
    "clipB": "worldcereal_clip_0000280849BAC91C.npz",
}
SETS = ("points", *CLIP_FILES)
#: First day of the first of the 12 x 30-day periods (see the module docstring).
SEASON_START = {"points": "2016-12-01", "clipA": "2017-12-01", "clipB": "2018-12-01"}
#: The composites' bands: xcrop's reflectance bands less B09, which the data lacks.
BANDS: tuple[str, ...] = tuple(b for b in REFLECTANCE_BANDS if b != "B09")
#: No-data DN of the points' file.
POINTS_NO_DATA = 65535
#: LPIS land-cover code of temporary crops: crop (1); every other code is non-crop (0).
CROP_LC = 11
#: Side (px) of the square cells that group a clip's samples for ``xcrop.train``'s
#: validation (``Samples.groups``): 16 px = 160 m, a quarter of a block's side.
CELL_PX = 16
#: An arbitrary CRS for the points' image (its coordinates are positions, not places).
POINTS_CRS = "EPSG:32636"


def _reflectance(dn: np.ndarray, no_data: int) -> np.ndarray:
    """DN / 1e4 as float32, NaN where ``dn == no_data``."""
    out = dn.astype("float32") / np.float32(10_000)
    out[dn == no_data] = np.nan
    return out


@dataclass(frozen=True)
class LabelledSet:
    """One data set's samples and the spatial unit each belongs to.

    ``groups``: the unit kept whole by a split (a location cell for points, a block for
    clips; -1: dropped, a pixel in a block-border buffer). ``info``: what was read and
    dropped, and the composite (clips) for inspection.
    """

    name: str
    samples: xcrop.Samples
    groups: np.ndarray
    info: dict = field(default_factory=dict, compare=False)


# -- points -----------------------------------------------------------------------------------


def point_cube(path: str | Path | None = None) -> tuple[xr.DataArray, pd.DataFrame]:
    """The points' monthly composites as a reflectance cube, and the points' table.

    The cube is (time 12, band 10, y, x): point ``i`` is pixel ``(i // width, i % width)``
    of a square-ish image in :data:`POINTS_CRS` (10 m pixels, NaN where no point), each
    month dated its 15th. The table has one row per point (``row``, ``col``, ``x``, ``y``
    of its pixel centre, ``label``, ``lat``, ``lon``, ``h3_l3_cell``, ``sample_id``, ...).
    """
    path = Path(path) if path is not None else DATA / POINTS_FILE
    with np.load(path, allow_pickle=False) as f:
        dn, bands = f["dn"], tuple(str(b) for b in f["bands"])
        meta = {k: f[k] for k in f.files if f[k].ndim == 1 and len(f[k]) == len(dn)}
    if bands != BANDS:
        raise ValueError(f"{path}: bands {bands}, expected {BANDS}")
    n, months, _ = dn.shape
    width = int(np.ceil(np.sqrt(n)))
    height = int(np.ceil(n / width))
    refl = np.full((months, len(bands), height * width), np.nan, "float32")
    refl[..., :n] = _reflectance(dn, POINTS_NO_DATA).transpose(1, 2, 0)
    first = np.datetime64(SEASON_START["points"], "M")
    times = (first + np.arange(months)).astype("datetime64[D]") + np.timedelta64(14, "D")
    x = 5.0 + 10.0 * np.arange(width)
    y = 5.0 + 10.0 * np.arange(height)[::-1]  # north up
    cube = xr.DataArray(
        refl.reshape(months, len(bands), height, width),
        dims=("time", "band", "y", "x"),
        coords={"time": times.astype("datetime64[ns]"), "band": list(bands), "y": y, "x": x},
        name="reflectance",
    ).rio.write_crs(POINTS_CRS)
    table = pd.DataFrame(meta)
    table["label"] = (table["finetune_class"] == "temporary_crops").astype("int8")
    table["row"], table["col"] = np.arange(n) // width, np.arange(n) % width
    table["x"], table["y"] = x[table["col"]], y[table["row"]]
    return xcrop.as_cube(cube), table


def _clear(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    """Cloudiness 0 everywhere: the points' months are composites already."""
    return np.zeros_like(next(iter(bands.values())))


def load_points(path: str | Path | None = None, *, cell_m: float | None = 2200.0) -> LabelledSet:
    """The 500 points as Samples (10 bands + NDVI, 12 periods), grouped by location cell.

    ``cell_m``: side of the lon/lat grid cells that group points for the spatial folds;
    None groups by the file's ``h3_l3_cell`` instead.
    """
    cube, table = point_cube(path)
    comp = xcrop.composite(cube, start=SEASON_START["points"], bands=BANDS, score=_clear, scl=False)
    if cell_m is None:
        cells = table["h3_l3_cell"].to_numpy()
    else:
        lonlat = gpd.GeoDataFrame(geometry=gpd.points_from_xy(table["lon"], table["lat"]), crs=4326)
        cells = _cells(lonlat, cell_m)
    labels = gpd.GeoDataFrame(
        {"label": table["label"], "id": table["sample_id"], "cell": cells},
        geometry=gpd.points_from_xy(table["x"], table["y"]),
        crs=POINTS_CRS,
    )
    samples = comp.sample(labels, local=True, group="cell")  # xcrop.train validates on cells
    groups = pd.factorize(samples.groups)[0].astype("int64")
    missing = np.isnan(cube.values[:, 0]).reshape(cube.sizes["time"], -1)[:, : len(table)]
    info = {
        "read": len(table),
        "kept": len(samples),
        "dropped": samples.report.get("dropped", {}),
        "months missing": int(missing.sum()),
        "months filled": int((samples.counts == 0).sum()),
        "cells": int(groups.max() + 1),
        "cell_m": cell_m,
        "composite": comp,
    }
    return LabelledSet("points", samples, groups, info)


# -- clips ------------------------------------------------------------------------------------


def _repeat2(a: np.ndarray) -> np.ndarray:
    """A 20 m array on the 10 m grid: each pixel repeated 2 x 2 (the last two axes)."""
    return np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)


def clip_cube(path: str | Path) -> xr.DataArray:
    """A clip as an xcrop cube: float32 (time, band, y, x) reflectance on the 10 m grid
    (the 20 m bands and SCL repeated 2 x 2), bands in :data:`BANDS` order then SCL, x/y
    pixel centres, the CRS as ``spatial_ref``, ``sun_azimuth``/``sun_zenith`` per time."""
    with np.load(path, allow_pickle=False) as f:
        d = {k: f[k] for k in f.files}
    attrs = json.loads(str(d["attrs"]))
    # the grids share their upper-left corner: 20 m pixel (0, 0) covers 10 m (0..1, 0..1)
    if not (d["x20"][0] - 10 == d["x10"][0] - 5 and d["y20"][0] + 10 == d["y10"][0] + 5):
        raise ValueError(f"{path}: the 10 m and 20 m grids do not share their corner")
    dn = np.concatenate([d["dn10"], _repeat2(d["dn20"])], axis=1)
    names = [*map(str, d["bands10"]), *map(str, d["bands20"])]
    refl = _reflectance(dn, 0)[:, [names.index(b) for b in BANDS]]
    scl = _repeat2(d["scl"]).astype("float32")[:, None]
    cube = xr.DataArray(
        np.concatenate([refl, scl], axis=1),
        dims=("time", "band", "y", "x"),
        coords={
            "time": d["time"].astype("datetime64[ns]"),
            "band": [*BANDS, "SCL"],
            "y": d["y10"],
            "x": d["x10"],
            "sun_azimuth": ("time", d["sun_azimuth"].astype("float64")),
            "sun_zenith": ("time", d["sun_zenith"].astype("float64")),
        },
        name="reflectance",
        attrs={"location_id": attrs["location_id"], "label_source": attrs["label_source"]},
    ).rio.write_crs(f"EPSG:{attrs['epsg']}")
    return xcrop.as_cube(cube)


def clip_labels(path: str | Path) -> np.ndarray:
    """The clip's LPIS land-cover codes (64, 64)."""
    with np.load(path, allow_pickle=False) as f:
        return f["LC"]


def blocks(shape: tuple[int, int], n: int = 2, buffer: int = 4) -> np.ndarray:
    """Block of each pixel of an ``n x n`` grid of contiguous blocks (row-major), -1
    within ``buffer`` px of an inner block border.

    Examples
    --------
    >>> blocks((4, 4), 2, 1).tolist()
    [[0, -1, -1, 1], [-1, -1, -1, -1], [-1, -1, -1, -1], [2, -1, -1, 3]]
    """
    rows, cols = np.indices(shape)
    out = np.full(shape, -1, "int64")
    edges = [np.linspace(0, s, n + 1).round().astype(int) for s in shape]
    for i in range(n):
        for j in range(n):
            (r0, r1), (c0, c1) = edges[0][i : i + 2], edges[1][j : j + 2]
            inner = (
                (rows >= r0 + (buffer if i > 0 else 0))
                & (rows < r1 - (buffer if i < n - 1 else 0))
                & (cols >= c0 + (buffer if j > 0 else 0))
                & (cols < c1 - (buffer if j < n - 1 else 0))
            )
            out[inner] = i * n + j
    return out


def load_clip(
    name: str, path: str | Path | None = None, *, n_blocks: int = 2, buffer: int = 4
) -> LabelledSet:
    """Every pixel of a clip as Samples (xcrop's composite, ``score="scl"``), with its
    block (see :func:`blocks`)."""
    path = Path(path) if path is not None else DATA / CLIP_FILES[name]
    cube = clip_cube(path)
    comp = cube.cropmask.composite(start=SEASON_START[name], bands=BANDS, score="scl")
    lc = clip_labels(path)
    rows, cols = np.indices(lc.shape).reshape(2, -1)
    labels = gpd.GeoDataFrame(
        {
            "label": (lc.ravel() == CROP_LC).astype("int8"),
            "id": [f"{name}:{r}:{c}" for r, c in zip(rows, cols, strict=True)],
            "cell": [f"{r // CELL_PX}:{c // CELL_PX}" for r, c in zip(rows, cols, strict=True)],
        },
        geometry=gpd.points_from_xy(cube.x.values[cols], cube.y.values[rows]),
        crs=cube.rio.crs,
    )
    samples = comp.sample(labels, local=True, group="cell")  # xcrop.train validates on cells
    kept = labels.set_index("id").index.get_indexer(samples.ids)
    groups = blocks(lc.shape, n_blocks, buffer).ravel()[kept]
    info = {
        "read": len(labels),
        "kept": len(samples),
        "dropped": samples.report.get("dropped", {}),
        "buffer px": int((groups < 0).sum()),
        "acquisitions": int(cube.sizes["time"]),
        "start": SEASON_START[name],
        "composite": comp,
        "lc": lc,
    }
    return LabelledSet(name, samples, groups, info)


def load(names: Sequence[str] = SETS, *, cell_m: float | None = 2200.0, n_blocks: int = 2,
         buffer: int = 4) -> dict[str, LabelledSet]:  # fmt: skip
    """The named sets (``points``, ``clipA``, ``clipB``)."""
    out = {}
    for name in names:
        if name == "points":
            out[name] = load_points(cell_m=cell_m)
        elif name in CLIP_FILES:
            out[name] = load_clip(name, n_blocks=n_blocks, buffer=buffer)
        else:
            raise ValueError(f"unknown set {name!r}; use {SETS}")
    return out


# -- folds and draws --------------------------------------------------------------------------


def folds(data: LabelledSet, n: int, seed: int = 0) -> np.ndarray:
    """The held-out fold of each sample (-1: in none). Points: location cells by
    ``StratifiedGroupKFold(n, shuffle=True, random_state=seed)``; clips: block ``b`` in
    fold ``b % n``. Every training side must hold both classes."""
    y, groups = data.samples.y, data.groups
    if data.name == "points":
        from sklearn.model_selection import StratifiedGroupKFold

        out = np.full(len(y), -1, "int64")
        split = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
        for k, (_, test) in enumerate(split.split(np.zeros(len(y)), y, groups)):
            out[test] = k
    else:
        if n > groups.max() + 1:
            raise ValueError(f"{data.name}: {n} folds but {groups.max() + 1} blocks")
        out = np.where(groups >= 0, groups % n, -1)
    for k in range(n):
        train = (out >= 0) & (out != k)
        if len(np.unique(y[train])) < 2:
            raise ValueError(f"{data.name}: fold {k}'s training side has one class only")
    return out


def draw(y: np.ndarray, n: int, seed: Sequence[int] | int) -> np.ndarray:
    """``n`` indices of ``y`` without replacement, the classes' shares kept (largest
    remainders for rounding), sorted; all of them when ``n >= len(y)``."""
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(y, return_counts=True)
    share = n * sizes / sizes.sum()
    take = np.floor(share).astype("int64")
    for i in np.argsort(-(share - take), kind="stable")[: n - take.sum()]:
        take[i] += 1
    parts = [
        rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(parts))


def take(samples: xcrop.Samples, index: np.ndarray, *, local: bool | None = None) -> xcrop.Samples:
    """The samples at ``index`` (``is_local`` set to ``local`` when given)."""
    is_local = samples.is_local[index] if local is None else np.full(len(index), local)
    return replace(
        samples,
        X=samples.X[index],
        y=samples.y[index],
        is_local=is_local,
        ids=samples.ids[index],
        counts=samples.counts[index],
        report={"read": len(samples), "kept": len(index)},
        groups=None if samples.groups is None else samples.groups[index],
    )


#: Where each set's global samples come from.
GLOBAL_SOURCES = {"points": ("clipA", "clipB"), "clipA": ("points", "clipB"),
                  "clipB": ("points", "clipA")}  # fmt: skip


def global_samples(
    name: str, sets: Mapping[str, LabelledSet], per_source: int, seed: int = 0
) -> xcrop.Samples:
    """Global samples for set ``name``: at most ``per_source`` (stratified, seeded) of
    each of its :data:`GLOBAL_SOURCES`, all of a source's samples eligible (its folds
    and buffers play no part), ``is_local`` False."""
    parts = []
    for k, source in enumerate(GLOBAL_SOURCES[name]):
        s = sets[source].samples
        parts.append(take(s, draw(s.y, per_source, [seed, 2, k]), local=False))
    return parts[0].concat(*parts[1:])


# -- models -----------------------------------------------------------------------------------

#: ``fit(local, global_, seed) -> predictor``: a predictor has ``predict_proba(X)``,
#: X float32 (N, T, F) in ``local.bands`` order -> (N,) crop probability.
Fit = Callable[[xcrop.Samples, "xcrop.Samples | None", int], object]


def model_fits(max_epochs: int | None = None) -> dict[str, Fit]:
    """The compared models as fit functions, by name; add variants to the dict.

    ``max_epochs`` caps the LSTMs' epochs (None: ``xcrop.train``'s default). The LSTMs
    are ``xcrop.train`` with its defaults (no grid search: an ensemble of 5, calibrated),
    and ``*_one`` the paper's single model (``members=1, calibrate=False``); the
    baselines are fitted on the local samples only, as in the paper.
    """
    kw = {} if max_epochs is None else {"max_epochs": max_epochs}

    def multihead_lstm(local, global_, seed):
        return xcrop.train(local, global_, seed=seed, **kw)[0]

    def lstm(local, global_, seed):
        return xcrop.train(local, None, seed=seed, **kw)[0]

    def multihead_lstm_one(local, global_, seed):  # the paper's single model, uncalibrated
        return xcrop.train(local, global_, seed=seed, members=1, calibrate=False, **kw)[0]

    def lstm_one(local, global_, seed):
        return xcrop.train(local, None, seed=seed, members=1, calibrate=False, **kw)[0]

    def random_forest(local, global_, seed):
        return xcrop.random_forest(seed=seed).fit(local)

    def svm(local, global_, seed):
        return xcrop.svm().fit(local)

    fits = (multihead_lstm, lstm, multihead_lstm_one, lstm_one, random_forest, svm)
    return {f.__name__: f for f in fits}


# -- cross-validation and metrics --------------------------------------------------------------


def cross_validate(
    data: LabelledSet,
    fold: np.ndarray,
    fits: Mapping[str, Fit],
    seeds: Sequence[int],
    *,
    global_: xcrop.Samples | None = None,
    train_pixels: int | None = None,
    data_seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-fold crop probabilities of every model and seed.

    For each fold k: local = the samples of the other folds (at most ``train_pixels``,
    a stratified draw seeded by ``(data_seed, k)``), every model fitted with each seed,
    then predicting every sample of fold k.

    Returns
    -------
    predictions, fits
        One row per (model, seed, test sample): ``set, model, seed, fold, index, y,
        prob``; one row per fitted model: ``set, model, seed, fold, n_local,
        n_global_given`` (passed to every fit; only the multi-headed LSTM uses them),
        ``seconds`` (fit and predict).
    """
    samples = data.samples
    preds, timings = [], []
    for k in np.unique(fold[fold >= 0]):
        test = np.flatnonzero(fold == k)
        train = np.flatnonzero((fold >= 0) & (fold != k))
        if train_pixels is not None:
            train = train[draw(samples.y[train], train_pixels, [data_seed, 1, int(k)])]
        local = take(samples, train, local=True)
        X_test = np.ascontiguousarray(samples.X[test], "float32")
        for name, fit in fits.items():
            for seed in seeds:
                t0 = time.perf_counter()
                predictor = fit(local, global_, seed)
                prob = np.asarray(predictor.predict_proba(X_test), "float64")
                seconds = time.perf_counter() - t0
                common = {"set": data.name, "model": name, "seed": seed, "fold": int(k)}
                preds.append(pd.DataFrame({**common, "index": test, "y": samples.y[test],
                                           "prob": prob}))  # fmt: skip
                timings.append({**common, "n_local": len(local),
                                "n_global_given": 0 if global_ is None else len(global_),
                                "seconds": seconds})  # fmt: skip
                if log:
                    log(f"{data.name} fold {k} {name} seed {seed}: {seconds:.1f} s")
    return pd.concat(preds, ignore_index=True), pd.DataFrame(timings)


def best_threshold(y: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """The highest accuracy any threshold gives (``prob >= t`` is crop) and that
    threshold (midway between the two probabilities it separates; 0 or 1 at the ends).
    An oracle: chosen on the very predictions it scores, an upper bound for a threshold
    tuned elsewhere.

    Examples
    --------
    >>> best_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.7, 0.8, 0.9]))
    (1.0, 0.75)
    """
    y = np.asarray(y, "int64")
    order = np.argsort(-np.asarray(prob, "float64"), kind="stable")
    p, t = np.asarray(prob, "float64")[order], y[order]
    negatives = int((t == 0).sum())
    # the first i (by probability) called crop, i = 0..n: correct = tp_i + tn_i
    correct = np.concatenate([[negatives], np.cumsum(t) + negatives - np.cumsum(1 - t)])
    cut = np.ones(len(p) + 1, bool)
    cut[1:-1] = p[:-1] > p[1:]  # no cut between equal probabilities
    i = int(np.flatnonzero(cut)[np.argmax(correct[cut])])
    threshold = 1.0 if i == 0 else 0.0 if i == len(p) else (p[i - 1] + p[i]) / 2
    return float(correct[i] / len(p)), float(threshold)


#: The metrics of :func:`scores`, in table order.
METRICS = ("auc", "acc@0.5", "acc@best", "threshold", "f1", "brier")


def scores(y: np.ndarray, prob: np.ndarray) -> dict:
    """AUC, accuracy at 0.5 and at the best threshold (and that threshold), F1 at 0.5,
    Brier score and n of pooled out-of-fold predictions."""
    from sklearn.metrics import brier_score_loss

    m = xcrop.metrics(y, prob)
    acc_best, threshold = best_threshold(y, prob)
    return {
        "auc": m["roc_auc"],
        "acc@0.5": m["accuracy"],
        "acc@best": acc_best,
        "threshold": threshold,
        "f1": m["f1"],
        "brier": float(brier_score_loss(y, prob)),
        "n": m["n"],
        "n_crop": m["n_crop"],
    }


def per_seed(predictions: pd.DataFrame) -> pd.DataFrame:
    """:func:`scores` per (set, model, seed), from the pooled out-of-fold predictions."""
    rows = [
        {"set": s, "model": m, "seed": seed, **scores(g["y"].to_numpy(), g["prob"].to_numpy())}
        for (s, m, seed), g in predictions.groupby(["set", "model", "seed"], sort=False)
    ]
    return pd.DataFrame(rows)


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (set, model): each metric's mean over seeds, its std (ddof=0) and range
    (max - min) as ``<metric>_std`` and ``<metric>_range``; ``n`` and ``seeds``."""
    grouped = runs.groupby(["set", "model"], sort=False)
    out = grouped[list(METRICS)].mean()
    spread = grouped[list(METRICS)]
    out = out.join(spread.std(ddof=0).add_suffix("_std"))
    out = out.join((spread.max() - spread.min()).add_suffix("_range"))
    out["n"] = grouped["n"].first()
    out["n_crop"] = grouped["n_crop"].first()
    out["seeds"] = grouped.size()
    return out.reset_index()


#: The baselines a model is compared with.
BASELINES = ("random_forest", "svm")


def auc_difference(
    y: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    groups: np.ndarray,
    *,
    n: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """AUC of ``prob_a`` minus AUC of ``prob_b`` on the same samples, and its 95 % interval
    by a paired cluster bootstrap: the ``groups`` (the units the folds keep whole: location
    cells, clip blocks) are drawn with replacement ``n`` times, with all their samples, and
    both models are scored on each draw (draws with one class only are skipped).

    With few non-crop samples or few groups the interval is wide: it says whether a set
    can tell two models apart at all.

    Examples
    --------
    >>> y = np.array([0, 0, 1, 1]); g = np.arange(4)
    >>> auc_difference(y, np.array([.1, .2, .8, .9]), np.array([.1, .2, .8, .9]), g)
    (0.0, 0.0, 0.0)
    """
    from sklearn.metrics import roc_auc_score

    y, prob_a, prob_b = np.asarray(y), np.asarray(prob_a), np.asarray(prob_b)
    cells, members = np.unique(np.asarray(groups), return_inverse=True)
    by_cell = [np.flatnonzero(members == c) for c in range(len(cells))]
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        take = np.concatenate([by_cell[c] for c in rng.integers(0, len(cells), len(cells))])
        if y[take].min() == y[take].max():
            continue
        diffs.append(roc_auc_score(y[take], prob_a[take]) - roc_auc_score(y[take], prob_b[take]))
    point = float(roc_auc_score(y, prob_a) - roc_auc_score(y, prob_b))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return point, float(low), float(high)


def best_baseline(runs: pd.DataFrame, name: str) -> tuple[str, float] | None:
    """The baseline of set ``name`` with the highest mean AUC over seeds in :func:`per_seed`
    scores ``runs``, and that mean; None when the set has no baseline."""
    base = runs[(runs["set"] == name) & runs["model"].isin(BASELINES)]
    if base.empty:
        return None
    means = base.groupby("model")["auc"].mean()
    best = str(means.idxmax())
    return best, float(means[best])


def against_best_baseline(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    sets: Mapping[str, LabelledSet],
    *,
    n: int = 2000,
) -> pd.DataFrame:
    """Each non-baseline model's AUC minus the best baseline's, seed by seed, with the
    95 % interval of :func:`auc_difference` (grouped by the set's fold units); ``runs``
    is :func:`per_seed` of the predictions.

    The best baseline of a set is the one with the highest mean AUC over seeds; a model's
    seed ``s`` is compared with the baseline's seed ``s`` (its first seed when it has no
    ``s``: the SVM has no randomness). One row per (set, model, seed): ``baseline``,
    ``diff``, ``low``, ``high``, ``groups`` (the number of units drawn).
    """
    rows = []
    for name, pred in predictions.groupby("set", sort=False):
        found = best_baseline(runs, name)
        if found is None:
            continue
        best = found[0]
        groups = sets[name].groups
        ref = pred[pred["model"] == best]
        for (model, seed), g in pred.groupby(["model", "seed"], sort=False):
            if model in BASELINES:
                continue
            b = ref[ref["seed"] == seed]
            b = b if len(b) else ref[ref["seed"] == ref["seed"].min()]
            b = b.set_index("index").loc[g["index"]]
            diff, low, high = auc_difference(
                g["y"].to_numpy(), g["prob"].to_numpy(), b["prob"].to_numpy(),
                groups[g["index"].to_numpy()], n=n, seed=int(seed),
            )  # fmt: skip
            rows.append({"set": name, "model": model, "seed": seed, "baseline": best,
                         "diff": diff, "low": low, "high": high,
                         "groups": len(np.unique(groups[g["index"].to_numpy()]))})  # fmt: skip
    return pd.DataFrame(rows)


#: Issue 17's goals for the default multi-headed LSTM on every set: AUC at least the best
#: baseline's (mean over seeds), AUC range over seeds at most 0.01, accuracy at 0.5
#: within 0.05 of the best threshold's (every seed).
GOALS = {"spread": 0.01, "calibration": 0.05}


def goals(runs: pd.DataFrame, against: pd.DataFrame, model: str = "multihead_lstm") -> pd.DataFrame:
    """Issue 17's goals for ``model``, set by set, from :func:`per_seed` scores ``runs``
    and :func:`against_best_baseline` rows ``against``.

    One row per set: ``auc`` (mean over seeds), ``baseline`` and ``baseline_auc`` (the
    best baseline, its mean), ``auc_met``; ``below`` (seeds whose 95 % interval is
    wholly below the baseline's AUC) and ``above``; ``spread`` (AUC max - min over
    seeds), ``spread_met``; ``calibration`` (the largest ``acc@best - acc@0.5`` of any
    seed), ``calibration_met``; ``seeds``.
    """
    rows = []
    for name, r in runs.groupby("set", sort=False):
        mine = r[r["model"] == model]
        found = best_baseline(runs, str(name))
        if mine.empty or found is None:
            continue
        best, best_auc = found
        a = against[(against["set"] == name) & (against["model"] == model)]
        auc, spread = float(mine["auc"].mean()), float(np.ptp(mine["auc"]))
        calibration = float((mine["acc@best"] - mine["acc@0.5"]).max())
        rows.append({
            "set": name, "auc": auc, "baseline": best, "baseline_auc": best_auc,
            "auc_met": auc >= best_auc,
            "below": int((a["high"] < 0).sum()), "above": int((a["low"] > 0).sum()),
            "spread": spread, "spread_met": spread <= GOALS["spread"],
            "calibration": calibration, "calibration_met": calibration <= GOALS["calibration"],
            "seeds": len(mine),
        })  # fmt: skip
    return pd.DataFrame(rows)
