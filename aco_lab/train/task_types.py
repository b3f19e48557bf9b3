"""The task-type classifier a bundle carries, and its novelty check.

A request given without a task type gets one from a small softmax model over its features
(computed as if no type were given); a request unlike the training requests (the novelty
check: its similarity to k-means centroids of their hashed n-grams) is not predicted, and
the runtime types it by the rules' cues instead (aco.router.TaskTypePredictor).
"""

from __future__ import annotations

import logging

import numpy as np
from threadpoolctl import threadpool_limits

from aco.features import TASK_MISSING, TASK_UNKNOWN, FeatureSpec
from aco.router import (
    build_novelty,
    infer_task_types,
    nearest_similarity,
    novel_rows,
    predict_task_types,
)
from aco.scoring import build_linear_model
from aco_lab.train.estimators import standardise

log = logging.getLogger(__name__)

TASK_TYPE_C = 1.0  # inverse L2 strength of the task-type classifier
TASK_TYPE_MAX_ROWS = 20_000  # requests it learns from (a seeded sample beyond this)
# The predictor's novelty check: a request less similar to every stored centroid of training
# requests than this share of held-out requests are to their nearest one counts as unlike the
# training data, and its task type comes from the rules' cues instead. 64 k-means centroids
# of unit n-gram vectors: on the demo's simulated requests they flag all five hand-written
# requests tried (a bug fix, a CSV parser, a refactor, a contract review, "2+2"; threshold
# 0.70), as 500 stored requests do, with a 64 x 256 product instead of a 500 x 256 one.
NOVELTY_CENTROIDS = 64
NOVELTY_QUANTILE = 0.01
NOVELTY_MAX_ROWS = 5_000  # requests the centroids are fitted on (a seeded sample beyond this)


def fit_task_type_model(
    X: np.ndarray,
    task_types: list[str | None],
    spec: FeatureSpec,
    seed: int,
    X_held: np.ndarray | None = None,
) -> dict | None:
    """A softmax model of the task type from features computed without one; None if no types.

    With held-out requests (`X_held`, not among `X`), it also stores the novelty check
    (`fit_novelty`) the runtime applies before trusting a prediction."""
    from sklearn.linear_model import LogisticRegression

    known = np.array([t is not None for t in task_types])
    types = sorted({t for t in task_types if t is not None})
    if not types:
        return None
    if known.sum() > TASK_TYPE_MAX_ROWS:
        rng = np.random.default_rng(seed)
        keep = rng.choice(np.flatnonzero(known), TASK_TYPE_MAX_ROWS, replace=False)
        known = np.zeros_like(known)
        known[keep] = True
    task_columns = [spec.names.index(f"task_type={t}") for t in spec.task_types]
    task_columns.append(spec.names.index(TASK_UNKNOWN))
    model = {
        "task_types": types,
        "task_columns": task_columns,
        "missing_column": spec.names.index(TASK_MISSING),
    }
    Xm = np.array(X[known])
    Xm[:, task_columns] = 0.0
    Xm[:, model["missing_column"]] = 1.0
    y = np.array([types.index(task_types[i]) for i in np.flatnonzero(known)])
    coef = np.zeros((len(types), X.shape[1]))
    intercept = np.zeros(len(types))
    Z, mean, scale = standardise(Xm)
    if len(types) > 1:
        clf = LogisticRegression(C=TASK_TYPE_C, max_iter=2000, random_state=seed)
        clf.fit(Z, y)
        if len(types) == 2:  # sklearn's binary form: one row, for the second class
            coef[1], intercept[1] = clf.coef_[0], clf.intercept_[0]
        else:
            coef, intercept = clf.coef_, clf.intercept_
    model["linear"] = build_linear_model(coef, intercept, mean, scale)
    if X_held is not None and len(X_held):
        model["novelty"] = fit_novelty(X, X_held, spec, seed)
    return model


def task_type_figures(
    task_model: dict | None, requests: list[str], X: np.ndarray, task_types: list[str | None]
) -> dict:
    """The task-type predictor on held-out requests with a known type: its accuracy alone, as
    the runtime applies it (novel requests typed by the rules' cues, or left unknown), and the
    share it calls novel (about NOVELTY_QUANTILE: the threshold was set on these requests)."""
    known = [i for i, t in enumerate(task_types) if t is not None]
    if task_model is None or not known:
        return {}
    truth = np.array([task_types[i] for i in known], dtype=object)
    index, _ = predict_task_types(task_model, X[known])
    predicted = np.array(task_model["task_types"], dtype=object)[index]
    inferred = np.array(
        infer_task_types(task_model, [requests[i] for i in known], X[known]), dtype=object
    )
    figures = {
        "requests": len(known),
        "accuracy": round(float(np.mean(predicted == truth)), 4),
        "accuracy_as_routed": round(float(np.mean(inferred == truth)), 4),
    }
    if "novelty" in task_model:  # the share it calls novel, and the share it was set to
        figures["novel_share"] = round(float(np.mean(novel_rows(task_model, X[known]))), 4)
        figures["novel_share_expected"] = float(task_model["novelty"]["quantile"])
    return figures


def fit_novelty(X: np.ndarray, X_held: np.ndarray, spec: FeatureSpec, seed: int) -> dict:
    """How alike a request must be to the training requests for its task type to be predicted.

    Centroids: k-means (NOVELTY_CENTROIDS) of the training requests' hashed n-gram vectors,
    scaled to unit length like the vectors, so a dot product is a cosine similarity; stored
    as float16. Threshold: the NOVELTY_QUANTILE quantile of the held-out requests' similarity
    to their nearest centroid, so about that share of requests like the training data is
    called novel."""
    from sklearn.cluster import KMeans

    start = spec.hash_offset
    rows = np.asarray(X[:, start:], dtype=np.float64)
    rng = np.random.default_rng(seed)
    if len(rows) > NOVELTY_MAX_ROWS:
        rows = rows[np.sort(rng.choice(len(rows), NOVELTY_MAX_ROWS, replace=False))]
    k = min(NOVELTY_CENTROIDS, len(np.unique(rows, axis=0)))
    with threadpool_limits(limits=1):  # the same centroids whatever the machine's cores
        centroids = KMeans(k, n_init=2, random_state=seed).fit(rows).cluster_centers_
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    stored = (centroids / np.where(norms > 0, norms, 1.0)).astype("<f2")
    nearest = nearest_similarity(stored.astype(np.float32), np.asarray(X_held)[:, start:])
    threshold = float(np.quantile(nearest, NOVELTY_QUANTILE))
    log.info(
        "task-type novelty check: %d centroids, threshold %.3f (the %.0f%% quantile of "
        "%d held-out requests' nearest similarity)",
        k,
        threshold,
        100 * NOVELTY_QUANTILE,
        len(nearest),
    )
    return build_novelty(stored, start, threshold, NOVELTY_QUANTILE)
