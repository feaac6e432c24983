"""Window reads: a slice of a cube reads only its pixels, values as odc-stac's.

``xcrop.load`` reads through odc-loader's rasterio reader, window by window, instead of
``odc.stac.load``'s per-chunk graph; these tests pin its values to odc-stac's on the
tiny simulated archive (bit for bit, through the composite and the map) and count the
pixels a cut window reads.
"""

from __future__ import annotations

import dask
import numpy as np
import odc.stac
import pandas as pd
import pytest
import xarray as xr

import xcrop
from xcrop._catalog import find_items
from xcrop._composite import _default_start, _regular_chunks, _spatial_chunks, period_index
from xcrop._inference import _strips
from xcrop._reads import CubeSource, _bounds, dn_to_reflectance
from xcrop._sentinel2 import DEFAULT_BANDS, normalise_item, reflectance_scaling


def _items(tiny, region="togo-north", n=30):
    """The region's first ``n`` acquisitions (fewer reads: the suite stays quick)."""
    items = find_items(
        tiny.bbox(region), None, catalog=str(tiny.items_path), collection="sentinel-2-l2a"
    )
    return sorted(items, key=lambda it: (it.datetime, it.id))[:n]


def _odc_stac_cube(items, like: xr.DataArray) -> xr.DataArray:
    """The cube as xcrop built it before window reads: ``odc.stac.load`` of uint16 DN on
    the same grid and chunks, then ``DN * scale + offset`` with NaN nodata."""
    bands = list(DEFAULT_BANDS)
    normalised = [normalise_item(it, bands) for it in items]
    normalised = sorted(normalised, key=lambda it: (it.datetime, it.id))
    ds = odc.stac.load(
        normalised, bands=bands, geobox=like.odc.geobox,
        groupby=lambda item, parsed, idx: idx, chunks={"time": 1, "y": 64, "x": 64},
        dtype="uint16", resampling="nearest", nodata=0,
    )  # fmt: skip
    dn = ds[bands].to_dataarray("band").transpose("time", "band", "y", "x")
    scaling = np.array(
        [[reflectance_scaling(it, b) for b in bands] for it in normalised], "float32"
    )[:, :, None, None, :]
    factors = dask.array.from_array(scaling, chunks=(1, 1, 1, 1, 2))
    data = dask.array.map_blocks(
        dn_to_reflectance, dn.data, factors[..., 0], factors[..., 1], dtype="float32"
    )
    return like.copy(data=data)


@pytest.fixture(scope="module")
def cubes(tiny):
    items = _items(tiny)
    cube = xcrop.load(items, chunks=64)
    return cube, _odc_stac_cube(items, cube)


def test_the_cube_equals_odc_stacs_bit_for_bit(cubes):
    cube, reference = cubes
    mine, theirs = cube.values, reference.values
    assert np.isnan(mine).mean() > 0.01  # edges and gaps: nodata is compared too
    np.testing.assert_array_equal(mine, theirs)


def test_composites_and_maps_equal_odc_stacs_bit_for_bit(cubes):
    cube, reference = cubes
    window = {"x": slice(7, 101), "y": slice(3, 120)}  # a cut: slivers of four chunks
    mine = cube.isel(**window).cropmask.composite()
    theirs = reference.isel(**window).cropmask.composite()
    np.testing.assert_array_equal(mine.data.values, theirs.data.values)
    np.testing.assert_array_equal(mine.counts.values, theirs.counts.values)
    model = xcrop.MultiHeadLSTM(tuple(str(b) for b in mine.data.band.values)).eval()
    np.testing.assert_array_equal(
        mine.predict(model).values, theirs.predict(model).values
    )  # fmt: skip


def _count_reads(monkeypatch) -> list[int]:
    read = []
    original = CubeSource.__getitem__

    def counted(self, key):
        out = original(self, key)
        read.append(out.size)
        return out

    monkeypatch.setattr(CubeSource, "__getitem__", counted)
    return read


def test_a_slice_reads_only_its_pixels(cubes, monkeypatch):
    cube, _ = cubes
    read = _count_reads(monkeypatch)
    assert cube.data.numblocks[2:] == (2, 2)
    part = cube.isel(x=slice(60, 70), y=slice(58, 68))  # across all four chunks
    part.max().compute()
    assert sum(read) == part.size  # the old loader read the four whole chunks: 160x more


