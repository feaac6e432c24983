"""Area estimation (Olofsson et al. 2014): the published worked example, a lazy map of any
CRS, the sample design, and intervals that hold the truth as often as they say."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import xcrop
from xcrop._areas import area, mapped_areas, pixel_areas, sample_for_area, write_sample_design
from xcrop._estimation import from_counts, stratified_estimate

#: Olofsson et al. (2014), section 5: mapped pixels (30 m) and the sample's error matrix,
#: classes deforestation, forest gain, stable forest, stable non-forest.
PIXELS = [200_000, 150_000, 3_200_000, 6_450_000]
COUNTS = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]


def test_olofsson_worked_example_to_the_published_precision():
    est = from_counts([p * 0.09 for p in PIXELS], COUNTS, variance="wald")
    table = est.table
    # published: 21,158 +- 6,158 ha; 11,686 +- 3,756; 285,770 +- 15,510; 581,386 +- 16,282
    assert table.area_ha.round().tolist() == [21158, 11686, 285770, 581386]
    assert table.ci95_ha.round().tolist() == [6158, 3756, 15510, 16282]
    assert table.users.round(2).tolist() == [0.88, 0.73, 0.93, 0.96]
    assert table.producers.round(2).tolist() == [0.75, 0.85, 0.93, 0.96]
    assert round(est.overall, 2) == 0.95
    assert est.error_matrix.to_numpy().sum() == pytest.approx(1.0)
    # the producer's accuracy standard error of Olofsson et al.'s equation 7, by hand
    n = np.array(COUNTS, float)
    N = np.array(PIXELS, float)
    ni = n.sum(1)
    for j in range(4):
        n_hat_j = (N / ni * n[:, j]).sum()
        u_j, p_j = n[j, j] / ni[j], table.producers.iloc[j]
        others = sum(N[i] ** 2 * n[i, j] / ni[i] * (1 - n[i, j] / ni[i]) / (ni[i] - 1)
                     for i in range(4) if i != j)  # fmt: skip
        var = N[j] ** 2 * (1 - p_j) ** 2 * u_j * (1 - u_j) / (ni[j] - 1) + p_j**2 * others
        assert table.producers_se.iloc[j] == pytest.approx(np.sqrt(var / n_hat_j**2), rel=1e-9)
    # user's: U (1 - U) / (n_i - 1); overall: sum W_i^2 U_i (1 - U_i) / (n_i - 1)
    u = np.diag(n) / ni
    np.testing.assert_allclose(table.users_se, np.sqrt(u * (1 - u) / (ni - 1)))
    w = N / N.sum()
    assert est.overall_se == pytest.approx(np.sqrt((w**2 * u * (1 - u) / (ni - 1)).sum()))
    # xcrop's default variance: the same estimates, a stratum's share as (x + 1) / (n + 2)
    # in the standard errors, so no stratum counts as known exactly: wider intervals
    default = from_counts([p * 0.09 for p in PIXELS], COUNTS)
    np.testing.assert_allclose(default.table.area_ha, table.area_ha)
    assert (default.table.ci95_ha > table.ci95_ha).all()
    # by hand for deforestation: stratum 1 has no such point, its share counts as 1 / 77
    share = (n[:, 0] + 1) / (ni + 2)
    var = (w**2 * share * (1 - share) / (ni - 1)).sum() * (N.sum() * 0.09) ** 2
    assert default.table.se_ha.iloc[0] == pytest.approx(np.sqrt(var))


def grid(values, crs=32631, res=30.0, chunks=64) -> xr.DataArray:
    ny, nx = values.shape
    da = xr.DataArray(
        values,
        dims=("y", "x"),
        coords={"y": 1e6 - res * (np.arange(ny) + 0.5), "x": 3e5 + res * (np.arange(nx) + 0.5)},
    )
    return da.rio.write_crs(crs).chunk(chunks)


def points_at(da: xr.DataArray, rows, cols, labels) -> gpd.GeoDataFrame:
    pts = gpd.GeoDataFrame(
        {"label": labels},
        geometry=gpd.points_from_xy(da.x.values[cols], da.y.values[rows]),
        crs=da.rio.crs,
    )
    return pts.to_crs(4326)


def test_a_lazy_class_map_gives_the_worked_example():
    """The example's strata at 1/100 of their size as a class map of 30 m pixels, the
    reference points placed in them with the published counts: the same estimate, from
    a map counted chunk by chunk and points read from it."""
    sizes = [p // 100 for p in PIXELS]  # 100,000 pixels
    classes = np.repeat(np.arange(4.0), sizes).reshape(250, 400)
    classes[0, 0] = np.nan  # a pixel off the map (and one more pixel of class 0)
    da = grid(classes)
    rng = np.random.default_rng(0)
    rows, cols, labels = [], [], []
    for i in range(4):
        where = np.argwhere(classes == i)
        take = where[rng.choice(len(where), int(np.sum(COUNTS[i])), replace=False)]
        rows += take[:, 0].tolist()
        cols += take[:, 1].tolist()
        labels += np.repeat(np.arange(4), COUNTS[i]).tolist()
    points = points_at(da, rows, cols, labels)
    est = area(da, points, kind="classes")
    pixels = np.array(sizes, float)
    pixels[0] -= 1  # the NaN pixel
    expected = from_counts(pixels * 0.09, COUNTS)
    np.testing.assert_allclose(est.table.area_ha, expected.table.area_ha)
    np.testing.assert_allclose(est.table.ci95_ha, expected.table.ci95_ha)
    np.testing.assert_allclose(est.table.producers_se, expected.table.producers_se)
    assert est.report == {"read": 640, "unlabelled": 0, "outside_map": 0, "used": 640}
    np.testing.assert_allclose(mapped_areas(da, kind="classes"), pixels * 0.09)


def test_pixel_area_from_the_crs():
    utm = grid(np.zeros((3, 3)), res=10.0)
    np.testing.assert_allclose(pixel_areas(utm), 0.01)  # 10 m x 10 m = 0.01 ha
    lat = np.arange(60.5, 0, -1.0)  # rows of 1 degree from 61 N down to the equator
    lonlat = xr.DataArray(
        np.zeros((len(lat), 2)), dims=("y", "x"), coords={"y": lat, "x": [0.5, 1.5]}
    ).rio.write_crs(4326)
    # WGS 84: the 1 x 1 degree cell at the equator is 12,308.8 km2; at 60-61 N a degree of
    # longitude is 54.95 km and of latitude 111.42 km (radii of curvature at 60.5 N)
    got = pixel_areas(lonlat) / 100  # km2
    assert got[-1] == pytest.approx(12_308.8, rel=1e-4)
    assert got[0] == pytest.approx(54.954 * 111.420, rel=1e-3)


def crop_map(seed=0):
    """A probability map of 300 x 400 px of 10 m: crop in the left 150 columns (450 ha),
    mapped with noise: 16 % of the crop omitted, 5 % of the rest committed."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((300, 400))
    truth[:, :150] = 1
    prob = np.clip(truth * 0.8 + rng.normal(0, 0.3, truth.shape), 0, 1).astype("float32")
    return truth, grid(prob, res=10.0, chunks=128)


