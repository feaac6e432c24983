"""Training the multi-headed LSTM: the paper's loss, early stopping, grid search.

The loss of a batch mixing local and global samples is
``L = (W / alpha) * L_global + L_local`` with ``W = #global / #local`` in the batch
(binary cross-entropy, mean over each head's rows); a batch without local samples uses
``W = 1``. Adam with default parameters; early stopping on the validation loss with
``patience`` epochs; the weights of the best epoch are kept.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .errors import XcropError
from .inference import resolve_device
from .model import MultiHeadLSTM
from .sample import Samples

__all__ = ["train", "grid_search", "rank_configurations", "multihead_loss", "split"]


def multihead_loss(
    local_logits: torch.Tensor,
    global_logits: torch.Tensor | None,
    y: torch.Tensor,
    is_local: torch.Tensor,
    alpha: float = 10.0,
) -> torch.Tensor:
    """The paper's loss for one batch; single-headed models (``global_logits=None``) use
    plain binary cross-entropy over all rows.

    Examples
    --------
    >>> z = torch.zeros(4)
    >>> y = torch.tensor([1.0, 0.0, 1.0, 0.0])
    >>> local = torch.tensor([True, True, False, False])
    >>> round(float(multihead_loss(z, z, y, local, alpha=2)), 4)  # (2/2 + 1) * ln 2
    1.3863
    """
    if global_logits is None:
        return F.binary_cross_entropy_with_logits(local_logits, y)
    n_local = int(is_local.sum())
    n_global = len(y) - n_local
    loss = local_logits.new_zeros(())
    if n_local:
        loss = loss + F.binary_cross_entropy_with_logits(local_logits[is_local], y[is_local])
    if n_global:
        weight = n_global / n_local if n_local else 1.0
        glob = F.binary_cross_entropy_with_logits(global_logits[~is_local], y[~is_local])
        loss = loss + weight / alpha * glob
    return loss


def split(samples: Samples, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices, stratified by (is_local, label), reproducible."""
    rng = np.random.default_rng([seed, 1])
    val = []
    for local in (True, False):
        for label in (0, 1):
            group = np.flatnonzero((samples.is_local == local) & (samples.y == label))
            n_val = round(len(group) * val_fraction)
            val.append(rng.permutation(group)[:n_val])
    val_idx = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(samples)), val_idx), val_idx


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def train(
    local: Samples,
    global_: Samples | None = None,
    *,
    alpha: float = 10.0,
    val_fraction: float = 0.2,
    patience: int = 10,
    max_epochs: int = 200,
    batch_size: int = 64,
    layers: int = 1,
    dropout: float = 0.2,
    hidden: int = 64,
    multi_head: bool | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: Callable[[dict], None] | None = None,
) -> tuple[MultiHeadLSTM, pd.DataFrame]:
    """Train a (multi-headed) LSTM on local and, optionally, global samples.

    Parameters
    ----------
    local
        Samples from the target region (``is_local`` is taken as True for all).
    global_
        Samples from elsewhere (``is_local`` taken as False); with them the model is
        multi-headed unless ``multi_head=False``.
    alpha
        Weight of the global loss: ``L = (W / alpha) L_global + L_local``.
    val_fraction, patience, max_epochs
        Validation split (stratified, of local and global samples alike), early stopping
        on the validation loss, and the most epochs.
    batch_size, layers, dropout, hidden
        Mixed shuffled batches; classifier layers (1 or 2); dropout between time steps;
        LSTM hidden size.
    seed
        Seeds the split, the initial weights, the shuffling and dropout.
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    progress
        Called with each epoch's row of the history.

    Returns
    -------
    model, history
        The model with the best epoch's weights (in eval mode) and one row per epoch:
        ``epoch, train_loss, val_loss, val_auc`` (AUC of the local head on local
        validation samples), ``seconds``; ``history.attrs["best_epoch"]``.

    Examples
    --------
    >>> model, history = xcrop.train(togo, crowd, seed=0)  # doctest: +SKIP
    >>> model.predict_proba(test.X)  # doctest: +SKIP
    """
    data = _combine(local, global_)
    if multi_head is None:
        multi_head = global_ is not None and len(global_) > 0
    if len(np.unique(data.y[data.is_local])) < 2:
        raise XcropError("The local samples need both classes (crop 1 and non-crop 0).")
    train_idx, val_idx = split(data, val_fraction, seed)
    if len(val_idx) == 0:
        raise XcropError(f"val_fraction={val_fraction} leaves no validation sample.")
    torch.manual_seed(seed)
    dev = resolve_device(device)
    with _threads(1 if dev.type == "cpu" else None):
        return _fit(data, train_idx, val_idx, dev, alpha, patience, max_epochs, batch_size,
                    layers, dropout, hidden, multi_head, seed, progress)  # fmt: skip


