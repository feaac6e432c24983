"""Labels as people make them, and the existing maps to compare against, with their errors.

- Hand labels (local): photo-interpreted fields, crop and non-crop about even, most as
  points and some as polygons, in shapefiles like the real Togo ``crop_merged_v2`` and
  ``noncrop_merged_v2``; a few percent wrong, more on confusable classes. Like real
  interpreters, who are asked to cover every kind of non-crop they see, they put points
  on water, bare rock and settlements however little of the area those cover.
- Test set (local): random points, four labellers with their own error rates and
  biases, harder near field edges and on confusable classes, so ties happen; one file
  per labeller like the real Togo files (three in EPSG:4326, one in EPSG:32631 with
  extra unlabelled rows).
- Crowd labels (global): 3..5 labellers per point, noisier, in the Collect Earth Online
  CSV layout of ``../shared/data/rwanda-ceo`` with one row per labeller.
- Truth rasters (every region), a 100 m crop-fraction map (0..100, underestimating
  smallholder crops like Copernicus land cover) and a 30 m class map (0 water,
  1 non-crop, 2 crop; GFSAD-like errors) for each local region.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from scipy import ndimage
from shapely.geometry import Point, Polygon

from .cogs import write_cog
from .landscape import CONFUSABLE, Landscape, smooth_field
from .regions import Region
from .writer import block_mean

__all__ = [
    "TEST_LABELLERS",
    "LANDMARKS",
    "LANDMARK_SHARE",
    "write_hand_labels",
    "write_test_set",
    "write_crowd_labels",
    "write_truth",
    "write_existing_maps",
]

#: The test set's labellers: (file folder, column, base error, extra crop->non-crop,
#: extra non-crop->crop); the column names are those of the real Togo files.
TEST_LABELLERS = (
    ("random_sample_cn", "cn_labels", 0.05, 0.00, 0.00),
    ("random_sample_bm", "bm_labels", 0.06, 0.10, 0.00),
    ("BB_random_sample_1k", "bb_label", 0.07, 0.00, 0.08),
    ("random_sample_hrk", "hrk-label", 0.04, 0.03, 0.03),
)
#: Non-crop that interpreters label wherever they see it, however small its area (codes
#: of ``landscape.CLASSES``): water, bare rock and laterite, settlements. Sampling one
#: point per field cell would all but miss them: the river is one "cell" per region and
#: a village a few (in the demo archive's Togo regions, 1.2 % and 0.08 % of the pixels,
#: and no hand label on either before SIM_VERSION 3).
LANDMARKS = (5, 6, 7)
#: The least share of a region's hand labels on each landmark class present there.
LANDMARK_SHARE = 0.02


def _hard(land: Landscape, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.isin(land.landcover[rows, cols], CONFUSABLE) | (land.edge[rows, cols] < 1.5)


def _xy(region: Region, rows, cols):
    return region.x0 + 10 * (np.asarray(cols) + 0.5), region.y0 - 10 * (np.asarray(rows) + 0.5)


def _answer(truth, hard, rng, base, miss=0.0, extra=0.0, hard_extra=0.22):
    p = base + hard_extra * hard + np.where(truth == 1, miss, extra)
    return np.where(rng.random(truth.shape) < p, 1 - truth, truth)


def _landmark_points(
    local: Sequence[tuple[Region, Landscape]],
    chosen: list[tuple],
    quota: int,
    rng: np.random.Generator,
) -> list[tuple[int, tuple]]:
    """Points on the landmark classes where a region has fewer than ``quota`` hand labels
    on one: ``(index in chosen to replace, (region, land, row, col))``. Each replaces a
    pick of the same region on another class, from the end of ``chosen`` (a random
    order); a point is a random pixel of the class whose 3 x 3 neighbours are of the
    class too (its 20 m bands are pure), else any of its pixels."""
    out = []
    for region, land in local:
        mine = [i for i, pick in enumerate(chosen) if pick[0] is region]
        classes = [int(land.landcover[r, c]) for _, _, r, c in (chosen[i] for i in mine)]
        spare = [i for i, cls in zip(mine, classes, strict=True) if cls not in LANDMARKS]
        taken = {(r, c) for _, _, r, c in (chosen[i] for i in mine)}
        for code in LANDMARKS:
            need = quota - classes.count(code)
            where = land.landcover == code
            if need <= 0 or not where.any():
                continue
            pure = ndimage.binary_erosion(where, np.ones((3, 3), bool), border_value=0)
            pixels = [rc for rc in zip(*np.nonzero(pure if pure.any() else where), strict=True)
                      if rc not in taken]  # fmt: skip
            for k in rng.permutation(len(pixels))[:need]:
                if not spare:
                    break
                r, c = (int(v) for v in pixels[k])
                taken.add((r, c))
                out.append((spare.pop(), (region, land, r, c)))
    return out


def _shape(x: float, y: float, polygon: bool, half: float):
    if not polygon:
        return Point(x, y)
    return Polygon(
        [
            (x - half, y - half),
            (x + half, y - half * 0.8),
            (x + half, y + half),
            (x - half * 0.9, y + half),
        ]
    )


def write_hand_labels(
    folder: Path,
    local: Sequence[tuple[Region, Landscape]],
    count: int,
    rng: np.random.Generator,
    landmark_rng: np.random.Generator | None = None,
) -> dict[str, int]:
    """Photo-interpreted training labels: ~10 % polygons, the rest points, each on a field
    cell's most interior pixel; and at least :data:`LANDMARK_SHARE` of a region's labels
    on each :data:`LANDMARKS` class it has, as points (see :func:`_landmark_points`).

    ``landmark_rng`` draws the landmark points and their errors (default ``rng``): with
    a generator of its own, ``rng`` draws what it drew without landmarks, so the labels
    made after these (test set, crowd labels) do not change.
    """
    picks = []
    for region, land in local:
        cells = np.unique(land.cell)
        centres = ndimage.maximum_position(land.edge, labels=land.cell, index=cells)
        for r, c in centres:
            if land.edge[r, c] >= 2:  # an interior pixel: the cell is a real field
                picks.append((region, land, r, c))
    chosen = [picks[i] for i in rng.permutation(len(picks))[:count]]
    records = []
    for region, land, r, c in chosen:
        truth = int(land.crop[r, c])
        label = int(
            _answer(np.array([truth]), _hard(land, np.array([r]), np.array([c])), rng, 0.02)[0]
        )
        x, y = _xy(region, r, c)
        polygon = rng.random() < 0.1
        half = 10 * rng.uniform(0.8, 1.5)
        shape = _shape(x, y, polygon, half)
        records.append({"label": label, "polygon": polygon, "epsg": region.epsg, "geometry": shape})
    landmark_rng = rng if landmark_rng is None else landmark_rng
    quota = max(2, round(LANDMARK_SHARE * count / max(len(local), 1)))
    for i, (region, land, r, c) in _landmark_points(local, chosen, quota, landmark_rng):
        hard = _hard(land, np.array([r]), np.array([c]))
        label = int(_answer(np.zeros(1, int), hard, landmark_rng, 0.02)[0])  # never crop
        x, y = _xy(region, r, c)
        records[i] = {"label": label, "polygon": False, "epsg": region.epsg,
                      "geometry": Point(x, y)}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for epsg in sorted({r["epsg"] for r in records}):
        frame = gpd.GeoDataFrame([r for r in records if r["epsg"] == epsg], crs=epsg).to_crs(4326)
        for name, lab in (("crop", 1), ("noncrop", 0)):
            for kind, is_poly in (("merged", True), ("points", False)):
                part = frame[(frame.label == lab) & (frame.polygon == is_poly)]
                out = gpd.GeoDataFrame(
                    {"FID": np.arange(len(part), dtype="float64")},
                    geometry=part.geometry.values,
                    crs=4326,
                )
                path = folder / f"{name}_{kind}" / f"{name}_{kind}.shp"
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.exists():
                    out = pd.concat([gpd.read_file(path), out], ignore_index=True)
                out.to_file(path)
                counts[f"{name}_{kind}"] = counts.get(f"{name}_{kind}", 0) + len(part)
    return counts


def write_test_set(
    folder: Path, local: Sequence[tuple[Region, Landscape]], count: int, rng: np.random.Generator
) -> dict[str, int]:
    """Random test points labelled by four labellers, one shapefile each."""
    per = [count // len(local) + (i < count % len(local)) for i in range(len(local))]
    frames = []
    for (region, land), k in zip(local, per, strict=True):
        n = land.cell.shape[0]
        rows, cols = rng.integers(0, n, k), rng.integers(0, n, k)
        x, y = _xy(region, rows, cols)
        truth = land.crop[rows, cols].astype(int)
        hard = _hard(land, rows, cols)
        answers = {
            col: _answer(truth, hard, rng, base, miss, extra)
            for _, col, base, miss, extra in TEST_LABELLERS
        }
        frame = gpd.GeoDataFrame(
            {"truth": truth, **answers}, geometry=gpd.points_from_xy(x, y), crs=region.epsg
        )
        frames.append(frame.to_crs(32631))
    points = pd.concat(frames, ignore_index=True)
    points.insert(0, "id", np.arange(len(points)))
    for i, (sub, col, *_rest) in enumerate(TEST_LABELLERS):
        path = folder / sub / f"{sub}.shp"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i < 3:
            out = gpd.GeoDataFrame({"id": points.id, col: points[col]}, geometry=points.geometry)
            out.to_crs(4326).to_file(path)
        else:  # like the real hrk file: a bigger sample in UTM, labelled only where shared
            extra = max(0, 1000 - len(points))
            pick = rng.integers(0, len(points), extra)
            ex = points.geometry.x.values[pick] + rng.uniform(-300, 300, extra)
            ey = points.geometry.y.values[pick] + rng.uniform(-300, 300, extra)
            labelled = gpd.GeoDataFrame(
                {"id": points.id, col: points[col].astype(float)},
                geometry=points.geometry,
                crs=32631,
            )
            unlabelled = gpd.GeoDataFrame(
                {"id": np.arange(len(points), len(points) + extra), col: np.nan},
                geometry=gpd.points_from_xy(ex, ey),
                crs=32631,
            )
            pd.concat([labelled, unlabelled], ignore_index=True).to_file(path)
    truth = points[["id", "truth"]].assign(x=points.geometry.x, y=points.geometry.y)
    truth.to_csv(folder / "test_truth.csv", index=False)
    votes = points[[c for _, c, *_ in TEST_LABELLERS]].sum(1)
    return {"points": len(points), "ties": int((votes == 2).sum())}


def write_crowd_labels(
    path: Path,
    globals_: Sequence[tuple[Region, Landscape]],
    per_region: int,
    rng: np.random.Generator,
) -> int:
    """Crowd labels of the global regions in Collect Earth Online's CSV layout."""
    rows_out = []
    plot = 0
    for region, land in globals_:
        n = land.cell.shape[0]
        rows, cols = rng.integers(0, n, per_region), rng.integers(0, n, per_region)
        x, y = _xy(region, rows, cols)
        lonlat = gpd.GeoSeries(gpd.points_from_xy(x, y), crs=region.epsg).to_crs(4326)
        truth = land.crop[rows, cols].astype(int)
        hard = _hard(land, rows, cols)
        for i in range(per_region):
            plot += 1
            for _ in range(int(rng.integers(3, 6))):
                ans = int(_answer(truth[i : i + 1], hard[i : i + 1], rng, 0.08, hard_extra=0.15)[0])
                rows_out.append(
                    {
                        "plot_id": 100000 + plot,
                        "sample_id": 500000 + plot,
                        "lon": lonlat.x.iloc[i],
                        "lat": lonlat.y.iloc[i],
                        "email": f"labeller{int(rng.integers(1, 40)):02d}@example.org",
                        "flagged": False,
                        "imagery_title": "Mapbox Satellite",
                        "sample_geom": f"POINT({lonlat.x.iloc[i]:.9f} {lonlat.y.iloc[i]:.9f})",
                        "Crop/ or not": "Cropland" if ans else "Non-crop",
                        "Confidence level": "somewhat confident" if hard[i] else "fairly confident",
                        "region": region.name,
                        "year": region.start.year,
                    }
                )
    pd.DataFrame(rows_out).to_csv(path)
    return plot


