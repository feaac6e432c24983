"""The whole method on the simulated archive, from nothing to a cropland map and a report.

``run_demo()`` (``xcrop demo``, ``make demo``) does what an analyst does for a country:

1. find the imagery: the simulated archive (generated once, cached) served by a real STAC
   API (``rustac serve`` on 127.0.0.1) or, without rustac, its static catalog;
2. composite the two Togo regions (12 least-cloudy 30-day composites + NDVI);
3. sample the hand labels (local) from the composites and the crowd labels (global,
   four other countries, other years) with ``sample_points``; the four labellers' test
   set by consensus;
4. grid-search the multi-headed LSTM (local + global) and the single-headed one (local
   only), fit the random forest and the SVM, and evaluate all of them, and the two
   existing maps, on the consensus test set; measure the sensitivity to the number of
   local labels;
5. predict both regions lazily into Zarr, and write a COG, PNG maps, an RGB composite,
   ROC, reliability and sensitivity plots, the metrics table (Markdown, CSV), the map's
   errors per land-cover class against the archive's truth (Markdown, CSV) and the places
   where the model is least certain (GeoJSON) to the report folder;
6. estimate each region's cropland area with its 95 % interval (``xcrop.area`` on a
   stratified sample of 300 points labelled from the truth) beside the map's pixel count
   and the true area (``area.md``);
7. run one round of active labelling: the suggested places labelled from the truth, added
   to the local samples, the model retrained and scored on the same test set
   (``active_round.md``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from . import _evaluation as evaluation
from . import _io as io
from . import plot
from ._active import suggest_labels
from ._baselines import random_forest, svm
from ._composite import Composite, composite, no_clear_share
from ._labels import concat_labels, consensus, crowd_vote, join_labellers, read_labels
from ._maps import MapKind, map_metrics, per_class_errors, read_map
from ._points import sample_points
from ._report import Facts, write_report
from ._sample import Samples, sample
from ._stac import search
from ._training import grid_search, train

__all__ = ["run_demo", "DemoReport", "LOCAL_REGIONS", "TEST_LABELLERS"]

LOCAL_REGIONS = ("togo-north", "togo-south")
SEASON = "2019-03-01/2020-02-29"
#: The period the RGB pictures show (September: the crops green, the rains ending).
RGB_PERIOD = 6
#: The simulated test set's files, named like the real Togo ones, and their label columns.
TEST_LABELLERS = {
    "cn": "random_sample_cn",
    "bm": "random_sample_bm",
    "bb": "BB_random_sample_1k",
    "hrk": "random_sample_hrk",
}


@dataclass(frozen=True)
class DemoReport:
    """What the demo wrote: the report folder, the metrics table, the timings, the files,
    and the map's errors per land-cover class (``per_class``: one row per region and
    class, and per class over both regions; see :func:`_per_class`)."""

    folder: Path
    table: pd.DataFrame
    seconds: dict[str, float]
    files: list[Path]
    per_class: pd.DataFrame | None = None


class _Steps:
    """Prints numbered steps with their duration; keeps the durations."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self.log, self.t0 = log, time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.log(f"[{time.perf_counter() - self.t0:6.1f} s] {name} ...")
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 1)


def _catalog(archive, serve: bool):
    from .datasets.serve import rustac_executable, serve_items

    if serve and rustac_executable():
        return serve_items(archive.items_path)
    return contextlib.nullcontext(str(archive.catalog_path))


def _by_region(archive, points: gpd.GeoDataFrame) -> dict[str, gpd.GeoDataFrame]:
    """The points inside each local region (lon/lat bbox)."""
    out = {}
    for region in LOCAL_REGIONS:
        w, s, e, n = archive.bbox(region)
        out[region] = points.cx[w:e, s:n]
    return out


def _sample_regions(comps: dict[str, Composite], points_by_region, **kwargs) -> Samples:
    parts = [sample(comps[r], p, **kwargs) for r, p in points_by_region.items() if len(p)]
    return parts[0].concat(*parts[1:])


def _hand_labels(archive) -> gpd.GeoDataFrame:
    hand = archive.labels / "hand"
    parts = [
        read_labels(hand / name / f"{name}.shp", label=int(name.startswith("crop")))
        for name in ("crop_merged", "crop_points", "noncrop_merged", "noncrop_points")
    ]
    return concat_labels(parts, renumber=True)  # a point in two files: counted, dropped


