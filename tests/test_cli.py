"""The ``xcrop`` command through its real entry point (subprocesses), good and bad inputs."""

from __future__ import annotations

import shutil
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

import xcrop

SEASON = "2019-03-01/2020-02-29"


def xcrop_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run the installed ``xcrop`` script (or ``python -m xcrop.cli`` without it)."""
    exe = shutil.which("xcrop", path=str(__import__("pathlib").Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "xcrop._cli"]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def bbox_arg(archive, region: str) -> str:
    return ",".join(str(v) for v in archive.bbox(region))


def test_help_explains_every_subcommand():
    result = xcrop_cli("--help")
    assert result.returncode == 0
    for command in ("search", "composite", "sample", "train", "predict", "evaluate", "demo"):
        assert command in result.stdout
        sub = xcrop_cli(command, "--help")
        assert sub.returncode == 0 and "Usage: xcrop " + command in sub.stdout


def test_the_steps_one_by_one(tiny, tmp_path):
    catalog, bbox = tiny.items_path, bbox_arg(tiny, "togo-north")
    found = xcrop_cli("search", bbox, SEASON, "--catalog", catalog, "--out", tmp_path / "i.json")
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("73 items")  # the acquisitions of the season
    comp = tmp_path / "comp.zarr"
    made = xcrop_cli("composite", bbox, SEASON, "--catalog", tmp_path / "i.json",
                     "--score", "scl", "--out", comp)  # fmt: skip
    assert made.returncode == 0, made.stderr
    # stderr is a pipe here, as in a log: plain lines, no bar redrawn with carriage returns
    assert "\r" not in made.stderr + made.stdout
    writes = [line for line in made.stderr.splitlines() if line.startswith("writing")]
    assert len(writes) == 1 and writes[0].startswith("writing comp.zarr: 1/1 blocks (100%), ")
    hand = tiny.labels / "hand"
    parts = []
    for name, label in (("crop_points", "1"), ("noncrop_points", "0")):
        out = tmp_path / f"{name}.npz"
        result = xcrop_cli("sample", hand / name / f"{name}.shp", "--composite", comp,
                           "--label", label, "--out", out)  # fmt: skip
        assert result.returncode == 0, result.stderr
        parts.append(xcrop.Samples.load(out))
    # both files in one call, a --label each: ids are row numbers across the two files
    joined = xcrop_cli("sample", hand / "crop_points" / "crop_points.shp",
                       hand / "noncrop_points" / "noncrop_points.shp", "--label", "1",
                       "--label", "0", "--composite", comp,
                       "--out", tmp_path / "local.npz")  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    rows = [len(gpd.read_file(hand / n / f"{n}.shp")) for n in ("crop_points", "noncrop_points")]
    assert f"labels: {sum(rows)} rows -> {sum(rows)} points; dropped: {{}}" in joined.stdout
    local = xcrop.Samples.load(tmp_path / "local.npz")
    assert local.y.tolist() == [1] * len(parts[0]) + [0] * len(parts[1])
    np.testing.assert_array_equal(local.X, np.concatenate([parts[0].X, parts[1].X]))
    assert local.ids.astype(int).tolist() == [
        *parts[0].ids.astype(int),
        *(parts[1].ids.astype(int) + rows[0]),  # after the rows of crop_points
    ]
    assert set(np.unique(local.y)) == {0, 1} and local.X.shape[1:] == (12, 12)
    # --group: each label's field travels with its sample, and train validates on fields
    fields = pd.concat([gpd.read_file(hand / n / f"{n}.shp").assign(label=k)
                        for n, k in (("crop_points", 1), ("noncrop_points", 0))],
                       ignore_index=True)  # fmt: skip
    fields["field"] = [f"f{i // 3}" for i in range(len(fields))]
    fields.to_file(tmp_path / "fields.geojson")
    grouped = xcrop_cli("sample", tmp_path / "fields.geojson", "--group", "field",
                        "--composite", comp, "--out", tmp_path / "grouped.npz")  # fmt: skip
    assert grouped.returncode == 0, grouped.stderr
    by_field = xcrop.Samples.load(tmp_path / "grouped.npz")
    assert by_field.groups.tolist() == [f"f{i // 3}" for i in by_field.ids.astype(int)]
    n_fields = len(set(by_field.groups.tolist()))
    on_fields = xcrop_cli("train", tmp_path / "grouped.npz", "--members", 2, "--max-epochs", 1,
                          "--no-grid-search", "--out", tmp_path / "g.pt")  # fmt: skip
    assert on_fields.returncode == 0, on_fields.stderr
    assert f"local: {len(by_field)} samples from 1 file(s) in {n_fields} groups" in (
        on_fields.stdout
    )
    assert xcrop.load_model(tmp_path / "g.pt").info["n_groups"] == n_fields
    no_column = xcrop_cli("sample", tmp_path / "fields.geojson", "--group", "parcel",
                          "--composite", comp, "--out", tmp_path / "x.npz")  # fmt: skip
    assert no_column.returncode == 1 and "give --group one of them" in no_column.stderr
    assert len(no_column.stderr.strip().splitlines()) == 1
    two = xcrop_cli("sample", tmp_path / "fields.geojson", "--group", "label",
                    "--composite", comp, "--out", tmp_path / "two.npz")  # fmt: skip
    assert two.returncode == 0, two.stderr
    too_few = xcrop_cli(
        "train", tmp_path / "two.npz", "--no-grid-search", "--out", tmp_path / "x.pt"
    )
    assert too_few.returncode == 1 and len(too_few.stderr.strip().splitlines()) == 1
    assert "hold 2 groups, too few to validate 5 folds" in too_few.stderr
    assert "fewer --members, or sample without --group" in too_few.stderr
    # several local and several --global files are joined
    trained = xcrop_cli("train", tmp_path / "crop_points.npz", tmp_path / "noncrop_points.npz",
                        "--global", tmp_path / "crop_points.npz",
                        "--global", tmp_path / "noncrop_points.npz",
                        "--no-grid-search", "--max-epochs", 3,
                        "--out", tmp_path / "m.pt")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    epochs = [line for line in trained.stderr.splitlines() if line.startswith("training: ")]
    assert "\r" not in trained.stderr + trained.stdout  # was click's bar on stdout
    assert len(epochs) == 10 and epochs[-1].startswith("training: 15/15 epochs (100%)")
    assert f"local: {len(local)} samples from 2 file(s); global: {len(local)} from 2" in (
        trained.stdout
    )
    info = xcrop.load_model(tmp_path / "m.pt").info
    assert (info["n_local"], info["n_global"]) == (len(local), len(local))
    mapped = xcrop_cli("predict", comp, tmp_path / "m.pt", "--out", tmp_path / "map.zarr",
                       "--cog", tmp_path / "map.tif")  # fmt: skip
    assert mapped.returncode == 0, mapped.stderr
    prob = xcrop.open_probability(tmp_path / "map.zarr")
    assert min(prob.shape) >= 120 and prob.rio.crs.to_epsg() == 32631  # the bbox's grid
    assert np.isfinite(prob.values).mean() > 0.9
    scored = xcrop_cli("evaluate", tmp_path / "local.npz", "--model", tmp_path / "m.pt")
    assert scored.returncode == 0 and "| m.pt |" in scored.stdout, scored.stderr
    test_file = tiny.labels / "test" / "random_sample_cn" / "random_sample_cn.shp"
    on_map = xcrop_cli("evaluate", test_file, "--map", tmp_path / "map.tif",
                       "--kind", "probability", "--label", "cn_labels")  # fmt: skip
    assert on_map.returncode == 0 and "| map.tif |" in on_map.stdout, on_map.stderr


def test_sample_votes_crowd_labels_one_sample_per_plot(tiny, tmp_path):
    crowd = tiny.labels / "crowd.csv"  # Collect Earth Online layout: a row per labeller
    table = pd.read_csv(crowd)
    plots = table.plot_id.nunique()
    assert len(table) > 3 * plots  # several labellers per plot
    out = tmp_path / "global.npz"
    voted = xcrop_cli("sample", crowd, "--catalog", tiny.items_path, "--global",
                      "--year-column", "year", "--label", "Crop/ or not", "--id", "plot_id",
                      "--vote", "--group", "plot_id", "--out", out)  # fmt: skip
    assert voted.returncode == 0, voted.stderr
    assert (
        f"labels: {len(table)} rows -> {plots} points (crowd vote of {len(table)} labels)"
        in voted.stdout
    )
    samples = xcrop.Samples.load(out)
    ids = samples.ids.astype(int)
    assert len(samples) == plots and len(set(ids)) == plots  # one sample per plot, not per row
    assert samples.groups.astype(int).tolist() == ids.tolist()  # --group plot_id, voted
    crop_share = table["Crop/ or not"].eq("Cropland").groupby(table.plot_id).mean()
    np.testing.assert_array_equal(samples.y, (crop_share.loc[ids] > 0.5).astype("int8"))
    assert not samples.is_local.any()
    # --vote needs the plot id; --label once or once per file
    no_id = xcrop_cli("sample", crowd, "--catalog", tiny.items_path, "--vote",
                      "--label", "Crop/ or not", "--out", tmp_path / "x.npz")  # fmt: skip
    assert no_id.returncode == 2 and "give --id COLUMN" in no_id.stderr
    labels = xcrop_cli("sample", crowd, crowd, "--label", "a", "--label", "b", "--label", "c",
                       "--catalog", tiny.items_path, "--out", tmp_path / "x.npz")  # fmt: skip
    assert labels.returncode == 2 and "once per LABELS file (2 files); got 3" in labels.stderr
    assert not (tmp_path / "x.npz").exists()


def test_bad_inputs_exit_non_zero_with_a_clear_message(tiny, tmp_path):
    bbox = bbox_arg(tiny, "togo-north")
    # an empty search: nothing over the ocean
    empty = xcrop_cli("search", "-30,-30,-29.9,-29.9", SEASON, "--catalog", tiny.items_path)
    assert (
        empty.returncode == 1
        and empty.stderr.startswith("xcrop: error: ")
        and "No Sentinel-2 item found" in empty.stderr
    )
    composite = xcrop_cli("composite", "-30,-30,-29.9,-29.9", SEASON, "--catalog",
                          tiny.items_path, "--out", tmp_path / "c.zarr")  # fmt: skip
    assert composite.returncode == 1 and "error: " in composite.stderr
    bad_bbox = xcrop_cli("search", "1,2,3", SEASON)
    assert bad_bbox.returncode == 2 and "west,south,east,north" in bad_bbox.stderr
    # a missing file
    missing = xcrop_cli("sample", tmp_path / "nope.shp", "--composite", tmp_path, "--out", "x.npz")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    train_missing = xcrop_cli("train", tmp_path / "nope.npz", "--out", tmp_path / "m.pt")
    assert train_missing.returncode == 2 and "does not exist" in train_missing.stderr
    # a wrong model file
    fake = tmp_path / "model.pt"
    fake.write_text("not a model")
    samples = tmp_path / "s.npz"
    X, y = np.zeros((2, 12, 1), "float32"), np.array([0, 1], "int8")
    ones = np.ones((2, 12), "uint8")
    xcrop.Samples(X, y, np.ones(2, bool), np.arange(2), ("B04",), ones).save(samples)
    wrong = xcrop_cli("evaluate", samples, "--model", fake)
    assert wrong.returncode == 1 and "not an xcrop model file" in wrong.stderr
    predict = xcrop_cli("predict", tmp_path, fake, "--out", tmp_path / "p.zarr")
    assert predict.returncode == 1 and "error: " in predict.stderr
    neither = xcrop_cli("evaluate", samples)
    assert neither.returncode == 2 and "--model" in neither.stderr
    sample = xcrop_cli("sample", samples, "--out", tmp_path / "x.npz")
    assert sample.returncode == 2 and "--composite" in sample.stderr
    assert bbox  # the good bbox is exercised in test_the_steps_one_by_one


def test_years_and_groups_follow_their_points_when_rows_are_dropped():
    from xcrop._cli import _column

    table = pd.DataFrame({
        "plot": [7, 8, 9, 7], "lon": [1.0, 1.1, 1.2, 1.0], "lat": [9.0, 9.1, 9.2, 9.0],
        "label": ["crop", None, "Non-crop", "crop"], "year": [2018, 2019, 2020, 2018],
    })  # fmt: skip
    by_row = xcrop.read_labels(table, label="label")  # row 1 has no label, row 3 repeats 0
    assert by_row.attrs["report"]["dropped"] == {"no or unknown label": 1, "duplicate": 1}
    assert _column(table, by_row, "year", None, "--year-column").tolist() == [2018, 2020]
    by_id = xcrop.read_labels(table, label="label", id="plot")
    assert _column(table, by_id, "year", "plot", "--year-column").tolist() == [2018, 2020]
    votes = xcrop.read_labels(table, label="label", id="plot", long=True)  # rows are votes
    assert _column(table, votes, "year", "plot", "--group").tolist() == [2018, 2020, 2018]
    with pytest.raises(xcrop.XcropError, match=r"No column 'season'.*give --group one"):
        _column(table, by_row, "season", None, "--group")


def test_sample_checks_its_datetime_while_parsing(tiny, tmp_path):
    """Reversed dates were told in Python's terms ("datetime '...'") after the labels were
    read; now as the option, before anything is read."""
    crop = tiny.labels / "hand" / "crop_points" / "crop_points.shp"
    done = xcrop_cli("sample", crop, "--label", 1, "--catalog", tiny.items_path, "--datetime",
                     "2020-04-30/2019-02-01", "--out", tmp_path / "s.npz")  # fmt: skip
    assert done.returncode == 2 and "Invalid value for '--datetime'" in done.stderr
    assert "the start is after the end" in done.stderr and not (tmp_path / "s.npz").exists()
