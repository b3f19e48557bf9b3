"""A bundle's view of many requests at once: what aco.router.Router decides, vectorised.

`score_router` computes, for every request, the calibrated P(success) per tier, the expected
cost per tier and the allowed tiers exactly as `Router.decide` does one request at a time
(features from aco.features, the task type predicted when missing, learned floors raised by
the config's); `RouterScores.decide` then applies aco.policy's rule under any parameters, which
is what the threshold sweep varies. A test checks the tiers against `Router.decide`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from aco.config import ACOConfig
from aco.features import FeatureSpec
from aco.policy import (
    REASONS,
    PolicyMix,
    PolicyParams,
    build_allowed,
    calibrate,
    choose_tiers,
    make_monotone,
    mix_coin,
)
from aco.router import expected_cost_table, infer_task_types, predict_success
from aco.trace_format import TIERS
from aco_lab.evaluate.replay import PolicyResult, replay_choices
from aco_lab.traces import schema as S
from aco_lab.traces.labels import OutcomeMatrix
from aco_lab.train.curves import Curve
from aco_lab.train.task_types import task_type_figures

# The second threshold family: what one success is worth, in units of the cost scale.
SUCCESS_VALUES = (0.0, *(float(v) for v in np.geomspace(0.01, 1000.0, 41)))
# Columns of the decisions table (decisions.jsonl) beyond the schema's.
P_SUCCESS = "p_success"  # calibrated P(success) per tier 1..5
REASON = "reason"  # aco.policy.REASONS: safety | downgrade | top


@dataclass(frozen=True, slots=True)
class RouterScores:
    """A router's view of the evaluation requests: P(success) and expected USD per tier."""

    p: np.ndarray  # (n, 5) calibrated, non-decreasing in the tier
    costs: np.ndarray  # (n, 5) expected USD (what the policy sees)
    allowed: np.ndarray  # (n, 5) configured tiers at or above the request's floor
    params: PolicyParams  # the bundle's operating point
    task_types: tuple[str | None, ...]  # given, else inferred (aco.router.infer_task_types)
    # The task-type predictor on the requests given with a type, as if given without one
    # (aco_lab.train.task_types.task_type_figures); {} when the bundle has no predictor.
    task_type_inference: dict = dataclasses.field(default_factory=dict)
    mix: PolicyMix | None = None  # the bundle's second policy, when its point mixes two
    coins: np.ndarray | None = None  # (n,) aco.policy.mix_coin of each request, with a mix

    def decide(self, params: PolicyParams | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Tier (1-based) and reason code per request under the bundle's operating point (its
        mix of two policies, as the runtime applies it) or other parameters."""
        index, reason = choose_tiers(self.p, self.costs, self.allowed, params or self.params)
        if params is None and self.mix is not None and self.coins is not None:
            second, why = choose_tiers(self.p, self.costs, self.allowed, self.mix.params)
            taken = self.coins < self.mix.share
            index, reason = np.where(taken, second, index), np.where(taken, why, reason)
        return index + 1, reason


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One point of the router's threshold sweep."""

    downgrade_threshold: float
    success_value: float
    result: PolicyResult
    safety_threshold: float = 0.0


def score_router(
    payload: dict,
    config: ACOConfig,
    requests: Sequence[str],
    task_types: Sequence[str | None],
    difficulty: np.ndarray,
    input_tokens: np.ndarray,
) -> RouterScores:
    """The bundle's P(success) and expected costs for many requests, as aco.router.Router does."""
    spec = FeatureSpec.from_dict(payload["feature_spec"])
    types = list(task_types)
    X = _features(spec, requests, types, difficulty, input_tokens)
    task_model = payload.get("task_type_model")
    inference = task_type_figures(task_model, list(requests), X, types)
    missing = [i for i, t in enumerate(types) if t is None]
    if missing and task_model is not None:
        # The runtime infers a missing task type and recomputes the features with it.
        inferred = infer_task_types(task_model, [requests[i] for i in missing], X[missing])
        for i, task_type in zip(missing, inferred, strict=True):
            types[i] = task_type
        X = _features(spec, requests, types, difficulty, input_tokens)
    p = make_monotone(calibrate(predict_success(payload["model"], X), payload["calibration"]))
    chars = np.array([len(r) for r in requests], dtype=np.float64)
    costs = expected_cost_table(payload["cost_model"], config.tiers, input_tokens, types, chars)
    learned = dict(payload.get("task_floors", {}))
    floors = {
        t: max(learned.get(t, 1), config.task_floors.get(t, 1))
        for t in {*learned, *config.task_floors}
    }
    per_request = np.array([floors.get(t, 1) if t is not None else 1 for t in types])
    configured = np.array([t in {s.tier for s in config.tiers} for t in TIERS])
    mix = PolicyMix.from_dict(payload.get("policy_mix"))
    coins = None if mix is None else np.array([mix_coin(r, mix.salt) for r in requests])
    return RouterScores(
        p,
        costs,
        build_allowed(per_request, configured),
        PolicyParams.from_dict(payload["policy"]),
        tuple(types),
        inference,
        mix,
        coins,
    )


