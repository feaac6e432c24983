"""Training the multi-headed LSTM: the paper's loss, early stopping, ensembles,
calibration, grid search.

The loss of a batch mixing local and global samples is
``L = (W / alpha) * L_global + L_local`` with ``W = #global / #local`` in the batch
(binary cross-entropy, mean over each head's rows); a batch without local samples uses
``W = 1``. Adam with default parameters; early stopping on the validation loss with
``patience`` epochs; the weights of the best epoch are kept. By default ``members``
models are trained on the folds of a k-fold split and averaged, and their local head is
calibrated by Platt scaling on the out-of-fold logits (:mod:`xcrop._calibration`).
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ._calibration import fit_platt
from ._extras import require
from ._inference import resolve_device
from ._model import LSTMEnsemble, MultiHeadLSTM, fold_platt
from ._sample import Samples
from .errors import XcropInputError

__all__ = ["train", "grid_search", "rank_configurations", "multihead_loss", "split", "folds"]


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
    >>> round(float(multihead_loss(z, z, y, local, alpha=2)), 4)  # (1 + (2/2) / 2) * ln 2
    1.0397
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


def split(
    samples: Samples, val_fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices, stratified by (is_local, label), reproducible.

    With ``groups`` (one per sample, or None) the local validation samples are whole
    groups: the first of ``round(1 / val_fraction)`` group folds (see :func:`folds`)."""
    rng = np.random.default_rng([seed, 1])
    val = []
    for local in (True, False):
        for label in (0, 1):
            group = np.flatnonzero((samples.is_local == local) & (samples.y == label))
            n_val = round(len(group) * val_fraction)
            val.append(rng.permutation(group)[:n_val])
    val_idx = np.sort(np.concatenate(val))
    if groups is not None and val_fraction > 0:
        k = max(2, round(1 / val_fraction))
        fix = "a larger val_fraction"
        local_val = samples.is_local & (_group_folds(samples, groups, k, seed, fix) == 0)
        val_idx = np.union1d(val_idx[~samples.is_local[val_idx]], np.flatnonzero(local_val))
    return np.setdiff1d(np.arange(len(samples)), val_idx), val_idx


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def folds(samples: Samples, k: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """The fold (0..k-1) of each sample: k folds stratified by (is_local, label), each
    stratum dealt round-robin in a seeded random order, so every fold holds a k-th of
    every stratum (to one sample).

    With ``groups`` (one per sample, e.g. :attr:`Samples.groups`), the local samples of
    one group share a fold (scikit-learn's ``StratifiedGroupKFold``, shuffled by
    ``seed``): neighbouring pixels of a field never validate a model trained on the
    others. Global samples are dealt as without groups.

    Examples
    --------
    >>> s = Samples(np.zeros((6, 12, 1), "float32"), np.array([0, 0, 0, 1, 1, 1]),
    ...             np.ones(6, bool), np.arange(6), ("NDVI",), np.ones((6, 12), "uint8"))
    >>> np.bincount(folds(s, 3, seed=0)).tolist()
    [2, 2, 2]
    >>> f = folds(s, 2, seed=0, groups=np.array(["a", "a", "b", "c", "d", "d"]))
    >>> bool(f[0] == f[1] and f[4] == f[5])
    True
    """
    rng = np.random.default_rng([seed, 2])
    out = np.empty(len(samples), "int64")
    start = 0  # each group starts dealing where the last one stopped: folds stay even
    for local in (True, False):
        for label in (0, 1):
            in_group = (samples.is_local == local) & (samples.y == label)
            group = rng.permutation(np.flatnonzero(in_group))
            out[group] = (start + np.arange(len(group))) % k
            start = (start + len(group)) % k
    if groups is not None:
        is_local = samples.is_local
        out[is_local] = _group_folds(samples, groups, k, seed, "fewer members")[is_local]
    return out


def _group_codes(groups: np.ndarray) -> np.ndarray:
    """An integer per distinct group (0, 1, ...); a missing one (None, NaN) is a group of
    one.

    Examples
    --------
    >>> _group_codes(np.array(["b", "a", "b", None, None], dtype=object)).tolist()
    [0, 1, 0, 2, 3]
    """
    codes = pd.factorize(pd.Series(groups, dtype=object))[0]
    alone = codes < 0
    codes[alone] = codes.max(initial=-1) + 1 + np.arange(alone.sum())
    return codes


def _group_folds(samples: Samples, groups: np.ndarray, k: int, seed: int, fix: str) -> np.ndarray:
    """k folds of the local samples that keep each group whole, stratified by label
    (-1 for the global samples); a missing group (None, NaN) is a group of one. ``fix``:
    the other way out, named in the error when there are fewer groups than folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    local = np.flatnonzero(samples.is_local)
    codes = _group_codes(np.asarray(groups, dtype=object)[local])
    n_groups = len(np.unique(codes))
    if n_groups < k:
        raise XcropInputError(
            f"The local samples hold {n_groups} groups, too few to validate {k} folds on "
            f"whole groups; give finer groups (e.g. fields rather than villages), {fix}, "
            "or groups=None."
        )
    out = np.full(len(samples), -1, "int64")
    split = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed % 2**32)
    with warnings.catch_warnings():  # a class in fewer groups than folds is fine here
        warnings.simplefilter("ignore", UserWarning)
        for j, (_, test) in enumerate(split.split(local, samples.y[local], codes)):
            out[local[test]] = j
    return out


def train(
    local: Samples,
    global_: Samples | None = None,
    *,
    alpha: float = 10.0,
    members: int = 5,
    calibrate: bool = True,
    val_fraction: float = 0.2,
    patience: int = 10,
    max_epochs: int = 200,
    batch_size: int = 64,
    layers: int = 1,
    dropout: float = 0.2,
    hidden: int = 64,
    multi_head: bool | None = None,
    groups: Sequence | np.ndarray | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: Callable[[dict], None] | None = None,
) -> tuple[MultiHeadLSTM | LSTMEnsemble, pd.DataFrame]:
    """Train a (multi-headed) LSTM on local and, optionally, global samples.

    By default an ensemble of ``members`` LSTMs from one k-fold split: member ``j``
    trains on the other folds and stops early on fold ``j``, so every sample validates
    one member; the ensemble predicts the members' mean probability. Its local head is
    then calibrated (Platt scaling) on the out-of-fold logits of all local samples, so
    that 0.5 means even odds on the target region. Every member scales its inputs by the
    mean and standard deviation of its local training samples: the region it maps, not
    the global samples from elsewhere. One model depends on its seed: on real data
    (docs/experiment.md) one multi-headed LSTM's AUC ranged over 0.108 across seeds,
    this ensemble's over 0.005 or less on each of the three sets.

    Parameters
    ----------
    local
        Samples from the target region (``is_local`` is taken as True for all).
    global_
        Samples from elsewhere (``is_local`` taken as False); with them the model is
        multi-headed unless ``multi_head=False``.
    alpha
        Weight of the global loss: ``L = (W / alpha) L_global + L_local``.
    members
        LSTMs in the ensemble (k of the k-fold split), at least 2; 1 trains a single
        :class:`~xcrop.MultiHeadLSTM` on a ``val_fraction`` split, as the paper.
    calibrate
        Fold Platt scaling, fitted on the validation logits of the local samples, into
        the local head (``model.info["calibration"]`` says what was fitted on what).
    val_fraction, patience, max_epochs
        The validation share of a single model (stratified, of local and global samples
        alike); early stopping on the validation loss; the most epochs.
    batch_size, layers, dropout, hidden
        Mixed shuffled batches; classifier layers (1 or 2); dropout between time steps;
        LSTM hidden size.
    groups
        The unit of each local sample (a field, a parcel, a location cell), one per
        sample of ``local``; default ``local.groups`` (``xcrop.sample(..., group=)``).
        The local samples of one group are all in training or all in validation, so
        that early stopping and calibration are judged on places the member has not
        seen: pixels of one field validate each other far too well, and the members
        then train past the point where they generalise (on the real clip A, AUC 0.943
        without groups, 0.953 with cells of 160 m; docs/experiment.md). None: every
        sample its own group.
    seed
        Seeds the split, the initial weights, the shuffling and dropout.
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    progress
        Called with each epoch's row of the history.

    Returns
    -------
    model, history
        The model (an :class:`~xcrop.LSTMEnsemble`, or a
        :class:`~xcrop.MultiHeadLSTM` with ``members=1``), each member with its
        best epoch's weights, in eval mode; and one row per member and epoch: ``member,
        epoch, train_loss, val_loss, val_auc`` (AUC of the local head on the member's
        local validation samples), ``seconds``; ``history.attrs["best_epochs"]`` (one
        per member). ``model.info`` holds ``val_auc`` and ``val_loss`` (AUC and
        cross-entropy of the calibrated local head on the local validation samples,
        out-of-fold for an ensemble), ``best_epochs``, ``calibration``, ``seed``, ...

    Examples
    --------
    >>> model, history = xcrop.train(togo, crowd, seed=0)  # doctest: +SKIP
    >>> model.predict_proba(test.X)  # doctest: +SKIP
    """
    require("sklearn", "xcrop.train")  # the validation AUC: checked before any training
    data = _combine(local, global_)
    groups = _local_groups(local, groups, len(data))
    if multi_head is None:
        multi_head = global_ is not None and len(global_) > 0
    if len(np.unique(data.y[data.is_local])) < 2:
        raise XcropInputError("The local samples need both classes (crop 1 and non-crop 0).")
    members = int(members)
    if members < 1:
        raise XcropInputError(f"members={members}; use 1 (a single model) or more (an ensemble).")
    if members == 1:
        train_idx, val_idx = split(data, val_fraction, seed, groups)
        if len(val_idx) == 0:
            raise XcropInputError(f"val_fraction={val_fraction} leaves no validation sample.")
        splits = [(train_idx, val_idx)]
    else:
        fold = folds(data, members, seed, groups)
        if (np.bincount(fold[data.is_local], minlength=members) == 0).any():
            raise XcropInputError(
                f"{int(data.is_local.sum())} local samples cannot validate {members} members; "
                "use fewer members or label more points."
            )
        splits = [(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(members)]
    member_seeds = [seed] if members == 1 else _member_seeds(seed, members)
    dev = resolve_device(device)
    config = dict(alpha=alpha, patience=patience, max_epochs=max_epochs, batch_size=batch_size,
                  layers=layers, dropout=dropout, hidden=hidden, multi_head=multi_head)  # fmt: skip
    models, histories, logits, labels = [], [], [], []
    with _threads(1 if dev.type == "cpu" else None):
        for j, ((train_idx, val_idx), s) in enumerate(zip(splits, member_seeds, strict=True)):
            torch.manual_seed(s)
            model, history = _fit(data, train_idx, val_idx, dev, s, progress, member=j, **config)
            val_local = val_idx[data.is_local[val_idx]]
            logits.append(_local_logits(model, data.X[val_local]))
            labels.append(data.y[val_local])
            models.append(model)
            histories.append(history)
    z, y = np.concatenate(logits), np.concatenate(labels)
    calibration = _calibrate(models, z, y) if calibrate else None
    prob = 1 / (1 + np.exp(-_scaled(z, calibration)))
    model = models[0] if members == 1 else LSTMEnsemble(models)
    history = pd.concat(histories, ignore_index=True)
    best_epochs = [int(h.attrs["best_epoch"]) for h in histories]
    history.attrs["best_epochs"] = best_epochs
    model.info = {
        "periods": int(data.X.shape[1]),
        "alpha": alpha,
        "seed": seed,
        "members": members,
        "best_epochs": best_epochs,
        "val_auc": _auc(y, prob),
        "val_loss": _log_loss(y, prob),
        "n_val_local": len(y),
        "calibration": calibration,
        "n_local": int(data.is_local.sum()),
        "n_global": int((~data.is_local).sum()),
        "n_groups": None if groups is None else len(np.unique(_group_codes(groups[data.is_local]))),
    }
    return model.eval(), history


def _member_seeds(seed: int, k: int) -> list[int]:
    """k reproducible seeds for the members of seed ``seed``."""
    return [int(s) for s in np.random.SeedSequence([seed, 3]).generate_state(k) % 2**31]


def _local_logits(model: MultiHeadLSTM, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(np.ascontiguousarray(X, "float32")))[0].numpy()


def _calibrate(models: list[MultiHeadLSTM], z: np.ndarray, y: np.ndarray) -> dict:
    """Fit Platt scaling on the validation logits and fold it into every local head."""
    a, b = fit_platt(z, y)
    for model in models:
        fold_platt(model.local_head, a, b)
    n_crop = int(y.sum())
    return {"a": a, "b": b, "n": len(y), "n_crop": n_crop,
            "fitted": (a, b) != (1.0, 0.0)}  # fmt: skip


def _scaled(z: np.ndarray, calibration: dict | None) -> np.ndarray:
    return z if calibration is None else calibration["a"] * z + calibration["b"]


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


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


def _fit(data, train_idx, val_idx, dev, seed, progress, *, member, alpha, patience, max_epochs,
         batch_size, layers, dropout, hidden, multi_head):  # fmt: skip
    mean, std = _input_scale(data, train_idx)
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
            "member": member,
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
        raise XcropInputError(
            "The validation loss was never finite; check the samples for extreme values "
            "(reflectance should be 0..1) or lower the learning rate."
        )
    history = pd.DataFrame(rows)
    history.attrs["best_epoch"] = int(history.loc[history.val_loss.idxmin(), "epoch"])
    model.load_state_dict(best)
    return model.cpu().eval(), history


def _input_scale(data: Samples, train_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std that normalise the model's inputs: those of the local
    training samples, the region the model will map (all training samples when none is
    local). Global samples from elsewhere would otherwise set the scale: on the real
    points 1,000 Flemish pixels outweighed 320 East-African points, the local inputs sat
    off-centre, and the multi-headed ensemble's AUC was 0.897 +- 0.018 over 3 seeds
    (0.910 +- 0.000 scaled by the local points; docs/experiment.md)."""
    local = train_idx[data.is_local[train_idx]]
    rows = local if len(local) else train_idx
    X = data.X[rows].reshape(-1, data.X.shape[2]).astype("float64")  # float32 sums drift
    return np.nanmean(X, axis=0), np.nanstd(X, axis=0)


def _mark(samples: Samples, local: bool) -> Samples:
    """The samples with ``is_local`` set to ``local`` for all."""
    s = samples
    return Samples(s.X, s.y, np.full(len(s), local), s.ids, s.bands, s.counts, s.report)


def _local_groups(local: Samples, groups, n: int) -> np.ndarray | None:
    """The group of each of the ``n`` combined samples (local first; None for the
    global ones), or None: ``groups`` (any hashable values: ids, names, tuples, the rows
    of a 2-D array) or else ``local.groups``."""
    if groups is None:
        groups = local.groups
        if groups is None:
            return None
    if isinstance(groups, str) or np.ndim(groups) == 0:
        raise XcropInputError(
            f"groups={groups!r}: give one group per local sample (an array of field ids), "
            "or sample with xcrop.sample(..., group='<column>') and leave groups=None."
        )
    if len(groups) != len(local):
        raise XcropInputError(
            f"groups has {len(groups)} values for {len(local)} local samples; give one "
            "group per local sample."
        )
    out = np.full(n, None, dtype=object)
    for i, g in enumerate(groups):  # element by element: tuples and rows stay one value
        out[i] = tuple(g) if isinstance(g, np.ndarray) else g
    return out


def _combine(local: Samples, global_: Samples | None) -> Samples:
    if len(local) == 0:
        raise XcropInputError(
            "No local samples: train needs labelled samples of the target region."
        )
    data = _mark(local, True)
    if global_ is not None and len(global_):
        if global_.bands != local.bands:
            raise XcropInputError(
                f"Local samples have bands {local.bands}, global ones {global_.bands}; sample "
                "both from composites with the same bands."
            )
        data = data.concat(_mark(global_, False))
    if not np.isfinite(data.X).all():
        raise XcropInputError(
            "Samples contain NaN; sample them with xcrop.sample (which drops them)."
        )
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
) -> tuple[MultiHeadLSTM | LSTMEnsemble, pd.DataFrame]:
    """Train every (layers, dropout) pair and keep the best on validation ROC AUC.

    Every configuration is trained with :func:`train` and the same ``seed``, so on the
    same split (the same folds of an ensemble: its validation AUC is out-of-fold, over
    every local sample). Ties are broken by :func:`rank_configurations`: among
    configurations within ``1e-9`` of the best validation AUC, the lower validation loss
    wins, then the simpler model (fewer classifier layers, then less dropout).

    Returns
    -------
    model, results
        The best model and one row per configuration (``layers, dropout, val_auc,
        val_loss, best_epochs, epochs, seconds``; the model's ``info``), best first, with
        ``chosen`` True on the model returned and ``tied`` True on the configurations that
        shared the best AUC; ``results.attrs["tie"]`` says whether the tie rule decided.

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
            rows.append({
                "layers": n_layers, "dropout": p, "val_auc": model.info["val_auc"],
                "val_loss": model.info["val_loss"],
                "best_epochs": " ".join(map(str, model.info["best_epochs"])),
                "epochs": len(history), "seconds": round(time.perf_counter() - t0, 1),
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
