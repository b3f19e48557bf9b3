"""The estimators a router can learn, each fitted here and stored as plain data for aco.scoring.

Two objectives:
- "success": P(success | request, tier). LightGBM learns it from (request, tier) rows with
  the tier as a feature under a +1 monotone constraint, so success never drops as the tier
  rises; logistic regression fits one model per tier; kNN averages the neighbours' outcomes
  per tier. Serves counterfactual data and ordinary logs alike.
- "cheapest": the classic multiclass "cheapest sufficient tier" classifier (class 0 = no tier
  succeeds). Its class probabilities turn into P(success at tier t) = P(cheapest <= t), so
  the same decision rule applies. Needs counterfactual data (every tier's outcome).

Every fit is deterministic for a seed (LightGBM deterministic=True, fixed threads).
The runtime evaluates the stored forms with `aco.router.predict_success`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from aco.errors import DataError
from aco.features import TASK_MISSING, TASK_UNKNOWN, FeatureSpec
from aco.policy import clip_probability
from aco.router import (
    build_novelty,
    infer_task_types,
    nearest_similarity,
    novel_rows,
    predict_task_types,
)
from aco.scoring import build_knn_model, build_linear_model, predict_knn

log = logging.getLogger(__name__)

MODELS = ("lgbm", "logreg", "knn")
OBJECTIVES = ("success", "cheapest")
N_TIERS = 5

# LightGBM: small trees, shrinkage and early stopping suit a few thousand requests and scale
# to a million rows; each setting is what keeps small data from being memorised.
LGBM_PARAMS = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "lambda_l2": 1.0,
    "feature_fraction": 0.8,
    "max_bin": 63,  # fewer histogram bins: faster on a million rows, no loss on these features
    "verbosity": -1,
    "deterministic": True,
    "force_row_wise": True,  # with deterministic=True: the same trees on every run
}
# Regularisation tried on the held-out fold (lowest log loss wins): the defaults above, and a
# much stronger setting for small or weakly informative data, where deep trees chase noise.
LGBM_TUNE_GRID = (
    {},
    {"num_leaves": 4, "min_data_in_leaf": 60, "lambda_l2": 10.0, "feature_fraction": 0.5},
)
LGBM_TUNE_MAX_ROWS = 200_000  # above: the defaults only (each try is a full training) ...
# ... and these instead: every round grows its trees on a seeded fifth of the rows, with
# faster shrinkage. On 500k simulated rows: held-out log loss 0.2765 after ~100 rounds at
# ~1/5 of the time per round, against 0.2710 after 370 rounds with all rows at rate 0.1.
LGBM_LARGE = {"bagging_fraction": 0.2, "bagging_freq": 1, "learning_rate": 0.2,
              "min_data_in_leaf": 100}
LGBM_MAX_ROUNDS = 400
LGBM_EARLY_STOP = 30  # rounds without improvement on the held-out fold
LOGREG_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strength, tuned held-out
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
KNN_K_GRID = (1, 3, 5, 10, 20, 40, 80, 160)  # tuned on the held-out fold (log loss)
KNN_MAX_REFERENCES = 20_000  # stored neighbours; a seeded sample beyond this


@dataclass(frozen=True, slots=True)
class TierRows:
    """Training rows of the success objective: (request, tier, 0/1 outcome)."""

    request: np.ndarray  # (m,) int index into the request feature matrix
    tier: np.ndarray  # (m,) int 1..5
    label: np.ndarray  # (m,) float 0/1

    def take(self, mask: np.ndarray) -> TierRows:
        """The rows where mask holds."""
        return TierRows(self.request[mask], self.tier[mask], self.label[mask])


@dataclass(frozen=True, slots=True)
class FitData:
    """A fit fold and a held-out fold: request features, tier rows, outcome grids."""

    X: np.ndarray  # (n, d) request features
    rows: TierRows  # indices into X
    outcomes: np.ndarray  # (n, 5) observed success per tier, nan unobserved
    X_held: np.ndarray
    rows_held: TierRows
    outcomes_held: np.ndarray


@dataclass(frozen=True, slots=True)
class FittedModel:
    """The model as plain data, and the LightGBM booster it came from (parity checks)."""

    model: dict
    booster: object | None = None


def build_cheapest_labels(success: np.ndarray) -> np.ndarray:
    """Class per request: the lowest tier (1..5) whose outcome is a success, 0 when none is."""
    solved = np.nan_to_num(success, nan=0.0) >= 0.5
    return np.where(solved.any(axis=1), np.argmax(solved, axis=1) + 1, 0)


def stack_tier_rows(X: np.ndarray, request: np.ndarray, tier: np.ndarray) -> np.ndarray:
    """Rows of [request features, tier] for the LightGBM success model."""
    return np.hstack([X[request], tier.astype(np.float64)[:, None]])


@dataclass(frozen=True, slots=True)
class LgbmRows:
    """LightGBM's rows: X[request] with the tier as a last column, or, without request, X."""

    X: np.ndarray
    label: np.ndarray
    request: np.ndarray | None = None  # (m,) row of X per training row
    tier: np.ndarray | None = None  # (m,) 1..5, with request

    def stacked(self) -> np.ndarray:
        """The rows as one matrix."""
        return self.X if self.request is None else stack_tier_rows(self.X, self.request, self.tier)


