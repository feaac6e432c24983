"""Lazy prediction: a composite and a model in, a (y, x) crop probability out.

``predict`` maps the model over the composite's spatial chunks, one dask task per chunk
(or row strip), each running the model's own forward pass (the fused ``nn.LSTM`` and the
head, ``members_proba``) on the block's pixels with torch on one thread. The model
travels as a small handle (its file bytes and their hash) in one graph key, so it is sent
to each dask.distributed worker once, not pickled into every task, and each process reads
it once (a per-process cache keyed by the hash and the device).

xcrop had a hand-written inference kernel (normalisation folded into the weights, fused
gates on preallocated buffers); ``benchmarks/bench_inference_path.py`` measured it level
with the plain module under this setup, so the plain module is the one path (issue 20).
"""

from __future__ import annotations

import hashlib
import io
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from ._cube import composite_data
from ._model import (
    LSTMEnsemble,
    MultiHeadLSTM,
    check_head,
    load_model,
    members_of,
    members_proba,
)
from .errors import CubeError, ModelError

__all__ = ["ModelHandle", "predict", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


_MODELS: dict[tuple[str, str], list[MultiHeadLSTM]] = {}
_LOCK = threading.Lock()
#: Models read from their handles in this process (tests count them: one per worker).
BUILDS: list[str] = []


def _members(handle: ModelHandle, device: str) -> list[MultiHeadLSTM]:
    """The model of ``handle`` as its members on ``device``, read once per process."""
    key = (handle.sha256, device)
    with _LOCK:
        if key not in _MODELS:
            model = load_model(io.BytesIO(handle.data)).to(resolve_device(device))
            _MODELS[key] = members_of(model)
            BUILDS.append(handle.sha256)
        return _MODELS[key]


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
    series = block.reshape(t_steps, f, ny * nx).transpose(2, 0, 1)  # (pixels, T, F), a view
    with _one_torch_thread(threads):
        out = members_proba(_members(handle, device), series, head=head, batch_size=batch_size)
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

    from ._baselines import Baseline

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
        A trained :class:`~xcrop.MultiHeadLSTM` or
        :class:`~xcrop.LSTMEnsemble` (what :func:`xcrop.train` returns), or any
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
    check_head(model, head)
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