def _crowd_labels(archive) -> gpd.GeoDataFrame:
    table = pd.read_csv(archive.labels / "crowd.csv")  # read once: labels and years
    votes = crowd_vote(read_labels(table, label="Crop/ or not", id="plot_id", long=True))
    years = table.groupby("plot_id")["year"].first()
    return votes.assign(year=years.loc[votes["id"]].to_numpy())


def _test_labels(archive) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    folder = archive.labels / "test"
    table = join_labellers({k: folder / v / f"{v}.shp" for k, v in TEST_LABELLERS.items()})
    return table, consensus(table, list(TEST_LABELLERS))


def _existing_maps(archive, test_by_region) -> dict[str, dict]:
    """Metrics of the two existing maps (per-region rasters) at the test points."""
    results = {}
    for title, suffix, kind in (
        ("100 m crop-fraction map", "cropfraction_100m", "fraction"),
        ("30 m class map (no AUC)", "classes_30m", "classes"),
    ):
        labels, read = [], []
        for region, points in test_by_region.items():
            path = archive.root / "maps" / f"{region}_{suffix}.tif"
            read.append(read_map(path, points, kind=cast(MapKind, kind)))
            labels.append(points["label"].to_numpy())
        y, values = np.concatenate(labels), np.concatenate(read)
        keep = np.isfinite(values)
        results[title] = map_metrics(y[keep], values[keep], cast(MapKind, kind))
    return results


#: The regions' row of :func:`_per_class` that sums both.
BOTH = "both regions"


