"""A simulated Sentinel-2 archive with known truth, and helpers to serve real metadata.

``simulated_archive(preset, seed=...)`` writes (once, into a cache) a physically
plausible Sentinel-2 L2A archive over Togo and other regions, as COGs and STAC items, with
labels in the formats people use and the true crop mask; see ``docs/simulation.md``.
"""

from .archive import PRESETS, Archive, cache_dir, simulated_archive
from .cogs import localise_item, write_cog

__all__ = [
    "PRESETS",
    "Archive",
    "cache_dir",
    "localise_item",
    "simulated_archive",
    "write_cog",
]
