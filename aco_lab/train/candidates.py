"""The routers `aco-lab train` can fit, each from a set of training requests, as plain data.

- "table": per task type and tier, the success rate of the tier's model, shrunk toward the
  tier's overall rate by TABLE_SHRINK pseudo-requests (a small task type borrows from all);
  stored as a linear model on the task-type columns, so the runtime needs nothing new;
- "table_logreg": logistic regression per tier on the table's columns and the request's
  difficulty only: a table shrunk by its L2 penalty, with a slope in difficulty (SWE-bench's
  issues carry one; where none is given it is the table);
- "logreg", "knn", "lgbm": aco_lab.estimators (each tuned on a held-out part of its requests);
- "residual": the table as a prior, and LightGBM learning what the request adds to it (the
  table's logits are the trees' starting margins; the runtime adds them back).

Several models per tier (model upgrades, A/B tests, fallbacks): the LightGBM routers learn
from every traced model's runs at once, with the model's skill (the logit of its smoothed
success rate) in place of the tier; they predict for the model standing for each tier (the
config's, aco_lab.labels). The others learn from the tier's model's runs.

`TrainingSet` holds everything a fit needs for all training requests; `fit_candidate` fits
one router on some of them, `predict_candidate` scores others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from aco.features import FeatureSpec
from aco.policy import make_monotone
from aco.scoring import build_linear_model
from aco_lab.traces import schema as S
from aco_lab.traces.labels import SUCCESS, OutcomeMatrix
from aco_lab.traces.split import assign_splits
from aco_lab.train.estimators import (
    fit_estimator,
    fit_lgbm_success,
    predict_fitted,
)
from aco_lab.train.fit_data import (
    FitData,
    FittedModel,
    TierRows,
)

if TYPE_CHECKING:
    from aco_lab.train.dask_fit import DaskTrainer

log = logging.getLogger(__name__)

# Simplest first: among candidates the cross-validation cannot tell apart, the first wins.
CANDIDATES = ("table", "table_logreg", "logreg", "knn", "lgbm", "residual", "ensemble")
# The ensemble averages these (each made non-decreasing in the tier): where the candidates'
# cross-validated figures lie within noise of each other, the mean is steadier than a pick.
ENSEMBLE = "ensemble"
ENSEMBLE_MEMBERS = CANDIDATES[:-1]
TABLE_COLUMNS = ("difficulty",)  # besides the task-type columns, what table_logreg reads
TABLE_SHRINK = 10.0  # pseudo-requests at the tier's overall rate added to each task type
TUNE_SHARE = 0.2  # share of a fit's requests held out to tune it (C, k, early stopping)
N_TIERS = 5


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """All training requests: features, the tier models' outcomes and the rows to learn from."""

    request_ids: tuple[str, ...]
    X: np.ndarray  # (n, d) request features
    outcomes: np.ndarray  # (n, 5) success of the model standing for each tier, nan unobserved
    rows: TierRows  # (request, tier, outcome) runs of the tier models
    pooled: TierRows  # runs of every traced model at a tier, TierRows.model set
    models: tuple[str, ...]  # model ids, indexed by pooled.model
    tier_models: tuple[int | None, ...]  # index of the model standing for tiers 1..5
    spec: FeatureSpec

    @property
    def n_requests(self) -> int:
        """Number of training requests."""
        return len(self.request_ids)


def build_training_set(
    labeled: pl.DataFrame,
    usable: pl.DataFrame,
    outcomes: OutcomeMatrix,
    X: np.ndarray,
    spec: FeatureSpec,
) -> TrainingSet:
    """The training set of an outcome matrix: `usable` are the tier models' runs
    (aco_lab.labels.build_training_runs), `labeled` every run with labels (add_labels)."""
    index = {rid: i for i, rid in enumerate(outcomes.request_ids)}
    rows = _tier_rows(usable, index)
    every = labeled.filter(
        pl.col(SUCCESS).is_not_null()
        & pl.col(S.TIER).is_not_null()
        & pl.col(S.MODEL_ID).is_not_null()
        & pl.col(S.REQUEST_ID).is_in(list(index))
    )
    models = tuple(sorted(set(every[S.MODEL_ID].to_list())))
    model_index = {m: i for i, m in enumerate(models)}
    pooled = _tier_rows(every, index)
    pooled = TierRows(
        pooled.request,
        pooled.tier,
        pooled.label,
        np.array([model_index[m] for m in every[S.MODEL_ID].to_list()], dtype=np.int64),
    )
    tier_models = tuple(model_index.get(m) if m is not None else None for m in outcomes.tier_models)
    return TrainingSet(
        outcomes.request_ids, X, outcomes.success, rows, pooled, models, tier_models, spec
    )


