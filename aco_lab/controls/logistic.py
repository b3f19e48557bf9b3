"""L2-regularized logistic models, fitted by Newton's method and exported as plain data.

The runtime (aco.cascade.score, aco.learned_controls) evaluates `{"features", "weights",
"bias"}` with a dot product, so a fitted model is stored as the weights of the original,
unscaled features: standardization is folded into the weights here. The objective is
scikit-learn's (sum of log-losses + ||w||^2 / 2C, intercept unpenalized); a few Newton steps
on tens of features solve it in microseconds, where an L-BFGS fit per fold and per state
made learning the cascade slow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController

DEFAULT_C = 1.0  # inverse L2 strength on standardized features: mild, the data sets are small
MIN_SD = 1e-9  # a feature with less spread than this is constant and left out
NEWTON_STEPS = 50  # at most; it stops when the step is below NEWTON_TOL
NEWTON_TOL = 1e-8


def build_matrix(
    rows: Sequence[Mapping[str, float]], names: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Named feature dicts -> (matrix, column names); missing features are 0."""
    if names is None:
        names = sorted({name for row in rows for name in row})
    index = {name: j for j, name in enumerate(names)}
    X = np.zeros((len(rows), len(names)))
    for i, row in enumerate(rows):
        for name, value in row.items():
            j = index.get(name)
            if j is not None:
                X[i, j] = value
    return X, list(names)


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    C: float = DEFAULT_C,
    sample_weight: np.ndarray | None = None,
) -> dict:
    """Fit P(y=1 | x) and return it as plain data (constant features dropped)."""
    y = np.asarray(y, dtype=float)
    sd = X.std(axis=0)
    keep = np.flatnonzero(sd > MIN_SD)
    positive = float(np.average(y, weights=sample_weight)) if len(y) else 0.5
    if len(keep) == 0 or y.min() == y.max():
        # Nothing to learn from: the (clipped) base rate.
        rate = min(max(positive, 1e-3), 1 - 1e-3)
        return {"features": [], "weights": [], "bias": float(np.log(rate / (1 - rate)))}
    mean = X[:, keep].mean(axis=0)
    scale = sd[keep]
    Z = (X[:, keep] - mean) / scale
    # One BLAS thread: these matrices are small, and on a busy machine a thread pool per
    # product made fits 40x slower (measured), not faster.
    with _threads().limit(limits=1, user_api="blas"):
        coef, intercept = _newton(Z, y, 1.0 / C, sample_weight)
    w = coef / scale
    bias = float(intercept - np.dot(coef, mean / scale))
    return {"features": [names[j] for j in keep], "weights": [float(v) for v in w], "bias": bias}


@cache
def _threads() -> ThreadpoolController:
    # Found once: a threadpool_limits per fit scans the process's libraries each time, a third
    # of the cascade's learning time (thousands of small fits).
    return ThreadpoolController()


def _newton(
    Z: np.ndarray, y: np.ndarray, alpha: float, weight: np.ndarray | None
) -> tuple[np.ndarray, float]:
    # Minimize sum_i weight_i * logloss_i + alpha/2 * ||coef||^2 (the intercept unpenalized).
    n, d = Z.shape
    A = np.hstack([Z, np.ones((n, 1))])
    sw = np.ones(n) if weight is None else np.asarray(weight, dtype=float)
    penalty = np.full(d + 1, alpha)
    penalty[-1] = 0.0
    beta = np.zeros(d + 1)
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(A @ beta, -50, 50)))
        grad = A.T @ (sw * (p - y)) + penalty * beta
        hess = (A * (sw * p * (1 - p))[:, None]).T @ A + np.diag(penalty + 1e-10)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < NEWTON_TOL:
            break
    return beta[:-1], float(beta[-1])


def predict_logistic(model: Mapping, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The probabilities a plain-data logistic model gives the rows of X (columns `names`)."""
    index = {name: j for j, name in enumerate(names)}
    z = np.full(X.shape[0], float(model["bias"]))
    for name, w in zip(model["features"], model["weights"], strict=True):
        j = index.get(name)
        if j is not None:
            z += w * X[:, j]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def out_of_fold(
    X: np.ndarray, y: np.ndarray, names: Sequence[str], folds: int, seed: int, C: float = DEFAULT_C
) -> np.ndarray:
    """Predictions for each row from a model that did not see it (k folds, seeded)."""
    n = len(y)
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=int)
    fold_of[order] = np.arange(n) % max(2, min(folds, n))
    out = np.empty(n)
    for k in np.unique(fold_of):
        test = fold_of == k
        model = fit_logistic(X[~test], y[~test], names, C)
        out[test] = predict_logistic(model, X[test], names)
    return out
