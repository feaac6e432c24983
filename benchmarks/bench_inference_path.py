"""Which LSTM inference path ``predict`` should keep: xcrop's former kernel or the plain module.

Issue 20 item 3, which this measurement decided: the plain module (``predict`` and
``predict_proba`` now run the model's own forward, ``xcrop._model.members_proba``); the
former kernel is kept below, in this script only, so that the comparison can be rerun.

In one run, on the same pixels and the same dask setup as ``xcrop.predict`` (a (time,
band, y, x) dask array of ``--chunk`` px blocks, each block in row strips of >= 256
rows, the threaded scheduler with one torch thread per dask thread), two block
functions:

- ``kernel``: xcrop's former ``InferenceKernel`` (normalisation folded into the weights,
  fused gates, one preallocated buffer per step), copied below as ``FormerKernel``;
- ``plain``: what ``xcrop.predict`` runs now, the model's own ``forward`` (``nn.LSTM`` +
  the head) under ``torch.inference_mode`` on the block's finite pixels as (N, T, F)
  batches (``xcrop._model.members_proba``);

and the same two on the main thread with torch's default threads (what
``model.predict_proba`` does), for a single model and for the 5-member ensemble
``xcrop.train`` returns by default. Prints pixels/s, the ratio plain / kernel, and checks
that both give the same probabilities (max abs difference). The repeats of the two
paths alternate (kernel, plain, kernel, plain, ...) and each reports its best, so a
change in the machine's load during the run falls on both.

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
import time
from typing import cast

import dask
import dask.array as da
import numpy as np
import torch
from _paths import writable

from xcrop._inference import _strips
from xcrop._model import LSTMEnsemble, MultiHeadLSTM, members_of, members_proba

T, F, H = 12, 12, 64


def _one_thread_off_main() -> None:
    if threading.current_thread() is not threading.main_thread() and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def plain_proba(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """xcrop's path: probabilities (P,) of x (T, F, P) by the model's own forward."""
    return members_proba(members_of(model), x.transpose(2, 0, 1), batch_size=batch_size)


class FormerKernel:
    """xcrop's former inference kernel (``xcrop.inference.InferenceKernel`` until issue 20
    item 3 deleted it), kept here as it was so that the measurement that decided stays
    reproducible: a trained model's forward pass for inference, on (T, F, P) arrays.

    Parameters
    ----------
    model
        A trained :class:`~xcrop.model.MultiHeadLSTM` or
        :class:`~xcrop.model.LSTMEnsemble` (its members' mean probability).
    head
        ``"local"`` (the paper's prediction) or ``"global"``.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``...

    Examples
    --------
    >>> kernel = FormerKernel(MultiHeadLSTM(("B04", "B08")))
    >>> kernel(np.zeros((12, 2, 3), "float32")).shape
    (3,)
    """

    def __init__(
        self, model: MultiHeadLSTM | LSTMEnsemble, *, head: str = "local", device="cpu"
    ) -> None:
        if head not in ("local", "global"):
            raise ValueError(f"head={head!r}; use 'local' or 'global'.")
        if head == "global" and not model.multi_head:
            raise ValueError("This model is single-headed; predict with head='local'.")
        self.device = torch.device(device)
        members = (
            [cast(MultiHeadLSTM, m) for m in model.members]  # nn.ModuleList: items typed Module
            if isinstance(model, LSTMEnsemble)
            else [model]
        )
        #: Per member: the fused recurrent weights and the head's layers (None for ReLU).
        self.members = [self._weights(m, head) for m in members]
        self.hidden = members[0].lstm.hidden_size
        self.bands = model.bands

    def _weights(self, model: MultiHeadLSTM, head: str) -> tuple[torch.Tensor, list]:
        lstm = model.lstm
        with torch.no_grad():
            scale = 1 / model.std.double()
            w_ih = lstm.get_parameter("weight_ih_l0").double() * scale  # (x - mean) / std folded
            b_ih, b_hh = lstm.get_parameter("bias_ih_l0"), lstm.get_parameter("bias_hh_l0")
            b = b_ih.double() + b_hh.double() - w_ih @ model.mean.double()
            h = lstm.hidden_size
            order = torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h),
                               torch.arange(2 * h, 3 * h)])  # fmt: skip  # i f o g
            # [W_ih | b | W_hh] for [x_t; 1; h], the g rows doubled (tanh via sigmoid)
            w_hh = lstm.get_parameter("weight_hh_l0").double()
            w_cat = torch.cat([w_ih, b[:, None], w_hh], dim=1)[order]
            w_cat[3 * h :] *= 2
            head_module = model.local_head if head == "local" else model.global_head
            if head_module is None:  # refused in __init__ already
                raise ValueError("This model is single-headed; predict with head='local'.")
            layers = [
                (m.weight.detach().float().to(self.device), m.bias.detach()[:, None].float()
                 .to(self.device)) if isinstance(m, torch.nn.Linear) else None
                for m in head_module
            ]  # fmt: skip
        return w_cat.float().contiguous().to(self.device), layers

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities (P,) of x (T, F, P), finite: the members' mean."""
        out = self._member(x, *self.members[0])
        for w_cat, head in self.members[1:]:
            out += self._member(x, w_cat, head)
        return out / len(self.members) if len(self.members) > 1 else out

    def _member(self, x: torch.Tensor, w_cat: torch.Tensor, head: list) -> torch.Tensor:
        """One member's probabilities (P,) of x (T, F, P).

        One product per step, ``[W_ih | b | W_hh] @ [x_t; 1; h]``, into one gate buffer;
        tanh as ``2 sigmoid(2 v) - 1`` (the 2 folded into the weights and the cell state
        kept doubled), since sigmoid is several times cheaper than tanh on CPUs.
        """
        hid, (t_steps, f, p) = self.hidden, x.shape
        z = torch.empty((f + 1 + hid, p), device=x.device)  # [x_t; 1; h]
        z[f] = 1
        h = z[f + 1 :]
        gates = torch.empty((4 * hid, p), device=x.device)
        c2 = torch.empty((hid, p), device=x.device)  # 2 x the cell state
        i, f_, o, g = gates[:hid], gates[hid : 2 * hid], gates[2 * hid : 3 * hid], gates[3 * hid :]
        for t in range(t_steps):
            z[:f] = x[t]
            if t:
                torch.mm(w_cat, z, out=gates)
            else:  # h = 0
                torch.mm(w_cat[:, : f + 1], z[: f + 1], out=gates)
            gates.sigmoid_()  # i, f, o and (g + 1) / 2
            if t:  # 2c = f 2c + 2 i g = f 2c + 4 i s - 2 i
                c2.mul_(f_).addcmul_(i, g, value=4).sub_(i, alpha=2)
            else:
                torch.mul(i, g, out=c2).mul_(4).sub_(i, alpha=2)
            torch.sigmoid(c2, out=h)  # h = o tanh(c) = 2 o sigmoid(2c) - o
            h.mul_(o).mul_(2).sub_(o)
        out = h
        for layer in head:
            out = torch.relu(out) if layer is None else torch.addmm(layer[1], layer[0], out)
        return torch.sigmoid(out[0])

    def __call__(self, block: np.ndarray, *, batch_size: int = 2048) -> np.ndarray:
        """Probabilities (P,) of a (T, F, P) float array; NaN where any input is NaN."""
        t_steps, f, p = block.shape
        out = np.full(p, np.nan, "float32")
        index = np.flatnonzero(np.isfinite(block).all(axis=(0, 1)))
        buffer = np.empty((t_steps, f, min(batch_size, len(index))), "float32")
        with torch.inference_mode():
            for start in range(0, len(index), batch_size):
                cols = index[start : start + batch_size]
                x = buffer[:, :, : len(cols)]
                np.take(block, cols, axis=2, out=x)
                xt = torch.from_numpy(x).to(self.device, non_blocking=True)
                out[cols] = self._forward(xt).cpu().numpy()
        return out

    def predict(self, X: np.ndarray, *, batch_size: int = 2048) -> np.ndarray:
        """Probabilities (N,) of samples X (N, T, F)."""
        return self(np.asarray(X).transpose(1, 2, 0), batch_size=batch_size)


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


def alternating(a, b, repeat: int) -> tuple[float, float]:
    """The best of ``repeat`` timed runs of ``a`` and of ``b``, run in turns after one
    warm-up run of each."""
    a(), b()
    best = [np.inf, np.inf]
    for _ in range(repeat):
        for i, fn in enumerate((a, b)):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best[0], best[1]


def measure(label, model, block, array, n, args, threads) -> list[tuple]:
    """Kernel and plain, on the main thread (``n`` pixels) and over the dask chunks."""
    kernel = FormerKernel(model)
    got_k = kernel(block, batch_size=args.batch_size)
    got_p = plain_proba(model, block, args.batch_size)
    diff = float(np.nanmax(np.abs(got_k - got_p)))
    sub = block[:, :, :n]
    t_main_k, t_main_p = alternating(
        lambda: kernel(sub, batch_size=args.batch_size),
        lambda: plain_proba(model, sub, args.batch_size),
        args.repeat,
    )
    torch.set_num_threads(threads)
    with dask.config.set(scheduler="threads"):
        t_dask_k, t_dask_p = alternating(
            lambda: dask_map(array, model, kernel, args.batch_size).compute(),
            lambda: dask_map(array, model, None, args.batch_size).compute(),
            args.repeat,
        )
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
    parser.add_argument("--markdown", type=writable, default=None)
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
