"""The simulated Sentinel-2 archive: presets, the user cache, and its generation.

``simulated_archive("demo")`` returns an :class:`Archive` folder, generating it on first
use (deterministically from ``seed``) and reusing it afterwards::

    <cache>/sim-demo-seed0-earth-search-v1/
        items.json            ItemCollection (absolute file:// hrefs; rustac serve loads it)
        catalog/catalog.json  static catalog -> collection -> items (relative hrefs)
        cogs/<item>/<key>.tif the bands, uint16 DN, and SCL
        labels/               hand labels, test set (4 labellers), crowd labels (CSV)
        truth/                crop mask, land cover, cloud opacity per region
        maps/                 existing maps: 100 m crop fraction, 30 m classes
        manifest.json         what is where, counts, generation time and size
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine

from . import annotate
from .atmosphere import draw_sky, observe, scl
from .landscape import Landscape, make_landscape
from .phenology import cover_fractions
from .regions import REGIONS, Region, rain, sun_position
from .spectra import mix
from .writer import Layout, write_acquisition

__all__ = ["Preset", "PRESETS", "Archive", "simulated_archive", "cache_dir"]

#: Bumped whenever generation changes, so caches of older versions are not reused.
#: 3: hand labels include water, bare rock and settlements (``annotate.LANDMARKS``).
SIM_VERSION = 3


@dataclass(frozen=True)
class Preset:
    """Sizes of a simulated archive (pixels per side are multiples of 30)."""

    local_px: int
    global_px: int
    local: tuple[str, ...]
    global_: tuple[str, ...]
    hand_labels: int
    test_points: int
    crowd_per_region: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset(120, 60, ("togo-north", "togo-south"), ("kenya", "france"), 120, 100, 60),
    "demo": Preset(390, 120, ("togo-north", "togo-south"), ("kenya", "france", "india", "brazil"),
                   600, 350, 500),
    "benchmark": Preset(2070, 60, ("togo-north",), ("kenya",), 600, 350, 200),
}  # fmt: skip


def cache_dir() -> Path:
    """Where archives are kept: ``$XCROP_CACHE``, else ``$XDG_CACHE_HOME/xcrop``, else
    ``~/.cache/xcrop``."""
    if os.environ.get("XCROP_CACHE"):
        return Path(os.environ["XCROP_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xcrop"


@dataclass(frozen=True)
class Archive:
    """A generated archive on disk; see the module docstring for its layout."""

    root: Path

    @property
    def manifest(self) -> dict:
        return json.loads((self.root / "manifest.json").read_text())

    @property
    def items_path(self) -> Path:
        return self.root / "items.json"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog" / "catalog.json"

    @property
    def labels(self) -> Path:
        return self.root / "labels"

    def region(self, name: str) -> dict:
        """Facts about one region: ``bbox`` (lon/lat), ``epsg``, ``local``, dates, ..."""
        return self.manifest["regions"][name]

    def bbox(self, name: str) -> tuple[float, float, float, float]:
        """The lon/lat bbox of a region, for ``xcrop.search``."""
        return tuple(self.region(name)["bbox"])

    def window(self, name: str) -> dict[str, slice]:
        """``x``/``y`` slices of a region in its UTM CRS: ``cube.sel(**archive.window(name))``
        cuts a searched cube to exactly the region's pixels."""
        left, bottom, right, top = self.region(name)["bounds"]
        return {"x": slice(left, right), "y": slice(top, bottom)}

    def truth(self, name: str, what: str = "crop") -> Path:
        """Path of a truth raster: ``crop``, ``landcover`` or ``cloud_opacity_20m``."""
        return self.root / "truth" / f"{name}_{what}.tif"


def _iso(item: pystac.Item) -> str:
    """The item's datetime in ISO 8601 (the archive's items all have one)."""
    if item.datetime is None:
        raise ValueError(f"item {item.id} has no datetime")
    return item.datetime.isoformat()


def _region_bbox(region: Region, n: int) -> list[float]:
    from odc.geo import geom

    box = geom.box(
        region.x0, region.y0 - 10 * n, region.x0 + 10 * n, region.y0, f"EPSG:{region.epsg}"
    )
    return [round(v, 7) for v in box.to_crs("EPSG:4326").boundingbox]


