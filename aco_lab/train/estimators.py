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

import numpy as np

from aco.errors import DataError
from aco.policy import clip_probability
from aco.scoring import build_knn_model, build_linear_model, predict_knn
from aco_lab.train.fit_data import (
    FitData,
    FittedModel,
    LgbmRows,
    LgbmTrainer,
    TierRows,
    build_cheapest_labels,
)

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
LGBM_LARGE = {
    "bagging_fraction": 0.2,
    "bagging_freq": 1,
    "learning_rate": 0.2,
    "min_data_in_leaf": 100,
}
LGBM_MAX_ROUNDS = 400
LGBM_EARLY_STOP = 30  # rounds without improvement on the held-out fold
LOGREG_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strength, tuned held-out
KNN_K_GRID = (1, 3, 5, 10, 20, 40, 80, 160)  # tuned on the held-out fold (log loss)
KNN_MAX_REFERENCES = 20_000  # stored neighbours; a seeded sample beyond this


def fit_estimator(
    kind: str,
    objective: str,
    data: FitData,
    seed: int,
    num_threads: int,
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
        return fit_lgbm_success(data, seed, num_threads, trainer=lgbm_trainer)
    if kind == "logreg":
        return FittedModel(
            _tune_c(
                lambda c: _fit_logreg_success(data.X, data.rows, seed, c),
                data.X_held,
                data.outcomes_held,
            )
        )
    return FittedModel(
        _fit_knn(data.X, data.outcomes, data.X_held, data.outcomes_held, seed, objective)
    )


def _fit_cheapest(
    kind: str, data: FitData, seed: int, num_threads: int, trainer: LgbmTrainer
) -> FittedModel:
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
        return FittedModel(
            _tune_c(lambda c: _fit_logreg_cheapest(X, y, seed, c), X_held, _cumulative(y_held))
        )
    return _fit_lgbm_cheapest(X, y, X_held, y_held, seed, num_threads, trainer)


# -- LightGBM -----------------------------------------------------------------------------
def _lgbm_params(seed: int, num_threads: int, **extra: object) -> dict:
    return {**LGBM_PARAMS, "seed": seed, "num_threads": num_threads, **extra}


def fit_lgbm_success(
    data: FitData,
    seed: int,
    num_threads: int,
    prior: dict | None = None,
    trainer: LgbmTrainer | None = None,
) -> FittedModel:
    """LightGBM on (request, tier) rows, success non-decreasing in the last column: the tier,
    or with rows of several models per tier (data.pooled), the model's skill. With a prior
    (a per-task-type table, plain linear data), the trees learn the residual over its logits.
    trainer: grows the trees instead of train_lgbm (this process)."""
    from aco.scoring import predict_linear
    from aco_lab.train.plain_models import lgbm_model_to_plain

    rows, rows_held = data.rows, data.rows_held
    model: dict = {"kind": "lgbm", "objective": "success"}
    values, values_held = rows.tier, rows_held.tier
    if data.pooled is not None and data.pooled_held is not None:
        rows, rows_held = data.pooled, data.pooled_held
        skills, tier_values = model_skills(rows, data.tier_models)
        values, values_held = skills[rows.model], skills[rows_held.model]
        model["tier_values"] = tier_values.tolist()
    init = init_held = None
    if prior is not None:
        init = predict_linear(prior, data.X)[rows.request, rows.tier - 1]
        init_held = predict_linear(prior, data.X_held)[rows_held.request, rows_held.tier - 1]
    monotone = [0] * data.X.shape[1] + [1]  # success never drops as the tier (skill) rises
    params = _lgbm_params(seed, num_threads, objective="binary", monotone_constraints=monotone)
    booster = (trainer or train_lgbm)(
        params,
        LgbmRows(data.X, rows.label, rows.request, values, init),
        LgbmRows(data.X_held, rows_held.label, rows_held.request, values_held, init_held),
    )
    model["booster"] = lgbm_model_to_plain(booster)
    if prior is not None:
        model["prior"] = prior
    return FittedModel(model, booster)


SKILL_PRIOR = 1.0  # pseudo-successes and pseudo-failures added to each model's count


def model_skills(
    rows: TierRows, tier_models: tuple[int | None, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(skill per model index, skill per tier 1..5): a model's skill is the logit of its
    smoothed success rate over the rows; a tier's, that of the model standing for it, else the
    mean of the tier's models, else the nearest lower tier's (else higher)."""
    assert rows.model is not None
    n_models = int(
        max(
            rows.model.max(initial=-1) + 1,
            max((m for m in tier_models if m is not None), default=-1) + 1,
        )
    )
    wins = np.bincount(rows.model, weights=rows.label, minlength=n_models)
    runs = np.bincount(rows.model, minlength=n_models)
    rate = (wins + SKILL_PRIOR) / (runs + 2 * SKILL_PRIOR)
    skills = np.log(rate / (1.0 - rate))
    tiers = np.full(N_TIERS, np.nan)
    for t in range(1, N_TIERS + 1):
        chosen = tier_models[t - 1] if len(tier_models) >= t else None
        at_tier = np.unique(rows.model[rows.tier == t])
        if chosen is not None and runs[chosen] > 0:
            tiers[t - 1] = skills[chosen]
        elif at_tier.size:
            tiers[t - 1] = float(skills[at_tier].mean())
    known = np.flatnonzero(~np.isnan(tiers))
    if known.size == 0:
        raise DataError("no training rows at any tier; traces need a tier and task_success")
    for t in np.flatnonzero(np.isnan(tiers)):
        lower = known[known < t]
        tiers[t] = tiers[lower[-1] if lower.size else known[0]]
    return skills, tiers


def _fit_lgbm_cheapest(
    X: np.ndarray,
    y: np.ndarray,
    X_held: np.ndarray,
    y_held: np.ndarray,
    seed: int,
    num_threads: int,
    trainer: LgbmTrainer,
) -> FittedModel:
    from aco_lab.train.plain_models import lgbm_model_to_plain

    params = _lgbm_params(seed, num_threads, objective="multiclass", num_class=N_TIERS + 1)
    booster = trainer(params, LgbmRows(X, y), LgbmRows(X_held, y_held))
    model = {"kind": "lgbm", "objective": "cheapest", "booster": lgbm_model_to_plain(booster)}
    return FittedModel(model, booster)


def _datasets(lgb, params: dict, X, y, X_held, y_held, init=None, init_held=None):  # noqa: ANN001, ANN202
    """Binned training and held-out datasets (raw arrays not kept); init: starting margins."""
    keys = ("max_bin", "seed", "num_threads", "verbosity")
    dataset_params = {k: params[k] for k in keys} | {"feature_pre_filter": False}
    train = lgb.Dataset(
        X, label=y, init_score=init, params=dataset_params, free_raw_data=True
    ).construct()
    held = None
    if len(y_held):
        held = lgb.Dataset(
            X_held,
            label=y_held,
            init_score=init_held,
            reference=train,
            params=dataset_params,
            free_raw_data=True,
        ).construct()
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
    train, held = _datasets(
        lgb,
        params,
        rows.stacked(),
        rows.label,
        held_rows.stacked(),
        held_rows.label,
        rows.init,
        held_rows.init,
    )
    best, best_loss = None, np.inf
    for extra in lgbm_grid(train.num_data(), held is not None):
        booster, loss = _train_lgbm_once(lgb, {**params, **extra}, train, held)
        log.info(
            "lightgbm %s: %d trees, held-out log loss %.4f",
            extra or "defaults",
            booster.num_trees(),
            loss,
        )
        if loss < best_loss - 1e-12 or best is None:
            best, best_loss = booster, loss
    return best


def _train_lgbm_once(lgb, params: dict, train, held):  # noqa: ANN001, ANN202
    valid_sets = [held] if held is not None else []
    callbacks = [lgb.early_stopping(LGBM_EARLY_STOP, verbose=False)] if valid_sets else []
    booster = lgb.train(
        params, train, num_boost_round=LGBM_MAX_ROUNDS, valid_sets=valid_sets, callbacks=callbacks
    )
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
    from aco.router import all_tier_rows, predict_success, success_from_cheapest, tier_values
    from aco.scoring import predict_linear, sigmoid

    out = np.empty((len(X), N_TIERS))
    prior = fitted.model.get("prior")
    for start in range(0, len(X), PREDICT_CHUNK):
        chunk = X[start : start + PREDICT_CHUNK]
        booster = fitted.booster
        if booster is None:
            out[start : start + len(chunk)] = predict_success(fitted.model, chunk)
        elif fitted.model["objective"] == "success":
            rows = all_tier_rows(chunk, tier_values(fitted.model))
            raw = booster.predict(rows, num_threads=num_threads, raw_score=True)
            raw = raw.reshape(len(chunk), N_TIERS)
            if prior is not None:
                raw = raw + predict_linear(prior, chunk)
            out[start : start + len(chunk)] = sigmoid(raw)
        else:
            classes = booster.predict(chunk, num_threads=num_threads)
            out[start : start + len(chunk)] = success_from_cheapest(classes)
    return out


# -- logistic regression ------------------------------------------------------------------
def standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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

    Z, mean, scale = standardise(X)
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
    return {
        "kind": "logreg",
        "objective": "success",
        "C": c,
        "linear": build_linear_model(coef, intercept, mean, scale),
    }


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

    Z, mean, scale = standardise(X)
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
    return {
        "kind": "logreg",
        "objective": "cheapest",
        "C": c,
        "linear": build_linear_model(coef, intercept, mean, scale),
    }


# -- k nearest neighbours -----------------------------------------------------------------
def _cumulative(classes: np.ndarray) -> np.ndarray:
    """Cheapest-tier classes -> (n, 5) indicators "cheapest sufficient tier <= t"."""
    tiers = np.arange(1, N_TIERS + 1)
    return ((classes[:, None] >= 1) & (classes[:, None] <= tiers[None, :])).astype(np.float64)


def _fit_knn(
    X: np.ndarray,
    Y: np.ndarray,
    X_held: np.ndarray,
    Y_held: np.ndarray,
    seed: int,
    objective: str,
) -> dict:
    """Cosine kNN over standardised features; k tuned on the held-out fold's log loss."""
    if len(X) > KNN_MAX_REFERENCES:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(X), KNN_MAX_REFERENCES, replace=False))
        X, Y = X[keep], Y[keep]
    Z, mean, scale = standardise(X)
    knn = build_knn_model(Z * scale + mean, Y, k=1, mean=mean, scale=scale)  # NaN -> the mean
    grid = sorted({min(k, len(X)) for k in KNN_K_GRID})
    losses = [held_out_log_loss(predict_knn(knn, X_held, k=k), Y_held) for k in grid]
    knn["k"] = grid[int(np.argmin(losses))]
    log.info(
        "knn: k=%d (held-out log loss by k: %s)",
        knn["k"],
        ", ".join(f"{k}:{v:.4f}" for k, v in zip(grid, losses, strict=True)),
    )
    return {"kind": "knn", "objective": objective, "knn": knn}
