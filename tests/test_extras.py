"""Optional extras and bug reports: a missing extra is one line naming it (checked in a
fresh Python where the package really cannot be imported), and show_versions."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import xcrop
from xcrop import _versions
from xcrop._cli import main

#: The folder that holds the xcrop under test, first on the child's path.
SOURCE = str(Path(xcrop.__file__).resolve().parents[1])


def run_without(blocked: tuple[str, ...], code: str, report: bool = False):
    """``code`` in a new Python where importing any of ``blocked`` fails (ImportError), as
    when the package is not installed; xcrop itself is imported after the block."""
    block = "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    program = f"import sys\n{block}import xcrop\n{REPORT if report else ''}{textwrap.dedent(code)}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=300
    )


#: Calls that each print the error they raise (the arguments are never reached).
REPORT = """
def report(call):
    try:
        call()
    except xcrop.MissingExtraError as err:
        assert isinstance(err, ImportError) and isinstance(err, xcrop.XcropError), err
        print(err)
    else:
        print("no error")
"""


def test_scikit_learn_names_say_to_install_the_ml_extra():
    got = run_without(("sklearn",), """
        report(lambda: xcrop.metrics([0, 1], [0.2, 0.8]))
        report(lambda: xcrop.evaluate(None, None))
        report(lambda: xcrop.evaluate_map("map.tif", None))
        report(lambda: xcrop.sensitivity(None, None, None, [10]))
        report(lambda: xcrop.random_forest())
        report(lambda: xcrop.svm())
        report(lambda: xcrop.train(None))
    """, report=True)  # fmt: skip
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    names = ["metrics", "evaluate", "evaluate_map", "sensitivity", "random_forest", "svm", "train"]
    assert len(lines) == len(names)
    for name, line in zip(names, lines, strict=True):
        assert line.startswith(f"xcrop.{name} needs scikit-learn (the 'ml' extra): "), line
        assert "pip install '.[ml]'" in line


def test_torch_names_say_to_install_the_ml_extra():
    got = run_without(("torch",), """
        report(lambda: xcrop.train)
        report(lambda: xcrop.predict)
        report(lambda: xcrop.load_model)
    """, report=True)  # fmt: skip
    assert got.returncode == 0, got.stderr
    for name, line in zip(["train", "predict", "load_model"], got.stdout.splitlines(), strict=True):
        assert line.startswith(f"xcrop.{name} needs PyTorch (the 'ml' extra): pip install '.[ml]'")


def test_plots_say_to_install_the_plot_extra():
    got = run_without(("matplotlib",), """
        from xcrop import plot

        report(lambda: plot.probability_map(None))
        report(lambda: plot.roc_curves({}))
    """, report=True)  # fmt: skip
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert lines[0].startswith("xcrop.plot.probability_map needs matplotlib (the 'plot' extra)")
    assert lines[1].startswith("xcrop.plot needs matplotlib (the 'plot' extra)")
    assert all("pip install '.[plot]'" in line for line in lines)


def test_the_cli_prints_a_missing_extra_in_one_line():
    """The CLI's line for a missing extra is xcrop's own message (not 'pip install
    sklearn', which is not the package's name)."""
    got = run_without(("sklearn",), """
        from xcrop._cli import _explain

        try:
            xcrop.metrics([0, 1], [0.2, 0.8])
        except ImportError as err:
            print(_explain(err))
    """)  # fmt: skip
    assert got.returncode == 0, got.stderr
    line = got.stdout.strip()
    assert line.startswith("xcrop.metrics needs scikit-learn (the 'ml' extra)"), line
    assert "pip install sklearn" not in line and "\n" not in line


def test_show_versions_prints_what_a_bug_report_needs():
    out = io.StringIO()
    xcrop.show_versions(file=out)
    text = out.getvalue()
    names = [line.split(":", 1)[0] for line in text.splitlines()]
    for name in ("xcrop", "Python", "platform", "GDAL", "rasterio", "odc-stac", "odc-geo",
                 "pystac-client", "xarray", "dask", "distributed", "zarr", "fsspec", "numpy",
                 "pandas", "torch", "scikit-learn", "geopandas"):  # fmt: skip
        assert name in names, name
    info = _versions.versions()
    assert info["xcrop"] == xcrop.__version__
    import rasterio

    assert info["GDAL"] == rasterio.__gdal_version__
    if info["torch"] != "not installed":
        assert "CUDA available:" in info["torch"]


def test_show_versions_says_not_installed_and_never_raises(monkeypatch):
    monkeypatch.setattr(_versions, "PACKAGES", (*_versions.PACKAGES, "xcrop-no-such-package"))
    assert _versions.versions()["xcrop-no-such-package"] == "not installed"
    # torch installed but failing to import (a broken CUDA build, say): said, not raised
    got = run_without(("torch", "sklearn", "matplotlib"), """
        xcrop.show_versions()
    """)  # fmt: skip
    assert got.returncode == 0, got.stderr
    lines = dict(line.split(":", 1) for line in got.stdout.splitlines())
    assert "cannot be imported" in lines["torch"] or lines["torch"].strip() == "not installed"


def test_cli_show_versions(capsys):
    pytest.importorskip("click")
    assert main(["show-versions"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("xcrop:") and "GDAL:" in out and "dask:" in out
