"""Train a tier router from traces: labels, features, candidates cross-validated, the winner
calibrated and its operating point chosen on out-of-fold predictions.

`build_router(runs, config, options)` is pure (a frame in, a bundle payload out);
`train_router(paths, config, options, out_dir)` reads the files, fingerprints them and writes
the bundle. The training requests are cut into folds by request (never one request's runs in
two folds, aco_lab.model_selection): every candidate router (aco_lab.candidates) predicts each
fold from the others, the best curve on those out-of-fold predictions wins, and the same
predictions fit the calibration and choose the operating point. The winner is then refitted
on all training requests.
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
from aco.formatting import format_count
from aco.progress import stage
from aco.router import expected_cost_table
from aco_lab.traces import schema as S
from aco_lab.traces.labels import (
    SUCCESS,
    OutcomeMatrix,
    add_labels,
    build_outcome_matrix,
    build_training_runs,
    check_tier_models,
    is_counterfactual,
)
from aco_lab.train.calibration import build_calibration_metrics
from aco_lab.train.candidates import CANDIDATES, build_training_set, describe_table, fit_candidate
from aco_lab.train.model_selection import CV_FOLDS, Selection, assign_folds, cross_validate
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
    fit_cost_factors,
    read_file_fingerprints,
)
from aco_lab.train.task_types import fit_task_type_model, task_type_figures

if TYPE_CHECKING:
    from aco_lab.train.dask_fit import DaskTrainer

log = logging.getLogger(__name__)

GUESSED_TASK_TYPES = (FROM_CLASSIFIER, FROM_RULE_CUES)  # metadata.task_type_from: not given

AUTO = "auto"  # --model: choose among aco_lab.candidates.CANDIDATES by cross-validation
MIN_REQUESTS = 20  # fewer distinct requests cannot be cross-validated meaningfully
TASK_TYPE_HELD = 2  # folds in five held out for the task-type classifier's novelty threshold
PARALLEL_MIN_ROWS = 200_000


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """How to train: candidates, objective, seed, success floor, folds."""

    model: str = AUTO  # auto, or one of aco_lab.train.candidates.CANDIDATES
    objective: str = "success"  # success | cheapest
    seed: int = 0
    success_floor: float = 0.95  # share of the top tier's success the operating point keeps
    calibration: str = "platt"  # platt | isotonic | none
    cv_folds: int = CV_FOLDS  # folds of the cross-validation, by request
    # The operating point keeps the floor with this many standard errors of its success ratio
    # to spare (a bootstrap over the training requests): few requests, a wider margin.
    success_margin: float = 1.0
    # Ship a router whose out-of-fold curve cannot reach the floor (its most successful point,
    # the shortfall recorded); without it, training refuses such a router.
    allow_shortfall: bool = False
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
    paths: Sequence[str | Path],
    config: ACOConfig,
    options: TrainOptions,
    out_dir: str | Path,
    on_error: str = "fail",
    engine: DaskTrainer | None = None,
):  # noqa: ANN201 - returns aco_lab.train.bundle_writer.BundleInfo
    """Read traces, train, write a versioned bundle into out_dir; returns (BundleInfo, payload).

    on_error: bad trace lines stop the training ("fail") or are left out ("skip"). engine: a
    Dask cluster reads the traces, builds the features and fits LightGBM (dask_fit.py)."""
    from aco_lab.traces.reading import expand_paths, read_traces
    from aco_lab.train.bundle_writer import write_bundle

    files = expand_paths(paths)
    tables = read_traces(files, on_error=on_error, mapper=engine.map_chunks if engine else None)
    log.info("training on %d runs from %d files", tables.runs.height, len(files))
    trained = build_router(
        tables.runs, config, options, read_file_fingerprints(files), engine=engine
    )
    payload = trained.payload
    if options.controls:
        from aco_lab.controls.suite import learn_controls

        payload = {**payload, "controls": learn_controls(tables, config, options.seed)}
    stage("writing the bundle")
    info = write_bundle(payload, out_dir)
    log.info("wrote %s", info.path)
    return info, payload


LOGS_WARNING = (
    "the training requests ran at one tier each (ordinary logs): what the other tiers would "
    "have done is the model's own estimate, so the operating point's success and cost are "
    "estimates, optimistic where the logging policy sent the easy requests to the cheap "
    "tiers; judge the router with aco-lab evaluate on held-out logs (an inverse-propensity "
    "estimate when the runs carry metadata.routing_propensity) or on requests run at every "
    "tier"
)


def candidate_names(options: TrainOptions) -> tuple[str, ...]:
    """The routers to cross-validate: all candidates for auto, else the one asked for."""
    if options.model == AUTO:
        if options.objective != "success":
            raise DataError(
                f"--objective {options.objective} needs one model: pass --model lgbm, logreg or knn"
            )
        return CANDIDATES
    if options.objective != "success" and options.model in ("table", "residual"):
        raise DataError(
            f"--model {options.model} learns the success objective only; use --objective success"
        )
    return (options.model,)


def build_router(
    runs: pl.DataFrame,
    config: ACOConfig,
    options: TrainOptions,
    files: Sequence[dict] = (),
    created_at: str | None = None,
    engine: DaskTrainer | None = None,
) -> TrainedRouter:
    """Cross-validate the candidates, refit the winner, calibrate it, choose its operating point.

    engine: the features and the estimators are computed by a Dask cluster (dask_fit.py)."""
    names = candidate_names(options)
    stage("labelling runs")
    labeled = add_labels(runs, config)
    warnings = check_tier_models(labeled, config)
    usable = build_training_runs(labeled)
    if not usable.is_empty() and not is_counterfactual(usable):
        warnings.append(LOGS_WARNING)
    if options.num_threads is None:
        options = replace(options, num_threads=1 if usable.height < PARALLEL_MIN_ROWS else 2)
    outcomes = build_outcome_matrix(usable, config)
    if outcomes.n_requests < MIN_REQUESTS:
        raise DataError(
            f"{outcomes.n_requests} usable requests; training needs at least "
            f"{MIN_REQUESTS} with task_success true/false and a tier"
        )
    stage(f"building features of {format_count(outcomes.n_requests)} requests")
    spec = build_feature_spec(outcomes.task_types)
    X = build_request_matrix(outcomes, spec, engine.executor() if engine else None)
    data = build_training_set(labeled, usable, outcomes, X, spec)
    every = np.arange(outcomes.n_requests)
    cost_model = build_cost_model(usable)
    factors, price_warnings = fit_cost_factors(cost_model, config, outcomes)
    cost_model.update(factors)
    warnings += price_warnings
    cost_model["cost_scale"] = _cost_scale(cost_model, config, outcomes)
    validation = _validation_set(None, cost_model, config, outcomes)
    stage(f"cross-validating {', '.join(names)}")
    selection = cross_validate(
        names,
        options.objective,
        data,
        validation,
        cost_model["cost_scale"],
        options.success_floor,
        options.calibration,
        options.seed,
        options.num_threads,
        options.cv_folds,
        engine,
    )
    for warning in warnings:
        log.warning("%s", warning)
    winner = selection.winner
    stage(f"fitting {winner.name} on all training requests")
    fitted = fit_candidate(
        winner.name, options.objective, data, every, options.seed, options.num_threads, engine
    )
    log.info("refitted %s on all %d training requests", winner.name, outcomes.n_requests)
    metrics = build_calibration_metrics(*_cells(winner.oof, outcomes), winner.calibration)
    stage("choosing the operating point")
    point = _operating_point(options, winner.p, cost_model, outcomes, usable, config)
    if not point.met_floor:
        warnings.append(shortfall_message(point))
    # The task-type classifier and its novelty check: fitted on three folds in five, the
    # novelty threshold set (and the classifier measured) on the other two.
    folds = assign_folds(outcomes.request_ids, options.cv_folds, options.seed)
    held = np.flatnonzero(folds < max(1, options.cv_folds * TASK_TYPE_HELD // 5))
    fit = np.setdiff1d(np.arange(outcomes.n_requests), held)
    # The task-type classifier learns, and is measured, only on types the agents gave: a
    # type a runtime guessed (metadata.task_type_from) would teach it its own guesses.
    known_types = _known_task_types(outcomes, guessed_task_type_requests(usable))
    stage("fitting the task-type classifier")
    task_model = fit_task_type_model(
        X[fit], _types(known_types, fit), spec, options.seed, X_held=X[held]
    )
    payload = build_payload(
        model=fitted.model,
        calibration=winner.calibration,
        operating_point=point,
        cost_model=cost_model,
        spec=spec,
        config=config,
        task_type_model=task_model,
        training=build_training_fingerprint(
            files, usable, outcomes.request_ids, is_counterfactual(usable)
        ),
        validation={
            "operating_point": point.to_dict(),
            "calibration": metrics.as_dict(),
            "selection": _selection_record(selection, fitted.model, spec),
            "task_type": task_type_figures(
                task_model, [outcomes.requests[i] for i in held], X[held], _types(known_types, held)
            ),
            "folds": {"cross_validation": options.cv_folds, "requests": outcomes.n_requests},
        },
        options=asdict(options) | (engine.recorded() if engine else {}),
        created_at=created_at,
        warnings=warnings,
    )
    return TrainedRouter(payload=payload, booster=fitted.booster)


def shortfall_message(point: OperatingPoint) -> str:
    """What a router whose out-of-fold curve misses the success floor keeps, in words."""
    return (
        f"shortfall: no operating point keeps {point.floor:.0%} of the top tier's success "
        f"on the cross-validated training requests; the most successful keeps "
        f"{point.success_ratio:.1%} at {point.cost_ratio:.1%} of the top tier's cost"
    )


def _selection_record(selection: Selection, model: dict, spec: FeatureSpec) -> dict:
    record = selection.to_dict()
    if model.get("kind") == "table":
        record["table"] = describe_table(model, spec)
    return record


def validation_headline(payload: dict) -> dict[str, float | bool | str]:
    """The figures `aco-lab train` prints: success and cost vs the top tier, calibration."""
    point = payload["validation"]["operating_point"]
    calib = payload["validation"]["calibration"]
    selection = payload["validation"].get("selection", {})
    policy = payload["policy"]
    mix = payload.get("policy_mix")
    return {
        "model": selection.get("winner", payload["model"]["kind"]),
        "why": selection.get("why", ""),
        **{
            f"cv_cost_at_target_{name}": figures["cost_at_target"]
            for name, figures in selection.get("candidates", {}).items()
        },
        "validation_requests": point["n_requests"],
        "success_vs_top": point["success_ratio"],
        "cost_vs_top": point["cost_ratio"],
        "met_success_floor": point["met_floor"],
        "mix_share": 0.0 if mix is None else mix["share"],
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


def build_request_matrix(
    outcomes: OutcomeMatrix, spec: FeatureSpec, executor: Executor | None = None
) -> np.ndarray:
    """Request features, one row per request of the outcome matrix (aco_lab.train.features)."""
    from aco_lab.train.features import build_features

    frame = pl.DataFrame(
        {
            S.REQUEST: list(outcomes.requests),
            S.TASK_TYPE: list(outcomes.task_types),
            S.DIFFICULTY: [None if np.isnan(d) else int(d) for d in outcomes.difficulty],
            S.FIRST_INPUT_TOKENS: [None if np.isnan(t) else int(t) for t in outcomes.input_tokens],
        },
        schema={
            S.REQUEST: pl.String,
            S.TASK_TYPE: pl.String,
            S.DIFFICULTY: pl.Int8,
            S.FIRST_INPUT_TOKENS: pl.Int64,
        },
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
        log.info(
            "%d requests carry a task type the runtime guessed: the task-type classifier "
            "neither learns from nor is measured on them",
            len(guessed),
        )
    return set(guessed)


def _known_task_types(outcomes: OutcomeMatrix, guessed: set[str]) -> list[str | None]:
    return [
        None if rid in guessed else t
        for rid, t in zip(outcomes.request_ids, outcomes.task_types, strict=True)
    ]


def _types(task_types: Sequence[str | None], idx: np.ndarray) -> list[str | None]:
    return [task_types[i] for i in idx]


def _cells(p: np.ndarray, outcomes: OutcomeMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Predicted P and observed 0/1 outcome of every observed (request, tier) cell."""
    seen = ~np.isnan(outcomes.success)
    return p[seen], (outcomes.success[seen] >= 0.5).astype(np.float64)


