"""Train a tier router from traces: labels, features, split, fit, calibrate, operating point.

`build_router(runs, config, options)` is pure (a frame in, a bundle payload out);
`train_router(paths, config, options, out_dir)` reads the files, fingerprints them and writes
the bundle. Training requests are split by request (never one request's runs across splits)
into a fit fold (the estimator), a calibration fold (early stopping / k, then the calibration
map) and a validation fold (calibration metrics and the operating point).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from aco.config import ACOConfig
from aco.decisions import FROM_CLASSIFIER, FROM_RULE_CUES
from aco.errors import DataError
from aco.features import FeatureSpec, build_feature_spec
from aco.policy import calibrate, make_monotone
from aco.router import expected_cost_table
from aco_lab.traces import schema as S
from aco_lab.traces.labels import (
    SUCCESS,
    OutcomeMatrix,
    add_labels,
    build_outcome_matrix,
    build_training_runs,
    is_counterfactual,
)
from aco_lab.traces.split import assign_splits
from aco_lab.train.calibration import build_calibration_metrics, fit_calibration
from aco_lab.train.estimators import (
    FitData,
    TierRows,
    fit_estimator,
    fit_task_type_model,
    predict_fitted,
    task_type_figures,
)
from aco_lab.train.operating_point import (
    OperatingPoint,
    ValidationSet,
    build_task_floors,
    choose_operating_point,
)
from aco_lab.train.router_payload import (
    build_cost_model,
    build_payload,
    build_training_fingerprint,
    read_file_fingerprints,
)

if TYPE_CHECKING:
    from aco_lab.train.dask_fit import DaskTrainer

log = logging.getLogger(__name__)

GUESSED_TASK_TYPES = (FROM_CLASSIFIER, FROM_RULE_CUES)  # metadata.task_type_from: not given

FIT, CALIBRATION, VALIDATION = "fit", "calibration", "validation"
MIN_REQUESTS = 20  # fewer distinct requests cannot be split three ways meaningfully
PARALLEL_MIN_ROWS = 200_000


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """How to train: estimator, objective, seed, success floor, folds."""

    model: str = "lgbm"  # lgbm | logreg | knn
    objective: str = "success"  # success | cheapest
    seed: int = 0
    success_floor: float = 0.95  # share of the top tier's success the operating point keeps
    calibration: str = "platt"  # platt | isotonic | none
    folds: tuple[tuple[str, float], ...] = ((FIT, 0.5), (CALIBRATION, 0.25), (VALIDATION, 0.25))
    # LightGBM threads; None: 1 below PARALLEL_MIN_ROWS training rows, else 2. Fixed either
    # way (and recorded), so the same data and seed grow the same trees everywhere. One
    # thread on small data: OpenMP's spin-waits cost more than they save on busy cores.
    num_threads: int | None = None
    command: str = ""  # the aco-lab command line that asked for it (aco_lab/cli/command_line.py)
    controls: bool = True  # also learn the run controls (aco_lab.controls) from the traces


@dataclass(frozen=True, slots=True)
class TrainedRouter:
    """A bundle payload (plain data) and, for parity checks, the fitted LightGBM booster."""

    payload: dict
    booster: object | None = None


def train_router(
    paths: Sequence[str | Path], config: ACOConfig, options: TrainOptions, out_dir: str | Path,
    on_error: str = "fail", engine: DaskTrainer | None = None,
):  # noqa: ANN201 - returns aco_lab.train.bundle_writer.BundleInfo
    """Read traces, train, write a versioned bundle into out_dir; returns (BundleInfo, payload).

    on_error: bad trace lines stop the training ("fail") or are left out ("skip"). engine: a
    Dask cluster reads the traces, builds the features and fits LightGBM (dask_fit.py)."""
    from aco_lab.traces.reading import expand_paths, read_traces
    from aco_lab.train.bundle_writer import write_bundle

    files = expand_paths(paths)
    tables = read_traces(files, on_error=on_error,
                         mapper=engine.map_chunks if engine else None)
    log.info("training on %d runs from %d files", tables.runs.height, len(files))
    trained = build_router(tables.runs, config, options, read_file_fingerprints(files),
                           engine=engine)
    payload = trained.payload
    if options.controls:
        from aco_lab.controls.suite import learn_controls

        payload = {**payload, "controls": learn_controls(tables, config, options.seed)}
    info = write_bundle(payload, out_dir)
    log.info("wrote %s", info.path)
    return info, payload


def build_router(
    runs: pl.DataFrame, config: ACOConfig, options: TrainOptions, files: Sequence[dict] = (),
    created_at: str | None = None, engine: DaskTrainer | None = None,
) -> TrainedRouter:
    """Learn P(success | request, tier), calibrate it and choose the operating point.

    engine: the features and the estimator are computed by a Dask cluster (dask_fit.py)."""
    usable = build_training_runs(add_labels(runs, config))
    if options.num_threads is None:
        options = replace(options, num_threads=1 if usable.height < PARALLEL_MIN_ROWS else 2)
    outcomes = build_outcome_matrix(usable, config)
    if outcomes.n_requests < MIN_REQUESTS:
        raise DataError(f"{outcomes.n_requests} usable requests; training needs at least "
                        f"{MIN_REQUESTS} with task_success true/false and a tier")
    spec = build_feature_spec(outcomes.task_types)
    X = build_request_matrix(outcomes, spec, engine.executor() if engine else None)
    folds = _fold_indices(outcomes, options)
    fit = engine.fit_estimator if engine else fit_estimator
    fitted = fit(options.model, options.objective, _fit_data(X, usable, outcomes, folds),
                 options.seed, options.num_threads)
    log.info("fitted %s (%s objective)", options.model, options.objective)
    # Both held-out folds, predicted once: the calibration fold fits the calibration map, the
    # validation fold measures it, and together they choose the operating point (twice the
    # requests of validation alone; the map's few parameters barely fit the calibration fold).
    held = np.concatenate([folds[CALIBRATION], folds[VALIDATION]])
    raw = make_monotone(predict_fitted(fitted, X[held], options.num_threads))
    n_cal = len(folds[CALIBRATION])
    calibration = fit_calibration(*_cells(raw[:n_cal], outcomes, folds[CALIBRATION]),
                                  options.calibration)
    metrics = build_calibration_metrics(*_cells(raw[n_cal:], outcomes, folds[VALIDATION]),
                                        calibration)
    fit_runs = _runs_of(usable, outcomes, folds[FIT])
    cost_model = build_cost_model(fit_runs)
    cost_model["cost_scale"] = _cost_scale(cost_model, config, outcomes, folds[FIT])
    point = _operating_point(options, raw, calibration, cost_model, outcomes, held, fit_runs,
                             config)
    # The task-type classifier learns, and is measured, only on types the agents gave: a
    # type a runtime guessed (metadata.task_type_from) would teach it its own guesses.
    known_types = _known_task_types(outcomes, guessed_task_type_requests(usable))
    task_model = fit_task_type_model(X[folds[FIT]], _types(known_types, folds[FIT]), spec,
                                     options.seed, X_held=X[held])
    payload = build_payload(
        model=fitted.model, calibration=calibration, operating_point=point, cost_model=cost_model,
        spec=spec, config=config, task_type_model=task_model,
        training=build_training_fingerprint(files, usable, outcomes.request_ids,
                                            is_counterfactual(usable)),
        validation={"operating_point": point.to_dict(), "calibration": metrics.as_dict(),
                    "task_type": task_type_figures(task_model, [outcomes.requests[i] for i in held],
                                                   X[held], _types(known_types, held)),
                    "folds": {name: int(len(idx)) for name, idx in folds.items()}},
        options=asdict(options) | (engine.recorded() if engine else {}), created_at=created_at,
    )
    return TrainedRouter(payload=payload, booster=fitted.booster)


def validation_headline(payload: dict) -> dict[str, float | bool | str]:
    """The figures `aco-lab train` prints: success and cost vs the top tier, calibration."""
    point = payload["validation"]["operating_point"]
    calib = payload["validation"]["calibration"]
    policy = payload["policy"]
    return {
        "validation_requests": point["n_requests"],
        "success_vs_top": point["success_ratio"],
        "cost_vs_top": point["cost_ratio"],
        "met_success_floor": point["met_floor"],
        "brier_before": calib["brier_before"],
        "brier_after": calib["brier_after"],
        "log_loss_before": calib["log_loss_before"],
        "log_loss_after": calib["log_loss_after"],
        "safety_threshold": policy["safety_threshold"],
        "downgrade_threshold": policy["downgrade_threshold"],
        "success_value": policy["success_value"],
        "task_floors": ",".join(f"{k}={v}" for k, v in payload["task_floors"].items()) or "none",
        **{f"task_type_{k}": v for k, v in payload["validation"].get("task_type", {}).items()},
    }


def build_request_matrix(outcomes: OutcomeMatrix, spec: FeatureSpec,
                         executor: Executor | None = None) -> np.ndarray:
    """Request features, one row per request of the outcome matrix (aco_lab.train.features)."""
    from aco_lab.train.features import build_features

    frame = pl.DataFrame(
        {
            S.REQUEST: list(outcomes.requests),
            S.TASK_TYPE: list(outcomes.task_types),
            S.DIFFICULTY: [None if np.isnan(d) else int(d) for d in outcomes.difficulty],
            S.FIRST_INPUT_TOKENS: [None if np.isnan(t) else int(t) for t in outcomes.input_tokens],
        },
        schema={S.REQUEST: pl.String, S.TASK_TYPE: pl.String, S.DIFFICULTY: pl.Int8,
                S.FIRST_INPUT_TOKENS: pl.Int64},
    )
    return np.asarray(build_features(frame, spec, executor=executor), dtype=np.float64)


def guessed_task_type_requests(runs: pl.DataFrame) -> set[str]:
    """Requests a run of which carries a task type the runtime guessed rather than was given
    (metadata.task_type_from "classifier" or "rule_cues", as aco's runtime writes it)."""
    if S.METADATA not in runs.columns:
        return set()
    source = pl.col(S.METADATA).str.json_path_match("$.task_type_from")
    guessed = runs.filter(source.is_in(GUESSED_TASK_TYPES))[S.REQUEST_ID].unique().to_list()
    if guessed:
        log.info("%d requests carry a task type the runtime guessed: the task-type classifier "
                 "neither learns from nor is measured on them", len(guessed))
    return set(guessed)


def _known_task_types(outcomes: OutcomeMatrix, guessed: set[str]) -> list[str | None]:
    return [None if rid in guessed else t
            for rid, t in zip(outcomes.request_ids, outcomes.task_types, strict=True)]


def _types(task_types: Sequence[str | None], idx: np.ndarray) -> list[str | None]:
    return [task_types[i] for i in idx]


def _runs_of(usable: pl.DataFrame, outcomes: OutcomeMatrix, idx: np.ndarray) -> pl.DataFrame:
    return usable.filter(pl.col(S.REQUEST_ID).is_in([outcomes.request_ids[i] for i in idx]))


def _fold_indices(outcomes: OutcomeMatrix, options: TrainOptions) -> dict[str, np.ndarray]:
    """Request positions per fold (by request_id: all runs of a request stay together)."""
    parts = assign_splits(outcomes.request_ids, options.folds, options.seed)
    index = {rid: i for i, rid in enumerate(outcomes.request_ids)}
    folds = {name: np.array(sorted(index[r] for r in ids), dtype=np.int64)
             for name, ids in parts.items()}
    for name, idx in folds.items():
        if idx.size == 0:
            raise DataError(f"the {name} fold is empty: {outcomes.n_requests} requests are too few")
    log.info("folds: %s requests", ", ".join(f"{n} {len(i)}" for n, i in folds.items()))
    return folds


def _fit_data(X: np.ndarray, usable: pl.DataFrame, outcomes: OutcomeMatrix,
              folds: dict[str, np.ndarray]) -> FitData:
    """The fit fold and the calibration fold (held out for early stopping / k)."""
    index = {rid: i for i, rid in enumerate(outcomes.request_ids)}
    rows = TierRows(
        request=np.array([index[r] for r in usable[S.REQUEST_ID].to_list()], dtype=np.int64),
        tier=usable[S.TIER].cast(pl.Int64).to_numpy(),
        label=usable[SUCCESS].cast(pl.Float64).to_numpy(),
    )
    fit, held = folds[FIT], folds[CALIBRATION]
    return FitData(X=X[fit], rows=_local_rows(rows, fit, len(X)), outcomes=outcomes.success[fit],
                   X_held=X[held], rows_held=_local_rows(rows, held, len(X)),
                   outcomes_held=outcomes.success[held])


def _local_rows(rows: TierRows, idx: np.ndarray, n: int) -> TierRows:
    """Rows of some requests, re-indexed to their positions in `idx`."""
    position = np.full(n, -1, dtype=np.int64)
    position[idx] = np.arange(len(idx))
    local = rows.take(position[rows.request] >= 0)
    return TierRows(position[local.request], local.tier, local.label)


def _cells(
    p: np.ndarray, outcomes: OutcomeMatrix, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted P and observed 0/1 outcome of every observed (request, tier) cell of some rows."""
    observed = outcomes.success[idx]
    seen = ~np.isnan(observed)
    return p[seen], (observed[seen] >= 0.5).astype(np.float64)


def _costs(
    cost_model: dict, config: ACOConfig, outcomes: OutcomeMatrix, idx: np.ndarray
) -> np.ndarray:
    chars = np.array([len(outcomes.requests[i]) for i in idx], dtype=np.float64)
    return expected_cost_table(cost_model, config.tiers, outcomes.input_tokens[idx],
                               _types(outcomes.task_types, idx), chars)


def _cost_scale(
    cost_model: dict, config: ACOConfig, outcomes: OutcomeMatrix, idx: np.ndarray
) -> float:
    """The fit fold's mean expected cost at the top tier (USD): the unit of success_value."""
    scale = float(_costs(cost_model, config, outcomes, idx)[:, config.top_tier - 1].mean())
    return scale if scale > 0 else 1.0


def _operating_point(
    options: TrainOptions, raw: np.ndarray, calibration: dict, cost_model: dict,
    outcomes: OutcomeMatrix, idx: np.ndarray, fit_runs: pl.DataFrame, config: ACOConfig,
) -> OperatingPoint:
    """The cheapest validated policy; candidate task floors from the fit fold's success by tier."""
    data = ValidationSet(
        p=make_monotone(calibrate(raw, calibration)),
        costs=_costs(cost_model, config, outcomes, idx),
        success=outcomes.success[idx], cost=outcomes.cost[idx],
        task_types=_types(outcomes.task_types, idx),
        configured=np.array([t in {s.tier for s in config.tiers} for t in range(1, 6)]),
    )
    floors = build_task_floors(fit_runs[S.TASK_TYPE].to_list(),
                               fit_runs[S.TIER].cast(pl.Int64).to_numpy(),
                               fit_runs[SUCCESS].cast(pl.Float64).to_numpy())
    return choose_operating_point(data, options.success_floor, cost_model["cost_scale"], floors)
