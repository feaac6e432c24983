"""How much memory a write may use, and how many blocks that allows in flight.

The writers (``to_zarr``, ``write_composite``) compute a bounded number of spatial blocks
at once. Each block of a composite made from imagery holds, at its peak, its chunk's
observations (all bands, float32) and its neighbours' reads for the cloud-shadow halo;
``bench_write_memory.py`` measures it per pixel of a block, and the composite carries the
estimate in its attrs (``bytes_per_pixel``), which the writers divide into the budget.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import XcropInputError

__all__ = ["memory_limit", "process_rss", "budget_bytes", "DEFAULT_SHARE", "composite_bytes"]

#: Share of the memory this process may use that the writers plan for by default.
DEFAULT_SHARE = 0.75


#: What a write of a composite made from imagery holds at its peak, measured on the
#: benchmark preset (73 observations x 13 bands, Schmitt score, a 1024 px window, 2
#: threads) by benchmarks/bench_write_memory.py, above the process's size before the
#: write: 320 and 400 MB for one and two 256 px blocks in flight, 558 and 821 MB for
#: 512 px, 1282 MB for one 1024 px block (an earlier run: 326, 409, 515, 792, 1322).
#: Model: REF_FIXED for the write plus REF_PER_PIXEL bytes per pixel of each block in
#: flight (more for chunks under REF_CHUNK px, whose cloud-shadow halo is relatively
#: larger), both in proportion to observations x bands; for 73 x 13 it gives 336, 421,
#: 538, 827 and 1403 MB for those cases.
REF_OBS_BANDS = 73 * 13
REF_FIXED = 250e6
REF_CHUNK = 512
REF_PER_PIXEL = 1100.0


def composite_bytes(
    observations: int, source_bands: int, out_bands: int, periods: int, chunk: int = REF_CHUNK
) -> tuple[float, float]:
    """Estimated peak bytes of a composite write from imagery: (per pixel of a block in
    flight, fixed part of the write), for square chunks of ``chunk`` px.

    Examples
    --------
    >>> per_pixel, fixed = composite_bytes(73, 13, 12, 12, chunk=512)
    >>> round((fixed + 2 * per_pixel * 512**2) / 1e6)  # two 512 px blocks in flight
    827
    """
    scale = observations * source_bands / REF_OBS_BANDS
    # the measurement includes the outputs of the benchmark's 12 bands x 12 periods;
    # more output values than that add their float32 bytes
    extra = max(periods * out_bands - 12 * 12, 0) * 4
    halo = max(1.0, REF_CHUNK / max(chunk, 1)) ** 0.25
    return REF_PER_PIXEL * scale * halo + extra, max(REF_FIXED * scale, 50e6)


def _cgroup_limits() -> list[int]:
    """Memory limits of this process's cgroups (v1 and v2) and their parents."""
    limits: list[int] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return limits
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            roots, name = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"], "memory.max"
        elif "memory" in controllers.split(","):
            roots, name = ["/sys/fs/cgroup/memory"], "memory.limit_in_bytes"
        else:
            continue
        for root in roots:
            here = Path(root + path)
            while True:
                try:
                    text = (here / name).read_text().strip()
                    if text != "max" and int(text) < 2**60:
                        limits.append(int(text))
                except (OSError, ValueError):
                    pass
                if str(here) == root or here == here.parent:
                    break
                here = here.parent
    return limits


def memory_limit() -> int:
    """Bytes this process may use: the machine's memory or, if smaller, its cgroup's limit
    (a container's, a batch job's, ``systemd-run -p MemoryMax=``).

    Examples
    --------
    >>> memory_limit() > 0
    True
    """
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min([total, *_cgroup_limits()])


def process_rss() -> int:
    """Resident memory of this process now, in bytes."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def budget_bytes(memory_budget: int | float | str | None) -> int | None:
    """The bytes a write may add to this process: ``None`` for the default (a share of
    :func:`memory_limit` less what the process holds now), ``False`` for no budget,
    a number of bytes, or a string such as ``"1.5GB"``."""
    if memory_budget is False:
        return None
    if memory_budget is None:
        return int(DEFAULT_SHARE * memory_limit()) - process_rss()
    if isinstance(memory_budget, str):
        from dask.utils import parse_bytes

        try:
            return parse_bytes(memory_budget)
        except ValueError as err:
            raise XcropInputError(
                f"memory_budget={memory_budget!r}: give bytes or a size such as '1.5GB'."
            ) from err
    if memory_budget <= 0:
        raise XcropInputError(f"memory_budget={memory_budget!r}: give a size > 0.")
    return int(memory_budget)


def blocks_in_flight(
    block_bytes: int, budget: int | None, threads: int, what: str, fix: str, fixed: int = 0
) -> int:
    """Blocks to compute at once: one per thread, fewer if the budget needs it; an error
    before any work if even one block (with the write's ``fixed`` part) does not fit."""
    if budget is None or block_bytes <= 0:
        return threads
    if fixed + block_bytes > budget:
        raise XcropInputError(
            f"One block of {what} needs about {(fixed + block_bytes) / 1e6:,.0f} MB but the "
            f"memory budget is {max(budget, 0) / 1e6:,.0f} MB ({DEFAULT_SHARE:.0%} of the "
            f"{memory_limit() / 1e6:,.0f} MB this process may use, less the "
            f"{process_rss() / 1e6:,.0f} MB it holds); {fix}."
        )
    return max(1, min(threads, (budget - fixed) // block_bytes))