def _costs(cost_model: dict, config: ACOConfig, outcomes: OutcomeMatrix) -> np.ndarray:
    chars = np.array([len(r) for r in outcomes.requests], dtype=np.float64)
    return expected_cost_table(
        cost_model, config.tiers, outcomes.input_tokens, list(outcomes.task_types), chars
    )


def _cost_scale(cost_model: dict, config: ACOConfig, outcomes: OutcomeMatrix) -> float:
    """The training requests' mean expected cost at the top tier (USD): the unit of
    success_value."""
    scale = float(_costs(cost_model, config, outcomes)[:, config.top_tier - 1].mean())
    return scale if scale > 0 else 1.0


def _validation_set(
    p: np.ndarray | None, cost_model: dict, config: ACOConfig, outcomes: OutcomeMatrix
) -> ValidationSet:
    """The training requests as a policy is scored on them (p: calibrated out-of-fold P)."""
    success = outcomes.success
    return ValidationSet(
        p=np.full(success.shape, 0.5) if p is None else p,
        costs=_costs(cost_model, config, outcomes),
        success=success,
        cost=outcomes.cost,
        task_types=list(outcomes.task_types),
        configured=np.array([t in {s.tier for s in config.tiers} for t in range(1, 6)]),
    )


def _operating_point(
    options: TrainOptions,
    p: np.ndarray,
    cost_model: dict,
    outcomes: OutcomeMatrix,
    usable: pl.DataFrame,
    config: ACOConfig,
) -> OperatingPoint:
    """The cheapest policy (or mix of two) holding the floor on the out-of-fold predictions;
    candidate task floors from the training runs' success by tier. A DataError when none
    holds it, unless options.allow_shortfall."""
    floors = build_task_floors(
        usable[S.TASK_TYPE].to_list(),
        usable[S.TIER].cast(pl.Int64).to_numpy(),
        usable[SUCCESS].cast(pl.Float64).to_numpy(),
    )
    point = choose_operating_point(
        _validation_set(p, cost_model, config, outcomes),
        options.success_floor,
        cost_model["cost_scale"],
        floors,
        salt=options.seed,
        margin=options.success_margin,
    )
    if not point.met_floor and not options.allow_shortfall:
        raise DataError(
            f"{shortfall_message(point)}. The router cannot promise the floor: lower "
            f"--success-floor (to {point.success_ratio:.2f} or less), train on more requests or "
            "on traces where the cheaper tiers' outcomes are known, or pass --allow-shortfall "
            "to ship the most successful point with its shortfall recorded in the bundle"
        )
    return point
