"""Cloud and shadow scores: known answers and real spectra."""

from __future__ import annotations

import numpy as np
import pytest

from xcrop._cloudscore import cloud_score, quality, shadow_mask, shadow_reach_px

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


def _disk(radius: float) -> np.ndarray:
    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy**2 + xx**2 <= radius**2


def test_shadow_morphology_matches_scipys_disks():
    """Erode by a 1.5 px disk, dilate by a 3 px disk, 3 x 3 max: the separable version."""
    from scipy import ndimage

    from xcrop._cloudscore import _open_shadow

    rng = np.random.default_rng(3)
    for density in (0.0, 0.02, 0.3, 0.7):
        mask = rng.random((60, 70)) < density
        mask[20:30, :6] = True  # a block on the edge: the border erodes it
        ref = ndimage.binary_erosion(mask, _disk(1.5))
        ref = ndimage.binary_dilation(ref, _disk(3.0))
        ref = ndimage.maximum_filter(ref.astype("float32"), 3, mode="constant")
        np.testing.assert_array_equal(_open_shadow(mask), ref)


def test_quality_of_a_window_is_the_whole_scenes():
    """finish() on a window that reaches the shadows' clouds gives the scene's values."""
    from xcrop._cloudscore import finish, prepare, quality_20m

    n = 100
    clear = dict(B01=0.03, B02=0.04, B03=0.08, B04=0.04, B08=0.45, B11=0.22, B12=0.1)
    rng = np.random.default_rng(0)
    bands = {k: np.full((n, n), v, "float32") + rng.normal(0, 0.01, (n, n)).astype("float32")
             for k, v in clear.items()}  # fmt: skip
    for k, v in dict(B01=0.5, B02=0.55, B03=0.55, B04=0.55, B08=0.6, B11=0.4, B12=0.3).items():
        bands[k][40:60, 70:90] = v  # a cloud; with the sun in the east its shadow lies west
    for k in ("B08", "B11", "B12"):
        bands[k][40:60, 20:50] *= 0.3
    bands["B02"][5, 5] = np.nan
    scene = quality_20m(bands, 90.0, 45.0, use_scl=False, max_height=1000.0)
    assert scene[50, 30] < -0.5 and np.isnan(scene[5, 5])
    core = (slice(30, 70), slice(10, 40))  # holds the shadow, not the cloud
    window = prepare(bands, use_scl=False)[:, 21:79, 1:99]  # 9 px around, 59 east
    part = finish(window, 90.0, 45.0, max_height=1000.0, core=(slice(9, 49), slice(9, 39)))
    np.testing.assert_allclose(part, scene[core], atol=1e-6)
    short = finish(
        window[:, :, :60], 90.0, 45.0, max_height=1000.0, core=(slice(9, 49), slice(9, 39))
    )
    assert short[20, 20] > -0.1  # without the cloud in reach, the shadow is missed
