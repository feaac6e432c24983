"""Which LSTM inference path ``predict`` should keep: xcrop's kernel or the plain module.

Issue 20 item 3. In one run, on the same pixels and the same dask setup as
``xcrop.predict`` (a (time, band, y, x) dask array of ``--chunk`` px blocks, each block in
row strips of >= 256 rows, the threaded scheduler with one torch thread per dask
thread), two block functions:

- ``kernel``: what ``xcrop.predict`` runs now (``InferenceKernel``: normalisation folded
  into the weights, fused gates, one preallocated buffer per step);
- ``plain``: the model's own ``forward`` (``nn.LSTM`` + the head) under
  ``torch.inference_mode``, on the block's finite pixels as (N, T, F) batches;

and the same two on the main thread with torch's default threads (what
``model.predict_proba`` does), for a single model and for the 5-member ensemble
``xcrop.train`` returns by default. Prints pixels/s, the ratio plain / kernel, and checks
that both give the same probabilities (max abs difference).

    .venv/bin/python benchmarks/bench_inference_path.py [--pixels 1048576] [--chunk 512]
        [--repeat 3] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import threading
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import torch
from bench_predict import best_of  # benchmarks/ is the script's folder

from xcrop.inference import InferenceKernel, _strips
from xcrop.model import LSTMEnsemble, MultiHeadLSTM

T, F, H = 12, 12, 64


def _one_thread_off_main() -> None:
    if threading.current_thread() is not threading.main_thread() and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def plain_proba(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The module's own forward: probabilities (P,) of x (T, F, P), NaN where not finite."""
    p = x.shape[2]
    out = np.full(p, np.nan, "float32")
    index = np.flatnonzero(np.isfinite(x).all(axis=(0, 1)))
    members = list(model.members) if isinstance(model, LSTMEnsemble) else [model]
    with torch.inference_mode():
        for start in range(0, len(index), batch_size):
            cols = index[start : start + batch_size]
            xt = torch.from_numpy(np.ascontiguousarray(x[:, :, cols].transpose(2, 0, 1)))
            prob = sum(torch.sigmoid(m(xt)[0]) for m in members) / len(members)
            out[cols] = prob.numpy()
    return out


def _block(block: np.ndarray, model, kernel, batch_size: int) -> np.ndarray:
    _one_thread_off_main()
    t, f, ny, nx = block.shape
    flat = block.reshape(t, f, ny * nx)
    if kernel is not None:
        return kernel(flat, batch_size=batch_size).reshape(ny, nx)
    return plain_proba(model, flat, batch_size).reshape(ny, nx)


def dask_map(array: da.Array, model, kernel, batch_size: int) -> da.Array:
    array = array.rechunk({2: _strips(array.chunks[2])})  # as predict splits its blocks
    return da.map_blocks(_block, array, model, kernel, batch_size, drop_axis=(0, 1),
                         dtype="float32")  # fmt: skip


def measure(label, model, block, array, n, args, threads) -> list[tuple]:
    """Kernel and plain, on the main thread (``n`` pixels) and over the dask chunks."""
    kernel = InferenceKernel(model)
    got_k = kernel(block, batch_size=args.batch_size)
    got_p = plain_proba(model, block, args.batch_size)
    diff = float(np.nanmax(np.abs(got_k - got_p)))
    sub = block[:, :, :n]
    t_main_k = best_of(lambda: kernel(sub, batch_size=args.batch_size), args.repeat)
    t_main_p = best_of(lambda: plain_proba(model, sub, args.batch_size), args.repeat)
    torch.set_num_threads(threads)
    with dask.config.set(scheduler="threads"):
        t_dask_k = best_of(lambda: dask_map(array, model, kernel, args.batch_size).compute(),
                           args.repeat)  # fmt: skip
        t_dask_p = best_of(lambda: dask_map(array, model, None, args.batch_size).compute(),
                           args.repeat)  # fmt: skip
    torch.set_num_threads(threads)
    pixels = array.shape[2] * array.shape[3]
    return [
        (label, f"main thread, {threads} torch threads", n / t_main_k, n / t_main_p, diff),
        (label, "dask chunks, 1 torch thread per dask thread", pixels / t_dask_k,
         pixels / t_dask_p, diff),
    ]  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=1 << 20)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    side = int(np.sqrt(args.pixels))
    pixels = side * side
    rng = np.random.default_rng(0)
    block = rng.random((T, F, pixels), dtype="float32")
    array = da.from_array(block.reshape(T, F, side, side), chunks=(T, F, args.chunk, args.chunk))
    bands = [f"f{i}" for i in range(F)]
    torch.manual_seed(0)
    mean, std = rng.random(F), rng.random(F) + 0.5
    single = MultiHeadLSTM(bands, mean=mean, std=std, hidden=H).eval()
    ensemble = LSTMEnsemble([MultiHeadLSTM(bands, mean=mean, std=std, hidden=H).eval()
                             for _ in range(5)])  # fmt: skip
    threads = torch.get_num_threads()
    rows = []
    for label, model in (("single model", single), ("ensemble of 5", ensemble)):
        n = args.pixels if label == "single model" else args.pixels // 4
        rows += measure(label, model, block, array, n, args, threads)
    cmd = "benchmarks/bench_inference_path.py " + shlex.join(argv or sys.argv[1:])
    head = (
        f"`.venv/bin/python {cmd.strip()}` on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"{pixels:,} pixels of {T} periods x {F} features, hidden {H}, {args.chunk} px chunks:"
    )
    columns = "| model | setup | kernel px/s | plain px/s | plain / kernel | max abs diff |"
    lines = [head, "", columns, "|---|---|---|---|---|---|"]
    for label, setup, k, p, diff in rows:
        lines.append(f"| {label} | {setup} | {k:,.0f} | {p:,.0f} | {p / k:.2f} | {diff:.1e} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
