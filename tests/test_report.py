"""The demo's report pages from plain data: Markdown and self-contained HTML, the file
index, and a reading of the metrics made from the numbers."""

from __future__ import annotations

import base64

import pandas as pd
import pytest

import xcrop
from xcrop._page import to_html, to_markdown
from xcrop._report import FILE_NOTES, file_notes, metrics_reading

PNG = base64.b64decode(  # a 1 x 1 px PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


def test_one_document_two_renderings(tmp_path):
    (tmp_path / "map.png").write_bytes(PNG)
    blocks = [
        ("h1", "Report <draft>"),
        ("note", "All simulated & not real"),
        ("p", "Open it with `xcrop.open_probability`."),
        ("table", "| method | accuracy | n |\n|---|---|---|\n| a <b> | 0.90 | 81 |"),
        ("img", tmp_path / "map.png", "the map"),
        ("files", [("map.png", "a picture")]),
    ]
    markdown = to_markdown(blocks)
    assert markdown.startswith("# Report <draft>\n\n> **All simulated & not real**\n")
    assert "| a <b> | 0.90 | 81 |" in markdown and "![the map](map.png)" in markdown
    assert "- [`map.png`](map.png): a picture\n" in markdown
    page = to_html(blocks, "t")
    assert "<h1>Report &lt;draft&gt;</h1>" in page and "All simulated &amp; not real" in page
    assert "with <code>xcrop.open_probability</code>." in page
    assert "<tr><th>method</th><th>accuracy</th><th>n</th></tr>" in page
    assert "<tr><td>a &lt;b&gt;</td><td>0.90</td><td>81</td></tr>" in page
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert f'<img src="{uri}" alt="the map">' in page
    assert '<a href="map.png"><code>map.png</code></a>: a picture' in page
    with pytest.raises(xcrop.XcropError, match="use one of h1 h2"):
        to_markdown([("h3", "x")])
    with pytest.raises(xcrop.XcropError, match="Not a Markdown pipe table"):
        to_html([("table", "just text")], "t")


def test_file_notes_cover_each_file_once_and_name_the_fix():
    names = ["summary.json", "north.zarr", "README.md", "south.tif", "north_rgb.png"]
    notes = file_notes(names, ["north", "south"])
    assert [name for name, _ in notes] == [
        "README.md", "summary.json", "north.zarr", "north_rgb.png", "south.tif"
    ]  # fmt: skip
    assert dict(notes)["north.zarr"] == FILE_NOTES["{region}.zarr"].format(region="north")
    with pytest.raises(xcrop.XcropError, match=r"No line for \['extra.txt'\].*FILE_NOTES"):
        file_notes([*names, "extra.txt"], ["north", "south"])


def table(accuracy: list[float], auc: list[float], n: int = 100) -> pd.DataFrame:
    methods = ["LSTM", "forest", "old map"]
    return pd.DataFrame({"accuracy": accuracy, "auc": auc, "n": n}, index=methods)


def test_the_reading_follows_the_numbers():
    close = metrics_reading(table([0.90, 0.88, 0.60], [0.91, 0.93, float("nan")]))
    # 1.96 * sqrt(0.9 * 0.1 / 100) = 0.059: the forest's 0.88 is within it
    assert close == (
        "On 100 test points the LSTM is the most accurate (0.90, 95 % interval ± 0.06); "
        "forest is within that interval, so this test set does not tell them apart; "
        "the highest AUC is the forest's (0.93); the least accurate is the old map (0.60)."
    )
    apart = metrics_reading(table([0.70, 0.95, 0.60], [0.8, 0.9, 0.7], n=400))
    assert apart.startswith("On 400 test points the forest is the most accurate (0.95, ")
    assert "no other method comes within that interval" in apart


def test_files_not_written_by_the_run_are_named(tmp_path):
    """A folder used before keeps files this run did not write: the index says which
    instead of passing over them (files in another order: sorted)."""
    from xcrop._report import not_written

    for name in ("roc.png", "old_map.tif", "README.md", "a_note.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "old.zarr").mkdir()
    assert not_written(tmp_path, ["roc.png"]) == ["a_note.txt", "old.zarr", "old_map.tif"]
    assert not_written(tmp_path / "missing", ["roc.png"]) == []