def test_a_cut_window_is_composited_from_one_read_per_chunk(cubes, monkeypatch):
    cube, _ = cubes
    part = cube.isel(x=slice(60, 120), y=slice(61, 120))
    assert part.data.chunks[2:] == ((3, 56), (4, 56))
    regular = _regular_chunks(part)
    assert regular.data.chunks[2:] == ((59,), (60,))
    expected = part.values
    read = _count_reads(monkeypatch)
    np.testing.assert_array_equal(regular.values, expected)
    assert len(read) == part.sizes["time"] * part.sizes["band"]  # not four pieces each
    assert sum(read) == part.size


def test_a_selection_of_times_and_bands_keeps_its_order(cubes):
    cube, _ = cubes
    part = cube.isel(time=[5, 3, 9], band=[2, 0]).isel(x=slice(3, 120))
    regular = _regular_chunks(part)
    assert regular.data.chunks[2:] == ((64, 56), (62, 55))
    np.testing.assert_array_equal(regular.values, part.values)
    np.testing.assert_array_equal(regular.band.values, ["B03", "B01"])


def test_flipped_strided_and_empty_selections_read_as_numpy_would(cubes):
    cube, reference = cubes
    for sel in (
        {"x": slice(None, None, -1), "y": slice(100, 10, -3)},
        {"time": slice(None, None, -4), "x": slice(5, 90, 7)},
        {"x": slice(50, 20)},
    ):
        part = cube.isel(**sel).values
        np.testing.assert_array_equal(part, reference.isel(**sel).values)
    assert cube.isel(x=slice(50, 20)).values.shape[3] == 0


def test_arithmetic_on_a_cube_is_rechunked_not_reread(cubes):
    cube, _ = cubes
    part = (cube * 1).isel(x=slice(60, 120))
    regular = _regular_chunks(part)
    assert regular.data.chunks[3] == (60,)
    np.testing.assert_array_equal(regular.values, part.values)


@pytest.mark.parametrize(
    "chunks, expected",
    [
        ((1004, 20), (1024,)),
        ((500, 1024, 1024, 300), (1024, 1024, 800)),
        ((1024, 1024, 100), (1024, 1124)),
        ((255, 255, 10), (256, 264)),
        ((77,), (77,)),
        ((512, 512, 512), (512, 512, 512)),
    ],
)
def test_spatial_chunks_are_regular_even_and_without_slivers(chunks, expected):
    assert _spatial_chunks(chunks) == expected


def test_window_keys_read_their_bounds_then_index_as_numpy():
    rng = np.random.default_rng(0)
    full = rng.random((5, 4, 30, 20))
    keys = [
        (slice(None), slice(None), slice(3, 17), slice(0, 20, 3)),
        (2, slice(1, 3), slice(-5, None), 7),
        (np.array([4, 1, 3]), 0, slice(2, 29, 5), slice(19, 20)),
        (slice(1, 4), [3, 0], np.isin(np.arange(30), [4, 9]), slice(5, 5)),
        (1, slice(None), np.array([True] * 10 + [False] * 20)),
        (-1,),
        (slice(None, None, -1), slice(3, 0, -2), slice(29, None, -7), slice(None, 4, -1)),
        (slice(4, 1), 0, slice(0, 0), slice(19, 0, -1)),
    ]
    for key in keys:
        outer, inner = _bounds(key, full.shape)
        np.testing.assert_array_equal(full[tuple(outer)][inner], full[key])
        assert all(s.step is None for s in outer)
    with pytest.raises(IndexError, match="out of bounds"):
        _bounds((5,), full.shape)


def test_predict_strips_split_only_tall_blocks():
    assert _strips((1024, 1024, 300)) == (512, 512, 512, 512, 300)
    assert _strips((511,)) == (511,)
    assert _strips((513,)) == (256, 257)


def _path(comp) -> str:
    layers = comp.data.data.dask.layers
    return "windows" if any(k.startswith("xcrop-wquality") for k in layers) else "neighbours"


@pytest.mark.parametrize("window", [{}, {"x": slice(5, 101), "y": slice(3, 110)}])
def test_window_quality_equals_the_neighbour_graph_bit_for_bit(tiny, window):
    cube = xcrop.load(_items(tiny, "kenya", 20), chunks=24).isel(**window)  # halos > chunks
    mine = cube.cropmask.composite()
    theirs = cube.copy(data=cube.data + 0).cropmask.composite()  # not a plain read: old path
    assert (_path(mine), _path(theirs)) == ("windows", "neighbours")
    np.testing.assert_array_equal(mine.data.values, theirs.data.values)
    np.testing.assert_array_equal(mine.counts.values, theirs.counts.values)
    np.testing.assert_array_equal(mine.dates.values, theirs.dates.values)