def label_from(truth, da, design):
    xy = design.to_crs(da.rio.crs).geometry
    cols = ((xy.x - float(da.x[0]) + 5) // 10).astype(int)
    rows = ((float(da.y[0]) + 5 - xy.y) // 10).astype(int)
    return design.assign(label=truth[rows, cols])


def test_the_95_interval_holds_the_true_area_in_at_least_90_of_100_samples():
    truth, da = crop_map()
    mapped = float(mapped_areas(da).loc[1.0])
    assert abs(mapped - 450) > 30  # pixel counting is biased: 413 ha mapped of 450
    hits = []
    for seed in range(100):
        design = label_from(truth, da, sample_for_area(da, 300, seed=seed))
        _, lower, upper = area(da, design).area(1)
        hits.append(lower <= 450.0 <= upper)
    assert sum(hits) >= 90


def test_sample_design_allocation_reproducibility_and_files(tmp_path):
    _, da = crop_map()
    design = sample_for_area(da, 200, seed=3)
    again = sample_for_area(da, 200, seed=3)
    assert design.geometry.equals(again.geometry) and design.crs.to_epsg() == 4326
    assert not design.geometry.equals(sample_for_area(da, 200, seed=4).geometry)
    # proportional to the strata's pixels (787 / 413 ha), at least 50 each
    assert design.attrs["allocation"] == {"0": 131, "1": 69}
    xy = design.to_crs(da.rio.crs).geometry
    values = da.sel(x=xr.DataArray(xy.x.to_numpy()), y=xr.DataArray(xy.y.to_numpy()),
                    method="nearest").values  # fmt: skip
    np.testing.assert_array_equal(values >= 0.5, design.stratum == 1)
    assert len(set(zip(xy.x, xy.y, strict=True))) == 200  # no pixel twice
    rare = sample_for_area(da, 120, seed=0, allocation="proportional", min_per_stratum=50)
    assert rare.attrs["allocation"] == {"0": 70, "1": 50}  # 79 / 41 proportional
    assert sample_for_area(da, 9, allocation="equal").attrs["allocation"] == {"0": 5, "1": 4}
    assert sample_for_area(da, 30, allocation={0: 10, 1: 20}).stratum.tolist().count(1) == 20
    write_sample_design(design, tmp_path / "design.csv")
    table = pd.read_csv(tmp_path / "design.csv")
    assert list(table.columns[:3]) == ["PLOTID", "LON", "LAT"] and len(table) == 200
    write_sample_design(design, tmp_path / "design.geojson")
    back = xcrop.read_labels(tmp_path / "design.geojson", label="stratum")
    assert len(back) == 200
    with pytest.raises(xcrop.XcropError, match=r"\.geojson or \.csv"):
        write_sample_design(design, tmp_path / "design.shp")
    with pytest.raises(xcrop.XcropError, match=r"Cannot write the sample design to .*does not"):
        write_sample_design(design, tmp_path / "missing" / "design.csv")


def test_area_inside_a_polygon_and_the_mistakes_people_make():
    from shapely.geometry import box

    truth, da = crop_map()
    design = label_from(truth, da, sample_for_area(da, 300, seed=0))
    left = gpd.GeoDataFrame(geometry=[box(3e5, 1e6 - 3000, 3e5 + 1500, 1e6)], crs=32631)
    inside = area(da, design, aoi=left)  # the crop half only: 450 ha, all of it crop
    assert float(inside.strata.area_ha.sum()) == pytest.approx(450.0)
    assert inside.report["outside_aoi"] > 100
    with pytest.raises(xcrop.XcropError, match="no 'crop' column"):
        area(da, design, label="crop")
    with pytest.raises(xcrop.XcropError, match="GeoDataFrame"):
        area(da, pd.DataFrame(design))
    with pytest.raises(xcrop.XcropError, match=r"Strata \[1\] have area but no reference"):
        area(da, design[design.stratum == 0])
    with pytest.raises(xcrop.XcropError, match="No map at"):
        area("nothere.zarr", design)
    with pytest.raises(xcrop.XcropError, match="cannot cover"):
        sample_for_area(da, 1)
    unlabelled = design.assign(label=np.where(design.index < 10, np.nan, design.label))
    assert area(da, unlabelled).report["unlabelled"] == 10
    far = box(5.0, 5.0, 5.1, 5.1)  # lon/lat, nowhere near the map
    with pytest.raises(xcrop.XcropError, match="does not overlap the map"):
        area(da, design, aoi=far)
    with pytest.raises(xcrop.XcropError, match="does not overlap the map"):
        sample_for_area(da, 50, aoi=far)
    with pytest.raises(xcrop.XcropError, match="no value: there is nothing to sample"):
        sample_for_area(da * np.nan, 50)  # was a ZeroDivisionError


def test_strata_other_than_the_map_classes():
    """Stehman (2014): strata that are not the map classes (here: two halves of the map,
    each sampled on its own) still give an unbiased area; with the strata equal to the map
    classes the estimate is Olofsson's."""
    est = stratified_estimate({"a": 600.0, "b": 400.0}, ["a", "a", "b", "b"], [1, 0, 1, 0],
                              [1, 0, 1, 1], mapped_area={0: 500.0, 1: 500.0})  # fmt: skip
    # crop share: a 1/2, b 2/2 -> 600 / 2 + 400 = 700 ha
    assert est.table.loc[1, "area_ha"] == pytest.approx(700.0)
    truth, da = crop_map()
    halves = xr.zeros_like(da).astype("float32") + (np.arange(300) >= 150)[:, None]
    design = sample_for_area(halves, 200, kind="classes", seed=2)
    design = label_from(truth, da, design)
    by_halves = area(da, design, strata=halves)
    assert by_halves.strata.n.tolist() == [100, 100]
    estimate, se = by_halves.table.loc[1.0, ["area_ha", "se_ha"]]
    assert abs(estimate - 450) < 3 * se and se < 50


def test_command_line_design_label_and_estimate(tmp_path, capsys):
    from xcrop._cli import main

    truth, da = crop_map()
    store = xcrop.to_zarr(da.rename("crop_probability"), tmp_path / "map.zarr", progress=False)
    assert main(["sample-design", str(store), "--n", "300", "--out", str(tmp_path / "d.csv"),
                 "--seed", "5"]) == 0  # fmt: skip
    design = pd.read_csv(tmp_path / "d.csv")
    assert list(design.columns[:3]) == ["PLOTID", "LON", "LAT"] and len(design) == 300
    points = gpd.GeoDataFrame(design, geometry=gpd.points_from_xy(design.LON, design.LAT),
                              crs=4326)  # fmt: skip
    labelled = label_from(truth, da, points)  # what the labellers answer, as text
    design["label"] = np.where(labelled.label == 1, "Cropland", "Non-crop")
    design.to_csv(tmp_path / "done.csv", index=False)  # the design file, labelled in place
    capsys.readouterr()
    assert main(["area", str(store), str(tmp_path / "done.csv"), "--out",
                 str(tmp_path / "area.csv")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "| 1 | 413 |" in out and "reference points: 300 of 300 used" in out
    table = pd.read_csv(tmp_path / "area.csv", index_col=0)
    python = area(store, xcrop.read_labels(tmp_path / "done.csv", label="label", lon="LON",
                                           lat="LAT"))  # fmt: skip
    np.testing.assert_allclose(table.area_ha, python.table.area_ha)
    # mistakes: in the command line's terms, one line each
    assert main(["sample-design", str(store), "--n", "1", "--out", str(tmp_path / "x.csv")]) == 1
    assert "--n 1 cannot cover the map's 2 strata" in capsys.readouterr().err
    assert main(["area", str(store), str(tmp_path / "done.csv"), "--label", "crop"]) == 1
    assert "give --label one of them" in capsys.readouterr().err
    assert main(["area", str(store), str(tmp_path / "d.csv")]) == 1  # not labelled yet
    assert "label the sample design first" in capsys.readouterr().err


def test_a_numpy_map_larger_than_a_block_is_drawn_from_the_blocks_it_was_counted_in():
    """Regression: the strata of a numpy-backed map were counted in 1024 px blocks but
    drawn from dask's own chunking of it, so block (1, 0) did not exist (IndexError)."""
    rng = np.random.default_rng(1)
    values = rng.random((1100, 60)).astype("float32")  # numpy, not dask
    da = grid(values, res=10.0).compute()
    design = sample_for_area(da, 200, seed=0)
    xy = design.to_crs(da.rio.crs).geometry
    got = da.sel(x=xr.DataArray(xy.x.to_numpy()), y=xr.DataArray(xy.y.to_numpy()),
                 method="nearest").values  # fmt: skip
    np.testing.assert_array_equal(got >= 0.5, design.stratum == 1)
    rows = ((float(da.y[0]) + 5 - xy.y) // 10).astype(int)
    assert (rows >= 1024).any()  # points from the second block of rows too
