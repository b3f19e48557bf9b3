"""Evaluate a router bundle honestly: what it would have saved, at what success, against
everything a user could do instead, with numbers anyone can reproduce.

`evaluate_bundle(bundle, paths, config, options)` reads the bundle and the traces (the I/O
edge) and returns an `Evaluation`; `aco_lab.report.write_evaluation` writes it out.

- Counterfactual traces (a request run at every configured tier) are *replayed*: the router's
  tier -> the observed run of the model standing for that tier (aco_lab.labels).
- Ordinary logs (one run per request) cannot be replayed; the figures are *estimates* and
  say so (aco_lab.estimate_logs): inverse-propensity weighting where the logs carry routing
  probabilities, else the direct method from the calibrated success model.
- Evaluation requests must be disjoint from the bundle's training requests (its fingerprint);
  an overlap is refused unless allowed, and then flagged in every output.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from aco.bundle import (
    BUNDLE_PREFIX,
    BUNDLE_SUFFIX,
    load_bundle,
    read_manifest,
    resolve_bundle_path,
)
from aco.config import ACOConfig, TierSpec, load_config
from aco.errors import DataError
from aco.policy import PolicyParams
from aco_lab import baselines as B
from aco_lab import schema as S
from aco_lab.labels import (
    OutcomeMatrix,
    add_labels,
    build_outcome_matrix,
    build_training_runs,
    is_counterfactual,
)
from aco_lab.replay import PolicyResult, replay_choices
from aco_lab.router_scores import (
    SweepPoint,
    build_curve,
    build_decisions,
    build_router_sweep,
    replayer,
    score_outcomes,
)
from aco_lab.sweep import (
    DEFAULT_THRESHOLDS,
    AreaMetrics,
    Curve,
    Reference,
    build_area_metrics,
    build_reference,
    choose_point,
)

log = logging.getLogger(__name__)

MODE_REPLAY = "replay"  # counterfactual traces: every figure observed
MODE_ESTIMATE = "estimate"  # ordinary logs: the router's figures are estimates
DEFAULT_TARGET = 0.95  # the recommended point keeps this share of the top tier's success
COMPARE_MODELS = ("knn", "logreg")  # routers trained on the same data as baselines
# Above this many times the share of held-out requests the novelty check was set to call
# unlike the training ones (1%: so 5%), the report warns that the traffic has drifted.
DRIFT_FACTOR = 5.0


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """How to evaluate: baselines' settings and what to recommend."""

    allow_overlap: bool = False
    verifier_error: float = B.DEFAULT_VERIFIER_ERROR
    target: float = DEFAULT_TARGET
    compare_models: tuple[str, ...] = COMPARE_MODELS
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The recommended operating point on these requests, and why."""

    downgrade_threshold: float
    success_value: float
    success_rate: float
    cost_per_request: float
    why: str


@dataclass(frozen=True, slots=True)
class DataInfo:
    """What was evaluated: files, counts, exclusions, overlap with training."""

    files: tuple[tuple[str, str], ...]  # (path, sha256)
    n_runs: int
    n_requests: int  # evaluated
    n_excluded: int  # requests left out (a configured tier never ran them, unknown outcome)
    n_rejected_lines: int
    n_overlap: int  # evaluation requests the bundle trained on
    overlap_allowed: bool


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """The evaluated bundle, as a report names it."""

    name: str  # "v11" or the file name
    path: str
    sha256: str
    model: str  # lgbm | logreg | knn
    n_training_requests: int
    params: PolicyParams
    task_floors: tuple[tuple[str, int], ...]
    floor: float = 0.0  # the success floor it was trained for (share of the top's success)
    shortfall: float = 0.0  # how far its operating point fell short of it on training requests


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything an evaluation found; report.py renders it, metrics.json records it."""

    mode: str
    bundle: BundleInfo
    data: DataInfo
    tiers: tuple[int, ...]
    tier_models: tuple[str, ...]
    router: PolicyResult
    baselines: tuple[PolicyResult, ...]
    skipped: tuple[tuple[str, str], ...]  # (baseline, why it is absent)
    curves: tuple[Curve, ...]
    areas: tuple[tuple[str, AreaMetrics], ...]
    reference: Reference
    sweep: tuple[SweepPoint, ...]
    recommended: Recommendation | None
    decisions: pl.DataFrame
    reliability: tuple[np.ndarray, np.ndarray]  # predicted P, observed 0/1 per (request, tier)
    per_task_type: pl.DataFrame
    options: EvalOptions
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # The bundle's learned run controls against their rule versions on these traces
    # (aco_lab.controls.suite.ControlsEvaluation); None when the bundle learned none.
    controls: Any = None
    # The task-type predictor on these requests as if given without a type (RouterScores).
    task_type_inference: dict = field(default_factory=dict)