def _per_class(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`~xcrop.per_class_errors` of each region, one row per region and class,
    then each class over all regions (shares weighted by the regions' pixels)."""
    long = pd.concat(tables, names=["region"]).reset_index()
    weights = long["pixels"].where(long["pixels"] > 0)
    summed = (
        long.assign(
            mapped_crop=long["mapped_crop"] * weights,
            mean_probability=long["mean_probability"] * weights,
        )
        .groupby(["code", "class", "crop"], as_index=False)[
            ["pixels", "mapped_crop", "mean_probability", "no_data"]
        ]
        .sum(min_count=1)
    )
    for column in ("mapped_crop", "mean_probability"):
        summed[column] = summed[column] / summed["pixels"].where(summed["pixels"] > 0)
    summed = summed.assign(region=BOTH)
    return pd.concat([long, summed], ignore_index=True)[
        ["region", "class", "code", "crop", "pixels", "mapped_crop", "mean_probability", "no_data"]
    ]


def _per_class_markdown(frame: pd.DataFrame) -> str:
    """One row per class: pixels, share mapped crop and mean probability over both
    regions, then the share mapped crop in each region."""
    both = frame[frame.region == BOTH].set_index("class")
    wide = both[["crop", "pixels", "mapped_crop", "mean_probability"]].rename(
        columns={"mapped_crop": "mapped crop", "mean_probability": "mean probability"}
    )
    for region, part in frame[frame.region != BOTH].groupby("region", sort=False):
        wide[f"mapped crop, {region}"] = part.set_index("class")["mapped_crop"]
    return evaluation.to_markdown(wide)


def _label_from_truth(archive, region: str, points: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The points labelled from the archive's crop mask, as a labeller would label them."""
    label = read_map(archive.truth(region, "crop"), points, kind="classes", crop_classes=(1,))
    return points.assign(label=label).dropna(subset=["label"])


def _true_crop_ha(archive, region: str, prob) -> float:
    """Hectares of true crop (the archive's crop mask) on a region's map: the same 10 m
    grid, cut to the map, where the map has a value."""
    import rioxarray

    truth = cast(xr.DataArray, rioxarray.open_rasterio(archive.truth(region, "crop")))  # a GeoTIFF
    truth = truth.squeeze("band", drop=True)
    on_map = np.isfinite(prob.values)
    return float((truth.sel(x=prob.x, y=prob.y).values[on_map] == 1).sum()) * 0.01


def _area_estimate(archive, region: str, prob, seed: int, n: int = 300) -> dict:
    """Cropland area of a region's map by :func:`xcrop.area` on a stratified sample of
    ``n`` points labelled from the truth, beside the map's pixel count and the truth."""
    from ._areas import area, mapped_areas, sample_for_area

    design = _label_from_truth(archive, region, sample_for_area(prob, n, seed=seed))
    estimate, lower, upper = area(prob, design).area(1)
    return {"true": _true_crop_ha(archive, region, prob),
            "map pixel count": float(mapped_areas(prob).get(1, 0.0)),
            "estimate": estimate, "95 % lower": lower, "95 % upper": upper,
            "points": len(design)}  # fmt: skip


def run_demo(
    preset: str = "demo",
    *,
    out: str | Path = "xcrop-demo",
    seed: int = 0,
    serve: bool = True,
    sensitivity_seeds: tuple[int, ...] = (0, 1, 2),
    log: Callable[[str], None] = print,
    archive=None,
) -> DemoReport:
    """Run the whole method on a simulated archive and write a report folder.

    Parameters
    ----------
    preset
        ``"demo"`` (a few minutes on 2 cores) or ``"tiny"`` (the test suite's).
    out
        The report folder (created; files in it are replaced).
    seed
        Seeds the archive and every model.
    serve
        Search through a real STAC API (``rustac serve``) when rustac is installed;
        otherwise, or with False, the static catalog.
    sensitivity_seeds
        Seeds of the sensitivity runs (the paper: 3); empty to skip them.
    log
        Where progress goes.
    archive
        An :class:`~xcrop.datasets.archive.Archive` to use instead of the preset's.

    Examples
    --------
    >>> report = run_demo("tiny", out="demo-report")  # doctest: +SKIP
    >>> print(evaluation.to_markdown(report.table))  # doctest: +SKIP
    """
    from .datasets import simulated_archive
    from .datasets.landscape import CLASSES, CROP_CLASSES

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    step = _Steps(log)
    with step("simulated archive"):
        archive = archive or simulated_archive(preset, seed=seed)
        log(f"  {archive.root}: {archive.manifest['items']} items")
    with _catalog(archive, serve) as catalog:
        log(f"  catalog: {catalog}")
        comps, acquisitions = {}, {}
        with step("search and composite the Togo regions"):
            for region in LOCAL_REGIONS:
                cube = search(
                    archive.bbox(region), SEASON, catalog=catalog, collection="sentinel-2-l2a"
                ).sel(**archive.window(region))
                comp = composite(cube)
                comps[region] = Composite(*dask.persist(comp.data, comp.counts, comp.dates))
                acquisitions[region] = cube.sizes["time"]
                log(f"  {region}: {cube.sizes['time']} acquisitions -> {dict(comp.data.sizes)}")
        with step("sample hand labels (local) and crowd labels (global)"):
            hand = _hand_labels(archive)
            local = _sample_regions(comps, _by_region(archive, hand), local=True)
            crowd = _crowd_labels(archive)
            global_ = sample_points(crowd, year="year", catalog=catalog,
                                    collection="sentinel-2-l2a", local=False)  # fmt: skip
            log(f"  local {len(local)} of {len(hand)}, global {len(global_)} of {len(crowd)}")
    with step("consensus test set"):
        agreement_table, test_labels = _test_labels(archive)
        test_by_region = _by_region(archive, test_labels)
        test = _sample_regions(comps, test_by_region)
        report = test_labels.attrs["report"]
        log(f"  {report['read']} points, {len(test_labels)} kept, dropped {report['dropped']}")
    with step("grid search: multi-headed LSTM (local + global)"):
        multi, multi_grid = grid_search(local, global_, seed=seed)
    with step("grid search: single-headed LSTM (local only)"):
        single, single_grid = grid_search(local, seed=seed)
    # the chosen configuration, reused by the sensitivity runs and the active round
    config: dict[str, Any] = {"layers": multi.config["layers"], "dropout": multi.config["dropout"]}
    with step("random forest and SVM (local only)"):
        forest = random_forest(seed=seed).fit(local)
        vector = svm().fit(local)
    predictors = {
        "multi-headed LSTM (local + global)": multi,
        "single-headed LSTM (local only)": single,
        "random forest (local only)": forest,
        "SVM (local only)": vector,
    }
    with step("evaluate on the consensus test set"):
        results = {name: evaluation.evaluate(p, test) for name, p in predictors.items()}
        results.update(_existing_maps(archive, test_by_region))
        table = evaluation.results_table(results)
    sens = None
    if sensitivity_seeds:
        with step("sensitivity to the number of local labels"):
            sizes = sorted({n for n in (50, 100, 200, 400) if n < len(local)} | {len(local)})

            def fit(subset: Samples, s: int):  # single LSTMs, as the paper's curve (and 5x
                return train(subset, global_, seed=s, members=1, **config)[0]  # faster)

            sens = evaluation.sensitivity(fit, local, test, sizes, seeds=sensitivity_seeds)
    files, errors, next_labels, areas = [], {}, {}, {}
    with step("predict both regions into Zarr, COG and PNG; area estimates"):
        for region, comp in comps.items():
            prob = comp.predict(multi)
            store = io.to_zarr(prob, out / f"{region}.zarr", overwrite=True, progress=False)
            prob = io.open_probability(store)
            errors[region] = per_class_errors(
                prob, archive.truth(region, "landcover"), CLASSES, crop_classes=CROP_CLASSES
            )
            files += [Path(store), Path(io.to_cog(prob, out / f"{region}.tif"))]
            files.append(_save(plot.probability_map(prob, title=f"crop probability, {region}"),
                               out / f"{region}_map.png"))  # fmt: skip
            picture = plot.rgb(comp, RGB_PERIOD, title=f"least-cloudy composite, {region}")
            files.append(_save(picture, out / f"{region}_rgb.png"))
            suggestions = suggest_labels(prob, 25).assign(region=region)
            files.append(out / f"{region}_label_next.geojson")
            suggestions.to_file(files[-1], driver="GeoJSON")
            next_labels[region] = _label_from_truth(archive, region, suggestions)
            areas[region] = _area_estimate(archive, region, prob, seed)
    with step("one round of active labelling: the suggestions labelled, the model retrained"):
        new = _sample_regions(comps, next_labels, local=True)
        grown, _ = train(local.concat(new), global_, seed=seed, **config)
        active = evaluation.results_table({
            f"before: {len(local)} local labels": results["multi-headed LSTM (local + global)"],
            f"after: + {len(new)} suggested, labelled": evaluation.evaluate(grown, test),
        })  # fmt: skip
        log(f"  {len(new)} suggestions labelled from the truth and added to {len(local)}")
    with step("report"):
        curves = {n: (test.y, p.predict_proba(test.X)) for n, p in predictors.items()}
        files.append(_save(plot.roc_curves(curves), out / "roc.png"))
        files.append(_save(plot.reliability_diagram(curves), out / "reliability.png"))
        area_table = pd.DataFrame(areas).T.rename_axis("region")
        area_md = evaluation.to_markdown(area_table, digits=0)
        (out / "area.md").write_text(area_md + "\n")
        active_md = evaluation.to_markdown(active.rename_axis("multi-headed LSTM"))
        (out / "active_round.md").write_text(active_md + "\n")
        files += [out / "area.md", out / "active_round.md"]
        if sens is not None:
            files.append(_save(plot.sensitivity_curve(sens), out / "sensitivity.png"))
            sens.drop(columns=["runs"], errors="ignore").to_csv(out / "sensitivity.csv")
            files.append(out / "sensitivity.csv")
            columns = ["accuracy", "roc_auc", "precision", "recall", "f1"]
            (out / "sensitivity.md").write_text(
                evaluation.to_markdown(sens[columns].rename_axis("local labels")) + "\n"
            )
            files.append(out / "sensitivity.md")
        agreement = evaluation.labeller_agreement(agreement_table, list(TEST_LABELLERS))
        files.append(_save(plot.agreement_matrix(agreement), out / "agreement.png"))
        table.to_csv(out / "metrics.csv")
        (out / "metrics.md").write_text(evaluation.to_markdown(table) + "\n")
        files += [out / "metrics.csv", out / "metrics.md"]
        per_class = _per_class(errors)
        per_class.to_csv(out / "per_class.csv", index=False)
        per_class_md = _per_class_markdown(per_class)
        (out / "per_class.md").write_text(per_class_md + "\n")
        files += [out / "per_class.csv", out / "per_class.md"]
        multi.save(out / "model.pt")
        files.append(out / "model.pt")
        for name, samples in (("local", local), ("global", global_), ("test", test)):
            files.append(samples.save(out / f"samples_{name}.npz"))
        for name, grid in (("multi", multi_grid), ("single", single_grid)):
            grid.to_csv(out / f"grid_{name}.csv", index=False)
            files.append(out / f"grid_{name}.csv")
        no_clear = pd.DataFrame({r: no_clear_share(c.counts) for r, c in comps.items()})
        no_clear.index = no_clear.index.strftime("%Y-%m-%d")
        summary = {
            "preset": preset, "seed": seed, "catalog": "rustac serve" if serve else "static",
            "local": len(local), "global": len(global_), "test": len(test),
            "test_report": report, "seconds": step.seconds,
            "unanimous": agreement["unanimous"], "model": multi.config | multi.info,
            "metrics": {name: {k: v for k, v in r.items() if k != "reliability"}
                        for name, r in results.items()},
            "area": area_table.round(1).to_dict("index"),
            "no_clear_observation": no_clear.round(4).to_dict(),
            "active_round": active.to_dict("index"),
            "per_class": {
                region: {
                    row["class"]: {k: row[k] for k in ("pixels", "mapped_crop", "mean_probability")}
                    for row in part.round(4).to_dict("records")
                }
                for region, part in per_class.groupby("region", sort=False)
            },
            "report": {"html": "report.html", "index": "README.md"},
        }  # fmt: skip
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        files.append(out / "summary.json")
        facts = Facts(
            preset=preset, seed=seed, season=SEASON,
            regions={r: {"bbox": archive.bbox(r), "epsg": archive.region(r)["epsg"],
                         "pixels": (c.data.sizes["y"], c.data.sizes["x"]),
                         "acquisitions": acquisitions[r]} for r, c in comps.items()},
            periods=list(no_clear.index), period_days=_period_days(comps[LOCAL_REGIONS[0]]),
            bands=[str(b) for b in comps[LOCAL_REGIONS[0]].data["band"].to_numpy()],
            global_regions=[name for name, r in archive.manifest["regions"].items()
                            if not r["local"]],
            counts={"local": len(local), "hand": len(hand), "global": len(global_),
                    "crowd": len(crowd), "test": len(test), "test_crop": int(test.y.sum())},
            test_report=report, labellers=_labeller_table(),
            agreement={k: agreement[k] for k in ("unanimous", "all_labelled")},
            metrics=table, metrics_md=evaluation.to_markdown(table),
            per_class=per_class[per_class.region == BOTH], per_class_md=per_class_md,
            no_clear=no_clear, rgb_period=RGB_PERIOD,
            tables=_report_tables(area_md, active_md, sens),
            figures=_figures(sens is not None), maps=_maps(),
            files=[f.name for f in files] + ["README.md", "report.html"],
        )  # fmt: skip
        files += write_report(out, facts)
    log("\nthe map per land-cover class (share mapped crop, p >= 0.5: recall of crop classes,")
    log("false-positive rate of the others; truth: the archive's land cover)\n" + per_class_md)
    log(
        "\ncropland area (ha) by stratified sampling (xcrop.area, 300 points per region, labels"
        " from the truth) beside the map's pixel count and the true area\n" + area_md
    )
    log("\none round of active labelling, the same test set\n" + active_md)
    log("\n" + evaluation.to_markdown(table))
    log(f"\nreport in {out} ({len(files)} files), {time.perf_counter() - step.t0:.0f} s in all")
    return DemoReport(out, table, step.seconds, files, per_class)


def _period_days(comp: Composite) -> int:
    """The composite's period length in days, from its time labels (the first days)."""
    days = np.diff(comp.data["time"].to_numpy().astype("datetime64[D]")).astype("int64")
    return int(np.median(days)) if len(days) else 0


def _labeller_table() -> pd.DataFrame:
    """The test set's labellers: code, file and their simulated error rates."""
    from .datasets.annotate import TEST_LABELLERS as RATES

    rates = {folder: rest for folder, _column, *rest in RATES}
    columns = ["base error", "extra crop->non-crop", "extra non-crop->crop"]
    rows = {code: [f"{name}.shp", *rates[name]] for code, name in TEST_LABELLERS.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["file", *columns])


def _report_tables(area_md: str, active_md: str, sens: pd.DataFrame | None) -> dict[str, str]:
    tables = {
        "Cropland area (ha) of each region by stratified sampling (300 points labelled from "
        "the simulated truth; 95 % interval), beside the map's pixel count and the true "
        "area": area_md,
        "One round of active labelling (the suggested places labelled, the model retrained), "
        "on the same test set": active_md,
    }
    if sens is not None:
        columns = ["accuracy", "roc_auc", "precision", "recall", "f1", "runs"]
        tables["Single LSTMs against the number of local labels (mean over seeds, `runs`: "
               "trainings)"] = evaluation.to_markdown(
            sens[[c for c in columns if c in sens]].rename_axis("local labels"))  # fmt: skip
    return tables


def _figures(sensitivity: bool) -> list[tuple[str, str]]:
    figures = [
        ("roc.png", "ROC curves of the four trained methods on the test set"),
        ("reliability.png", "Reliability: predicted probability against the share of crop"),
        ("agreement.png", "Pairwise agreement of the test-set labellers"),
    ]
    if sensitivity:
        figures.append(("sensitivity.png", "ROC AUC against the number of local labels"))
    return figures


def _maps() -> list[tuple[str, str]]:
    return [
        (f"{region}{suffix}", f"{what}, {region}")
        for region in LOCAL_REGIONS
        for suffix, what in (("_map.png", "Crop probability"), ("_rgb.png", "True colour"))
    ]


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