def _tier_rows(runs: pl.DataFrame, index: dict[str, int]) -> TierRows:
    return TierRows(
        request=np.array([index[r] for r in runs[S.REQUEST_ID].to_list()], dtype=np.int64),
        tier=runs[S.TIER].cast(pl.Int64).to_numpy(),
        label=runs[SUCCESS].cast(pl.Float64).to_numpy(),
    )


def fit_candidate(
    name: str,
    objective: str,
    data: TrainingSet,
    idx: np.ndarray,
    seed: int,
    num_threads: int,
    engine: DaskTrainer | None = None,
) -> FittedModel:
    """One router fitted on the requests `idx` of the training set (its own tuning part
    split off inside them); engine: LightGBM on a Dask cluster, the others on a sample."""
    if name == "table":
        return FittedModel(fit_table(data.X[idx], data.outcomes[idx], data.spec))
    if name == ENSEMBLE:
        members = tuple(
            fit_candidate(m, objective, data, idx, seed, num_threads, engine)
            for m in ENSEMBLE_MEMBERS
        )
        model = {"kind": ENSEMBLE, "objective": "success", "members": [m.model for m in members]}
        return FittedModel(model, members=members)
    fit_data = build_fit_data(data, idx, seed)
    fit = engine.fit_estimator if engine else fit_estimator
    if name == "table_logreg":
        keep = table_columns(data.spec)
        fit_data = replace(
            fit_data, X=only_columns(fit_data.X, keep), X_held=only_columns(fit_data.X_held, keep)
        )
        return fit("logreg", objective, fit_data, seed, num_threads)
    if name == "residual":
        prior = fit_table(data.X[idx], data.outcomes[idx], data.spec)["linear"]
        return fit_lgbm_success(
            fit_data, seed, num_threads, prior=prior, trainer=engine.train_lgbm if engine else None
        )
    return fit(name, objective, fit_data, seed, num_threads)