LgbmTrainer = Callable[[dict, LgbmRows, LgbmRows], object]  # train_lgbm, or dask_fit's


def fit_estimator(
    kind: str, objective: str, data: FitData, seed: int, num_threads: int,
    lgbm_trainer: LgbmTrainer | None = None,
) -> FittedModel:
    """Fit one estimator on data.X; the held-out fold steers early stopping (lgbm) or k (knn)."""
    if kind not in MODELS:
        raise DataError(f"--model: expected one of {', '.join(MODELS)}, got {kind!r}")
    if objective not in OBJECTIVES:
        raise DataError(f"--objective: expected one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if objective == "cheapest":
        return _fit_cheapest(kind, data, seed, num_threads, lgbm_trainer or train_lgbm)
    if kind == "lgbm":
        return _fit_lgbm_success(data, seed, num_threads, lgbm_trainer or train_lgbm)
    if kind == "logreg":
        return FittedModel(_tune_c(lambda c: _fit_logreg_success(data.X, data.rows, seed, c),
                                   data.X_held, data.outcomes_held))
    return FittedModel(
        _fit_knn(data.X, data.outcomes, data.X_held, data.outcomes_held, seed, objective)
    )


def _fit_cheapest(kind: str, data: FitData, seed: int, num_threads: int,
                  trainer: LgbmTrainer) -> FittedModel:
    """The multiclass objective on requests observed at every tier."""
    full = ~np.isnan(data.outcomes).any(axis=1)
    full_held = ~np.isnan(data.outcomes_held).any(axis=1)
    if full.sum() < 2 or full_held.sum() < 1:
        raise DataError(
            "--objective cheapest needs counterfactual traces (each request run on every "
            "tier, runs sharing request_id); use --objective success for ordinary logs"
        )
    X, X_held = data.X[full], data.X_held[full_held]
    y = build_cheapest_labels(data.outcomes[full])
    y_held = build_cheapest_labels(data.outcomes_held[full_held])
    if kind == "knn":
        Y, Y_held = _cumulative(y), _cumulative(y_held)
        return FittedModel(_fit_knn(X, Y, X_held, Y_held, seed, "cheapest"))
    if kind == "logreg":
        return FittedModel(_tune_c(lambda c: _fit_logreg_cheapest(X, y, seed, c), X_held,
                                   _cumulative(y_held)))
    return _fit_lgbm_cheapest(X, y, X_held, y_held, seed, num_threads, trainer)


# -- LightGBM -----------------------------------------------------------------------------
def _lgbm_params(seed: int, num_threads: int, **extra: object) -> dict:
    return {**LGBM_PARAMS, "seed": seed, "num_threads": num_threads, **extra}


def _fit_lgbm_success(data: FitData, seed: int, num_threads: int,
                      trainer: LgbmTrainer) -> FittedModel:
    from aco_lab.train.plain_models import lgbm_model_to_plain

    monotone = [0] * data.X.shape[1] + [1]  # success never drops as the tier rises
    params = _lgbm_params(seed, num_threads, objective="binary", monotone_constraints=monotone)
    rows, held = data.rows, data.rows_held
    booster = trainer(params, LgbmRows(data.X, rows.label, rows.request, rows.tier),
                      LgbmRows(data.X_held, held.label, held.request, held.tier))
    model = {"kind": "lgbm", "objective": "success", "booster": lgbm_model_to_plain(booster)}
    return FittedModel(model, booster)


def _fit_lgbm_cheapest(
    X: np.ndarray, y: np.ndarray, X_held: np.ndarray, y_held: np.ndarray, seed: int,
    num_threads: int, trainer: LgbmTrainer,
) -> FittedModel:
    from aco_lab.train.plain_models import lgbm_model_to_plain

    params = _lgbm_params(seed, num_threads, objective="multiclass", num_class=N_TIERS + 1)
    booster = trainer(params, LgbmRows(X, y), LgbmRows(X_held, y_held))
    model = {"kind": "lgbm", "objective": "cheapest", "booster": lgbm_model_to_plain(booster)}
    return FittedModel(model, booster)


def _datasets(lgb, params: dict, X, y, X_held, y_held):  # noqa: ANN001, ANN202
    """Binned training and held-out datasets (raw arrays not kept)."""
    keys = ("max_bin", "seed", "num_threads", "verbosity")
    dataset_params = {k: params[k] for k in keys} | {"feature_pre_filter": False}
    train = lgb.Dataset(X, label=y, params=dataset_params, free_raw_data=True).construct()
    held = None
    if len(y_held):
        held = lgb.Dataset(X_held, label=y_held, reference=train, params=dataset_params,
                           free_raw_data=True).construct()
    return train, held


def lgbm_grid(n_rows: int, held_out: bool) -> tuple[dict, ...]:
    """The settings tried over LGBM_PARAMS for n_rows training rows (one without held-out rows)."""
    small = LGBM_TUNE_GRID if held_out else LGBM_TUNE_GRID[:1]
    return (LGBM_LARGE,) if n_rows > LGBM_TUNE_MAX_ROWS else small


def train_lgbm(params: dict, rows: LgbmRows, held_rows: LgbmRows):  # noqa: ANN201 - a Booster
    """The booster of the tuning grid with the lowest held-out log loss, in this process."""
    import lightgbm as lgb

    # The stacked (request, tier) rows are binned into LightGBM's datasets and dropped before
    # boosting: on a million rows they are the largest arrays of the whole training.
    train, held = _datasets(lgb, params, rows.stacked(), rows.label, held_rows.stacked(),
                            held_rows.label)
    best, best_loss = None, np.inf
    for extra in lgbm_grid(train.num_data(), held is not None):
        booster, loss = _train_lgbm_once(lgb, {**params, **extra}, train, held)
        log.info("lightgbm %s: %d trees, held-out log loss %.4f", extra or "defaults",
                 booster.num_trees(), loss)
        if loss < best_loss - 1e-12 or best is None:
            best, best_loss = booster, loss
    return best


def _train_lgbm_once(lgb, params: dict, train, held):  # noqa: ANN001, ANN202
    valid_sets = [held] if held is not None else []
    callbacks = [lgb.early_stopping(LGBM_EARLY_STOP, verbose=False)] if valid_sets else []
    booster = lgb.train(params, train, num_boost_round=LGBM_MAX_ROUNDS, valid_sets=valid_sets,
                        callbacks=callbacks)
    loss = min(booster.best_score["valid_0"].values()) if valid_sets else 0.0
    if booster.best_iteration and booster.best_iteration < booster.current_iteration():
        text = booster.model_to_string(num_iteration=booster.best_iteration)
        booster = lgb.Booster(model_str=text)
    return booster, float(loss)


PREDICT_CHUNK = 20_000  # requests per batch: bounds the (requests x 5 tiers) row matrix


def predict_fitted(fitted: FittedModel, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """(n, 5) P(success) as aco.router.predict_success computes it from the plain model.

    With the LightGBM booster at hand, its own predict is used (the same numbers within 1e-9,
    a parity test checks it; much faster on large batches).
    """
    from aco.router import all_tier_rows, predict_success, success_from_cheapest

    out = np.empty((len(X), N_TIERS))
    for start in range(0, len(X), PREDICT_CHUNK):
        chunk = X[start : start + PREDICT_CHUNK]
        booster = fitted.booster
        if booster is None:
            out[start : start + len(chunk)] = predict_success(fitted.model, chunk)
        elif fitted.model["objective"] == "success":
            p = booster.predict(all_tier_rows(chunk), num_threads=num_threads)
            out[start : start + len(chunk)] = p.reshape(len(chunk), N_TIERS)
        else:
            classes = booster.predict(chunk, num_threads=num_threads)
            out[start : start + len(chunk)] = success_from_cheapest(classes)
    return out


# -- logistic regression ------------------------------------------------------------------
def _standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(standardised X with NaN at 0 = the mean, as aco.scoring reads it; mean; scale)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: mean 0, scale 1
        mean = np.nan_to_num(np.nanmean(X, axis=0))
        scale = np.nan_to_num(np.nanstd(X, axis=0))
    scale = np.where(scale > 1e-12, scale, 1.0)
    return np.nan_to_num((X - mean) / scale), mean, scale


def _tune_c(fit: Callable[[float], dict], X_held: np.ndarray, Y_held: np.ndarray) -> dict:
    """The logistic model whose C gives the lowest held-out log loss (first on ties)."""
    from aco.router import predict_success

    best, best_loss = None, np.inf
    for c in LOGREG_C_GRID:
        model = fit(c)
        loss = held_out_log_loss(predict_success(model, X_held), Y_held)
        log.debug("logreg C=%g: held-out log loss %.4f", c, loss)
        if loss < best_loss:
            best, best_loss = model, loss
    assert best is not None
    log.info("logreg: C=%g (held-out log loss %.4f)", best["C"], best_loss)
    return best


def held_out_log_loss(p: np.ndarray, Y: np.ndarray) -> float:
    """Mean log loss over the observed cells of an outcome grid (nan = unobserved)."""
    seen = ~np.isnan(Y)
    if not seen.any():
        return 0.0
    q, y = clip_probability(p[seen]), Y[seen]
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


def _fit_logreg_success(X: np.ndarray, rows: TierRows, seed: int, c: float) -> dict:
    from sklearn.linear_model import LogisticRegression

    Z, mean, scale = _standardiser(X)
    coef = np.zeros((N_TIERS, X.shape[1]))
    intercept = np.zeros(N_TIERS)
    for t in range(1, N_TIERS + 1):
        mask = rows.tier == t
        y = rows.label[mask]
        if mask.sum() == 0:
            intercept[t - 1] = np.nan  # no data: filled from neighbours below
            continue
        if y.min() == y.max():
            rate = clip_probability(np.float64(y.mean()))
            intercept[t - 1] = float(np.log(rate / (1.0 - rate)))
            continue
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(Z[rows.request[mask]], y)
        coef[t - 1], intercept[t - 1] = model.coef_[0], model.intercept_[0]
    _fill_missing_tiers(coef, intercept)
    return {"kind": "logreg", "objective": "success", "C": c,
            "linear": build_linear_model(coef, intercept, mean, scale)}


def _fill_missing_tiers(coef: np.ndarray, intercept: np.ndarray) -> None:
    """A tier with no rows borrows the nearest lower tier's model (else the nearest higher)."""
    known = np.flatnonzero(~np.isnan(intercept))
    if known.size == 0:
        raise DataError("no training rows at any tier; traces need a tier and task_success")
    for t in np.flatnonzero(np.isnan(intercept)):
        lower = known[known < t]
        src = lower[-1] if lower.size else known[0]
        coef[t], intercept[t] = coef[src], intercept[src]


def _fit_logreg_cheapest(X: np.ndarray, y: np.ndarray, seed: int, c: float) -> dict:
    from sklearn.linear_model import LogisticRegression

    Z, mean, scale = _standardiser(X)
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    model.fit(Z, y)
    coef = np.zeros((N_TIERS + 1, X.shape[1]))
    intercept = np.full(N_TIERS + 1, -30.0)  # classes never seen: ~zero probability
    classes = model.classes_.astype(int)
    if len(classes) == 2:  # sklearn's binary form: one row for the second class
        coef[classes[1]], intercept[classes[1]] = model.coef_[0], model.intercept_[0]
        intercept[classes[0]] = 0.0
    else:
        coef[classes], intercept[classes] = model.coef_, model.intercept_
    return {"kind": "logreg", "objective": "cheapest", "C": c,
            "linear": build_linear_model(coef, intercept, mean, scale)}


# -- k nearest neighbours -----------------------------------------------------------------
def _cumulative(classes: np.ndarray) -> np.ndarray:
    """Cheapest-tier classes -> (n, 5) indicators "cheapest sufficient tier <= t"."""
    tiers = np.arange(1, N_TIERS + 1)
    return ((classes[:, None] >= 1) & (classes[:, None] <= tiers[None, :])).astype(np.float64)


def _fit_knn(
    X: np.ndarray, Y: np.ndarray, X_held: np.ndarray, Y_held: np.ndarray, seed: int,
    objective: str,
) -> dict:
    """Cosine kNN over standardised features; k tuned on the held-out fold's log loss."""
    if len(X) > KNN_MAX_REFERENCES:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(X), KNN_MAX_REFERENCES, replace=False))
        X, Y = X[keep], Y[keep]
    Z, mean, scale = _standardiser(X)
    knn = build_knn_model(Z * scale + mean, Y, k=1, mean=mean, scale=scale)  # NaN -> the mean
    grid = sorted({min(k, len(X)) for k in KNN_K_GRID})
    losses = [held_out_log_loss(predict_knn(knn, X_held, k=k), Y_held) for k in grid]
    knn["k"] = grid[int(np.argmin(losses))]
    log.info("knn: k=%d (held-out log loss by k: %s)", knn["k"],
             ", ".join(f"{k}:{v:.4f}" for k, v in zip(grid, losses, strict=True)))
    return {"kind": "knn", "objective": objective, "knn": knn}


