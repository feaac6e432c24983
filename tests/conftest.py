"""Shared fixtures: real STAC metadata from ../shared/data, local COGs, a real STAC API.

Pixel values follow a known formula (``true_dn``) so tests can check values at any
pixel; items whose processing baseline shifts DNs store ``true_dn + 1000``, as ESA's
products do since baseline 04.00.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pystac
import pytest

from xcrop._sentinel2 import DEFAULT_BANDS, asset_keys
from xcrop.datasets import localise_item
from xcrop.datasets.serve import serve_items

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
STAC_ITEMS = SHARED / "stac-items"
#: What to do without it: said once, before any test runs (see README, "Tests").
MISSING_SHARED = (
    f"The tests' reference data is missing: there is no folder {SHARED}.\n"
    "It is real data published by others, which this repository does not hold (16 MB: "
    "Sentinel-2 STAC items from odc-stac and pystac-client, eo-learn's Slovenia time "
    "series, CropHarvest's Togo labels and Rwanda export, WorldCereal samples). The project "
    "keeps it beside the repository as shared/data: copy or link that folder to the path "
    "above."
)
BAND_INDEX = {b: i for i, b in enumerate(DEFAULT_BANDS)}
#: Item ids whose stored DNs carry the +1000 shift of baseline >= 04.00.
SHIFTED: set[str] = set()


def true_dn(item_id: str, band: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The reflectance * 10000 of a band at pixel indices of its own grid."""
    if band == "SCL":
        return np.where((rows + cols) % 9 == 0, 9, 4).astype("uint16")
    day = sum(map(ord, item_id.replace("_PB4", ""))) % 97
    return (500 + 150 * BAND_INDEX[band] + day + 3 * (rows % 11) + (cols % 13)).astype("uint16")


def stored_dn(item: pystac.Item, band: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    dn = true_dn(item.id, band, rows, cols)
    if band != "SCL" and item.id in SHIFTED:
        dn = dn + 1000
    return dn


def expected_reflectance(item_id: str, band: str, row: int, col: int, res: int) -> float:
    """Expected cube value at a 10 m pixel of a window that starts at the tile corner."""
    r, c = np.array([row * 10 // res]), np.array([col * 10 // res])
    dn = true_dn(item_id, band, r, c)[0]
    return float(dn) if band == "SCL" else float(dn) * 1e-4


def band_resolution(item: pystac.Item, band: str) -> int:
    asset = item.assets[asset_keys(item)[band]]
    return int(abs(asset.extra_fields["proj:transform"][0]))


def _reads_shared(item: pytest.Item) -> bool:
    """Whether a test reads the reference data: through the fixtures of this file, or in
    a module that names it."""
    if "cog_dir" in getattr(item, "fixturenames", ()):
        return True
    module = getattr(item, "module", None)
    source = Path(module.__file__).read_text() if getattr(module, "__file__", None) else ""
    return re.search(r"\b(SHARED|STAC_ITEMS)\b", source) is not None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Without the reference data, stop before any test runs, saying what to do: not one
    failure per test, each naming a file that is not there."""
    if SHARED.is_dir():
        return
    files = sorted({item.path for item in session.items if _reads_shared(item)})
    if files:
        others = " ".join(f"--ignore={path.relative_to(ROOT)}" for path in files)
        pytest.exit(
            f"{MISSING_SHARED}\n{len(files)} of the selected test files read it; the others "
            f'run without it:\n    pytest {others}\nSee the README, "Tests".',
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


def _features(name: str) -> list[dict]:
    data = json.loads((STAC_ITEMS / name).read_text())
    return data["features"] if data.get("type") == "FeatureCollection" else [data]


@pytest.fixture(scope="session")
def cog_dir(tmp_path_factory) -> Path:
    if not STAC_ITEMS.exists():
        pytest.fail(MISSING_SHARED)
    return tmp_path_factory.mktemp("cogs")


@pytest.fixture(scope="session")
def pc_items(cog_dir) -> list[pystac.Item]:
    """The 13 real Planetary Computer items of tile 35MNM (baseline 02.12), localised."""
    items = [pystac.Item.from_dict(f) for f in _features("site2-2020_jun_jul-35MNM.geojson")]
    return [localise_item(it, cog_dir / "pc", stored_dn) for it in items]


@pytest.fixture(scope="session")
def pc_items_pb4(cog_dir) -> list[pystac.Item]:
    """Four of the same items re-labelled as baseline 04.00: their DNs carry +1000."""
    out = []
    for f in _features("site2-2020_jun_jul-35MNM.geojson")[:4]:
        item = pystac.Item.from_dict(f)
        item.id = item.id.replace("_2020", "_PB4_2020", 1)
        item.properties["s2:processing_baseline"] = "04.00"
        SHIFTED.add(item.id)
        out.append(localise_item(item, cog_dir / "pc4", stored_dn))
    return out


@pytest.fixture(scope="session")
def es_c1_item(cog_dir) -> pystac.Item:
    """The real Earth Search v1 sentinel-2-c1-l2a item (raster:bands offset -0.1)."""
    item = pystac.Item.from_dict(_features("earth-search-v1_sentinel-2-c1-l2a_item.json")[0])
    SHIFTED.add(item.id)
    return localise_item(item, cog_dir / "es", stored_dn)


@pytest.fixture(scope="session")
def es_l2a_item(cog_dir) -> pystac.Item:
    """The real Earth Search v1 sentinel-2-l2a item: boa_offset_applied true, so its DNs
    are already shifted back although raster:bands still says offset -0.1."""
    item = pystac.Item.from_dict(_features("earth-search-v1_sentinel-2-l2a_item.json")[0])
    assert item.properties["earthsearch:boa_offset_applied"] is True
    return localise_item(item, cog_dir / "es", stored_dn)


@pytest.fixture(scope="session")
def stac_api(tmp_path_factory, pc_items, pc_items_pb4, es_c1_item, es_l2a_item) -> str:
    """A real STAC API (``rustac serve``) on loopback, serving all localised items."""
    path = tmp_path_factory.mktemp("api") / "items.json"
    items = [*pc_items, *pc_items_pb4, es_c1_item, es_l2a_item]
    path.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    with serve_items(path) as url:
        yield url


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny simulated archive, generated once per test session (~15 s)."""
    from xcrop.datasets import simulated_archive

    return simulated_archive("tiny", directory=tmp_path_factory.mktemp("sim") / "tiny")
