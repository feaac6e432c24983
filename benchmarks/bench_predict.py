"""Inference throughput of xcrop's LSTM prediction against the roofline and a plain nn.LSTM.

Prints, in one run, on the same pixels (12 periods x 12 features, hidden 64):

- the machine's float32 matrix-multiply rate (``torch.mm`` of 4096^2 matrices): the roofline;
- a plain ``torch.nn.LSTM`` forward + linear head + sigmoid under ``inference_mode``;
- xcrop's ``model.predict_proba`` on the main thread (the same forward, with xcrop's NaN
  checks and batching of a (pixels, T, F) view);
- ``xcrop.predict`` over a dask array of the same pixels (512 x 512 px chunks) on the
  threaded scheduler: one torch thread per dask thread, the way maps are made;

each in pixels/s and GFLOP/s (model FLOPs: 2 T 4H (F + H) per pixel, the two matrix
products of every step; the gates' elementwise work is not counted), with the share of
the roofline. ``--device cuda`` runs the same on a GPU (skips cleanly without one).

    .venv/bin/python benchmarks/bench_predict.py [--pixels 262144] [--device cpu|cuda]
        [--markdown benchmarks/results/predict.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import dask.array as da
import numpy as np
import torch
import xarray as xr
from _paths import writable

from xcrop._inference import predict
from xcrop._model import MultiHeadLSTM

T, F, H = 12, 12, 64


def best_of(fn, repeat: int = 3) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def sgemm_flops(device: torch.device, n: int = 4096) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    return 2 * n**3 / best_of(lambda: torch.mm(a, b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=1048576)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--markdown", type=writable, help="also write the table here")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: skipped")
        return 0
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = MultiHeadLSTM([f"f{i}" for i in range(F)], hidden=H).eval()
    pixels = args.pixels
    block = np.random.default_rng(0).random((T, F, pixels), dtype="float32")
    samples = torch.from_numpy(block.transpose(2, 0, 1).copy()).to(device)
    flop_per_px = 2 * T * 4 * H * (F + H)

    roof = sgemm_flops(device)
    lstm = model.lstm.to(device)
    head = model.local_head.to(device)

    def plain():
        with torch.inference_mode():
            for s in range(0, pixels, args.batch_size):
                _, (h, _) = lstm(samples[s : s + args.batch_size])
                torch.sigmoid(head(h[0]))

    model = model.to(device)
    series = block.transpose(2, 0, 1)  # (pixels, T, F), a view, as predict's blocks give it
    t_plain = best_of(plain)
    t_xcrop = best_of(lambda: model.predict_proba(series, batch_size=args.batch_size))
    side = int(np.sqrt(pixels))
    cube = xr.DataArray(
        da.from_array(
            block[:, :, : side * side].reshape(T, F, side, side), chunks=(T, F, 512, 512)
        ),
        dims=("time", "band", "y", "x"),
        coords={"band": list(model.bands), "y": np.arange(side), "x": np.arange(side)},
    )
    threads = torch.get_num_threads()
    t_dask = best_of(lambda: predict(cube, model, device=device).values) * pixels / side**2
    torch.set_num_threads(threads)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{pixels} pixels, batch {args.batch_size}")  # fmt: skip
    print(f"{'':28}{'pixels/s':>12}{'GFLOP/s':>10}{'roofline':>10}{'vs plain':>10}")
    print(f"{'sgemm 4096^2 (roofline)':28}{'':>12}{roof / 1e9:10.1f}{1:10.0%}")
    rows = (("plain nn.LSTM", t_plain), ("xcrop predict_proba", t_xcrop),
            ("xcrop.predict (dask chunks)", t_dask))  # fmt: skip
    for name, t in rows:
        rate = pixels / t
        print(
            f"{name:28}{rate:12,.0f}{rate * flop_per_px / 1e9:10.1f}"
            f"{rate * flop_per_px / roof:10.0%}{t_plain / t:10.2f}"
        )
    if args.markdown:
        names = {
            "plain nn.LSTM": "plain `nn.LSTM`",
            "xcrop predict_proba": f"xcrop `model.predict_proba`, main thread, {threads} torch "
            "threads",
            "xcrop.predict (dask chunks)": f"`xcrop.predict`, {cube.data.npartitions} chunk(s), "
            f"{os.cpu_count()} dask threads x 1 torch thread",
        }
        lines = [
            f"<!-- generated: `python benchmarks/bench_predict.py --pixels {pixels} --device "
            f"{args.device} --markdown {args.markdown}`; do not edit by hand -->",
            "",
            f"*{device}, torch {torch.__version__}, {os.cpu_count()} cores, {pixels:,} pixels, "
            f"batch {args.batch_size}*",
            "",
            "| | pixels/s | GFLOP/s | roofline | x plain |",
            "|---|---|---|---|---|",
            f"| sgemm 4096^2 (roofline) | | {roof / 1e9:.1f} | 100 % | |",
        ]
        for name, t in rows:
            rate = pixels / t
            lines.append(
                f"| {names[name]} | {rate:,.0f} | {rate * flop_per_px / 1e9:.1f} "
                f"| {rate * flop_per_px / roof:.0%} | {t_plain / t:.2f} |".replace("%", " %")
            )
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
