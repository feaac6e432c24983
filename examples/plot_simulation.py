"""Figure of the simulated archive for the docs: RGB, land cover, NDVI through the year.

Run: ``.venv/bin/python examples/plot_simulation.py [--preset demo] [--out FILE.png]``
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import numpy as np
import rasterio
from matplotlib.colors import ListedColormap

import xcrop
from xcrop.datasets import simulated_archive
from xcrop.datasets.landscape import CLASSES

COLOURS = [
    "#e6ab02",
    "#d9d36a",
    "#c7e9a0",
    "#7fbf7b",
    "#1b7837",
    "#2166ac",
    "#bababa",
    "#b2182b",
    "#67a9cf",
    "#f781bf",
    "#4d4d4d",
]


def rgb(cube, when):
    bands = cube.sel(time=when, method="nearest").sel(band=["B04", "B03", "B02"]).values
    return np.clip(np.moveaxis(bands, 0, -1) / 0.3, 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--region", default="togo-north")
    parser.add_argument("--out", default="docs/img/simulation.png")
    args = parser.parse_args()
    archive = simulated_archive(args.preset)
    cube = xcrop.search(
        archive.bbox(args.region),
        catalog=str(archive.catalog_path),
        bands=["B02", "B03", "B04", "B08", "SCL"],
    )
    cube = cube.sel(**archive.window(args.region)).compute()
    with rasterio.open(archive.truth(args.region, "landcover")) as src:
        landcover = src.read(1)
    clear = cube.sel(band="SCL").isin([4, 5, 6])
    ndvi = (cube.sel(band="B08") - cube.sel(band="B04")) / (
        cube.sel(band="B08") + cube.sel(band="B04")
    )
    dry = cube.time[int(np.argmin(cube.cloud_cover.values[:20]))].values
    wet = cube.time[np.argsort(cube.cloud_cover.values[30:45])[0] + 30].values
    cover = cube.cloud_cover.values
    cloudy = cube.time[int(np.argmax((cover > 30) & (cover < 70)))]

    fig = plt.figure(figsize=(13, 8.5), constrained_layout=True)
    grid = fig.add_gridspec(2, 4)
    for k, (when, title) in enumerate(
        [(dry, "dry season"), (wet, "rainy season"), (cloudy.values, "clouds and shadows")]
    ):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(rgb(cube, when))
        ax.set_title(f"RGB {str(when)[:10]} ({title})", fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(grid[0, 3])
    ax.imshow(
        landcover, cmap=ListedColormap(COLOURS), vmin=-0.5, vmax=10.5, interpolation="nearest"
    )
    ax.set_title("true land cover", fontsize=9)
    ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[c]) for c in CLASSES]
    ax.legend(
        handles,
        list(CLASSES.values()),
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
    )

    ax = fig.add_subplot(grid[1, :])
    times = cube.time.values
    crop_pixels = np.argwhere(landcover == 0)
    rng = np.random.default_rng(0)
    for r, c in crop_pixels[rng.choice(len(crop_pixels), 15, replace=False)]:
        series = ndvi.values[:, r, c]
        ok = clear.values[:, r, c]
        ax.plot(times[ok], series[ok], color="#e6ab02", alpha=0.25, lw=0.8)
    for code in (0, 1, 2, 4, 8, 10):
        sel = landcover == code
        if sel.sum() < 20:
            continue
        median = [
            np.nanmedian(np.where(clear.values[t] & sel, ndvi.values[t], np.nan))
            for t in range(len(times))
        ]
        ax.plot(
            times,
            median,
            "o-",
            ms=3,
            lw=1.8 if code == 0 else 1.2,
            color=COLOURS[code],
            label=CLASSES[code],
        )
    ax.set_ylabel("NDVI (clear observations)")
    ax.set_title(f"{args.region}: median NDVI per class; thin lines: 15 crop pixels", fontsize=9)
    ax.legend(fontsize=8, ncol=6, loc="upper left")
    ax.grid(alpha=0.3)
    fig.savefig(args.out, dpi=70)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
