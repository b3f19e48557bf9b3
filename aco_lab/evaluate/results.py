"""What an evaluation takes and returns: its options, the Evaluation and its parts, and the
judgements both evaluation modes share (the recommended point, the warnings a reader needs).

aco_lab/evaluate/evaluation.py builds an Evaluation by replay, aco_lab/evaluate/log_estimates.py
by estimation on ordinary logs; aco_lab/report renders it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from aco.formatting import format_share
from aco.policy import PolicyParams
from aco_lab.evaluate.replay import PolicyResult
from aco_lab.evaluate.router_scores import SweepPoint, build_curve
from aco_lab.train.curves import DEFAULT_THRESHOLDS, AreaMetrics, Curve, Reference, choose_point

MODE_REPLAY = "replay"  # counterfactual traces: every figure observed
MODE_ESTIMATE = "estimate"  # ordinary logs: the router's figures are estimates
DEFAULT_TARGET = 0.95  # the recommended point keeps this share of the top tier's success
COMPARE_MODELS = ("knn", "logreg")  # routers trained on the same data as baselines
# Above this many times the share of held-out requests the novelty check was set to call
# unlike the training ones (1%: so 5%), the report warns that the traffic has drifted.
DRIFT_FACTOR = 5.0
# Verifier of the static cascade: the chance it gives the wrong verdict on an answer.
DEFAULT_VERIFIER_ERROR = 0.20


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """How to evaluate: baselines' settings and what to recommend."""

    allow_overlap: bool = False
    verifier_error: float = DEFAULT_VERIFIER_ERROR
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
    model: str  # table | logreg | knn | lgbm | residual (the candidate that won)
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
        f"({format_share(target)}) on these requests: success {format_share(r.success_rate)} at "
        f"{format_share(r.cost_per_request / ref.strong_cost)} of the top tier's cost per "
        f"request. Chosen on the evaluation requests, so it is optimistic for them; the "
        f"bundle's own point (chosen out of fold on its training requests) gets success "
        f"{format_share(router.success_rate)} at "
        f"{format_share(router.cost_per_request / ref.strong_cost)}."
    )
    return Recommendation(
        p.downgrade_threshold, p.success_value, r.success_rate, r.cost_per_request, why
    )


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
    return (
        f"{share:.1%} of the evaluation requests are unlike the bundle's training requests "
        f"(its novelty check calls {expected:.0%} of requests like them so): the requests have "
        f"changed since training, and those given without a task type would be typed by "
        f"rule cues; retrain on recent traces",
    )


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
