"""Evaluate a router bundle honestly: what it would have saved, at what success, against
everything a user could do instead, with numbers anyone can reproduce.

`evaluate_bundle(bundle, paths, config, options)` reads the bundle and the traces (the I/O
edge) and returns an `Evaluation`;
`aco_lab.report.evaluation_report.write_evaluation` writes it out.

- Counterfactual traces (a request run at every configured tier) are *replayed*: the router's
  tier -> the observed run of the model standing for that tier (aco_lab.traces.labels).
- Ordinary logs (one run per request) cannot be replayed; the figures are *estimates* and
  say so (aco_lab.estimate_logs): inverse-propensity weighting where the logs carry routing
  probabilities, else the direct method from the calibrated success model.
- Evaluation requests must be disjoint from the bundle's training requests (its fingerprint);
  an overlap is refused unless allowed, and then flagged in every output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from aco.bundle import (
    load_bundle,
    resolve_bundle_path,
)
from aco.config import ACOConfig, load_config
from aco.errors import DataError
from aco.formatting import format_count
from aco.progress import stage
from aco_lab.evaluate import baselines as B
from aco_lab.evaluate.bundle_inputs import (
    bundle_config,
    bundle_info,
    check_overlap,
    holdout_of,
    read_training_runs,
)
from aco_lab.evaluate.log_estimates import build_log_evaluation
from aco_lab.evaluate.replay import replay_choices
from aco_lab.evaluate.results import (
    MODE_REPLAY,
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
    build_curve,
    build_decisions,
    build_router_sweep,
    replayer,
    score_outcomes,
)
from aco_lab.traces import schema as S
from aco_lab.traces.labels import (
    OutcomeMatrix,
    add_labels,
    build_outcome_matrix,
    build_training_runs,
    is_counterfactual,
)
from aco_lab.train.curves import (
    build_area_metrics,
    build_reference,
)

log = logging.getLogger(__name__)
DEFAULT_OPTIONS = EvalOptions()


# -- the I/O edge --------------------------------------------------------------------------
def evaluate_bundle(
    bundle_ref: str | Path,
    paths: Sequence[str | Path],
    config_path: str | Path | None = None,
    options: EvalOptions = DEFAULT_OPTIONS,
    models_dir: str | Path = "router_models",
    on_error: str = "skip",
) -> Evaluation:
    """Load a bundle and traces, then evaluate (replay, or estimate on ordinary logs).

    on_error: bad trace lines stop the evaluation ("fail") or are left out ("skip")."""
    from aco_lab.traces.reading import expand_paths, read_traces
    from aco_lab.train.router_payload import read_file_fingerprints

    path = resolve_bundle_path(bundle_ref, models_dir)
    payload = load_bundle(path)
    config = load_config(config_path) if config_path else bundle_config(payload)
    held_ids = None
    if not paths:
        paths, held_ids = holdout_of(payload, path)
    files = expand_paths(paths)
    tables = read_traces(files, on_error=on_error)
    runs = tables.runs
    if held_ids is not None:
        runs = runs.filter(pl.col(S.REQUEST_ID).is_in(held_ids))
    fingerprints = tuple((str(f["path"]), f["sha256"]) for f in read_file_fingerprints(files))
    info = bundle_info(path, payload)
    training_runs = read_training_runs(payload)
    ev = build_evaluation(
        payload,
        info,
        config,
        runs,
        options,
        fingerprints,
        len(tables.rejected),
        training_runs,
    )
    if not payload.get("controls"):
        return ev
    from aco_lab.controls.suite import evaluate_controls, restrict_tables

    held = set(runs[S.REQUEST_ID].to_list())
    return replace(
        ev, controls=evaluate_controls(payload["controls"], restrict_tables(tables, held), config)
    )


# -- pure evaluation -----------------------------------------------------------------------
def build_evaluation(
    payload: dict,
    info: BundleInfo,
    config: ACOConfig,
    runs: pl.DataFrame,
    options: EvalOptions,
    files: tuple[tuple[str, str], ...] = (),
    n_rejected: int = 0,
    training_runs: pl.DataFrame | None = None,
) -> Evaluation:
    """Replay (counterfactual runs) or estimate (ordinary logs) a bundle on evaluation runs."""
    if runs.is_empty():
        raise DataError("no evaluation runs were read; pass trace files with runs")
    training_ids = set(payload.get("training_data", {}).get("request_ids", []))
    eval_ids = set(runs[S.REQUEST_ID].unique().to_list())
    overlap = check_overlap(training_ids, eval_ids, options.allow_overlap)
    usable = build_training_runs(add_labels(runs, config))
    if not is_counterfactual(usable):
        return build_log_evaluation(
            payload, info, config, runs, options, files, n_rejected, len(overlap), training_runs
        )
    outcomes = build_outcome_matrix(runs, config)
    tiers = tuple(spec.tier for spec in config.tiers)
    complete = outcomes.available[:, np.asarray(tiers) - 1].all(axis=1)
    if not complete.any():
        raise DataError(
            "no request was run at every configured tier; check that the config's "
            "models (--config) are the models in the traces"
        )
    evaluated = outcomes.take(complete)
    data = DataInfo(
        files,
        runs.height,
        evaluated.n_requests,
        int((~complete).sum()),
        n_rejected,
        len(overlap),
        options.allow_overlap,
    )
    return _replay_evaluation(payload, info, config, evaluated, data, options, training_runs)


def _replay_evaluation(
    payload: dict,
    info: BundleInfo,
    config: ACOConfig,
    ev: OutcomeMatrix,
    data: DataInfo,
    options: EvalOptions,
    training_runs: pl.DataFrame | None,
) -> Evaluation:
    tiers = tuple(spec.tier for spec in config.tiers)
    cols = np.asarray(tiers) - 1
    success, cost = ev.success[:, cols], ev.cost[:, cols]
    stage(f"replaying the router on {format_count(ev.n_requests)} requests")
    scores = score_outcomes(payload, config, ev)
    chosen, reason = scores.decide()
    router = replay_choices(
        f"router ({info.name})",
        success,
        cost,
        tiers,
        chosen,
        note="the bundle's operating point, replayed on observed runs",
    )
    singles = [B.single_tier(success, cost, tiers, t) for t in tiers]
    reference = build_reference(
        {t: s.cost_per_request for t, s in zip(tiers, singles, strict=True)},
        {t: s.success_rate for t, s in zip(tiers, singles, strict=True)},
        config.top_tier,
    )
    stage("sweeping the router's thresholds")
    sweep = build_router_sweep(scores, replayer(success, cost, tiers), options.thresholds)
    router_curve = build_curve(f"router ({info.name})", sweep)
    stage("replaying the baselines")
    baselines, curves, skipped = B.build_baselines(
        payload, config, ev, success, cost, singles, router, options, training_runs
    )
    curves = (router_curve, *curves)
    target = options.target * reference.strong_success
    return Evaluation(
        mode=MODE_REPLAY,
        bundle=info,
        data=data,
        tiers=tiers,
        tier_models=tuple(ev.tier_models[t - 1] or "" for t in tiers),
        router=router,
        baselines=tuple(baselines),
        skipped=tuple(skipped),
        curves=curves,
        areas=tuple((c.name, build_area_metrics(c, reference)) for c in curves),
        reference=reference,
        sweep=sweep,
        recommended=recommend(sweep, router, target, options.target, reference),
        decisions=build_decisions(ev.request_ids, scores, chosen, reason, ev.tier_models),
        reliability=build_reliability(scores.p, ev),
        per_task_type=build_per_task_type(ev, success, cost, tiers, chosen, config.top_tier),
        options=options,
        warnings=(
            build_warnings(data)
            + unseen_task_types(payload, ev.task_types)
            + drifted_requests(scores.task_type_inference)
        ),
        task_type_inference=scores.task_type_inference,
    )


def build_reliability(p: np.ndarray, ev: OutcomeMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Predicted P(success) and the observed 0/1 outcome of every observed (request, tier)."""
    seen = ev.available
    return p[seen], (ev.success[seen] >= 0.5).astype(np.float64)


def build_per_task_type(
    ev: OutcomeMatrix,
    success: np.ndarray,
    cost: np.ndarray,
    tiers: tuple[int, ...],
    chosen: np.ndarray,
    top_tier: int,
) -> pl.DataFrame:
    """Per task type: the router against the top tier and the oracle."""
    rows = []
    types = np.array([t if t is not None else "(none)" for t in ev.task_types], dtype=object)
    for name in sorted(set(types.tolist())):
        mask = types == name
        s, c = success[mask], cost[mask]
        r = replay_choices("router", s, c, tiers, chosen[mask])
        top = B.single_tier(s, c, tiers, top_tier)
        best = B.oracle(s, c, tiers)
        rows.append(
            {
                S.TASK_TYPE: name,
                "n_requests": int(mask.sum()),
                "router_success": r.success_rate,
                "router_cost_per_success": r.cost_per_success,
                "top_success": top.success_rate,
                "top_cost_per_success": top.cost_per_success,
                "oracle_success": best.success_rate,
                "oracle_cost_per_success": best.cost_per_success,
                "router_main_tier": max(r.tier_mix, key=lambda tm: tm[1])[0],
            }
        )
    return pl.DataFrame(rows)
