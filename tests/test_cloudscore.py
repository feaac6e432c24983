"""Cloud and shadow scores: known answers and real spectra."""

from __future__ import annotations

import numpy as np
import pytest

from xcrop.cloudscore import cloud_score, quality, shadow_mask, shadow_reach_px

from .conftest import SHARED

L1C = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


def _const(**values):
    return {k: np.full((3, 3), v, "float64") for k, v in values.items()}


def test_cloud_score_known_answers():
    cloud = _const(B01=0.5, B02=0.55, B03=0.55, B04=0.55, B08=0.6, B11=0.4, B12=0.3)
    veg = _const(B01=0.03, B02=0.04, B03=0.08, B04=0.04, B08=0.45, B11=0.22, B12=0.1)
    assert cloud_score(cloud) == pytest.approx(1.0)
    assert cloud_score(veg) == pytest.approx(0.001)  # clipped below
    # each test can veto: a bright snow-like target (NDSI 0.8) is not a cloud
    snow = _const(B01=0.5, B02=0.6, B03=0.6, B04=0.6, B08=0.6, B11=0.0667, B12=0.05)
    assert float(cloud_score(snow)[0, 0]) == pytest.approx(0.001)
    # r(B02; 0.1, 0.5) limits a half-bright target to 0.5
    half = _const(B01=0.5, B02=0.3, B03=0.5, B04=0.5, B08=0.6, B11=0.4, B12=0.3)
    assert float(cloud_score(half)[0, 0]) == pytest.approx(0.5)


def test_cloud_score_on_real_spectra():
    """The real L1C reflectance of the eo-learn scenes: cloudy pixels score high."""
    scenes = np.load(SHARED / "eolearn-slovenia-2015" / "reference_scenes_l1c.npy")
    ts = np.load(SHARED / "eolearn-slovenia-2015" / "timeseries.npz")
    prob = ts["cloud_probability"][[2, 1, 4, 3, 0]]  # s2cloudless, the same scenes
    scores = [cloud_score({b: scenes[k, ..., i] for i, b in enumerate(L1C)}) for k in range(5)]
    medians = [float(np.median(s)) for s in scores]
    # scene 0: thick cloud (s2cloudless 0.97), scene 1: thin cloud (0.74), 2-4: clear
    assert medians[0] > 0.4 and 0.05 < medians[1] < medians[0]
    for k in (2, 3, 4):
        assert prob[k].mean() < 0.05 and (scores[k] < 0.05).mean() > 0.99
    for k in (0, 1):  # within a cloudy scene the score follows s2cloudless
        assert np.corrcoef(scores[k].ravel(), prob[k].ravel())[0, 1] > 0.6


def test_shadow_falls_away_from_the_sun():
    cloud = np.zeros((200, 200), bool)
    cloud[100, 100] = True
    # sun in the east (azimuth 90) at 45 degrees: shadows to the west, one copy per 250 m
    # of height from 200 m: 10, 22.5, 35, 47.5 px of 20 m for heights up to 1 km
    shadow = shadow_mask(cloud, azimuth=90.0, zenith=45.0, max_height=1000.0, res=20.0)
    rows, cols = np.nonzero(shadow)
    assert set(rows) == {100} and np.allclose(sorted(cols), [52.5, 65, 77.5, 90], atol=1)
    # sun in the south (azimuth 180): shadows to the north (smaller row numbers)
    north = shadow_mask(cloud, azimuth=180.0, zenith=45.0, max_height=1000.0, res=20.0)
    rows, cols = np.nonzero(north)
    assert set(cols) == {100} and np.allclose(sorted(rows), [52.5, 65, 77.5, 90], atol=1)
    assert shadow_reach_px(45.0, 3000.0, 10.0) == 300


def test_quality_of_a_cloud_and_its_shadow():
    n = 120
    clear = dict(B01=0.03, B02=0.04, B03=0.08, B04=0.04, B08=0.45, B11=0.22, B12=0.1)
    bands = {k: np.full((n, n), v, "float32") for k, v in clear.items()}
    cloud = dict(B01=0.5, B02=0.55, B03=0.55, B04=0.55, B08=0.6, B11=0.4, B12=0.3)
    for k, v in cloud.items():
        bands[k][40:60, 40:60] = v
    # the shadow: 500 m west of the cloud with the sun in the east at 45 degrees
    for k in ("B08", "B11", "B12"):
        bands[k][40:60, 0:30] *= 0.3
    q = quality(bands, azimuth=90.0, zenith=45.0, use_scl=False, max_height=1000.0)
    assert q[50, 50] < -0.9  # cloud
    assert q[50, 15] < -0.5  # shadow
    assert q[100, 100] == pytest.approx(-0.001, abs=1e-4)  # clear
    assert q[50, 100] == pytest.approx(-0.001, abs=1e-4)  # east of the cloud: no shadow
    bands["B02"][0, 0] = np.nan
    assert np.isnan(quality(bands, 90.0, 45.0, use_scl=False)[0, 0])
    bands["SCL"] = np.full((n, n), 4.0, "float32")
    bands["SCL"][100:110, 100:110] = 9  # SCL says cloud where the score says clear
    q = quality(bands, azimuth=90.0, zenith=45.0, max_height=1000.0)
    assert q[105, 105] < -0.5
