"""The ``xcrop`` command through its real entry point (subprocesses), good and bad inputs."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

import xcrop

SEASON = "2019-03-01/2020-02-29"


def xcrop_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run the installed ``xcrop`` script (or ``python -m xcrop.cli`` without it)."""
    exe = shutil.which("xcrop", path=str(__import__("pathlib").Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "xcrop.cli"]
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
    hand = tiny.labels / "hand"
    parts = []
    for name, label in (("crop_points", "1"), ("noncrop_points", "0")):
        out = tmp_path / f"{name}.npz"
        result = xcrop_cli("sample", hand / name / f"{name}.shp", "--composite", comp,
                           "--label", label, "--out", out)  # fmt: skip
        assert result.returncode == 0, result.stderr
        parts.append(xcrop.Samples.load(out))
    local = parts[0].concat(parts[1])
    local.save(tmp_path / "local.npz")
    assert set(np.unique(local.y)) == {0, 1} and local.X.shape[1:] == (12, 12)
    trained = xcrop_cli("train", tmp_path / "local.npz", "--no-grid-search", "--max-epochs", 3,
                        "--out", tmp_path / "m.pt")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
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


def test_years_follow_their_points_when_rows_are_dropped():
    import pandas as pd

    from xcrop.cli import _years

    table = pd.DataFrame({
        "plot": [7, 8, 9, 7], "lon": [1.0, 1.1, 1.2, 1.0], "lat": [9.0, 9.1, 9.2, 9.0],
        "label": ["crop", None, "Non-crop", "crop"], "year": [2018, 2019, 2020, 2018],
    })  # fmt: skip
    by_row = xcrop.read_labels(table, label="label")  # row 1 has no label, row 3 repeats 0
    assert by_row.attrs["report"]["dropped"] == {"no or unknown label": 1, "duplicate": 1}
    assert _years(table, by_row, "year", None).tolist() == [2018, 2020]
    by_id = xcrop.read_labels(table, label="label", id="plot")
    assert _years(table, by_id, "year", "plot").tolist() == [2018, 2020]
    votes = xcrop.read_labels(table, label="label", id="plot", long=True)  # rows are votes
    assert _years(table, votes, "year", "plot").tolist() == [2018, 2020, 2018]
    with pytest.raises(xcrop.XcropError, match="No column 'season'"):
        _years(table, by_row, "season", None)
