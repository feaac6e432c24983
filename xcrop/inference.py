"""Lazy prediction: a composite and a model in, a (y, x) crop probability out.

The kernel (:class:`InferenceKernel`) is plain torch on arrays laid out as the composite's
blocks are, (T, F, pixels): the normalisation is folded into the input weights, the input
projection of all time steps is one matrix product, and the recurrence runs on
preallocated buffers, gates in place. No xarray inside.

``predict`` maps it over the composite's spatial chunks, one dask task per chunk. The model
travels as a small handle (its file bytes and their hash) in one graph key, so it is sent
to each dask.distributed worker once, not pickled into every task, and each process builds
its kernel once (a per-process cache keyed by the hash).
"""

from __future__ import annotations

import hashlib
import io
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from .composite import composite_data
from .errors import CubeError, ModelError
from .model import LSTMEnsemble, MultiHeadLSTM, load_model

__all__ = ["InferenceKernel", "ModelHandle", "predict", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class InferenceKernel:
    """A trained model's forward pass for inference, on (T, F, P) arrays.

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
    >>> kernel = InferenceKernel(MultiHeadLSTM(("B04", "B08")))
    >>> kernel(np.zeros((12, 2, 3), "float32")).shape
    (3,)
    """

    def __init__(
        self, model: MultiHeadLSTM | LSTMEnsemble, *, head: str = "local", device="cpu"
    ) -> None:
        if head not in ("local", "global"):
            raise ModelError(f"head={head!r}; use 'local' or 'global'.")
        if head == "global" and not model.multi_head:
            raise ModelError("This model is single-headed; predict with head='local'.")
        self.device = resolve_device(device)
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
                raise ModelError("This model is single-headed; predict with head='local'.")
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


@dataclass(frozen=True)
class ModelHandle:
    """A model as bytes plus their hash: small to ship, cheap to look up per process."""

    data: bytes
    sha256: str

    @classmethod
    def of(cls, model: MultiHeadLSTM | LSTMEnsemble) -> ModelHandle:
        buffer = io.BytesIO()
        model.save(buffer)
        data = buffer.getvalue()
        return cls(data, hashlib.sha256(data).hexdigest())


_KERNELS: dict[tuple[str, str, str], InferenceKernel] = {}
_LOCK = threading.Lock()
#: Kernels built in this process (tests count them to check one build per worker).
BUILDS: list[str] = []


def _kernel(handle: ModelHandle, head: str, device: str) -> InferenceKernel:
    key = (handle.sha256, head, device)
    with _LOCK:
        if key not in _KERNELS:
            model = load_model(io.BytesIO(handle.data))
            _KERNELS[key] = InferenceKernel(model, head=head, device=device)
            BUILDS.append(handle.sha256)
        return _KERNELS[key]


#: Predict tasks running on worker threads now (under ``_THREADS_LOCK``).
_RUNNING = 0
_THREADS_LOCK = threading.Lock()


@contextmanager
def _one_torch_thread(restore: int):
    """torch on one thread in a scheduler's worker thread while predict tasks run; when the
    last running one ends, torch's thread count is ``restore`` again (the caller's, read
    by :func:`predict`).

    Dask already runs one task per core, and torch's own OpenMP threads on top
    oversubscribe the cores (measured up to 50x slower on a busy machine). torch's setting
    is per thread (each thread's OpenMP) and process-wide (what new threads, and a main
    thread that has not run torch yet, start with), so every task sets its own thread, and
    the last one gives the process its setting back: a prediction leaves the user's torch
    as it found it. dask.distributed workers start with OMP_NUM_THREADS=1 anyway.
    """
    global _RUNNING
    if threading.current_thread() is threading.main_thread():  # the synchronous scheduler
        yield
        return
    with _THREADS_LOCK:
        _RUNNING += 1
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _RUNNING -= 1
            if _RUNNING == 0 and restore != 1:
                torch.set_num_threads(restore)


def _predict_block(block, handle, head, device, batch_size, threads) -> np.ndarray:
    t_steps, f, ny, nx = block.shape
    with _one_torch_thread(threads):
        kernel = _kernel(handle, head, device)
        out = kernel(block.reshape(t_steps, f, ny * nx), batch_size=batch_size)
    return out.reshape(ny, nx)


def _proba_block(block: np.ndarray, model, flat: bool) -> np.ndarray:
    """A ``predict_proba`` model on a block (T, F, ny, nx): its pixels' series as (N, T, F)
    (xcrop's baselines) or flattened (N, T * F) time-major (a scikit-learn estimator);
    NaN where a pixel's series has NaN."""
    t_steps, f, ny, nx = block.shape
    series = np.ascontiguousarray(block.reshape(t_steps, f, ny * nx).transpose(2, 0, 1))
    out = np.full(ny * nx, np.nan, "float32")
    valid = np.isfinite(series).all(axis=(1, 2))
    rows = np.flatnonzero(valid)
    classes = list(getattr(model, "classes_", [0, 1]))
    for start in range(0, len(rows), _PROBA_ROWS):  # bounded memory inside a block
        at = rows[start : start + _PROBA_ROWS]
        x = series[at].reshape(len(at), -1) if flat else series[at]
        proba = np.asarray(model.predict_proba(x))
        if proba.ndim == 2:  # scikit-learn: one column per class, crop is label 1
            proba = proba[:, classes.index(1) if 1 in classes else -1]
        out[at] = proba
    return out.reshape(ny, nx)


#: Pixels given to a ``predict_proba`` model at once.
_PROBA_ROWS = 65_536


def _predict_proba(data: xr.DataArray, model) -> tuple[da.Array, dict]:
    """The composite's blocks through any model with ``predict_proba`` (the model pickled
    once into the graph), and the attributes that identify it."""
    import pickle

    from .baselines import Baseline

    bands = tuple(getattr(model, "bands", ()) or ())
    if bands:
        missing = [b for b in bands if b not in data.band.values]
        if missing:
            raise ModelError(
                f"The model was fitted on bands {list(bands)}; the composite lacks {missing}."
            )
        data = data.sel(band=list(bands))
    features = getattr(model, "n_features_in_", None)
    if features is None and hasattr(model, "steps"):  # a scikit-learn Pipeline
        features = getattr(model.steps[0][1], "n_features_in_", None)
    flat = not isinstance(model, Baseline)
    if flat and features is not None and features != data.sizes["time"] * data.sizes["band"]:
        raise ModelError(
            f"The model takes {features} features; the composite gives "
            f"{data.sizes['time']} periods x {data.sizes['band']} bands = "
            f"{data.sizes['time'] * data.sizes['band']} (time-major: period 0's bands first). "
            "Fit it on Samples.X.reshape(len(samples), -1) of these bands."
        )
    payload = pickle.dumps(model)
    sha = hashlib.sha256(payload).hexdigest()
    array = data.data if isinstance(data.data, da.Array) else da.from_array(data.data)
    array = array.rechunk({0: -1, 1: -1})
    handle = dask.delayed(model, pure=True, name=f"xcrop-model-{sha}")
    out = da.map_blocks(
        _proba_block, array, handle, flat, drop_axis=(0, 1), dtype="float32",
        token="xcrop-predict-proba",
    )  # fmt: skip
    attrs = {"head": "", "bands": " ".join(map(str, data.band.values)), "model_sha256": sha}
    return out, attrs


#: Rows of a predict task at least: a block of the composite is predicted in two row
#: strips where it has twice as many, so that a single block (a small map, or the last
#: block of a write) still keeps two cores busy.
STRIP_ROWS = 256


def _strips(rows: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for n in rows:
        out += [n // 2, n - n // 2] if n >= 2 * STRIP_ROWS else [n]
    return tuple(out)


def predict(
    composite,
    model: MultiHeadLSTM | LSTMEnsemble,
    *,
    batch_size: int = 2048,
    device: str = "auto",
    head: str = "local",
) -> xr.DataArray:
    """Crop probability of every pixel of a composite, lazily (one task per spatial chunk).

    Parameters
    ----------
    composite
        A ``Composite`` or a composite DataArray (time, band, y, x) containing the model's
        bands (in any order: they are selected by name).
    model
        A trained :class:`~xcrop.model.MultiHeadLSTM` or
        :class:`~xcrop.model.LSTMEnsemble` (what :func:`xcrop.train` returns), or any
        fitted model with
        ``predict_proba``: xcrop's baselines (``xcrop.random_forest()``, ``xcrop.svm()``,
        given (pixels, periods, bands) series of their ``bands``), or a scikit-learn
        classifier fitted on ``Samples.X.reshape(n, -1)`` (given (pixels, periods x
        bands), time-major; the probability of class 1). Pixels with NaN give NaN. The
        model is pickled once into the graph and sent to each worker once.
    batch_size
        Pixels per forward pass inside a chunk (the LSTM).
    device
        ``"auto"`` (CUDA when the workers have it), ``"cpu"``, ``"cuda"``.
    head
        ``"local"`` (default, as the paper) or ``"global"``.

    Returns
    -------
    xr.DataArray
        ``crop_probability`` (y, x) float32 in 0..1, NaN where the input has NaN, on the
        composite's grid and CRS.

    Examples
    --------
    >>> prob = cube.cropmask.composite().predict(model)  # doctest: +SKIP
    >>> prob.cropmask.to_zarr("map.zarr")  # doctest: +SKIP
    """
    data = composite_data(composite)
    if not isinstance(data, xr.DataArray) or set(data.dims) != {"time", "band", "y", "x"}:
        raise CubeError(
            "predict needs a composite: a Composite or a DataArray (time, band, y, x); "
            "make one with cube.cropmask.composite()."
        )
    data = data.transpose("time", "band", "y", "x")
    if not isinstance(model, (MultiHeadLSTM, LSTMEnsemble)):
        if not callable(getattr(model, "predict_proba", None)):
            raise ModelError(
                f"predict maps with an xcrop MultiHeadLSTM or a fitted model with "
                f"predict_proba (xcrop.random_forest(), a scikit-learn classifier), not "
                f"{type(model).__name__}."
            )
        return _as_map(*_predict_proba(data, model), data)
    data = data.isel(band=model.check_bands(data.band.values))
    periods = model.info.get("periods")
    if periods and periods != data.sizes["time"]:
        raise ModelError(
            f"The model was trained on {periods} periods; the composite has "
            f"{data.sizes['time']}. Composite with periods={periods}."
        )
    array = data.data if isinstance(data.data, da.Array) else da.from_array(data.data)
    array = array.rechunk({0: -1, 1: -1})
    if head not in ("local", "global"):
        raise ModelError(f"head={head!r}; use 'local' or 'global'.")
    if head == "global" and not model.multi_head:
        raise ModelError("This model is single-headed; predict with head='local'.")
    model_handle = ModelHandle.of(model)
    handle = dask.delayed(model_handle, pure=True)
    dev = str(resolve_device(device)) if device != "auto" else "auto"
    # token=, never name=: a name is the whole key, so two maps (other models, other
    # areas) in one computation would share keys; the token prefixes a hash of the inputs.
    chunks = array.chunks[2:]
    strips = _strips(chunks[0])
    if strips != chunks[0]:  # each block in row strips: one block's pixels use every core
        array = array.rechunk({2: strips})
    out = da.map_blocks(
        _predict_block, array, handle, head, dev, batch_size, torch.get_num_threads(),
        drop_axis=(0, 1), dtype="float32", token="xcrop-predict",
    )  # fmt: skip
    if strips != chunks[0]:
        out = out.rechunk(chunks)  # the map's blocks are the composite's again
    attrs = {"head": head, "bands": " ".join(model.bands), "model_sha256": model_handle.sha256}
    return _as_map(out, attrs, data)


def _as_map(out: da.Array, attrs: dict, data: xr.DataArray) -> xr.DataArray:
    """The map of ``out`` on the composite's grid and CRS, with the model's ``attrs``."""
    prob = xr.DataArray(
        out,
        dims=("y", "x"),
        coords={"y": data.y.values, "x": data.x.values},
        name="crop_probability",
        attrs={
            "long_name": "crop probability",
            "units": "1",
            **attrs,
            # a block's composite (its bytes_per_pixel) plus the whole series of its
            # pixels gathered for the model, its normalised copy and the batch
            "bytes_per_pixel": float(data.attrs.get("bytes_per_pixel", 0))
            + 3 * data.sizes["time"] * data.sizes["band"] * 4,
            "bytes_fixed": float(data.attrs.get("bytes_fixed", 0)),
        },
    )
    return prob.rio.write_crs(data.rio.crs) if data.rio.crs is not None else prob
