"""Mistaken ``xcrop`` invocations: each ends with one line on stderr that names the input
and the fix in command-line terms, exit status 1 (2 for usage errors), no traceback, and
no output created.

Every case runs in-process through :func:`xcrop._cli.main` (with stderr captured at the
file-descriptor level, so warnings and GDAL messages count too); a handful also run
through the real ``xcrop`` script in a subprocess. Cases that would need heavy work
(training, a search, a write) must fail before it: they use real inputs beside the one
mistake.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
#: A real Planetary Computer search page (33 items of 2019-01-01), used as a static catalog.
ITEMS = SHARED / "stac-items" / "planetary-computer_sentinel-2-l2a_search-page.json"
BBOX = "173.6,57.7,174.1,58.3"  # inside the first items of that page
DAY = "2019-01-01"
#: Python advice that a command-line user cannot follow.
PYTHON_ADVICE = ("overwrite=True", "head=", "lon=", "xcrop.write_composite", "xcrop.train",
                 "model.save", "to_zarr again", "crs=", "network=", "on_error=",
                 "memory_budget=", "xcrop.search", "Traceback")  # fmt: skip
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@dataclass(frozen=True)
class Case:
    """``args`` may hold ``{d}`` (the fixture folder), ``{items}``, ``{bbox}`` and ``{day}``;
    ``says`` are fragments the error line must contain."""

    id: str
    args: tuple[str, ...]
    code: int
    says: tuple[str, ...] = ()
    as_root: bool = True  # False: permission bits do not stop root


def case(id, args, code, *says, as_root=True) -> Case:
    return Case(id, tuple(args.split()), code, says, as_root)


OUT_FLAGS = ("--out", "--cog")
CASES = [
    # -- the command itself ---------------------------------------------------------------
    case("unknown-command", "serach {bbox} {day}", 2, "No such command", "--help"),
    case("missing-arguments", "search", 2, "Missing argument", "BBOX"),
    case("unknown-option", "train {d}/local.npz --out {d}/m.pt --epochs 3", 2, "--epochs"),
    # -- search ---------------------------------------------------------------------------
    case("bbox-three-numbers", "search 1,2,3 {day}", 2, "BBOX", "west,south,east,north"),
    case("bbox-words", "search a,b,c,d {day}", 2, "BBOX", "west,south,east,north"),
    case("bbox-nan", "search nan,8,1,9 {day}", 2, "BBOX", "finite"),
    case("bbox-latitude-200", "search 1,200,2,201 {day}", 2, "BBOX", "latitude"),
    case("bbox-longitude-500", "search 500,8,501,9 {day}", 2, "BBOX", "longitude"),
    case("bbox-south-above-north", "search 1,9,2,8 {day}", 2, "BBOX", "south"),
    case("date-month-13", "search {bbox} 2019-13-45", 2, "DATETIME", "2019-13-45"),
    case("date-reversed", "search {bbox} 2020-03-31/2019-03-01", 2, "DATETIME", "after"),
    case("date-words", "search {bbox} yesterday", 2, "DATETIME", "yesterday"),
    case("date-three-parts", "search {bbox} 2019-01-01/2019-02-01/2019-03-01", 2, "DATETIME"),
    case("max-cloud-150", "search {bbox} {day} --max-cloud 150", 2, "--max-cloud"),
    case("catalog-missing-file", "search {bbox} {day} --catalog {d}/nope.json", 1, "nope.json"),
    case("catalog-not-json", "search {bbox} {day} --catalog {d}/notes.txt", 1, "notes.txt"),
    case("catalog-unknown-name", "search {bbox} {day} --catalog earth-serch", 1, "earth-serch"),
    case("search-empty", "search -30,-30,-29.9,-29.9 {day} --catalog {items}", 1, "No Sentinel-2"),
    case("search-out-missing-parent", "search {bbox} {day} --catalog {items} "
         "--out {d}/missing/dir/items.json", 1, "--out", "missing/dir", "does not exist"),
    case("search-out-nonexistent-root", "search {bbox} {day} --catalog {items} "
         "--out /nonexistent/dir/items.json", 1, "--out", "/nonexistent/dir"),
    case("search-out-under-a-file", "search {bbox} {day} --catalog {items} "
         "--out {d}/afile/items.json", 1, "--out", "afile", "not a folder"),
    case("search-out-proc", "search {bbox} {day} --catalog {items} --out /proc/items.json",
         1, "--out", "/proc"),
    case("search-out-is-a-folder", "search {bbox} {day} --catalog {items} --out {d}/adir",
         1, "--out", "adir", "folder"),
    case("search-out-read-only-folder", "search {bbox} {day} --catalog {items} "
         "--out {d}/ro/items.json", 1, "--out", "ro", as_root=False),
    # -- composite ------------------------------------------------------------------------
    case("composite-no-out", "composite {bbox} {day} --catalog {items}", 2, "--out"),
    case("composite-out-missing-parent", "composite {bbox} {day} --catalog {items} --start {day} "
         "--out {d}/missing/dir/c.zarr", 1, "--out", "missing/dir", "does not exist"),
    case("composite-out-under-a-file", "composite {bbox} {day} --catalog {items} --start {day} "
         "--out {d}/afile/c.zarr", 1, "--out", "not a folder"),
    case("composite-out-proc", "composite {bbox} {day} --catalog {items} --start {day} "
         "--out /proc/c.zarr",
         1, "--out", "/proc"),
    case("composite-out-is-a-file", "composite {bbox} {day} --catalog {items} --start {day} "
         "--out {d}/notes.txt", 1, "--out", "notes.txt", "file"),
    case("composite-out-foreign-folder", "composite {bbox} {day} --catalog {items} --start {day} "
         "--out {d}/adir", 1, "--out", "adir", "not a Zarr store"),
    case("composite-chunks-0", "composite {bbox} {day} --catalog {items} --chunks 0 "
         "--out {d}/c.zarr", 2, "--chunks"),
    case("composite-start-feb-30", "composite {bbox} {day} --catalog {items} "
         "--start 2019-02-30 --out {d}/c.zarr", 2, "--start", "2019-02-30"),
    case("composite-dates-reversed", "composite {bbox} 2020-03-31/2019-03-01 --catalog {items} "
         "--out {d}/c.zarr", 2, "DATETIME"),
    case("composite-empty-search", "composite -30,-30,-29.9,-29.9 {day} --catalog {items} "
         "--out {d}/c.zarr", 1, "No Sentinel-2"),
    # -- sample ---------------------------------------------------------------------------
    case("sample-labels-missing", "sample {d}/nope.shp --composite {d}/comp.zarr "
         "--out {d}/s.npz", 2, "LABELS", "does not exist"),
    case("sample-no-source", "sample {d}/labels.csv --out {d}/s.npz", 2, "--composite"),
    case("sample-two-sources", "sample {d}/labels.csv --composite {d}/comp.zarr "
         "--catalog {items} --out {d}/s.npz", 2, "--composite", "--catalog"),
    case("sample-labels-not-vector", "sample {d}/notes.txt --composite {d}/comp.zarr "
         "--out {d}/s.npz", 1, "notes.txt"),
    case("sample-csv-without-lon-lat", "sample {d}/xy.csv --composite {d}/comp.zarr "
         "--out {d}/s.npz", 1, "lon", "columns"),
    case("sample-no-label-column", "sample {d}/labels.csv --label crop "
         "--composite {d}/comp.zarr --out {d}/s.npz", 1, "--label", "'crop'"),
    case("sample-composite-not-a-store", "sample {d}/labels.csv --composite {d}/adir "
         "--out {d}/s.npz", 1, "adir", "xcrop composite"),
    case("sample-labels-outside", "sample {d}/outside.csv --composite {d}/comp.zarr "
         "--out {d}/s.npz", 1, "outside"),
    case("sample-utm-csv", "sample {d}/utm.csv --composite {d}/comp.zarr --out {d}/s.npz",
         1, "utm.csv"),
    case("sample-utm-csv-catalog", "sample {d}/utm.csv --catalog {items} --datetime {day} "
         "--out {d}/s.npz", 1, "utm.csv"),
    case("sample-year-column-missing", "sample {d}/labels.csv --catalog {items} "
         "--year-column season --out {d}/s.npz", 1, "season", "--year-column"),
    case("sample-catalog-missing-file", "sample {d}/labels.csv --catalog {d}/nope.json "
         "--datetime {day} --out {d}/s.npz", 1, "nope.json"),
    case("sample-out-missing-parent", "sample {d}/labels.csv --composite {d}/comp.zarr "
         "--out {d}/missing/dir/s.npz", 1, "--out", "missing/dir", "does not exist"),
    case("sample-out-under-a-file", "sample {d}/labels.csv --composite {d}/comp.zarr "
         "--out {d}/afile/s.npz", 1, "--out", "not a folder"),
    case("sample-out-proc", "sample {d}/labels.csv --composite {d}/comp.zarr "
         "--out /proc/s.npz", 1, "--out", "/proc"),
    case("sample-out-is-a-folder", "sample {d}/labels.csv --composite {d}/comp.zarr "
         "--out {d}/adir", 1, "--out", "folder"),
    # -- train ----------------------------------------------------------------------------
    case("train-local-missing", "train {d}/nope.npz --out {d}/m.pt", 2, "LOCAL", "does not exist"),
    case("train-text-file", "train {d}/notes.txt --out {d}/m.pt", 1, "notes.txt", "xcrop sample"),
    case("train-text-as-npz", "train {d}/fake.npz --out {d}/m.pt", 1, "fake.npz", "xcrop sample"),
    case("train-npz-of-other-arrays", "train {d}/wrongkeys.npz --out {d}/m.pt", 1,
         "wrongkeys.npz", "xcrop sample"),
    case("train-global-text-file", "train {d}/local.npz --global {d}/notes.txt "
         "--out {d}/m.pt", 1, "--global", "notes.txt"),
    case("train-global-other-bands", "train {d}/local.npz --global {d}/otherbands.npz "
         "--out {d}/m.pt", 1, "bands"),
    case("train-one-class", "train {d}/oneclass.npz --out {d}/m.pt", 1, "both classes"),
    case("train-nan", "train {d}/nan.npz --out {d}/m.pt", 1, "NaN", "xcrop sample"),
    case("train-no-out", "train {d}/local.npz", 2, "--out"),
    case("train-out-missing-parent", "train {d}/local.npz --no-grid-search --max-epochs 2 "
         "--out {d}/missing/dir/m.pt", 1, "--out", "missing/dir", "does not exist"),
    case("train-out-nonexistent-root", "train {d}/local.npz --no-grid-search --max-epochs 2 "
         "--out /nonexistent/dir/m.pt", 1, "--out", "/nonexistent/dir"),
    case("train-out-under-a-file", "train {d}/local.npz --no-grid-search --max-epochs 2 "
         "--out {d}/afile/m.pt", 1, "--out", "not a folder"),
    case("train-out-proc", "train {d}/local.npz --no-grid-search --max-epochs 2 "
         "--out /proc/m.pt", 1, "--out", "/proc"),
    case("train-out-is-a-folder", "train {d}/local.npz --no-grid-search --max-epochs 2 "
         "--out {d}/adir", 1, "--out", "folder"),
    case("train-out-read-only-folder", "train {d}/local.npz --no-grid-search --max-epochs 2 "
         "--out {d}/ro/m.pt", 1, "--out", as_root=False),
    # -- predict --------------------------------------------------------------------------
    case("predict-store-missing", "predict {d}/nope.zarr {d}/single.pt --out {d}/map.zarr",
         2, "STORE", "does not exist"),
    case("predict-model-text", "predict {d}/comp.zarr {d}/notes.txt --out {d}/map.zarr",
         1, "notes.txt", "xcrop train"),
    case("predict-store-not-composite", "predict {d}/adir {d}/single.pt --out {d}/map.zarr",
         1, "adir", "xcrop composite"),
    case("predict-model-other-bands", "predict {d}/comp.zarr {d}/other.pt --out {d}/map.zarr",
         1, "bands"),
    case("predict-head-global-single", "predict {d}/comp.zarr {d}/single.pt --head global "
         "--out {d}/map.zarr", 1, "--head local"),
    case("predict-head-bogus", "predict {d}/comp.zarr {d}/single.pt --head both "
         "--out {d}/map.zarr", 2, "--head"),
    case("predict-dtype-int16", "predict {d}/comp.zarr {d}/single.pt --dtype int16 "
         "--out {d}/map.zarr", 2, "--dtype"),
    case("predict-out-missing-parent", "predict {d}/comp.zarr {d}/single.pt "
         "--out {d}/missing/dir/map.zarr", 1, "--out", "missing/dir", "does not exist"),
    case("predict-out-nonexistent-root", "predict {d}/comp.zarr {d}/single.pt "
         "--out /nonexistent/dir/out.zarr", 1, "--out", "/nonexistent/dir"),
    case("predict-out-under-a-file", "predict {d}/comp.zarr {d}/single.pt "
         "--out {d}/afile/map.zarr", 1, "--out", "not a folder"),
    case("predict-out-proc", "predict {d}/comp.zarr {d}/single.pt --out /proc/map.zarr",
         1, "--out", "/proc"),
    case("predict-out-is-a-file", "predict {d}/comp.zarr {d}/single.pt --out {d}/notes.txt",
         1, "--out", "file"),
    case("predict-out-foreign-folder", "predict {d}/comp.zarr {d}/single.pt --out {d}/adir",
         1, "--out", "not a Zarr store"),
    case("predict-out-is-the-store", "predict {d}/comp.zarr {d}/single.pt --out {d}/comp.zarr",
         1, "--out", "STORE itself"),
    case("predict-out-other-grid", "predict {d}/comp.zarr {d}/single.pt --out {d}/grid.zarr",
         1, "--overwrite"),
    case("predict-cog-missing-parent", "predict {d}/comp.zarr {d}/single.pt --out {d}/map.zarr "
         "--cog {d}/missing/dir/map.tif", 1, "--cog", "missing/dir", "does not exist"),
    case("predict-cog-under-a-file", "predict {d}/comp.zarr {d}/single.pt --out {d}/map.zarr "
         "--cog {d}/afile/map.tif", 1, "--cog", "not a folder"),
    case("predict-cog-proc", "predict {d}/comp.zarr {d}/single.pt --out {d}/map.zarr "
         "--cog /proc/map.tif", 1, "--cog", "/proc"),
    case("predict-cog-is-a-folder", "predict {d}/comp.zarr {d}/single.pt --out {d}/map.zarr "
         "--cog {d}/adir", 1, "--cog", "folder"),
    # -- evaluate -------------------------------------------------------------------------
    case("evaluate-neither", "evaluate {d}/local.npz", 2, "--model", "--map"),
    case("evaluate-both", "evaluate {d}/local.npz --model {d}/single.pt --map {d}/map.tif",
         2, "--model", "--map"),
    case("evaluate-points-with-model", "evaluate {d}/points.geojson --model {d}/single.pt",
         1, "points.geojson", "xcrop sample"),
    case("evaluate-text-as-npz", "evaluate {d}/fake.npz --model {d}/single.pt", 1, "fake.npz"),
    case("evaluate-model-text", "evaluate {d}/local.npz --model {d}/notes.txt", 1,
         "notes.txt", "xcrop train"),
    case("evaluate-other-bands", "evaluate {d}/otherbands.npz --model {d}/single.pt", 1,
         "bands"),
    case("evaluate-map-text", "evaluate {d}/points.geojson --map {d}/notes.txt", 1,
         "notes.txt"),
    case("evaluate-map-no-crs", "evaluate {d}/points.geojson --map {d}/nocrs.tif", 1,
         "nocrs.tif", "CRS"),
    case("evaluate-map-no-label", "evaluate {d}/points.geojson --map {d}/map.tif "
         "--label crop", 1, "--label", "'crop'"),
    case("evaluate-test-text", "evaluate {d}/notes.txt --map {d}/map.tif", 1, "notes.txt"),
    case("evaluate-out-missing-parent", "evaluate {d}/local.npz --model {d}/single.pt "
         "--out {d}/missing/dir/m.csv", 1, "--out", "missing/dir", "does not exist"),
    case("evaluate-out-under-a-file", "evaluate {d}/local.npz --model {d}/single.pt "
         "--out {d}/afile/m.csv", 1, "--out", "not a folder"),
    case("evaluate-out-proc", "evaluate {d}/local.npz --model {d}/single.pt --out /proc/m.csv",
         1, "--out", "/proc"),
    case("evaluate-out-is-a-folder", "evaluate {d}/local.npz --model {d}/single.pt "
         "--out {d}/adir", 1, "--out", "folder"),
    # -- demo -----------------------------------------------------------------------------
    case("demo-preset-huge", "demo --preset huge --out {d}/report", 2, "--preset"),
    case("demo-out-missing-parent", "demo --preset tiny --out {d}/missing/dir/report", 1,
         "--out", "missing/dir", "does not exist"),
    case("demo-out-under-a-file", "demo --preset tiny --out {d}/afile/report", 1, "--out",
         "not a folder"),
    case("demo-out-is-a-file", "demo --preset tiny --out {d}/notes.txt", 1, "--out", "file"),
    case("demo-out-proc", "demo --preset tiny --out /proc/report", 1, "--out", "/proc"),
]  # fmt: skip
#: The cases that also go through the real ``xcrop`` script.
SUBPROCESS = ("unknown-command", "date-month-13", "train-text-file", "train-out-missing-parent",
              "predict-head-global-single", "predict-out-nonexistent-root", "search-out-proc",
              "evaluate-map-text", "sample-labels-not-vector", "demo-out-under-a-file")  # fmt: skip


def build_fixtures(d: Path) -> dict[str, str]:
    """Small real inputs (a composite store, models, samples, labels, rasters) and the
    wrong files beside them; returns the placeholders of :data:`CASES`."""
    import pandas as pd
    import rasterio
    import rioxarray  # noqa: F401
    import xarray as xr
    from pyproj import Transformer

    import xcrop
    from xcrop._composite import Composite

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    bands = ("B04", "B08", "NDVI")
    time = np.datetime64("2019-03-01") + np.arange(12) * np.timedelta64(30, "D")
    y, x = 1_000_000 - 10 * np.arange(8) - 5.0, 300_000 + 10 * np.arange(8) + 5.0
    coords = {"time": time, "y": y, "x": x}
    data = xr.DataArray(rng.random((12, 3, 8, 8), dtype="float32"), name="composite",
                        dims=("time", "band", "y", "x"),
                        coords={**coords, "band": list(bands)})  # fmt: skip
    counts = xr.DataArray(np.ones((12, 8, 8), "uint8"), dims=("time", "y", "x"), coords=coords,
                          name="counts")  # fmt: skip
    dates = xr.DataArray(time[:, None, None] + np.zeros((12, 8, 8), "timedelta64[ns]"),
                         dims=("time", "y", "x"), coords=coords, name="dates")  # fmt: skip
    comp = Composite(*(a.rio.write_crs("EPSG:32631").chunk({"y": 4, "x": 4})
                       for a in (data, counts, dates)))  # fmt: skip
    xcrop.write_composite(comp, d / "comp.zarr", progress=False)
    xcrop.MultiHeadLSTM(bands, multi_head=False).save(d / "single.pt")
    xcrop.MultiHeadLSTM(("B02", "B03")).save(d / "other.pt")

    def samples(n=20, bands=bands, y=None, nan=False):
        X = rng.random((n, 12, len(bands)), dtype="float32")
        if nan:
            X[0, 0, 0] = np.nan
        y = np.arange(n) % 2 if y is None else y
        return xcrop.Samples(X, np.asarray(y, "int8"), np.ones(n, bool), np.arange(n),
                             bands, np.ones((n, 12), "uint8"))  # fmt: skip

    samples().save(d / "local.npz")
    samples(y=np.ones(20)).save(d / "oneclass.npz")
    samples(nan=True).save(d / "nan.npz")
    samples(bands=("B02", "B03")).save(d / "otherbands.npz")
    np.savez(d / "wrongkeys.npz", a=np.arange(3))
    (d / "notes.txt").write_text("field notes, not data\n")
    (d / "fake.npz").write_text("not an npz\n")
    (d / "afile").write_text("a regular file where a folder is expected\n")
    (d / "adir").mkdir(exist_ok=True)
    (d / "adir" / "keep.txt").write_text("a user's folder: xcrop must not replace it\n")
    (d / "ro").mkdir(exist_ok=True)
    (d / "ro").chmod(0o500)
    to_lonlat = Transformer.from_crs(32631, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(x[[1, 3, 5, 6]], y[[1, 3, 5, 6]])
    labels = pd.DataFrame({"lon": lon, "lat": lat, "label": [1, 0, 1, 0], "year": 2019})
    labels.to_csv(d / "labels.csv", index=False)
    labels.rename(columns={"lon": "x", "lat": "y"}).to_csv(d / "xy.csv", index=False)
    labels.assign(lon=x[[1, 3, 5, 6]], lat=y[[1, 3, 5, 6]]).to_csv(d / "utm.csv", index=False)
    labels.assign(lon=10 + lon - lon.min(), lat=50.0).to_csv(d / "outside.csv", index=False)
    xcrop.read_labels(labels, label="label").to_file(d / "points.geojson", driver="GeoJSON")
    prob = xr.DataArray(rng.random((8, 8), dtype="float32"), dims=("y", "x"),
                        coords={"y": y, "x": x}, name="probability")  # fmt: skip
    prob = prob.rio.write_crs(32631)
    prob.rio.to_raster(d / "map.tif")
    with rasterio.open(d / "nocrs.tif", "w", driver="GTiff", width=8, height=8, count=1,
                       dtype="float32") as dst:  # fmt: skip
        dst.write(prob.values, 1)
    xcrop.to_zarr(prob.isel(y=slice(0, 4)).chunk(4), d / "grid.zarr", progress=False)
    return {"d": str(d), "items": str(ITEMS), "bbox": BBOX, "day": DAY}


def argv(c: Case, places: dict[str, str]) -> list[str]:
    return [a.format(**places) for a in c.args]


def outputs(args: list[str]) -> list[Path]:
    """The paths given to --out / --cog, and the folders above them."""
    paths = [Path(v).absolute() for k, v in itertools.pairwise(args) if k in OUT_FLAGS]
    return [q for p in paths for q in (p, *p.parents)]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    return build_fixtures(tmp_path_factory.mktemp("cli-errors"))


def check(c: Case, code: int, err: str, before: dict[Path, bool]) -> None:
    lines = err.strip().splitlines()
    assert code == c.code, f"exit {code} (expected {c.code}): {err}"
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err}"
    line = lines[0]
    assert line.startswith("xcrop"), line
    for fragment in c.says:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    for advice in PYTHON_ADVICE:
        assert advice not in line, f"Python advice {advice!r} in {line!r}"
    for path, existed in before.items():
        assert path.exists() == existed, f"{path} {'removed' if existed else 'created'}"


def _cleanup(before: dict[Path, bool]) -> None:
    """Remove what a failing case created (outputs and their missing parents)."""
    for path, existed in sorted(before.items(), key=lambda kv: -len(str(kv[0]))):
        if not existed and path.exists() and not str(path).startswith("/proc"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_one_clear_line(c, places, capfd):
    from xcrop._cli import main

    if ROOT and not c.as_root:
        pytest.skip("root writes through permission bits")
    args = argv(c, places)
    before = {p: p.exists() for p in outputs(args)}
    capfd.readouterr()
    try:
        code = main(args)
        check(c, code, capfd.readouterr().err, before)
    finally:
        _cleanup(before)


def xcrop_cli(args: list[str], **env) -> subprocess.CompletedProcess:
    exe = shutil.which("xcrop", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "xcrop._cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})  # fmt: skip


@pytest.mark.parametrize("name", SUBPROCESS)
def test_through_the_real_script(name, places):
    c = next(c for c in CASES if c.id == name)
    args = argv(c, places)
    before = {p: p.exists() for p in outputs(args)}
    try:
        result = xcrop_cli(args)
        check(c, result.returncode, result.stderr, before)
    finally:
        _cleanup(before)


def test_python_m_xcrop_cli_runs_main(places):
    result = subprocess.run([sys.executable, "-m", "xcrop._cli", "search", "1,2,3", DAY],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("xcrop search: error: ")


def test_debug_shows_the_traceback(places):
    args = argv(next(c for c in CASES if c.id == "train-text-file"), places)
    result = xcrop_cli(args, XCROP_DEBUG="1")
    assert result.returncode == 1 and "Traceback" in result.stderr
    flag = xcrop_cli(["--debug", *args])
    assert flag.returncode == 1 and "Traceback" in flag.stderr


def test_an_unexpected_error_is_one_line_with_a_bug_hint(monkeypatch, capfd):
    from xcrop import _cli as cli

    def broken(*_, **__):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("xcrop._catalog.find_items", broken)
    assert cli.main(["search", "1,8,2,9", DAY]) == 1
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xcrop: error: ZeroDivisionError")
    assert "report" in lines[0] and "XCROP_DEBUG=1" in lines[0]


def test_at_least_fifty_cases():
    assert len(CASES) >= 50 and len({c.id for c in CASES}) == len(CASES)


#: Library messages with Python advice, as xcrop's modules word them (old and new).
LIBRARY_MESSAGES = [
    "x.zarr is not a store written by xcrop.to_zarr (or its first write stopped before the "
    "metadata was complete); pass overwrite=True to replace it.",
    "x.zarr holds another grid (shape [4, 8] (store) vs [8, 8]); pass overwrite=True to "
    "replace it, or write to another path.",
    "x.zarr is incomplete: 3 of 4 blocks are missing; call to_zarr again to resume (same "
    "probabilities, same dtype).",
    "No composite store at x; write one with xcrop.write_composite.",
    "x is not a store written by xcrop; write it with xcrop.write_composite.",
    "This model is single-headed; predict with head='local'.",
    "head='both'; use 'local' or 'global'.",
    "A table of labels needs coordinates: columns 'lon'/'lat' (pass lon=, lat= for other "
    "names) or a WKT 'sample_geom'; it has ['x', 'y'].",
    "The labels have no CRS; pass crs='EPSG:4326' (or theirs).",
    "Samples contain NaN; sample them with xcrop.sample (which drops them).",
    "No model file at m.pt; train one with xcrop.train.",
    "The predictor was trained on bands ('B04',) but the samples have ('B02',); sample a "
    "composite with the model's bands in the model's order (composite(bands=model.bands)).",
    "No acquisition of the cube (2019-01-01 .. 2019-01-01) falls in the 12 x 30-day periods "
    "from 2019-03-01; pass start=... inside the cube's dates.",
    "2 point(s) read map values [200] outside 0..100 for a fraction map; pass nodata=<value> "
    "if they mark missing data, scale= if the map has another range, or kind='classes' for "
    "a class map.",
    "The items carry no proj:epsg/proj:code, so xcrop cannot choose an output CRS; pass "
    "crs='EPSG:32631' (for example).",
    "The composite has no CRS; write one with .rio.write_crs(...).",
    "The STAC API at http://x failed to answer the search for collection 'c' (6 tries over "
    "~30 s, timeout 30 s): boom. Try again later, or give more time with "
    "network=xcrop.Network(timeout=..., retries=...).",
    "Reading http://x/B04.tif (band B04 of item S2A) failed after 3 tries: 503. Check the "
    "file (or that its server answers); pass on_error='nodata' to map with this read left "
    "as a gap.",
    "One block of the composite needs about 1,300 MB but the memory budget is 800 MB (75% "
    "of the 1,500 MB this process may use, less the 325 MB it holds); use smaller chunks "
    "(xcrop.search(chunks=...), xcrop composite --chunks) or give memory_budget=.",
]


@pytest.mark.parametrize("message", LIBRARY_MESSAGES)
def test_library_advice_in_cli_terms(message):
    from xcrop._cli import _explain
    from xcrop.errors import XcropError

    line = _explain(XcropError(message))
    assert not any(advice in line for advice in PYTHON_ADVICE), line
    assert "pass " not in line and "()" not in line, line