# -- the I/O edge --------------------------------------------------------------------------
def evaluate_bundle(
    bundle_ref: str | Path,
    paths: Sequence[str | Path],
    config_path: str | Path | None = None,
    options: EvalOptions = EvalOptions(),
    models_dir: str | Path = "router_models",
) -> Evaluation:
    """Load a bundle and traces, then evaluate (replay, or estimate on ordinary logs)."""
    from aco_lab.router_payload import read_file_fingerprints
    from aco_lab.traces import expand_paths, read_traces

    path = resolve_bundle_path(bundle_ref, models_dir)
    payload = load_bundle(path)
    config = load_config(config_path) if config_path else bundle_config(payload)
    held_ids = None
    if not paths:
        paths, held_ids = holdout_of(payload, path)
    files = expand_paths(paths)
    tables = read_traces(files, on_error="skip")
    runs = tables.runs
    if held_ids is not None:
        runs = runs.filter(pl.col(S.REQUEST_ID).is_in(held_ids))
    fingerprints = tuple((str(f["path"]), f["sha256"]) for f in read_file_fingerprints(files))
    info = _bundle_info(path, payload)
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
    return replace(ev, controls=evaluate_controls(payload["controls"],
                                                  restrict_tables(tables, held), config))


def bundle_config(payload: dict) -> ACOConfig:
    """The tier table the bundle was trained with (no task floors beyond its learned ones)."""
    return ACOConfig(tiers=tuple(TierSpec(**t) for t in payload["tiers"]), task_floors={})


def holdout_of(payload: dict, path: Path) -> tuple[list[str], list[str] | None]:
    """The held-out traces a bundle recorded (files, and request ids when recorded) under
    training_data.holdout; a DataError saying what to pass when there are none."""
    holdout = payload.get("training_data", {}).get("holdout") or {}
    files = [f["path"] if isinstance(f, dict) else f for f in holdout.get("files", [])]
    if files and all(Path(f).is_file() for f in files):
        ids = holdout.get("request_ids")
        return files, (list(ids) if ids else None)
    raise DataError(
        f"{path}: no evaluation traces given and the bundle records no held-out traces that "
        "exist here; pass trace files the bundle did not train on (split them off before "
        "training with `aco-lab holdout TRACES --out DIR`), e.g. "
        "`aco-lab evaluate --bundle vN DIR/eval.jsonl.gz`"
    )


def read_training_runs(payload: dict) -> pl.DataFrame | None:
    """The runs the bundle trained on, re-read from its recorded files (None when gone)."""
    from aco_lab.traces import read_traces

    training = payload.get("training_data", {})
    files = [f.get("path") for f in training.get("files", [])]
    if not files or not all(p and Path(p).is_file() for p in files):
        log.warning("training files %s are not all present: trained baselines skipped", files)
        return None
    ids = set(training.get("request_ids", []))
    runs = read_traces(files, on_error="skip").runs
    return runs.filter(pl.col(S.REQUEST_ID).is_in(list(ids)))


def bundle_name(path: Path) -> str:
    """How reports name a bundle: "v11" for router_bundle_v11.pkl, else its file name."""
    match = re.fullmatch(rf"{BUNDLE_PREFIX}(\d+){re.escape(BUNDLE_SUFFIX)}", path.name)
    return f"v{match.group(1)}" if match else path.name


