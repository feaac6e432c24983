"""The smallest end-to-end run of xcrop: write a tiny local archive, search it, load a cube.

Run with ``make demo``. It needs no internet: the archive is written by
``xcrop.datasets.tiny_archive`` in Earth Search v1 layout and searched as a static
ItemCollection, exactly as a STAC API's answer would be.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pystac

import xcrop
from xcrop.datasets import tiny_archive


def main(out: Path) -> int:
    t0 = time.perf_counter()
    catalog = tiny_archive(out, seed=0)
    print(f"wrote a tiny Earth Search-style archive: {catalog}")
    bbox = pystac.ItemCollection.from_file(str(catalog))[0].bbox  # the archive's window
    cube = xcrop.search(bbox, "2019-03-01/2019-09-30", catalog=str(catalog))
    print(cube)
    red, nir = cube.sel(band="B04"), cube.sel(band="B08")
    ndvi = ((nir - red) / (nir + red)).mean(["y", "x"]).compute()
    rows = zip(cube.time.values, ndvi.values, cube.cloud_cover.values, strict=True)
    for when, value, cloud in rows:
        print(f"  {str(when)[:10]}  mean NDVI {value:5.2f}  (item cloud cover {cloud:4.1f} %)")
    assert np.isfinite(ndvi.values).all()
    print(
        f"done in {time.perf_counter() - t0:.1f} s; CRS {cube.rio.crs}, "
        f"boa_offset {sorted(set(cube.boa_offset.values.tolist()))}"
    )
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="xcrop-"))
    sys.exit(main(target))