def _simulate_region(
    root: Path, region: Region, n: int, index: int, seed: int, layout: Layout, pool: Executor
) -> tuple[Landscape, list[pystac.Item]]:
    land = make_landscape(n, region.climate, np.random.default_rng([seed, index, 0]))
    start_doy = region.start.timetuple().tm_yday
    dates = region.dates()
    items, opacity = [], np.zeros((len(dates), n // 2, n // 2), "uint8")
    for t, when in enumerate(dates):
        rng = np.random.default_rng([seed, index, 1, t])
        day = (when.date() - region.start).days
        fractions = cover_fractions(land, region.climate, day, start_doy, region.days, rng)
        surface = mix(fractions[land.cell], land.brightness, rng)
        sun = sun_position(when, region.lat, region.lon)
        sky = draw_sky(n, float(rain(region.climate, (start_doy + day) % 365)), *sun, rng)
        observed = observe(surface, sky, rng)
        codes = scl(surface, land.landcover, sky, rng)
        platform = "sentinel-2a" if t % 2 == 0 else "sentinel-2b"
        items.append(
            write_acquisition(
                root / "cogs",
                region,
                when,
                observed,
                codes,
                cover=sky.cover,
                sun=sun,
                platform=platform,
                layout=layout,
                pool=pool,
            )
        )
        opacity[t] = np.round(100 * np.where(sky.valid, sky.opacity, 0)[::2, ::2])
    profile = {
        "driver": "GTiff",
        "width": n // 2,
        "height": n // 2,
        "count": len(dates),
        "dtype": "uint8",
        "crs": f"EPSG:{region.epsg}",
        "compress": "deflate",
        "transform": Affine(20, 0, region.x0, 0, -20, region.y0),
    }
    (root / "truth").mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        root / "truth" / f"{region.name}_cloud_opacity_20m.tif", "w", **profile
    ) as f:
        f.write(opacity)
    return land, items


def _write_catalogs(root: Path, items: list[pystac.Item]) -> None:
    (root / "items.json").write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    catalog = pystac.Catalog("xcrop-simulated", "A simulated Sentinel-2 L2A archive (xcrop)")
    collection = pystac.Collection(
        "sentinel-2-l2a",
        "Simulated Sentinel-2 L2A",
        pystac.Extent.from_items(items),
        license="CC-BY-4.0",
    )
    local = []
    for item in items:  # plain paths, so that pystac can make them relative
        clone = item.clone()
        for asset in clone.assets.values():
            asset.href = asset.href.removeprefix("file://")
        local.append(clone)
    collection.add_items(local)
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(root / "catalog"))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)


def _generate(root: Path, preset: Preset, seed: int, layout: Layout) -> dict:
    t0 = time.perf_counter()
    names = [*preset.local, *preset.global_]
    lands, items, regions = {}, [], {}
    for index, name in enumerate(names):
        region = REGIONS[name]
        n = preset.local_px if region.local else preset.global_px
        with ThreadPoolExecutor(2) as pool:
            land, region_items = _simulate_region(root, region, n, index, seed, layout, pool)
        lands[name] = (region, land)
        items += region_items
        annotate.write_truth(root / "truth", region, land)
        regions[name] = {
            "local": region.local,
            "climate": region.climate,
            "epsg": region.epsg,
            "bbox": _region_bbox(region, n),
            "size_px": n,
            "items": len(region_items),
            "bounds": [region.x0, region.y0 - 10 * n, region.x0 + 10 * n, region.y0],
            "start": _iso(region_items[0]),
            "end": _iso(region_items[-1]),
            "crop_fraction": round(float(land.crop.mean()), 4),
        }
    _write_catalogs(root, items)
    rng = np.random.default_rng([seed, 99])
    local = [lands[name] for name in preset.local]
    for region, land in local:
        annotate.write_existing_maps(root / "maps", region, land, rng)
    labels = {
        "hand": annotate.write_hand_labels(
            root / "labels" / "hand",
            local,
            preset.hand_labels,
            rng,
            landmark_rng=np.random.default_rng([seed, 99, 1]),
        ),
        "test": annotate.write_test_set(root / "labels" / "test", local, preset.test_points, rng),
        "crowd_points": annotate.write_crowd_labels(
            root / "labels" / "crowd.csv",
            [lands[n] for n in preset.global_],
            preset.crowd_per_region,
            rng,
        ),
    }
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return {
        "version": SIM_VERSION,
        "seed": seed,
        "layout": layout,
        "regions": regions,
        "labels": labels,
        "items": len(items),
        "bytes": size,
        "seconds": round(time.perf_counter() - t0, 1),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(),
    }


def simulated_archive(
    preset: str = "tiny",
    *,
    seed: int = 0,
    layout: Layout = "earth-search",
    directory: str | Path | None = None,
    overwrite: bool = False,
) -> Archive:
    """The simulated archive of a preset, generated on first use and cached.

    Parameters
    ----------
    preset
        ``"tiny"`` (unit tests, seconds), ``"demo"`` (the demo, a few minutes in all) or
        ``"benchmark"`` (a 2070 x 2070 px region over 82 dates).
    seed
        Everything is deterministic for a seed.
    layout
        ``"earth-search"`` (default) or ``"planetary-computer"`` STAC layout.
    directory
        Where to keep it; default a folder of :func:`cache_dir`.
    overwrite
        Generate again even if a complete archive is there.

    Examples
    --------
    >>> archive = simulated_archive("tiny")  # doctest: +SKIP
    >>> bbox = archive.bbox("togo-north")  # doctest: +SKIP
    >>> cube = xcrop.search(bbox, catalog=str(archive.items_path))  # doctest: +SKIP
    """
    if preset not in PRESETS:
        from ..errors import XcropInputError

        raise XcropInputError(f"Unknown preset {preset!r}; use one of {sorted(PRESETS)}.")
    root = (
        Path(directory)
        if directory
        else cache_dir() / (f"sim-{preset}-seed{seed}-{layout}-v{SIM_VERSION}")
    )
    if (root / "manifest.json").exists() and not overwrite:
        return Archive(root)
    # manifest.json is written last: without it, a folder is an interrupted generation
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    manifest = _generate(root, PRESETS[preset], seed, layout)
    manifest["preset"] = preset
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return Archive(root)