def predict_candidate(fitted: FittedModel, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """(n, 5) uncalibrated P(success) per tier, non-decreasing in the tier (an ensemble: the
    mean of its members', as aco.router.predict_success computes it)."""
    if fitted.members:
        return np.mean([predict_candidate(m, X, num_threads) for m in fitted.members], axis=0)
    return make_monotone(predict_fitted(fitted, X, num_threads))


def build_fit_data(data: TrainingSet, idx: np.ndarray, seed: int) -> FitData:
    """The requests idx split by request into a fit part and a tuning part (TUNE_SHARE)."""
    parts = assign_splits(
        [data.request_ids[i] for i in idx],
        (("fit", 1.0 - TUNE_SHARE), ("tune", TUNE_SHARE)),
        seed + 1,
    )
    position = {rid: i for i, rid in enumerate(data.request_ids)}
    fit = np.array(sorted(position[r] for r in parts["fit"]), dtype=np.int64)
    tune = np.array(sorted(position[r] for r in parts["tune"]), dtype=np.int64)
    if tune.size == 0 or fit.size == 0:  # too few requests to split: tune on the fit part
        fit = tune = np.asarray(idx, dtype=np.int64)
    n = data.n_requests
    return FitData(
        X=data.X[fit],
        rows=local_rows(data.rows, fit, n),
        outcomes=data.outcomes[fit],
        X_held=data.X[tune],
        rows_held=local_rows(data.rows, tune, n),
        outcomes_held=data.outcomes[tune],
        pooled=local_rows(data.pooled, fit, n),
        pooled_held=local_rows(data.pooled, tune, n),
        tier_models=data.tier_models,
    )


def local_rows(rows: TierRows, idx: np.ndarray, n: int) -> TierRows:
    """Rows of some requests, re-indexed to their positions in `idx`."""
    position = np.full(n, -1, dtype=np.int64)
    position[idx] = np.arange(len(idx))
    local = rows.take(position[rows.request] >= 0)
    return TierRows(position[local.request], local.tier, local.label, local.model)


def table_columns(spec: FeatureSpec) -> np.ndarray:
    """Feature indexes table_logreg reads: the task-type columns and TABLE_COLUMNS."""
    return np.array(
        [
            i
            for i, name in enumerate(spec.names)
            if name.startswith("task_type") or name in TABLE_COLUMNS
        ],
        dtype=np.int64,
    )


def only_columns(X: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """X with every other column 0: a constant the fitted weights leave at 0."""
    out = np.zeros_like(X)
    out[:, keep] = X[:, keep]
    return out


# -- the per-task-type table ------------------------------------------------------------------
def task_type_index(X: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """(n,) index into spec.task_types of each request's task type; -1 for none or unknown."""
    if not spec.task_types:
        return np.full(len(X), -1, dtype=np.int64)
    columns = [spec.names.index(f"task_type={t}") for t in spec.task_types]
    onehot = np.nan_to_num(X[:, columns]) > 0.5
    return np.where(onehot.any(axis=1), np.argmax(onehot, axis=1), -1)


def table_rates(
    X: np.ndarray, outcomes: np.ndarray, spec: FeatureSpec
) -> tuple[np.ndarray, np.ndarray]:
    """(task types x 5 shrunk success rates, 5 overall rates) of the tier models' outcomes.

    A tier nobody ran takes the nearest lower tier's rates (else the nearest higher's)."""
    seen = ~np.isnan(outcomes)
    wins = np.where(seen, outcomes, 0.0)
    overall = np.full(N_TIERS, np.nan)
    counts = seen.sum(axis=0)
    overall[counts > 0] = wins.sum(axis=0)[counts > 0] / counts[counts > 0]
    known = np.flatnonzero(~np.isnan(overall))
    if known.size == 0:
        overall[:] = 0.5
    for t in np.flatnonzero(np.isnan(overall)):
        lower = known[known < t]
        overall[t] = overall[lower[-1] if lower.size else known[0]]
    types = task_type_index(X, spec)
    rates = np.empty((len(spec.task_types), N_TIERS))
    for k in range(len(spec.task_types)):
        mine = types == k
        rates[k] = (wins[mine].sum(axis=0) + TABLE_SHRINK * overall) / (
            seen[mine].sum(axis=0) + TABLE_SHRINK
        )
    return rates, overall


def fit_table(X: np.ndarray, outcomes: np.ndarray, spec: FeatureSpec) -> dict:
    """The shrunk per-task-type table as plain data: a linear model whose intercepts are the
    overall logits and whose task-type columns add each type's difference (others weigh 0)."""
    rates, overall = table_rates(X, outcomes, spec)
    clipped = np.clip(rates, 1e-4, 1 - 1e-4)
    base = np.log(np.clip(overall, 1e-4, 1 - 1e-4) / (1 - np.clip(overall, 1e-4, 1 - 1e-4)))
    coef = np.zeros((N_TIERS, spec.n_features))
    for k, task_type in enumerate(spec.task_types):
        column = spec.names.index(f"task_type={task_type}")
        coef[:, column] = np.log(clipped[k] / (1 - clipped[k])) - base
    return {
        "kind": "table",
        "objective": "success",
        "shrink": TABLE_SHRINK,
        "linear": build_linear_model(coef, base),
    }


def describe_table(model: dict, spec: FeatureSpec) -> dict[str, list[float]]:
    """The table's success rates per task type (and "*" for any other) and tier, for people."""
    from aco.router import predict_success

    X = np.zeros((len(spec.task_types) + 1, spec.n_features))
    for k, task_type in enumerate(spec.task_types):
        X[k, spec.names.index(f"task_type={task_type}")] = 1.0
    p = predict_success(model, X)
    names: Sequence[str] = (*spec.task_types, "*")
    return {name: [round(float(v), 4) for v in row] for name, row in zip(names, p, strict=True)}