# -- task-type classifier -----------------------------------------------------------------
def fit_task_type_model(
    X: np.ndarray, task_types: list[str | None], spec: FeatureSpec, seed: int,
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
    model = {"task_types": types, "task_columns": task_columns,
             "missing_column": spec.names.index(TASK_MISSING)}
    Xm = np.array(X[known])
    Xm[:, task_columns] = 0.0
    Xm[:, model["missing_column"]] = 1.0
    y = np.array([types.index(task_types[i]) for i in np.flatnonzero(known)])
    coef = np.zeros((len(types), X.shape[1]))
    intercept = np.zeros(len(types))
    Z, mean, scale = _standardiser(Xm)
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


def task_type_figures(task_model: dict | None, requests: list[str], X: np.ndarray,
                      task_types: list[str | None]) -> dict:
    """The task-type predictor on held-out requests with a known type: its accuracy alone, as
    the runtime applies it (novel requests typed by the rules' cues, or left unknown), and the
    share it calls novel (about NOVELTY_QUANTILE: the threshold was set on these requests)."""
    known = [i for i, t in enumerate(task_types) if t is not None]
    if task_model is None or not known:
        return {}
    truth = np.array([task_types[i] for i in known], dtype=object)
    index, _ = predict_task_types(task_model, X[known])
    predicted = np.array(task_model["task_types"], dtype=object)[index]
    inferred = np.array(infer_task_types(task_model, [requests[i] for i in known], X[known]),
                        dtype=object)
    figures = {"requests": len(known), "accuracy": round(float(np.mean(predicted == truth)), 4),
               "accuracy_as_routed": round(float(np.mean(inferred == truth)), 4)}
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
    log.info("task-type novelty check: %d centroids, threshold %.3f (the %.0f%% quantile of "
             "%d held-out requests' nearest similarity)", k, threshold,
             100 * NOVELTY_QUANTILE, len(nearest))
    return build_novelty(stored, start, threshold, NOVELTY_QUANTILE)
