"""Evaluating a router on ordinary logs: one run per request, so every router figure is an estimate.

Nothing here is a replay: a request ran at one tier, and what another tier would have done
was never observed. Two estimators, each labelled as such in every output:

- inverse-propensity weighting (self-normalised), when every logged run carries the
  probability with which the logging policy chose its tier (`metadata.routing_propensity`,
  as the simulator's logs mode writes); it needs no model, but only sees policies that agree
  with the logs often enough (the note gives the effective sample size);
- the direct method otherwise: the bundle's calibrated P(success) and its cost model.

What the logs did is reported as observed ("as logged"). Baselines that need every tier's
outcome of a request (oracle, cascade, random mixing at equal cost, per-task-type) cannot be
computed and are listed as skipped, with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from aco.config import ACOConfig
from aco.errors import DataError
from aco.formatting import format_count
from aco.progress import stage
from aco_lab.evaluate import baselines as B
from aco_lab.evaluate.replay import (
    KIND_REPLAY,
    LoggedRuns,
    PolicyResult,
    estimate_direct,
    estimate_ipw,
    summarise,
)
from aco_lab.evaluate.results import (
    MODE_ESTIMATE,
    BundleInfo,
    DataInfo,
    EvalOptions,
    Evaluation,
    build_warnings,
    drifted_requests,
    recommend,
    unseen_task_types,
)
from aco_lab.evaluate.router_scores import (
    RouterScores,
    build_curve,
    build_decisions,
    build_router_sweep,
    score_router,
    train_options_like,
)
from aco_lab.traces import schema as S
from aco_lab.train.curves import Curve, build_area_metrics, build_reference

log = logging.getLogger(__name__)

PROPENSITY_KEY = "routing_propensity"  # metadata key: P(logging policy chose this run's tier)
LOGGED_TIER = "logged_tier"  # predicted_tier (where the run started), else the highest called
ALL_TIERS = (1, 2, 3, 4, 5)  # columns of a RouterScores table
NEEDS_COUNTERFACTUAL = "needs every tier's outcome per request (counterfactual traces)"
Estimator = Callable[[str, np.ndarray], PolicyResult]


def build_logged_runs(runs: pl.DataFrame) -> tuple[pl.DataFrame, LoggedRuns]:
    """Runs with a known outcome and a tier, sorted, and their arrays for the estimators."""
    tier = pl.coalesce(pl.col(S.PREDICTED_TIER), pl.col(S.TIER)).cast(pl.Int64)
    propensity = pl.col(S.METADATA).str.json_path_match(f"$.{PROPENSITY_KEY}").cast(pl.Float64)
    table = (
        runs.with_columns(tier.alias(LOGGED_TIER), propensity.alias(PROPENSITY_KEY))
        .filter(pl.col(S.TASK_SUCCESS).is_not_null() & pl.col(LOGGED_TIER).is_not_null())
        .sort(S.REQUEST_ID, S.TRACE_ID)
    )
    if table.is_empty():
        raise DataError("no logged run has a known task_success and a tier; nothing to estimate")
    logs = LoggedRuns(
        tier=table[LOGGED_TIER].to_numpy(),
        success=table[S.TASK_SUCCESS].cast(pl.Float64).to_numpy(),
        cost=table[S.TOTAL_COST].to_numpy(),
        propensity=table[PROPENSITY_KEY].fill_null(np.nan).to_numpy(),
    )
    return table, logs


def build_log_evaluation(
    payload: dict,
    info: BundleInfo,
    config: ACOConfig,
    runs: pl.DataFrame,
    options: EvalOptions,
    files: tuple[tuple[str, str], ...],
    n_rejected: int,
    n_overlap: int,
    training_runs: pl.DataFrame | None,
) -> Evaluation:
    """An Evaluation of ordinary logs: the router and baselines estimated, never replayed."""
    stage(f"estimating the router on {format_count(runs.height)} logged runs")
    table, logs = build_logged_runs(runs)
    tiers = tuple(spec.tier for spec in config.tiers)
    scores = _scores(payload, config, table)
    chosen, reason = scores.decide()
    has_ipw = bool(np.all(np.isfinite(logs.propensity) & (logs.propensity > 0)))
    estimate = _estimator(scores, logs, tiers, has_ipw)
    router = estimate(f"router ({info.name})", chosen)
    singles = [estimate(f"tier {t} only", np.full(len(chosen), t)) for t in tiers]
    reference = build_reference(
        {t: s.cost_per_request for t, s in zip(tiers, singles, strict=True)},
        {t: s.success_rate for t, s in zip(tiers, singles, strict=True)},
        config.top_tier,
    )
    sweep = build_router_sweep(scores, estimate, options.thresholds)
    task_types = table[S.TASK_TYPE].to_list()
    rows = [
        *singles,
        estimate(B.TASK_FLOOR_NAME, B.task_floor_tiers(task_types, config)),
        estimate(B.RULES_NAME, B.rules_tiers(table[S.REQUEST].to_list(), task_types, config)),
        as_logged(logs, tiers),
    ]
    curves = [build_curve(router.name, sweep), B.random_mix_curve(singles)]
    skipped = [
        (name, NEEDS_COUNTERFACTUAL)
        for name in (
            "oracle",
            "static cascade",
            "random mixing at the router's cost",
            "best tier per task type",
        )
    ]
    trained, trained_curves, trained_skipped = _trained(
        payload, config, table, options, training_runs, estimate
    )
    data = DataInfo(
        files,
        runs.height,
        table.height,
        runs.height - table.height,
        n_rejected,
        n_overlap,
        options.allow_overlap,
    )
    method = "inverse-propensity weighting" if has_ipw else "the direct method"
    curves = tuple(curves + trained_curves)
    return Evaluation(
        mode=MODE_ESTIMATE,
        bundle=info,
        data=data,
        tiers=tiers,
        tier_models=tuple(config.tier(t).model_id for t in tiers),
        router=router,
        baselines=tuple(rows + trained),
        skipped=tuple(skipped + trained_skipped),
        curves=curves,
        areas=tuple((c.name, build_area_metrics(c, reference)) for c in curves),
        reference=reference,
        sweep=sweep,
        recommended=recommend(
            sweep, router, options.target * reference.strong_success, options.target, reference
        ),
        decisions=build_decisions(
            table[S.REQUEST_ID].to_list(),
            scores,
            chosen,
            reason,
            [config.tier(t).model_id if t in tiers else None for t in ALL_TIERS],
        ),
        reliability=build_log_reliability(scores, logs),
        per_task_type=pl.DataFrame(),
        options=options,
        warnings=(
            f"ordinary logs (one run per request): every router figure is an ESTIMATE by "
            f"{method}, not a replay",
        )
        + build_warnings(data, MODE_ESTIMATE)
        + unseen_task_types(payload, table[S.TASK_TYPE].to_list())
        + drifted_requests(scores.task_type_inference),
        task_type_inference=scores.task_type_inference,
        extra={
            "estimator": "ipw" if has_ipw else "direct",
            "direct_estimate": estimate_direct(
                router.name, scores.p, scores.costs, ALL_TIERS, chosen
            ).to_dict(),
        },
    )


def _scores(payload: dict, config: ACOConfig, table: pl.DataFrame) -> RouterScores:
    difficulty = table[S.DIFFICULTY].cast(pl.Float64).fill_null(np.nan).to_numpy()
    tokens = table[S.FIRST_INPUT_TOKENS].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return score_router(
        payload,
        config,
        table[S.REQUEST].to_list(),
        table[S.TASK_TYPE].to_list(),
        difficulty,
        tokens,
    )


def _estimator(
    scores: RouterScores, logs: LoggedRuns, tiers: Sequence[int], has_ipw: bool
) -> Estimator:
    """name, chosen tiers -> PolicyResult: IPW when the logs allow it, else the direct method."""
    if has_ipw:
        return lambda name, chosen: estimate_ipw(name, logs, tiers, chosen)
    return lambda name, chosen: estimate_direct(name, scores.p, scores.costs, ALL_TIERS, chosen)


def as_logged(logs: LoggedRuns, tiers: Sequence[int]) -> PolicyResult:
    """What the logging policy actually got: observed, not estimated."""
    mix = tuple((int(t), float(np.mean(logs.tier == t))) for t in tiers)
    return summarise(
        "as logged (observed)",
        KIND_REPLAY,
        logs.success,
        logs.cost,
        mix,
        None,
        None,
        note="the logged runs themselves",
    )


def _trained(
    payload: dict,
    config: ACOConfig,
    table: pl.DataFrame,
    options: EvalOptions,
    training_runs: pl.DataFrame | None,
    estimate: Estimator,
) -> tuple[list[PolicyResult], list[Curve], list[tuple[str, str]]]:
    """kNN / logistic routers trained on the bundle's training runs, estimated the same way."""
    from aco_lab.train.router import build_router

    if training_runs is None or training_runs.is_empty():
        why = "the bundle's training traces are not readable here (recorded paths)"
        return [], [], [(f"{m} router", why) for m in options.compare_models]
    rows, curves = [], []
    for model in options.compare_models:
        other = build_router(training_runs, config, train_options_like(payload, model)).payload
        scores = _scores(other, config, table)
        name = f"{model} router (same training data)"
        rows.append(estimate(name, scores.decide()[0]))
        curves.append(build_curve(name, build_router_sweep(scores, estimate, options.thresholds)))
    return rows, curves, []


def build_log_reliability(scores: RouterScores, logs: LoggedRuns) -> tuple[np.ndarray, np.ndarray]:
    """The logged tier's predicted P(success) against what happened (a fair check on logs)."""
    rows = np.arange(len(logs.tier))
    return scores.p[rows, logs.tier - 1], (logs.success >= 0.5).astype(np.float64)
