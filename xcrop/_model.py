"""The multi-headed LSTM of Kerner et al. (2020), with its band order and normalisation.

One LSTM layer (hidden 64) reads the 12 periods; its last hidden state goes to a
classifier (1 or 2 linear layers) and a sigmoid. A multi-headed model has two
classifiers: the global head for global samples and the local head for local ones;
prediction uses the local head. Dropout between time steps is variational (one mask per
sequence on the hidden state passed from step to step, as the paper's unrolled cell);
in eval mode the model is a plain LSTM and runs the fused ``nn.LSTM``.

:class:`LSTMEnsemble` holds several such models (what :func:`xcrop.train` returns by
default) and predicts their mean probability.

A model carries what it needs to be used safely: the band order, the input means and
standard deviations of its training set, and its hyper-parameters. ``save``/``load`` use
``torch.save`` of tensors and a JSON string, read back with ``weights_only=True`` (no
arbitrary unpickling).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import torch
from torch import nn

from ._atomic import replacing
from ._versions import VERSION
from .errors import ModelError

__all__ = ["MultiHeadLSTM", "LSTMEnsemble", "load_model", "FORMAT", "ENSEMBLE_FORMAT"]

#: Identifies xcrop model files; bumped when the layout changes.
FORMAT = "xcrop-multihead-lstm/1"
#: Identifies files of an :class:`LSTMEnsemble`.
ENSEMBLE_FORMAT = "xcrop-lstm-ensemble/1"


def _classifier(hidden: int, layers: int) -> nn.Sequential:
    if layers == 1:
        return nn.Sequential(nn.Linear(hidden, 1))
    if layers == 2:
        return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    raise ModelError(f"classifier layers={layers}; use 1 or 2.")


#: A feature whose standard deviation is at most this is constant (float32 sums give a
#: constant 0.3 a std of 3e-8 to 1e-6): it is not scaled, or any other value of it would
#: be thousands of standard deviations away.
MIN_STD = 1e-6


class MultiHeadLSTM(nn.Module):
    """LSTM over the periods with a local and (optionally) a global classifier head.

    Parameters
    ----------
    bands
        Feature names in the order of the last axis of the input, e.g. ``Samples.bands``.
    mean, std
        Per-feature normalisation; default 0 and 1 (:func:`~xcrop.train` uses the
        local training samples'). A ``std`` of 1e-6 or less (a constant feature) is
        taken as 1.
    hidden
        LSTM hidden size (the paper: 64).
    layers
        Linear layers per classifier head: 1 or 2.
    dropout
        Variational dropout on the hidden state between time steps (training only).
    multi_head
        Two heads (global and local) or one.

    Examples
    --------
    >>> model = MultiHeadLSTM(("B04", "B08", "NDVI"), dropout=0.2)
    >>> model.predict_proba(np.zeros((5, 12, 3), "float32")).shape
    (5,)
    """

    # registered buffers and submodules, typed (nn.Module's attributes are untyped)
    mean: torch.Tensor
    std: torch.Tensor
    lstm: nn.LSTM
    local_head: nn.Sequential
    global_head: nn.Sequential | None

    def __init__(
        self,
        bands: Sequence[str],
        *,
        mean: Sequence[float] | np.ndarray | None = None,
        std: Sequence[float] | np.ndarray | None = None,
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.2,
        multi_head: bool = True,
    ) -> None:
        super().__init__()
        self.bands = tuple(str(b) for b in bands)
        n = len(self.bands)
        self.config = {
            "hidden": int(hidden),
            "layers": int(layers),
            "dropout": float(dropout),
            "multi_head": bool(multi_head),
        }
        mean = np.zeros(n) if mean is None else np.asarray(mean, "float64")
        std = np.ones(n) if std is None else np.asarray(std, "float64")
        if mean.shape != (n,) or std.shape != (n,):
            raise ModelError(f"mean and std need one value per band ({n}).")
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer(
            "std", torch.as_tensor(np.where(std > MIN_STD, std, 1.0), dtype=torch.float32)
        )
        self.lstm = nn.LSTM(n, hidden, batch_first=True)
        self.local_head = _classifier(hidden, layers)
        self.global_head = _classifier(hidden, layers) if multi_head else None
        self.info: dict = {}

    @property
    def multi_head(self) -> bool:
        return self.global_head is not None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden state (N, hidden) of normalised input ``x`` (N, T, F)."""
        x = (x - self.mean) / self.std
        if not self.training:
            return self.lstm(x)[1][0][0]
        # training: an unrolled cell, with one dropout mask per sequence on the recurrent
        # hidden state (its backward pass is also several times faster on CPU than the
        # fused LSTM's for these small sizes)
        p = self.config["dropout"]
        # get_parameter: the same tensors as .weight_ih_l0 ..., typed (nn.LSTM makes its
        # weights' attributes at run time)
        w_ih, w_hh = (
            self.lstm.get_parameter("weight_ih_l0"),
            self.lstm.get_parameter("weight_hh_l0"),
        )
        bias = self.lstm.get_parameter("bias_ih_l0") + self.lstm.get_parameter("bias_hh_l0")
        inputs = x @ w_ih.T + bias  # all time steps in one product
        n, hidden = x.shape[0], w_hh.shape[1]
        h = x.new_zeros(n, hidden)
        c = x.new_zeros(n, hidden)
        mask = torch.bernoulli(x.new_full((n, hidden), 1 - p)) / (1 - p) if p > 0 else None
        for t in range(x.shape[1]):
            gates = inputs[:, t] + (h if mask is None else h * mask) @ w_hh.T
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return h

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of the local head and of the global head (None when single-headed)."""
        h = self.encode(x)
        local = self.local_head(h).squeeze(-1)
        glob = self.global_head(h).squeeze(-1) if self.global_head is not None else None
        return local, glob

    def check_bands(self, bands: Sequence[str]) -> list[int]:
        """Indices that put ``bands`` in the model's order; refuses missing bands.

        Raises
        ------
        ModelError
            When ``bands`` lacks one of the model's bands.
        """
        bands = [str(b) for b in bands]
        missing = [b for b in self.bands if b not in bands]
        if missing:
            raise ModelError(
                f"The model was trained on bands {list(self.bands)}; the data has {bands} "
                f"(missing {missing}). Make the composite with these bands, or train a model "
                "on the bands you have."
            )
        return [bands.index(b) for b in self.bands]

    def predict_proba(
        self, X: np.ndarray, *, head: str = "local", batch_size: int = 2048
    ) -> np.ndarray:
        """Crop probability (N,) of series ``X`` (N, T, F) in ``bands`` order (NaN rows: NaN).

        Examples
        --------
        >>> model = MultiHeadLSTM(("B04", "B08"))
        >>> float(model.predict_proba(np.full((1, 12, 2), np.nan, "float32"))[0])
        nan
        """
        return members_proba([self], X, head=head, batch_size=batch_size)

    # -- files -------------------------------------------------------------------------
    def save(self, path: str | Path | BinaryIO) -> str | Path | BinaryIO:
        """Write weights, band order, normalisation and hyper-parameters to ``path`` (a
        file name or a binary file object). A file is written under a temporary name and
        renamed when complete: a failed save leaves an older file as it was."""
        meta = {"format": FORMAT, "bands": list(self.bands), "config": self.config,
                "info": self.info}  # fmt: skip
        return _write(path, meta, self.state_dict())

    @classmethod
    def load(cls, path: str | Path | BinaryIO) -> MultiHeadLSTM:
        """A model written by :meth:`save` (never unpickles arbitrary objects)."""
        meta, state = _read(path)
        if meta.get("format") == ENSEMBLE_FORMAT:
            raise ModelError(
                f"{path} holds an ensemble of {meta.get('members')} LSTMs; read it with "
                "xcrop.load_model(path)."
            )
        return cls._from(meta, state, path)

    @classmethod
    def _from(cls, meta: dict, state: dict, path) -> MultiHeadLSTM:
        if meta.get("format") != FORMAT:
            raise ModelError(f"{path} has format {meta.get('format')!r}; expected {FORMAT!r}.")
        model = cls(meta["bands"], **meta["config"])
        model.load_state_dict(state)
        model.info = meta.get("info", {})
        return model.eval()


def members_proba(
    members: Sequence[MultiHeadLSTM], X: np.ndarray, *, head: str = "local", batch_size: int = 2048
) -> np.ndarray:
    """The members' mean crop probability (N,) of series ``X`` (N, T, F), by their own
    ``forward`` (the fused ``nn.LSTM`` in eval mode) under ``torch.inference_mode``, in
    batches of ``batch_size`` rows; rows with NaN give NaN. Members in training mode are
    evaluated in eval mode (no dropout) and left as they were.

    ``X`` may be a strided view (a block's pixels as ``(P, T, F)``): each batch is
    gathered into one contiguous array.
    """
    check_head(members[0], head)
    X = np.asarray(X)
    out = np.full(len(X), np.nan, "float32")
    rows = np.flatnonzero(np.isfinite(X).all(axis=(1, 2)))
    which = 0 if head == "local" else 1
    device = members[0].mean.device
    modes = [m.training for m in members]
    try:
        for m in members:
            m.eval()
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                at = rows[start : start + batch_size]
                x = torch.from_numpy(np.ascontiguousarray(X[at], dtype="float32")).to(device)
                prob = torch.sigmoid(_logits(members[0], x, which))
                for m in members[1:]:
                    prob += torch.sigmoid(_logits(m, x, which))
                out[at] = (prob / len(members) if len(members) > 1 else prob).cpu().numpy()
    finally:
        for m, mode in zip(members, modes, strict=True):
            m.train(mode)
    return out


def members_of(model: MultiHeadLSTM | LSTMEnsemble) -> list[MultiHeadLSTM]:
    """The LSTMs whose mean probability a model predicts: an ensemble's members, or the
    model itself."""
    if isinstance(model, LSTMEnsemble):
        return [cast(MultiHeadLSTM, m) for m in model.members]  # nn.ModuleList: typed Module
    return [model]


def check_head(model: MultiHeadLSTM | LSTMEnsemble, head: str) -> None:
    """Refuse a ``head`` that is not ``"local"`` or ``"global"``, or ``"global"`` of a
    single-headed model."""
    if head not in ("local", "global"):
        raise ModelError(f"head={head!r}; use 'local' or 'global'.")
    if head == "global" and not model.multi_head:
        raise ModelError("This model is single-headed; predict with head='local'.")


def _logits(model: MultiHeadLSTM, x: torch.Tensor, which: int) -> torch.Tensor:
    local, glob = model(x)
    return local if which == 0 else cast(torch.Tensor, glob)  # checked multi-headed


def _read(path: str | Path | BinaryIO) -> tuple[dict, dict]:
    """The metadata and state of an xcrop model file, loaded with ``weights_only``."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return json.loads(blob["meta"]), blob["state"]
    except FileNotFoundError:
        raise ModelError(f"No model file at {path}; train one with xcrop.train.") from None
    except Exception as e:
        raise ModelError(
            f"{path} is not an xcrop model file ({type(e).__name__}: {e}); write one with "
            "model.save(path)."
        ) from None


def _write(path: str | Path | BinaryIO, meta: dict, state: dict) -> str | Path | BinaryIO:
    """``torch.save`` of the metadata (as JSON) and the state; a file name is written
    under a temporary name and renamed when complete."""
    blob = {"meta": json.dumps({**meta, "xcrop": VERSION}), "state": state}
    if isinstance(path, (str, os.PathLike)):
        with replacing(path, "the model") as tmp:
            torch.save(blob, tmp)
    else:
        torch.save(blob, path)
    return path


def fold_platt(head: nn.Sequential, a: float, b: float) -> None:
    """Fold Platt scaling ``sigmoid(a z + b)`` into a classifier head's last linear layer,
    so that the head's logit is the calibrated one (no change at inference)."""
    last = cast(nn.Linear, head[-1])  # _classifier's heads end in their output layer
    with torch.no_grad():
        last.weight.mul_(a)
        last.bias.mul_(a).add_(b)


class LSTMEnsemble(nn.Module):
    """Several :class:`MultiHeadLSTM` of one configuration, averaged in probability space.

    What :func:`xcrop.train` returns by default: members trained on the folds of one
    k-fold split of the samples (each validated on the fold it did not see), their local
    heads calibrated together. Used like a single model: ``bands``, ``config`` (the
    members' hyper-parameters and ``members``), ``info``, ``predict_proba``, ``save``;
    :func:`xcrop.predict` maps with it.

    Parameters
    ----------
    members
        Models with the same bands, normalisation and hyper-parameters.

    Examples
    --------
    >>> ensemble = LSTMEnsemble([MultiHeadLSTM(("B04", "B08")) for _ in range(3)])
    >>> ensemble.predict_proba(np.zeros((5, 12, 2), "float32")).shape
    (5,)
    """

    def __init__(self, members: Sequence[MultiHeadLSTM]) -> None:
        super().__init__()
        members = list(members)
        if not members:
            raise ModelError("An ensemble needs at least one member.")
        first = members[0]
        for m in members[1:]:
            if m.bands != first.bands or m.config != first.config:
                raise ModelError(
                    "Ensemble members need the same bands and hyper-parameters; got "
                    f"{first.bands} {first.config} and {m.bands} {m.config}."
                )
        self.members = nn.ModuleList(members)
        self.bands = first.bands
        self.config = {**first.config, "members": len(members)}
        self.info: dict = {}

    def __len__(self) -> int:
        return len(self.members)

    def _first(self) -> MultiHeadLSTM:
        return cast(MultiHeadLSTM, self.members[0])  # an nn.ModuleList types its items Module

    @property
    def multi_head(self) -> bool:
        return self._first().multi_head

    def check_bands(self, bands: Sequence[str]) -> list[int]:
        """Indices that put ``bands`` in the model's order (see
        :meth:`MultiHeadLSTM.check_bands`)."""
        return self._first().check_bands(bands)

    def predict_proba(
        self, X: np.ndarray, *, head: str = "local", batch_size: int = 2048
    ) -> np.ndarray:
        """The members' mean crop probability (N,) of series ``X`` (N, T, F) in ``bands``
        order (NaN rows: NaN)."""
        return members_proba(members_of(self), X, head=head, batch_size=batch_size)

    def save(self, path: str | Path | BinaryIO) -> str | Path | BinaryIO:
        """Write the members' weights, the band order, normalisation, hyper-parameters and
        ``info`` to one file; read it back with :func:`load_model`."""
        first = self._first()
        meta = {
            "format": ENSEMBLE_FORMAT,
            "bands": list(self.bands),
            "config": first.config,
            "members": len(self),
            "info": self.info,
        }
        return _write(path, meta, self.state_dict())

    @classmethod
    def _from(cls, meta: dict, state: dict) -> LSTMEnsemble:
        members = [MultiHeadLSTM(meta["bands"], **meta["config"]) for _ in range(meta["members"])]
        model = cls(members)
        model.load_state_dict(state)
        model.info = meta.get("info", {})
        return model.eval()


def load_model(path: str | Path | BinaryIO) -> MultiHeadLSTM | LSTMEnsemble:
    """Read a model file written by ``model.save(path)``: a :class:`MultiHeadLSTM` or an
    :class:`LSTMEnsemble`, whichever it holds.

    Examples
    --------
    >>> model = xcrop.load_model("model.pt")  # doctest: +SKIP
    """
    meta, state = _read(path)
    if meta.get("format") == ENSEMBLE_FORMAT:
        return LSTMEnsemble._from(meta, state)
    return MultiHeadLSTM._from(meta, state, path)
