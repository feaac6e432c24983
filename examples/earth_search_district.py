"""Map a district from Earth Search (needs the internet): your labels in, a map out.

    python examples/earth_search_district.py crop.geojson noncrop.geojson \
        --bbox 1.0,8.9,1.2,9.1 --season 2019-03-01/2020-03-31 --out district

1. search Earth Search (AWS, no account) for Sentinel-2 L2A over the bbox and season;
2. composite lazily (12 least-cloudy 30-day periods + NDVI) and keep it in a Zarr store,
   so the imagery is read once;
3. sample your labels (points or polygons, any CRS), train the LSTM (grid search; add
   crowdsourced global samples with ``--global global.npz`` from ``xcrop sample``);
4. predict into a resumable Zarr store and a COG for QGIS, and list where to label next.

The same steps work on Planetary Computer (``--catalog planetary-computer``, with the
``planetary-computer`` extra installed for signing) or any STAC API URL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import xcrop
from xcrop import suggest_labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crop", help="crop labels (any vector file; every feature is crop)")
    parser.add_argument("noncrop", help="non-crop labels")
    parser.add_argument("--bbox", required=True, help="west,south,east,north in degrees")
    parser.add_argument("--season", default="2019-03-01/2020-03-31")
    parser.add_argument("--catalog", default="earth-search")
    parser.add_argument("--max-cloud", type=float, default=80)
    parser.add_argument("--global", dest="global_", help="global samples (.npz), optional")
    parser.add_argument("--out", default="district", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bbox = tuple(float(v) for v in args.bbox.split(","))

    cube = xcrop.search(bbox, args.season, catalog=args.catalog, max_cloud=args.max_cloud)
    print(f"cube {dict(cube.sizes)}")
    store = xcrop.write_composite(cube.cropmask.composite(), args.out / "composite.zarr")
    comp = xcrop.open_composite(store)

    parts = [xcrop.read_labels(args.crop, label=1), xcrop.read_labels(args.noncrop, label=0)]
    labels = xcrop.concat_labels(parts, renumber=True)  # a point in both files: dropped
    print(f"labels: {labels.attrs['report']}")
    local = comp.sample(labels, local=True)
    global_ = xcrop.Samples.load(args.global_) if args.global_ else None
    print(f"{len(local)} local samples")
    model, results = xcrop.grid_search(local, global_)
    print(results.to_string(index=False))
    model.save(args.out / "model.pt")

    prob = comp.predict(model)
    xcrop.to_zarr(prob, args.out / "map.zarr", dtype="uint8")  # run again to resume
    prob = xcrop.open_probability(args.out / "map.zarr")
    xcrop.to_cog(prob, args.out / "map.tif", dtype="uint8")
    suggest_labels(prob, 100).to_file(args.out / "label_next.geojson", driver="GeoJSON")
    print(f"wrote {args.out}/map.zarr, map.tif and label_next.geojson")
    return 0


if __name__ == "__main__":
    sys.exit(main())
