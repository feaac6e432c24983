"""The writers' memory budget: how many blocks fit, the limit of a cgroup, and a refusal
before any work when one block does not fit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xcrop
from xcrop._memory import DEFAULT_SHARE, blocks_in_flight, budget_bytes, memory_limit
from xcrop.errors import XcropError

from .test_io import make_prob
from .test_io_safety import composite_of

MB = 1_000_000


def test_blocks_in_flight_fit_the_budget():
    assert blocks_in_flight(300 * MB, 1000 * MB, 2, "x", "fix") == 2
    assert blocks_in_flight(300 * MB, 500 * MB, 2, "x", "fix") == 1
    assert blocks_in_flight(300 * MB, 10_000 * MB, 4, "x", "fix") == 4  # never above threads
    assert blocks_in_flight(300 * MB, None, 3, "x", "fix") == 3  # no budget
    with pytest.raises(XcropError, match=r"One block of x needs about 300 MB but the memory "
                                         r"budget is 200 MB .*; fix\."):  # fmt: skip
        blocks_in_flight(300 * MB, 200 * MB, 2, "x", "fix")


def test_budget_bytes_reads_sizes_and_refuses_nonsense():
    assert budget_bytes("1.5GB") == 1_500_000_000 and budget_bytes(2 * MB) == 2 * MB
    assert budget_bytes(False) is None
    assert 0 < budget_bytes(None) < DEFAULT_SHARE * memory_limit()
    with pytest.raises(XcropError, match="give bytes or a size"):
        budget_bytes("lots")
    with pytest.raises(XcropError, match="> 0"):
        budget_bytes(-1)


def test_a_composite_that_cannot_fit_is_refused_before_any_work(tmp_path):
    comp = composite_of()  # from a store-like composite: a few bytes per pixel
    with pytest.raises(XcropError, match=r"One block of the composite needs about .* MB"):
        xcrop.write_composite(comp, tmp_path / "c.zarr", memory_budget=1000, progress=False)
    assert not (tmp_path / "c.zarr").exists()
    with pytest.raises(XcropError, match=r"One block of the map needs"):
        xcrop.to_zarr(make_prob(), tmp_path / "p.zarr", memory_budget=100, progress=False)
    assert not (tmp_path / "p.zarr").exists()
    xcrop.write_composite(comp, tmp_path / "c.zarr", memory_budget="1GB", progress=False)


def test_composites_from_imagery_carry_their_write_estimate(pc_items):
    from xcrop._memory import REF_FIXED, REF_OBS_BANDS, REF_PER_PIXEL, composite_bytes

    cube = xcrop.load(pc_items, chunks=64)
    comp = cube.cropmask.composite(start="2020-06-01", periods=2, days=30)
    start, end = np.datetime64("2020-06-01"), np.datetime64("2020-07-31")
    observations = int(((cube.time >= start) & (cube.time < end)).sum())
    bands = cube.sizes["band"]
    want = composite_bytes(observations, bands, comp.data.sizes["band"], 2, chunk=64)
    assert (comp.data.attrs["bytes_per_pixel"], comp.data.attrs["bytes_fixed"]) == want
    scale = observations * bands / REF_OBS_BANDS  # the benchmark's 73 x 13 measure 1
    out = comp.data.sizes["band"]  # 11 reflectance bands + NDVI; 2 periods
    halo = (512 / 64) ** 0.25  # small chunks: relatively more halo
    assert want[0] == pytest.approx(REF_PER_PIXEL * scale * halo)  # outputs < the 12 x 12
    assert want[1] == max(REF_FIXED * scale, 50e6)
    model = pytest.importorskip("xcrop._model").MultiHeadLSTM(tuple(comp.data.band.values))
    prob = comp.predict(model)
    assert prob.attrs["bytes_per_pixel"] == want[0] + 3 * 2 * out * 4
    assert prob.attrs["bytes_fixed"] == want[1]


def test_the_estimates_in_the_docs_are_the_models():
    """docs/scale.md's estimate column: the benchmark's cases through composite_bytes."""
    from xcrop._memory import composite_bytes

    text = (Path(__file__).resolve().parents[1] / "docs" / "scale.md").read_text()
    for chunk, flight in ((256, 1), (256, 2), (512, 1), (512, 2), (1024, 1)):
        per_pixel, fixed = composite_bytes(73, 13, 12, 12, chunk=chunk)
        mb = round((fixed + flight * per_pixel * chunk**2) / 1e6)
        assert re.search(rf"\| {chunk} px \| {flight} \| [\d,]+ MB \| {mb:,} MB \|", text), (
            chunk,
            flight,
            mb,
        )


CGROUP = Path("/sys/fs/cgroup/memory")


def test_memory_limit_sees_a_cgroups_limit(tmp_path):
    """A real cgroup (v1) with a 1.5 GB limit: the process inside plans for it."""
    if not os.access(CGROUP, os.W_OK):
        pytest.skip("no writable cgroup v1 memory controller here (needs root)")
    group = CGROUP / f"xcrop-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text("1500000000")
        code = (
            f"import os; open('{group}/cgroup.procs', 'w').write(str(os.getpid()))\n"
            "from xcrop._memory import memory_limit\nprint(memory_limit())\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)  # fmt: skip
        limit = int(done.stdout.strip())
        assert 1_400_000_000 < limit <= 1_500_000_000
    finally:
        group.rmdir()