def test_a_block_computed_alone_reads_its_halo_not_its_neighbours(cubes, monkeypatch):
    cube, _ = cubes  # 2 x 2 chunks of 64 / 56 px
    comp = cube.cropmask.composite(max_cloud_height=0)  # halo: the 9 px (20 m) margin
    read = _count_reads(monkeypatch)
    comp.data.data.blocks[:, :, 0, 0].compute()
    # per observation in the periods: nine score bands over (64 + 18)^2 px, the four
    # others over the chunk; the graph of neighbours read the score bands of all four
    # chunks (120^2 px)
    times = cube.time.values
    used = int((period_index(times, _default_start(pd.DatetimeIndex(times)), 12, 30) >= 0).sum())
    assert 0 < used < cube.sizes["time"]  # those outside the periods are never read
    assert sum(read) == used * (9 * 82 * 82 + 4 * 64 * 64)


def test_an_empty_selection_is_explained_not_divided_by_zero(cubes):
    cube, _ = cubes
    with pytest.raises(xcrop.XcropError, match=r"no pixels \(y: 0, x: 120\).*north, south"):
        cube.sel(y=slice(cube.y.values[-1], cube.y.values[0])).cropmask.composite()


def test_window_reads_run_on_distributed_worker_processes(tiny):
    """The reader and the window-quality graph ship to worker processes (pickled once
    per graph) and give the threaded result."""
    distributed = pytest.importorskip("distributed")
    cube = xcrop.load(_items(tiny, "kenya", 20), chunks=32).isel(x=slice(2, 60))
    threaded = cube.cropmask.composite().to_dataset().compute()
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    with cluster, distributed.Client(cluster):
        comp = cube.cropmask.composite()
        assert _path(comp) == "windows"
        spread = comp.to_dataset().compute()
    xr.testing.assert_identical(threaded, spread)


def test_a_numpy_backed_cube_composites_as_its_dask_cube(cubes):
    cube, _ = cubes
    part = cube.isel(x=slice(0, 40), y=slice(0, 40))
    held = part.copy(data=part.values)  # what as_cube accepts: numpy in memory
    np.testing.assert_array_equal(
        held.cropmask.composite().data.values, part.cropmask.composite().data.values
    )


def test_exports_without_b01_or_b09_are_told_which_argument_needs_them(cubes):
    cube, _ = cubes
    part = cube.isel(x=slice(0, 20), y=slice(0, 20))
    no_b01 = part.sel(band=[b for b in part.band.values if b != "B01"])
    with pytest.raises(xcrop.MissingBandError, match=r"needs \['B01'\]: .* score='scl'"):
        no_b01.cropmask.composite()
    assert no_b01.cropmask.composite(score="scl").data.sizes["band"] == 12
    no_b09 = part.sel(band=[b for b in part.band.values if b != "B09"])
    with pytest.raises(xcrop.MissingBandError, match=r"asks for \['B09'\].*pass bands=\['B02'"):
        no_b09.cropmask.composite()
    bands = [b for b in xcrop.REFLECTANCE_BANDS if b != "B09"]
    comp = no_b09.cropmask.composite(bands=bands)
    assert list(comp.data.band.values) == [*bands, "NDVI"]


def test_observations_whose_footprint_misses_a_chunk_get_no_tasks_there(tiny):
    """A cube wider than its items (a country's cube over many MGRS tiles is mostly
    that): no read, quality or pick task for an observation outside its footprint, and
    the composite equals the neighbour graph's (which reads NaN there) bit for bit."""
    items = _items(tiny, "kenya", 20)
    west, south, east, north = tiny.bbox("kenya")
    wide = (west - (east - west), south, east, north + (north - south))  # 2 x 2 the area
    cube = xcrop.load(items, area=wide, chunks=32)
    mine = cube.cropmask.composite()
    theirs = cube.copy(data=cube.data + 0).cropmask.composite()
    assert (_path(mine), _path(theirs)) == ("windows", "neighbours")
    layers = mine.data.data.dask.layers
    reads = next(v for k, v in layers.items() if k.startswith("xcrop-wquality"))
    blocks = cube.sizes["time"] * np.prod(cube.data.numblocks[2:])
    assert len(reads) - 1 == 9 / 16 * blocks  # the items cover 9 of the 4 x 4 chunks
    assert not any(k.startswith("getter") or k.startswith("xcrop-read") for k in layers)
    np.testing.assert_array_equal(mine.data.values, theirs.data.values)
    np.testing.assert_array_equal(mine.counts.values, theirs.counts.values)
    np.testing.assert_array_equal(mine.dates.values, theirs.dates.values)
    assert np.isnan(mine.data.values).mean() > 0.5  # outside the items: no data