@contextlib.contextmanager
def _threads(n: int | None):
    """Run torch on ``n`` threads, then restore: batches of this size train several times
    faster on one thread than on several (thread start-up costs more than the work)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit(data, train_idx, val_idx, dev, alpha, patience, max_epochs, batch_size, layers,
         dropout, hidden, multi_head, seed, progress):  # fmt: skip
    X = data.X[train_idx].reshape(-1, data.X.shape[2])
    mean, std = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    model = MultiHeadLSTM(
        data.bands, mean=mean, std=std, hidden=hidden, layers=layers, dropout=dropout,
        multi_head=multi_head,
    ).to(dev)  # fmt: skip
    tensors = [
        torch.from_numpy(a).to(dev)
        for a in (data.X.astype("float32"), data.y.astype("float32"), data.is_local.astype(bool))
    ]
    Xt, yt, lt = tensors
    vX, vy, vl = Xt[val_idx], yt[val_idx], lt[val_idx]
    optimiser = torch.optim.Adam(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    rows, best, best_loss, waited = [], None, np.inf, 0
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=gen)]
        total = 0.0
        for start in range(0, len(order), batch_size):
            b = order[start : start + batch_size].to(dev)
            optimiser.zero_grad()
            loss = multihead_loss(*model(Xt[b]), yt[b], lt[b], alpha)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(b)
        model.eval()
        with torch.no_grad():
            local_logits, global_logits = model(vX)
            val_loss = float(multihead_loss(local_logits, global_logits, vy, vl, alpha))
            p = torch.sigmoid(local_logits[vl]).cpu().numpy()
        row = {
            "epoch": epoch,
            "train_loss": total / len(order),
            "val_loss": val_loss,
            "val_auc": _auc(vy[vl].cpu().numpy(), p),
            "seconds": time.perf_counter() - t0,
        }
        rows.append(row)
        if progress:
            progress(row)
        if val_loss < best_loss:
            best_loss, best, waited = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    if best is None:
        raise XcropError(
            "The validation loss was never finite; check the samples for extreme values "
            "(reflectance should be 0..1) or lower the learning rate."
        )
    history = pd.DataFrame(rows)
    best_epoch = int(history.loc[history.val_loss.idxmin(), "epoch"])
    history.attrs["best_epoch"] = best_epoch
    model.load_state_dict(best)
    model.info = {
        "periods": int(data.X.shape[1]),
        "alpha": alpha,
        "seed": seed,
        "best_epoch": best_epoch,
        "val_auc": float(history.loc[best_epoch - 1, "val_auc"]),
        "n_local": int(data.is_local.sum()),
        "n_global": int((~data.is_local).sum()),
    }
    return model.cpu().eval(), history


def _mark(samples: Samples, local: bool) -> Samples:
    """The samples with ``is_local`` set to ``local`` for all."""
    s = samples
    return Samples(s.X, s.y, np.full(len(s), local), s.ids, s.bands, s.counts, s.report)


def _combine(local: Samples, global_: Samples | None) -> Samples:
    if len(local) == 0:
        raise XcropError("No local samples: train needs labelled samples of the target region.")
    data = _mark(local, True)
    if global_ is not None and len(global_):
        if global_.bands != local.bands:
            raise XcropError(
                f"Local samples have bands {local.bands}, global ones {global_.bands}; sample "
                "both from composites with the same bands."
            )
        data = data.concat(_mark(global_, False))
    if not np.isfinite(data.X).all():
        raise XcropError("Samples contain NaN; sample them with xcrop.sample (which drops them).")
    return data


#: Validation AUCs closer than this to the best are a tie (see :func:`rank_configurations`).
AUC_TIE = 1e-9


def grid_search(
    local: Samples,
    global_: Samples | None = None,
    *,
    layers: Sequence[int] = (1, 2),
    dropout: Sequence[float] = (0.0, 0.2),
    **kwargs,
) -> tuple[MultiHeadLSTM, pd.DataFrame]:
    """Train every (layers, dropout) pair and keep the best on validation ROC AUC.

    The validation split is the same for all (it depends on ``seed`` only). Ties are
    broken by :func:`rank_configurations`: among configurations within ``1e-9`` of the
    best validation AUC, the lower validation loss wins, then the simpler model (fewer
    classifier layers, then less dropout).

    Returns
    -------
    model, results
        The best model and one row per configuration (``layers, dropout, val_auc,
        val_loss, best_epoch, epochs, seconds``), best first, with ``chosen`` True on the
        model returned and ``tied`` True on the configurations that shared the best AUC;
        ``results.attrs["tie"]`` says whether the tie rule decided.

    Examples
    --------
    >>> model, results = xcrop.grid_search(togo, crowd, seed=0)  # doctest: +SKIP
    >>> results.attrs["tie"]  # doctest: +SKIP
    False
    """
    rows, models = [], []
    for n_layers in layers:
        for p in dropout:
            t0 = time.perf_counter()
            model, history = train(local, global_, layers=n_layers, dropout=p, **kwargs)
            models.append(model)
            best_epoch = history.attrs["best_epoch"]
            rows.append({
                "layers": n_layers, "dropout": p, "val_auc": model.info["val_auc"],
                "val_loss": float(history.loc[best_epoch - 1, "val_loss"]),
                "best_epoch": best_epoch, "epochs": len(history),
                "seconds": round(time.perf_counter() - t0, 1),
            })  # fmt: skip
    results = rank_configurations(pd.DataFrame(rows))
    return models[int(results.index[0])], results


def rank_configurations(results: pd.DataFrame, *, tol: float = AUC_TIE) -> pd.DataFrame:
    """Grid-search rows best first, by validation AUC with a stated tie rule.

    Configurations whose ``val_auc`` is within ``tol`` of the best are tied; among them
    the lower ``val_loss`` wins, then fewer ``layers``, then lower ``dropout``, then the
    earlier row. A NaN AUC (one class in the validation split) ranks last; when no
    configuration has an AUC, all are tied.

    Parameters
    ----------
    results
        One row per configuration with ``layers``, ``dropout``, ``val_auc``, ``val_loss``.
    tol
        How close to the best AUC counts as a tie.

    Returns
    -------
    pandas.DataFrame
        The rows reordered (index kept), with ``tied`` and ``chosen`` columns and
        ``attrs["tie"]``: True when more than one configuration had the best AUC.

    Examples
    --------
    >>> rows = pd.DataFrame({"layers": [1, 2], "dropout": [0.0, 0.0],
    ...                      "val_auc": [0.9, 0.9], "val_loss": [0.31, 0.30]})
    >>> rank_configurations(rows).layers.tolist()
    [2, 1]
    """
    auc = results["val_auc"].astype("float64").to_numpy()
    best = np.nanmax(auc, initial=-np.inf)
    # NaN compares False: never tied, unless no AUC at all, when all tie on the loss
    tied = auc >= best - tol if np.isfinite(best) else np.ones(len(auc), bool)
    ranked = results.assign(
        tied=tied,
        _auc=np.where(tied, np.inf, np.nan_to_num(auc, nan=-np.inf)),
        _row=np.arange(len(results)),
    )
    ranked = ranked.sort_values(
        ["_auc", "val_loss", "layers", "dropout", "_row"],
        ascending=[False, True, True, True, True],
        kind="stable",
        na_position="last",
    ).drop(columns=["_auc", "_row"])
    ranked["chosen"] = np.arange(len(ranked)) == 0
    ranked.attrs["tie"] = bool(tied.sum() > 1)
    return ranked
