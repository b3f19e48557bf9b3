"""Evaluate a bundle's model from plain data with numpy only: LightGBM trees, linear, kNN.

The lab converts fitted models into plain dicts (``aco_lab.train.plain_models``); this module scores
them without lightgbm or scikit-learn, to within floating-point summation order of the
originals (parity tests: 1e-9 against ``Booster.predict(raw_score=True)``).

LightGBM trees. Every tree of the model is laid out in one table of entries (internal
nodes and leaves), children of a node side by side, so "go right" is ``left + 1``; a leaf
points to itself. `compile_lgbm` checks those tables once, with the bundle loader's checks
(``aco.payload_trees.LgbmTrees``); ``aco.tree_walk`` walks them, all
trees of all rows one level per step. Missing values are handled as LightGBM does
(``NumericalDecision`` in its tree.h): per node, NaN goes to the default side when the node's
missing_type is NaN, else NaN counts as 0.0; with missing_type Zero, 0.0 (|x| <= 1e-35f) and
NaN go to the default side. Rather than branching per node, the walk builds the few variants
of X the model needs (NaN -> 0, NaN -> -inf/+inf, zero -> -inf/+inf), and each node reads its
feature from the variant that sends its missing values the right way; -inf always goes left,
+inf always right.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from aco import payload_models
from aco.errors import BundleError
from aco.payload_trees import LGBM_TREES_KIND, LgbmTrees
from aco.tree_walk import (
    MISSING_NONE,
    MISSING_ZERO_LEFT,
    MISSING_ZERO_RIGHT,
    CompiledTrees,
    leaf_values,
)

# The plain formats' names, defined beside their checks (aco.payload_models).
LGBM_KIND = LGBM_TREES_KIND
LINEAR_KIND = payload_models.LINEAR_KIND
KNN_KIND = payload_models.KNN_KIND

CHUNK_CELLS = 4_000_000  # rows x entries per pass for large batches: bounds the work arrays
COMPILED_CACHE_SIZE = 8  # compiled models kept per process (one router usually needs one)


# -- LightGBM --------------------------------------------------------------------------------
def compile_lgbm(model: Mapping[str, Any]) -> CompiledTrees:
    """Decode a plain LightGBM model (aco_lab.train.plain_models) into numpy tables."""
    LgbmTrees.from_dict(model, "model")  # the loader's checks: tables, indexes, trees, depth
    feature = np.frombuffer(model["feature"], dtype="<i4").astype(np.intp)
    missing = np.frombuffer(model["missing"], dtype="u1").astype(np.intp)
    left = np.frombuffer(model["left"], dtype="<i4").astype(np.intp)
    threshold = np.frombuffer(model["threshold"], dtype="<f8")
    value = np.frombuffer(model["value"], dtype="<f8")
    roots = np.frombuffer(model["tree_root"], dtype="<i4").astype(np.intp)
    internal = left != np.arange(len(left))
    depth = int(model["max_depth"])
    feature = np.where(internal, feature, 0)  # a leaf reads any column and stays
    variants = tuple(sorted(set(missing[internal].tolist()) | {MISSING_NONE}))
    slot = np.zeros(5, dtype=np.intp)
    slot[list(variants)] = np.arange(len(variants))
    num_features = int(model["num_features"])
    return CompiledTrees(
        num_class=int(model["num_class"]),
        num_trees=len(roots),
        num_features=num_features,
        average_output=bool(model["average_output"]),
        objective=str(model["objective"]),
        variants=variants,
        zero_as_missing=bool(
            np.isin(missing[internal], (MISSING_ZERO_LEFT, MISSING_ZERO_RIGHT)).any()
        ),
        column=np.where(internal, slot[missing] * num_features + feature, 0),
        feature=feature,
        threshold=np.where(internal, threshold, np.inf),
        left=left,
        value=value.copy(),
        roots=roots,
        depth=depth,
    )


_compiled: OrderedDict[int, tuple[Mapping[str, Any], CompiledTrees]] = OrderedDict()
_compiled_lock = threading.Lock()


def _compiled_for(model: Mapping[str, Any] | CompiledTrees) -> CompiledTrees:
    # Keyed by id() while holding a reference to the model, so the id cannot be reused.
    if isinstance(model, CompiledTrees):
        return model
    key = id(model)
    with _compiled_lock:
        hit = _compiled.get(key)
        if hit is not None and hit[0] is model:
            _compiled.move_to_end(key)
            return hit[1]
    compiled = compile_lgbm(model)
    with _compiled_lock:
        _compiled[key] = (model, compiled)
        while len(_compiled) > COMPILED_CACHE_SIZE:
            _compiled.popitem(last=False)
    return compiled


def predict_lgbm_raw(model: Mapping[str, Any] | CompiledTrees, X: np.ndarray) -> np.ndarray:
    """Raw scores as Booster.predict(X, raw_score=True): (n,) or (n, num_class) if multiclass."""
    trees = _compiled_for(model)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != trees.num_features:
        raise ValueError(
            f"X: expected shape (n, {trees.num_features}) for this model, got {X.shape}"
        )
    n = len(X)
    step = max(1, CHUNK_CELLS // len(trees.left))
    if n <= step:
        values = leaf_values(trees, X)
    else:
        values = np.concatenate([leaf_values(trees, X[s : s + step]) for s in range(0, n, step)])
    return _sum_trees(trees, values)


def _sum_trees(trees: CompiledTrees, values: np.ndarray) -> np.ndarray:
    k = trees.num_class
    # Like LightGBM's PredictRaw: summed even for an averaged (random forest) model.
    raw = values.reshape(len(values), trees.num_trees // k, k).sum(axis=1)
    return raw[:, 0] if k == 1 else raw


def predict_lgbm(model: Mapping[str, Any] | CompiledTrees, X: np.ndarray) -> np.ndarray:
    """Scores like Booster.predict(X): the objective's transform of the raw scores."""
    trees = _compiled_for(model)
    raw = predict_lgbm_raw(trees, X)
    if trees.average_output:  # LightGBM averages after PredictRaw, before the transform
        raw = raw / (trees.num_trees // trees.num_class)
    name, _, param = trees.objective.partition(" ")
    if name in ("binary", "multiclassova", "cross_entropy"):
        scale = float(param.split(":")[1]) if param.startswith("sigmoid:") else 1.0
        return sigmoid(raw, scale)
    if name in ("multiclass", "softmax"):
        return softmax(raw)
    if name in ("poisson", "gamma", "tweedie"):
        return np.exp(raw)
    return raw


def sigmoid(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """1 / (1 + exp(-scale * x)), without overflow warnings."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-scale * np.asarray(x, dtype=np.float64)))


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, k) scores."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- linear ----------------------------------------------------------------------------------
def build_linear_model(
    coef: np.ndarray,
    intercept: np.ndarray,
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> dict[str, Any]:
    """Plain data of a linear model on standardised features: z = (x - mean) / scale."""
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    n_out, n_feat = coef.shape
    mean = np.zeros(n_feat) if mean is None else np.asarray(mean, dtype=np.float64)
    scale = np.ones(n_feat) if scale is None else np.asarray(scale, dtype=np.float64)
    scale = np.where(scale == 0, 1.0, scale)  # a constant feature: any scale gives z = 0
    return {
        "kind": LINEAR_KIND,
        "n_features": n_feat,
        "n_outputs": n_out,
        "coef": _f8(coef),
        "intercept": _f8(np.atleast_1d(intercept)),
        "mean": _f8(mean),
        "scale": _f8(scale),
    }


def predict_linear(model: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """Decision values (n, n_outputs) of a linear model; NaN features count as the mean."""
    _check_kind(model, LINEAR_KIND)
    n_feat, n_out = int(model["n_features"]), int(model["n_outputs"])
    mean, scale = _from_f8(model["mean"]), _from_f8(model["scale"])
    z = (_as_2d(X, n_feat) - mean) / scale
    z[np.isnan(z)] = 0.0
    return z @ _from_f8(model["coef"]).reshape(n_out, n_feat).T + _from_f8(model["intercept"])


# -- kNN -------------------------------------------------------------------------------------
def build_knn_model(
    vectors: np.ndarray,
    targets: np.ndarray,
    k: int,
    prior: np.ndarray | None = None,
    prior_weight: float = 0.0,
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> dict[str, Any]:
    """Plain data of a cosine kNN: stored standardised, unit-length rows and their targets."""
    vectors = np.asarray(vectors, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64).reshape(len(vectors), -1)
    n_feat = vectors.shape[1]
    mean = np.zeros(n_feat) if mean is None else np.asarray(mean, dtype=np.float64)
    scale = np.ones(n_feat) if scale is None else np.where(np.asarray(scale) == 0, 1.0, scale)
    if prior is None:  # the targets' own means, a tier never run anywhere -> 0.5
        seen = ~np.isnan(targets)
        prior = np.where(seen.any(axis=0), np.nansum(targets, 0) / np.maximum(seen.sum(0), 1), 0.5)
    return {
        "kind": KNN_KIND,
        "n_features": n_feat,
        "n_targets": targets.shape[1],
        "k": int(k),
        "vectors": _f8(_unit_rows(_standardise(vectors, mean, scale))),
        "targets": _f8(targets),
        "prior": _f8(np.asarray(prior, dtype=np.float64)),
        "prior_weight": float(prior_weight),
        "mean": _f8(mean),
        "scale": _f8(np.asarray(scale, dtype=np.float64)),
    }


def predict_knn(model: Mapping[str, Any], X: np.ndarray, k: int | None = None) -> np.ndarray:
    """(n, n_targets) neighbour averages; a target no neighbour knows (NaN) falls to the prior.

    Neighbours are the k stored rows of highest cosine similarity after standardisation (ties:
    the lower stored index first). Per target: (sum of known neighbour values + prior_weight *
    prior) / (count of known values + prior_weight); with no known value, the prior.
    """
    _check_kind(model, KNN_KIND)
    n_feat, n_targets = int(model["n_features"]), int(model["n_targets"])
    refs = _from_f8(model["vectors"]).reshape(-1, n_feat)
    targets = _from_f8(model["targets"]).reshape(len(refs), n_targets)
    k = min(int(model["k"] if k is None else k), len(refs))
    z = _unit_rows(
        _standardise(_as_2d(X, n_feat), _from_f8(model["mean"]), _from_f8(model["scale"]))
    )
    order = np.argsort(-(z @ refs.T), axis=1, kind="stable")[:, :k]
    picked = targets[order]  # (n, k, n_targets)
    known = ~np.isnan(picked)
    weight, prior = float(model["prior_weight"]), _from_f8(model["prior"])
    total = np.where(known, picked, 0.0).sum(axis=1) + weight * prior
    count = known.sum(axis=1) + weight
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, prior)


def _standardise(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    z = (X - mean) / scale
    z[np.isnan(z)] = 0.0
    return z


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms == 0, 1.0, norms)


# -- plain data helpers ----------------------------------------------------------------------
def _f8(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<f8").tobytes()


def _from_f8(data: bytes | list) -> np.ndarray:
    # Little-endian float64 bytes (what the builders write); plain (nested) lists work too.
    if isinstance(data, bytes):
        return np.frombuffer(data, dtype="<f8")
    return np.asarray(data, dtype=np.float64).ravel()


def _as_2d(X: np.ndarray, n_feat: int) -> np.ndarray:
    X = np.array(X, dtype=np.float64, ndmin=2)
    if X.shape[1] != n_feat:
        raise ValueError(f"X: expected {n_feat} features per row, got {X.shape[1]}")
    return X


def _check_kind(model: Mapping[str, Any], kind: str) -> None:
    if not isinstance(model, Mapping) or model.get("kind") != kind:
        got = model.get("kind") if isinstance(model, Mapping) else type(model).__name__
        raise BundleError(f"model: expected a plain {kind!r} model, got {got!r}")