def _write_raster(path: Path, data: np.ndarray, region: Region, res: float, nodata=None):
    transform = Affine(res, 0, region.x0, 0, -res, region.y0)
    write_cog(path, data, transform, f"EPSG:{region.epsg}", nodata=nodata)


def write_truth(folder: Path, region: Region, land: Landscape) -> None:
    """The true crop mask (1 crop, 0 not) and land cover of a region, at 10 m."""
    _write_raster(folder / f"{region.name}_crop.tif", land.crop.astype("uint8"), region, 10)
    _write_raster(
        folder / f"{region.name}_landcover.tif", land.landcover.astype("uint8"), region, 10
    )


def write_existing_maps(
    folder: Path, region: Region, land: Landscape, rng: np.random.Generator
) -> None:
    """A 100 m crop-fraction map and a 30 m class map with realistic errors."""
    crop = land.crop.astype("float32")
    lc = land.landcover
    frac = block_mean(crop, 10)
    natural = block_mean(np.isin(lc, (1, 2, 3, 10)).astype("float32"), 10)
    noise = 0.08 * smooth_field(frac.shape, 3, rng)
    est = np.clip(0.55 * frac + 0.12 * natural + noise, 0, 1)
    est = np.roll(est, shift=tuple(rng.integers(-1, 2, 2)), axis=(0, 1))  # misregistration
    _write_raster(
        folder / f"{region.name}_cropfraction_100m.tif",
        np.round(100 * est).astype("uint8"),
        region,
        100,
        nodata=255,
    )
    share = block_mean(crop, 3)
    water = block_mean((lc == 5).astype("float32"), 3)
    veg = block_mean(np.isin(lc, (1, 2, 8, 10)).astype("float32"), 3)
    classes = np.where(share > 0.5, 2, 1).astype("uint8")
    u = rng.random(classes.shape)
    classes[(classes == 2) & (u < 0.35)] = 1
    classes[(classes == 1) & (veg > 0.5) & (u < 0.2)] = 2
    classes[water > 0.5] = 0
    _write_raster(folder / f"{region.name}_classes_30m.tif", classes, region, 30)
