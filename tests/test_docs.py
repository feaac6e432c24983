"""The documentation site builds with warnings as errors, API reference included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    model = (site / "api" / "model" / "index.html").read_text()
    assert 'id="xcrop.model.MultiHeadLSTM"' in model
    assert 'id="xcrop.training.train"' in model
    assert 'id="xcrop.inference.predict"' in model
    assert 'id="xcrop.io.to_zarr"' in (site / "api" / "io" / "index.html").read_text()
    assert "to_zarr" in (site / "api" / "loading" / "index.html").read_text()  # the accessor
    # the griffe extension of docs/hooks: Sphinx roles became links, not text
    assert ":func:" not in model and ":class:" not in model
    for page in ("quickstart", "method", "training", "predicting", "scale", "performance"):
        assert (site / page / "index.html").exists()
    assert "Keep a Changelog" in (site / "changelog" / "index.html").read_text()