def _features(
    spec: FeatureSpec,
    requests: Sequence[str],
    types: Sequence[str | None],
    difficulty: np.ndarray,
    input_tokens: np.ndarray,
) -> np.ndarray:
    from aco_lab.train.features import build_features

    frame = pl.DataFrame(
        {
            S.REQUEST: list(requests),
            S.TASK_TYPE: list(types),
            S.DIFFICULTY: [None if np.isnan(d) else int(d) for d in difficulty],
            S.FIRST_INPUT_TOKENS: [None if np.isnan(t) else int(t) for t in input_tokens],
        },
        schema={
            S.REQUEST: pl.String,
            S.TASK_TYPE: pl.String,
            S.DIFFICULTY: pl.Int8,
            S.FIRST_INPUT_TOKENS: pl.Int64,
        },
    )
    return np.asarray(build_features(frame, spec), dtype=np.float64)


def score_outcomes(payload: dict, config: ACOConfig, outcomes: OutcomeMatrix) -> RouterScores:
    """score_router over the requests of an outcome matrix."""
    return score_router(
        payload,
        config,
        outcomes.requests,
        outcomes.task_types,
        outcomes.difficulty,
        outcomes.input_tokens,
    )


def sweep_grid(base: PolicyParams, thresholds: Sequence[float]) -> list[PolicyParams]:
    """The router's thresholds swept: downgrade_threshold (success_value 0), then success_value
    (downgrade_threshold 0), then the bundle's own point, safety and floors as in the bundle;
    last, every request at its top allowed tier (safety_threshold 1)."""
    pairs = [(float(t), 0.0) for t in thresholds] + [(0.0, v) for v in SUCCESS_VALUES[1:]]
    pairs.append((base.downgrade_threshold, base.success_value))
    grid = [
        dataclasses.replace(base, downgrade_threshold=d, success_value=v)
        for d, v in dict.fromkeys(pairs)
    ]
    top = dataclasses.replace(
        base, safety_threshold=1.0, downgrade_threshold=0.0, success_value=0.0
    )
    return grid if top in grid else [*grid, top]


def build_router_sweep(
    scores: RouterScores,
    score: Callable[[str, np.ndarray], PolicyResult],
    thresholds: Sequence[float],
) -> tuple[SweepPoint, ...]:
    """Every sweep point's result: score(name, chosen tiers) replays or estimates it."""
    return tuple(
        SweepPoint(
            p.downgrade_threshold,
            p.success_value,
            score("sweep", scores.decide(p)[0]),
            p.safety_threshold,
        )
        for p in sweep_grid(scores.params, thresholds)
    )


def replayer(
    success: np.ndarray, cost: np.ndarray, tiers: Sequence[int]
) -> Callable[[str, np.ndarray], PolicyResult]:
    """score(name, chosen) for counterfactual outcomes: an exact replay."""
    return lambda name, chosen: replay_choices(name, success, cost, tiers, chosen)


def build_curve(name: str, sweep: Sequence[SweepPoint]) -> Curve:
    """A sweep as a cost-success curve (params: the downgrade threshold of each point)."""
    return Curve(
        name,
        tuple(p.result.cost_per_request for p in sweep),
        tuple(p.result.success_rate for p in sweep),
        tuple(p.downgrade_threshold for p in sweep),
    )


def train_options_like(payload: dict, model: str):  # noqa: ANN201 - aco_lab.train.router.TrainOptions
    """The bundle's recorded training options with another estimator."""
    from aco_lab.train.router import TrainOptions

    known = {f.name for f in dataclasses.fields(TrainOptions)} - {"command", "folds"}
    kwargs = {k: v for k, v in payload.get("options", {}).items() if k in known}
    return TrainOptions(**{**kwargs, "model": model})


def build_decisions(
    request_ids: Sequence[str],
    scores: RouterScores,
    chosen: np.ndarray,
    reason: np.ndarray,
    models: Sequence[str | None],
) -> pl.DataFrame:
    """One row per request: the tier, its model (models[tier - 1]), P(success) per tier 1..5
    and the reason."""
    return pl.DataFrame(
        {
            S.REQUEST_ID: list(request_ids),
            S.TASK_TYPE: list(scores.task_types),
            S.TIER: chosen.astype(np.int64),
            S.MODEL_ID: [models[t - 1] for t in chosen],
            P_SUCCESS: [list(map(float, row)) for row in scores.p],
            REASON: [REASONS[int(r)] for r in reason],
        },
        schema={
            S.REQUEST_ID: pl.String,
            S.TASK_TYPE: pl.String,
            S.TIER: pl.Int64,
            S.MODEL_ID: pl.String,
            P_SUCCESS: pl.List(pl.Float64),
            REASON: pl.String,
        },
    )
