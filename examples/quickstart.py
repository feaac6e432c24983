"""The smallest end-to-end run of xcrop on the simulated archive (``make demo``).

1. Generate (once; then cached) the demo preset of the simulated Sentinel-2 archive:
   two Togo regions and four elsewhere, 82 acquisitions each, as COGs + STAC items.
2. Serve it with a real STAC API (``rustac serve``) on 127.0.0.1 when rustac is
   installed, else search the static catalog, exactly as Earth Search would be searched.
3. Load the Togo-north cube lazily and print, per month, the median clear-sky NDVI of
   crop and non-crop pixels (from the simulation's true crop mask).

Compositing, training and prediction join this script as they land.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np
import rasterio

import xcrop
from xcrop.datasets import simulated_archive
from xcrop.datasets.serve import rustac_executable, serve_items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", help="tiny, demo or benchmark")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    archive = simulated_archive(args.preset, seed=args.seed)
    m = archive.manifest
    print(f"simulated archive ({args.preset}, seed {args.seed}): {archive.root}")
    print(f"  {m['items']} items, {m['bytes'] / 1e6:.0f} MB, generated in {m['seconds']} s")
    region = "togo-north"
    api = serve_items(archive.items_path) if rustac_executable() else contextlib.nullcontext()
    with api as url:
        catalog = url or str(archive.catalog_path)
        print(f"searching {catalog} over {region} {archive.bbox(region)}")
        cube = xcrop.search(
            archive.bbox(region),
            "2019-03-01/2020-02-29",
            catalog=catalog,
            collection="sentinel-2-l2a",
            bands=["B02", "B03", "B04", "B08", "SCL"],
        )
    print(cube)
    with rasterio.open(archive.truth(region)) as src:
        crop = src.read(1).astype(bool)
    cube = cube.sel(**archive.window(region)).compute()
    red, nir = cube.sel(band="B04"), cube.sel(band="B08")
    ndvi = ((nir - red) / (nir + red)).where(cube.sel(band="SCL").isin([4, 5]))
    monthly = ndvi.resample(time="MS")
    print("month     crop NDVI   non-crop NDVI   (median of clear pixels)")
    for when, group in monthly:
        values = group.values
        c, o = np.nanmedian(values[:, crop]), np.nanmedian(values[:, ~crop])
        print(f"{str(when)[:7]}   {c:9.2f}   {o:13.2f}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