def _bundle_info(path: Path, payload: dict) -> BundleInfo:
    name = bundle_name(path)
    point = payload.get("validation", {}).get("operating_point", {})
    return BundleInfo(
        name=name,
        path=str(path),
        sha256=read_manifest(path)["sha256"],
        model=str(payload["model"].get("kind", "?")),
        n_training_requests=len(payload.get("training_data", {}).get("request_ids", [])),
        params=PolicyParams.from_dict(payload["policy"]),
        task_floors=tuple(sorted(payload.get("task_floors", {}).items())),
        floor=float(point.get("floor", 0.0)),
        shortfall=float(point.get("shortfall", 0.0)) if not point.get("met_floor", True) else 0.0,
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
        from aco_lab.log_estimates import build_log_evaluation

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


def check_overlap(training_ids: set[str], eval_ids: set[str], allow: bool) -> list[str]:
    """Evaluation requests the bundle trained on; a DataError unless allowed."""
    overlap = sorted(training_ids & eval_ids)
    if overlap and not allow:
        shown = ", ".join(overlap[:3])
        raise DataError(
            f"{len(overlap)} of {len(eval_ids)} evaluation request_ids were used to train the "
            f"bundle (e.g. {shown}); evaluate on held-out traces, or pass --allow-overlap to "
            "evaluate anyway (the report will flag it)"
        )
    if overlap:
        log.warning("%d evaluation requests were used in training (allowed)", len(overlap))
    return overlap


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
    sweep = build_router_sweep(scores, replayer(success, cost, tiers), options.thresholds)
    router_curve = build_curve(f"router ({info.name})", sweep)
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
        warnings=(build_warnings(data) + unseen_task_types(payload, ev.task_types)
                  + drifted_requests(scores.task_type_inference)),
        task_type_inference=scores.task_type_inference,
    )


def recommend(
    sweep: Sequence[SweepPoint],
    router: PolicyResult,
    target: float,
    fraction: float,
    ref: Reference,
) -> Recommendation | None:
    """The cheapest sweep point holding the target success, with the reason in words."""
    curve = build_curve("router", sweep)
    i = choose_point(curve, target)
    if i is None:
        return None
    p = sweep[i]
    r = p.result
    why = (
        f"the cheapest threshold that keeps {fraction:.0%} of the top tier's success "
        f"({target:.3f}) on these requests: success {r.success_rate:.3f} at "
        f"{r.cost_per_request / ref.strong_cost:.1%} of the top tier's cost per request. "
        f"Chosen on the evaluation requests, so it is optimistic for them; the bundle's own "
        f"point (chosen on its validation fold) gets success {router.success_rate:.3f} at "
        f"{router.cost_per_request / ref.strong_cost:.1%}."
    )
    return Recommendation(
        p.downgrade_threshold, p.success_value, r.success_rate, r.cost_per_request, why
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


def build_warnings(data: DataInfo, mode: str = MODE_REPLAY) -> tuple[str, ...]:
    """What a reader must know about the data: overlap, exclusions, rejected lines."""
    out = []
    if data.n_overlap:
        out.append(
            f"{data.n_overlap} evaluation requests were used to train this bundle "
            "(--allow-overlap): these figures overstate how it does on new requests"
        )
    if data.n_excluded and mode == MODE_REPLAY:
        out.append(
            f"{data.n_excluded} requests were left out: some configured tier has no run "
            "of them with a known outcome"
        )
    elif data.n_excluded:
        out.append(f"{data.n_excluded} logged runs were left out: unknown task_success or tier")
    if data.n_rejected_lines:
        out.append(
            f"{data.n_rejected_lines} trace lines were rejected (aco-lab validate lists them)"
        )
    return tuple(out)


def drifted_requests(inference: dict) -> tuple[str, ...]:
    """A warning when the bundle's novelty check calls far more of these requests unlike its
    training requests than the ~1% of held-out ones it was set to: the traffic has moved."""
    share, expected = inference.get("novel_share"), inference.get("novel_share_expected")
    if share is None or expected is None or share <= DRIFT_FACTOR * expected:
        return ()
    return (f"{share:.1%} of the evaluation requests are unlike the bundle's training requests "
            f"(its novelty check calls {expected:.0%} of requests like them so): the requests have "
            f"changed since training, and those given without a task type would be typed by "
            f"rule cues; retrain on recent traces",)


def unseen_task_types(payload: dict, task_types: Sequence[str | None]) -> tuple[str, ...]:
    """A warning when evaluation requests carry task types the bundle never trained on."""
    known = set(payload.get("feature_spec", {}).get("task_types") or ())
    unseen = [t for t in task_types if t is not None and t not in known]
    if not unseen:
        return ()
    names = ", ".join(sorted(set(unseen)))
    return (
        f"{len(unseen)} evaluation requests have task types the bundle never trained on "
        f"({names}): its P(success) for them is an extrapolation",
    )
