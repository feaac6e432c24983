"""The paper's baselines on flattened series: random forest and RBF SVM (scikit-learn).

Both follow the predictor interface of the LSTM: ``fit(samples)`` then
``predict_proba(X)`` on (N, T, F) series in ``bands`` order, giving (N,) crop
probabilities (NaN rows give NaN).
"""

from __future__ import annotations

import numpy as np

from ._extras import require
from ._sample import Samples
from .errors import ModelError

__all__ = ["Baseline", "random_forest", "svm"]


class Baseline:
    """A scikit-learn classifier on the (N, T * F) flattened series.

    Examples
    --------
    >>> rf = random_forest(seed=0).fit(samples)  # doctest: +SKIP
    >>> rf.predict_proba(test.X)  # doctest: +SKIP
    """

    def __init__(self, estimator, name: str) -> None:
        self.estimator = estimator
        self.name = name
        self.bands: tuple[str, ...] = ()

    def fit(self, samples: Samples) -> Baseline:
        """Fit on all samples (local and global alike, as the paper's baselines)."""
        if len(np.unique(samples.y)) < 2:
            raise ModelError(f"{self.name} needs samples of both classes to fit.")
        self.estimator.fit(samples.X.reshape(len(samples), -1), samples.y)
        self.bands = samples.bands
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Crop probability (N,) of series ``X`` (N, T, F)."""
        if not self.bands:
            raise ModelError(f"{self.name} is not fitted; call .fit(samples) first.")
        flat = np.asarray(X, "float32").reshape(len(X), -1)
        valid = np.isfinite(flat).all(axis=1)
        out = np.full(len(flat), np.nan, "float32")
        if valid.any():
            out[valid] = self.estimator.predict_proba(flat[valid])[:, 1]
        return out

    def __repr__(self) -> str:
        return f"Baseline({self.name}, {self.estimator!r})"


def random_forest(*, n_estimators: int = 100, seed: int = 0, n_jobs: int | None = None) -> Baseline:
    """Random forest of the paper: 100 trees of unlimited depth."""
    require("sklearn", "xcrop.random_forest")
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=None, random_state=seed, n_jobs=n_jobs
    )
    return Baseline(forest, "random forest")


def svm(*, C: float = 1.0) -> Baseline:
    """RBF support vector machine on standardised features (an RBF kernel needs features
    on one scale), its scores calibrated to probabilities by Platt scaling fitted on
    5-fold cross-validation (what ``SVC(probability=True)`` did before scikit-learn 1.9)."""
    require("sklearn", "xcrop.svm")
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    calibrated = CalibratedClassifierCV(SVC(C=C, kernel="rbf"), method="sigmoid", ensemble=False)
    return Baseline(make_pipeline(StandardScaler(), calibrated), "SVM")
