"""The demo's report: ``README.md`` (an index of the folder) and ``report.html`` (one page,
images embedded), written from plain data: counts, tables, file names.

What the reader needs, in order: that everything is simulated; what was mapped and with
what data; the test set and how it was made; the metrics with n and a reading made from
the numbers; the maps; the caveats (per-class errors, periods with few clear views); one
line per file. :mod:`xcrop._page` renders the document both ways.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ._page import to_html, to_markdown
from .errors import XcropInputError

__all__ = ["Facts", "FILE_NOTES", "file_notes", "metrics_reading", "write_report"]

#: One line per file the demo writes; ``{region}`` stands for each mapped region.
FILE_NOTES: dict[str, str] = {
    "README.md": "this index (the same content as `report.html`, images linked)",
    "report.html": "the report as one page, images embedded: opens offline in a browser",
    "summary.json": "machine-readable summary: counts, test-set report, timings, model "
    "configuration, metrics, areas, active round, errors per class, clear views per period",
    "metrics.md": "the metrics of each method and existing map on the consensus test set",
    "metrics.csv": "the metrics table as CSV",
    "per_class.md": "share of each land-cover class's pixels mapped crop, both regions "
    "and each (truth: the simulated land cover)",
    "per_class.csv": "the map's errors per region and land-cover class: pixels, share mapped "
    "crop, mean probability, pixels without data",
    "sensitivity.md": "metrics of single LSTMs against the number of local labels (mean over "
    "seeds)",
    "sensitivity.csv": "the sensitivity table with standard deviations over seeds",
    "sensitivity.png": "ROC AUC against the number of local labels",
    "roc.png": "ROC curves of the four trained methods on the test set",
    "reliability.png": "reliability diagram: predicted probability against the share of crop",
    "agreement.png": "pairwise agreement of the four test-set labellers",
    "area.md": "each region's cropland area estimated from 300 stratified points (95 % "
    "interval), beside the map's pixel count and the true area",
    "active_round.md": "one round of active labelling: metrics before and after adding the "
    "suggested points, labelled",
    "model.pt": "the multi-headed LSTM ensemble (`xcrop.load_model`)",
    "samples_local.npz": "local training samples (hand labels; `xcrop.Samples.load`)",
    "samples_global.npz": "global training samples (crowd labels; `xcrop.Samples.load`)",
    "samples_test.npz": "test samples (the consensus labels; `xcrop.Samples.load`)",
    "grid_multi.csv": "grid search of the multi-headed LSTM: validation AUC per configuration",
    "grid_single.csv": "grid search of the single-headed LSTM: validation AUC per configuration",
    "{region}.zarr": "crop probability map of {region} (a Zarr folder; `xcrop.open_probability`)",
    "{region}.tif": "crop probability map of {region} as a Cloud-Optimized GeoTIFF",
    "{region}_map.png": "picture of the crop probability map of {region}",
    "{region}_rgb.png": "true-colour picture of one period's composite of {region}",
    "{region}_label_next.geojson": "the places in {region} where the model is least certain: "
    "where to label next",
}


def file_notes(names: Sequence[str], regions: Sequence[str]) -> list[tuple[str, str]]:
    """Each file name with its line of :data:`FILE_NOTES`, in the order of its entries
    (regions in the order given).

    Parameters
    ----------
    names
        The files' names in the folder.
    regions
        The mapped regions (to match ``{region}`` entries).

    Returns
    -------
    list of (str, str)
        ``(name, note)``.
    """
    notes = {}
    for pattern, note in FILE_NOTES.items():
        for region in regions if "{region}" in pattern else [None]:
            notes[pattern.format(region=region)] = note.format(region=region)
    by_region: dict[str, str] = {}  # a region's files together: map, COG, pictures, suggestions
    for region in regions:
        by_region |= {k: v for k, v in notes.items() if k.startswith(f"{region}.")
                      or k.startswith(f"{region}_")}  # fmt: skip
    notes = {k: v for k, v in notes.items() if k not in by_region} | by_region
    unknown = sorted(set(names) - set(notes))
    if unknown:
        raise XcropInputError(
            f"No line for {unknown} in the report's index: add one to xcrop._report.FILE_NOTES."
        )
    return [(name, note) for name, note in notes.items() if name in set(names)]


def _share(x: float) -> str:
    """A share as a percentage: "22 %", "< 1 %" (not "0 %") for a few in a thousand."""
    return "< 1 %" if 0 < x < 0.005 else f"{100 * x:.0f} %"


def metrics_reading(table: pd.DataFrame) -> str:
    """One line that reads a metrics table: the most accurate method with its 95 %
    interval, the methods inside it, the best AUC and the least accurate.

    Parameters
    ----------
    table
        :func:`xcrop.results_table`: columns ``accuracy``, ``auc`` and ``n``, one row
        per method.

    Returns
    -------
    str
        The reading, from the numbers.
    """
    accuracy = table["accuracy"].astype("float64")
    best, worst = accuracy.idxmax(), accuracy.idxmin()
    p, n = float(accuracy[best]), int(table.loc[best, "n"])
    half = 1.96 * math.sqrt(p * (1 - p) / n) if n else math.nan
    close = [m for m in accuracy.index if m != best and accuracy[m] >= p - half]
    text = (
        f"On {n} test points the {best} is the most accurate ({p:.2f}, 95 % interval "
        f"± {half:.2f}); "
    )
    if close:
        text += f"{', '.join(close)} {'is' if len(close) == 1 else 'are'} within that interval"
        text += ", so this test set does not tell them apart; "
    else:
        text += "no other method comes within that interval; "
    auc = table["auc"].astype("float64")
    if auc.notna().any():
        text += f"the highest AUC is the {auc.idxmax()}'s ({auc.max():.2f}); "
    return text + f"the least accurate is the {worst} ({accuracy[worst]:.2f})."


@dataclass(frozen=True)
class Facts:
    """What the report says, as plain data (see :func:`write_report`).

    Attributes
    ----------
    preset, seed
        The simulated archive's preset and seed.
    season
        The season composited (``"start/end"``).
    regions
        Each mapped region's facts: ``bbox`` (lon/lat), ``epsg``, ``pixels`` ((y, x), 10 m),
        ``acquisitions``.
    periods
        The composite's periods' first days; ``period_days`` their length.
    bands
        The composite's bands.
    global_regions
        Where the crowd labels come from.
    counts
        ``local``/``hand`` (samples kept / labels read), ``global``/``crowd``, ``test``,
        ``test_crop`` (test points that are crop).
    test_report
        :func:`xcrop.consensus`'s report: ``read``, ``kept``, ``dropped``.
    labellers
        One row per labeller code: ``file``, ``base error``, ``extra crop->non-crop``,
        ``extra non-crop->crop`` (the simulated error rates).
    agreement
        ``unanimous`` and ``all_labelled``.
    metrics
        :func:`xcrop.results_table` on the test set; ``metrics_md`` as Markdown.
    per_class
        Per land-cover class over both regions: ``class``, ``crop``, ``pixels``,
        ``mapped_crop``; ``per_class_md`` as Markdown.
    no_clear
        Share of pixels without a usable observation, one row per period (first day), one
        column per region; ``rgb_period`` the position of the period the RGB shows.
    tables
        Other Markdown tables by title (area, active round, sensitivity).
    figures
        ``(png name, caption)`` of the figures, in order; ``maps`` those of the maps.
    files
        The names of every file of the folder (README.md and report.html included).
    """

    preset: str
    seed: int
    season: str
    regions: Mapping[str, Mapping]
    periods: Sequence[str]
    period_days: int
    bands: Sequence[str]
    global_regions: Sequence[str]
    counts: Mapping[str, int]
    test_report: Mapping
    labellers: pd.DataFrame
    agreement: Mapping[str, int]
    metrics: pd.DataFrame
    metrics_md: str
    per_class: pd.DataFrame
    per_class_md: str
    no_clear: pd.DataFrame
    rgb_period: int
    tables: Mapping[str, str] = field(default_factory=dict)
    figures: Sequence[tuple[str, str]] = ()
    maps: Sequence[tuple[str, str]] = ()
    files: Sequence[str] = ()


SIMULATED = (
    "Everything in this folder is simulated. The Sentinel-2 imagery, the hand labels, the "
    "crowd labels, the test labellers, the land cover used as truth and the two 'existing "
    "maps' all come from xcrop's simulated archive (`xcrop.datasets`); none of it observes "
    "the real Togo. The numbers show that the method runs end to end and how it behaves on "
    "this archive; they are not the accuracy of a real cropland map."
)


def _what_was_mapped(f: Facts) -> list:
    start, end = f.season.split("/")
    regions = [
        f"`{name}`: {r['pixels'][0]} x {r['pixels'][1]} pixels of 10 m "
        f"({r['pixels'][0] * r['pixels'][1] / 1e4:.2f} km²) in EPSG:{r['epsg']}, lon/lat bbox "
        f"{', '.join(f'{v:.4f}' for v in r['bbox'])}; {r['acquisitions']} simulated "
        "Sentinel-2 acquisitions"
        for name, r in f.regions.items()
    ]
    return [
        ("h2", "What was mapped"),
        ("p", f"Cropland in {len(f.regions)} simulated regions named after Togo, "
              f"season {start} to {end}:"),
        ("ul", regions),
        ("p", f"Each pixel's series: {len(f.periods)} least-cloudy composites of "
              f"{f.period_days} days each (first {f.periods[0]}, last {f.periods[-1]}), bands "
              f"{', '.join(f.bands)}. Simulated archive preset `{f.preset}`, seed {f.seed}."),
    ]  # fmt: skip


def _data(f: Facts) -> list:
    c = f.counts
    return [
        ("h2", "With what data (all simulated)"),
        ("ul", [
            f"Local training labels: {c['local']} samples from {c['hand']} simulated hand "
            "labels (points and polygons photo-interpreted in the two regions; a label "
            "outside both regions or on no data is dropped).",
            f"Global training labels: {c['global']} samples from {c['crowd']} simulated crowd "
            f"labels (3 to 5 votes per point, voted) in {', '.join(f.global_regions)}, other "
            "years; they train the multi-headed LSTM's global head only.",
            f"Test set: {c['test']} points ({c['test_crop']} crop, {c['test'] - c['test_crop']} "
            "non-crop), see below.",
        ]),
    ]  # fmt: skip


def _test_set(f: Facts) -> list:
    r = f.test_report
    dropped = ", ".join(f"{k}: {v}" for k, v in r["dropped"].items()) or "none"
    rows = ["| labeller | file | base error | extra crop → non-crop | extra non-crop → crop |",
            "|---|---|---|---|---|"]  # fmt: skip
    for code, row in f.labellers.iterrows():
        rows.append(
            f"| {code} | {row['file']} | {_share(row['base error'])} | "
            f"{_share(row['extra crop->non-crop'])} | {_share(row['extra non-crop->crop'])} |"
        )
    codes = ", ".join(f"`{code}`" for code in f.labellers.index)
    return [
        ("h2", "The test set and how it was made"),
        ("p", f"Random points in the two regions, each labelled crop or non-crop by "
              f"{len(f.labellers)} labellers ({codes}), kept where they all labelled it and "
              f"voted by majority (`xcrop.consensus`): {r['read']} points read, {r['kept']} "
              f"kept, dropped: {dropped} (a tie: two say crop, two non-crop). All "
              f"{len(f.labellers)} agree on {f.agreement['unanimous']} of the "
              f"{f.agreement['all_labelled']} points they all labelled."),
        ("p", "The labeller codes are those in the names of the real Togo test set's files, "
              "one per labeller (CropHarvest's `random_sample_cn`, `random_sample_bm`, "
              "`BB_random_sample_1k`, `random_sample_hrk`), which the simulated files copy, "
              "column names included. Here each code is a simulated "
              "labeller who errs at its own rate, more on points near field edges and on "
              "classes easily confused with crop:"),
        ("table", "\n".join(rows)),
    ]  # fmt: skip


def _metrics(f: Facts) -> list:
    blocks = [
        ("h2", "How good: the metrics on the test set"),
        ("p", "Accuracy, precision, recall and F1 at probability 0.5; AUC and Brier score of "
              "the probabilities; n: test points scored. The two existing maps are simulated "
              "too (a 100 m crop-fraction map and a 30 m class map with typical errors)."),
        ("table", f.metrics_md),
        ("p", "Reading: " + metrics_reading(f.metrics)),
    ]  # fmt: skip
    for title, table in f.tables.items():
        blocks += [("p", title + ":"), ("table", table)]
    return blocks


def _caveats(f: Facts) -> list:
    classes = f.per_class.dropna(subset=["mapped_crop"])
    other = classes[~classes["crop"].astype(bool)].sort_values("mapped_crop", ascending=False)
    crop = classes[classes["crop"].astype(bool)].sort_values("mapped_crop")
    worst = other[other["mapped_crop"] > 0].head(3)
    mapped = "; ".join(f"{r['class']} {_share(r['mapped_crop'])}" for _, r in worst.iterrows())
    missed = "; ".join(f"{r['class']} {_share(r['mapped_crop'])}" for _, r in crop.iterrows())
    shown = f.no_clear.iloc[f.rgb_period]
    worst_period = f.no_clear.max(axis=1).idxmax()
    start = pd.Timestamp(shown.name)
    period = f"{shown.name} to {(start + pd.Timedelta(days=f.period_days - 1)):%Y-%m-%d}"
    if (shown > 0).any():
        in_rgb = (
            ", ".join(f"{_share(v)} of {region}'s pixels" for region, v in shown.items())
            + " had no usable observation: the composite shows a cloudy observation or the "
            "nearest period's there"
        )
    else:
        in_rgb = "every pixel had a usable observation"
    items = [
        "Simulated data: see the note at the top.",
        "Non-crop most often mapped as crop (share of the class's pixels, both regions): "
        + (mapped or "none")
        + f". Crop classes mapped crop (recall): {missed}.",
        f"Periods with few clear views: in the period the true-colour pictures show "
        f"({period}) {in_rgb}; the worst period is the one from {worst_period} "
        f"({_share(f.no_clear.loc[worst_period].max())} of a region's pixels without one).",
        f"The test set is small ({f.counts['test']} points): a difference of a few "
        "hundredths between methods is within sampling noise (see the reading above).",
    ]
    percent = f.no_clear.map(_share).rename_axis("period")
    no_clear_md = "\n".join(
        ["| period | " + " | ".join(percent.columns) + " |", "|---" * (1 + percent.shape[1]) + "|"]
        + [f"| {p} | " + " | ".join(row) + " |" for p, row in percent.iterrows()]
    )
    return [
        ("h2", "Caveats"),
        ("ul", items),
        ("p", "The map's errors per land-cover class (share mapped crop: recall of the crop "
              "classes, false-positive rate of the others):"),
        ("table", f.per_class_md),
        ("p", "Share of pixels without a usable (clear) observation, per period:"),
        ("table", no_clear_md),
    ]  # fmt: skip


def _document(f: Facts, folder: Path) -> list:
    blocks = [
        ("h1", "xcrop demo: a cropland map from simulated Sentinel-2 time series"),
        ("note", SIMULATED),
        ("p", metrics_reading(f.metrics) + " Details, maps and caveats below; "
              "the folder's files are listed at the end."),
        *_what_was_mapped(f),
        *_data(f),
        *_test_set(f),
        *_metrics(f),
        ("h2", "Figures"),
        *[("img", folder / name, caption) for name, caption in f.figures],
        ("h2", "The maps"),
        ("p", "Crop probability of every pixel by the multi-headed LSTM (blank: no data), and "
              "a true-colour picture of one period's composite of each region."),
        *[("img", folder / name, caption) for name, caption in f.maps],
        *_caveats(f),
        ("h2", "Files"),
        ("files", file_notes(f.files, list(f.regions))),
    ]  # fmt: skip
    others = not_written(folder, f.files)
    if others:
        blocks.append(("p", "Also in this folder, not written by this run (left by an earlier "
                            "run or put here by hand): " + ", ".join(others) + "."))  # fmt: skip
    return blocks


def not_written(folder: Path, files: Sequence[str]) -> list[str]:
    """The names in ``folder`` other than ``files`` (and the report's own two files).

    Examples
    --------
    >>> not_written(Path("."), [])  # doctest: +SKIP
    ['old_map.tif']
    """
    if not folder.is_dir():
        return []
    ours = {*files, "README.md", "report.html"}
    return sorted(p.name for p in folder.iterdir() if p.name not in ours)


def write_report(folder: str | Path, facts: Facts) -> list[Path]:
    """Write ``README.md`` and ``report.html`` into ``folder``.

    Parameters
    ----------
    folder
        The report folder, holding the figures named in ``facts``.
    facts
        What the report says.

    Returns
    -------
    list of pathlib.Path
        The two files.
    """
    folder = Path(folder)
    missing = sorted({"README.md", "report.html"} - set(facts.files))
    if missing:
        raise XcropInputError(f"facts.files must list the report's own files too; add {missing}.")
    blocks = _document(facts, folder)
    readme, page = folder / "README.md", folder / "report.html"
    readme.write_text(to_markdown(blocks), encoding="utf-8")
    page.write_text(to_html(blocks, "xcrop demo report (simulated data)"), encoding="utf-8")
    return [readme, page]
