"""What a user could do instead of a learned router, replayed on the same outcome matrix.

- every single tier;
- random mixing of tiers: the upper convex hull of the single tiers (a coin decides the tier
  of each request). A router that does not beat it at equal cost is worth nothing;
- the config's task-floor rule (each request at its task type's floor tier) and the runtime's
  rule-based router;
- the best tier per task type, fit on the training requests (a cost/success trade-off swept,
  its operating point chosen on the training requests, then replayed on the evaluation ones);
- a static cheapest-first cascade with a verifier of stated error rate (every call is paid);
- kNN and logistic routers trained by aco_lab.train.router on the bundle's training runs;
- the oracle: the cheapest tier that succeeded (a bound, not a policy).

Rows are requests, columns tiers in ascending order, as in aco_lab.evaluate.replay. Pure functions;
`build_baselines` assembles them all for one evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from aco.config import ACOConfig
from aco.progress import stage
from aco.rules import nearest_configured_tier, route_by_rules
from aco_lab.evaluate.replay import (
    KIND_EXPECTED,
    KIND_REPLAY,
    SUCCEEDED,
    PolicyResult,
    replay_choices,
    replay_mixture,
)
from aco_lab.evaluate.results import DEFAULT_VERIFIER_ERROR, EvalOptions
from aco_lab.evaluate.router_scores import (
    build_curve,
    build_router_sweep,
    replayer,
    score_outcomes,
    train_options_like,
)
from aco_lab.traces.labels import OutcomeMatrix, build_outcome_matrix
from aco_lab.train.curves import Curve, build_frontier, choose_point

# Trade-offs (success points per USD per request) swept for the per-task-type baseline:
# 0 buys the best tier whatever it costs, the largest makes every type pick its cheapest tier.
TRADEOFFS = tuple(float(x) for x in np.concatenate(([0.0], np.geomspace(1e-1, 1e6, 71))))


def single_tier(
    success: np.ndarray, cost: np.ndarray, tiers: Sequence[int], tier: int
) -> PolicyResult:
    """Every request at one tier."""
    chosen = np.full(success.shape[0], tier)
    return replay_choices(f"tier {tier} only", success, cost, tiers, chosen)


def oracle(success: np.ndarray, cost: np.ndarray, tiers: Sequence[int]) -> PolicyResult:
    """The cheapest tier that succeeded on each request (the cheapest tier when none did)."""
    ok = success >= SUCCEEDED
    # Failed tiers are priced out; a request nobody solves goes to its cheapest tier.
    priced = np.where(ok, cost, np.inf)
    none = ~ok.any(axis=1)
    priced[none] = cost[none]
    index = np.argmin(priced, axis=1)
    return replay_choices(
        "oracle (cheapest successful tier)",
        success,
        cost,
        tiers,
        np.asarray(tiers)[index],
        note="a bound no router can beat, not a policy",
    )


def random_mix_curve(singles: Sequence[PolicyResult]) -> Curve:
    """The frontier random mixing of single tiers reaches: their non-decreasing convex hull."""
    fc, fs = build_frontier(
        [p.cost_per_request for p in singles], [p.success_rate for p in singles]
    )
    return Curve("random mixing of tiers", tuple(fc.tolist()), tuple(fs.tolist()))


def random_mix_at_cost(
    success: np.ndarray,
    cost: np.ndarray,
    tiers: Sequence[int],
    singles: Sequence[PolicyResult],
    budget: float,
    name: str = "random mixing at the router's cost",
) -> PolicyResult:
    """Random mixing of the two hull tiers around a cost per request (exact expectation)."""
    hull = _hull_tiers(singles)
    costs = np.array([c for _, c in hull])
    budget = float(np.clip(budget, costs[0], costs[-1]))
    hi = int(min(np.searchsorted(costs, budget), len(costs) - 1))
    lo = max(hi - 1, 0)
    share_hi = 0.0 if hi == lo else (budget - costs[lo]) / (costs[hi] - costs[lo])
    weights = np.zeros(success.shape)
    weights[:, list(tiers).index(hull[lo][0])] += 1.0 - share_hi
    weights[:, list(tiers).index(hull[hi][0])] += share_hi
    note = f"tier {hull[lo][0]} or {hull[hi][0]} at random per request; exact expectation"
    return replay_mixture(name, success, cost, tiers, weights, note=note)


def _hull_tiers(singles: Sequence[PolicyResult]) -> list[tuple[int, float]]:
    """(tier, cost per request) of the single tiers on the random-mixing frontier, by cost."""
    fc, fs = build_frontier(
        [p.cost_per_request for p in singles], [p.success_rate for p in singles]
    )
    out = []
    for c, s in zip(fc.tolist(), fs.tolist(), strict=True):
        single = next(p for p in singles if p.cost_per_request == c and p.success_rate == s)
        out.append((_tier_of(single), c))
    return out


def _tier_of(single: PolicyResult) -> int:
    return max(single.tier_mix, key=lambda tm: tm[1])[0]


TASK_FLOOR_NAME = "task-floor rule (config)"
RULES_NAME = "rule-based router (aco.rules)"


def task_floor_tiers(task_types: Sequence[str | None], config: ACOConfig) -> np.ndarray:
    """Each request's task-type floor from the config (tier 1 without a floor)."""
    return np.array([nearest_configured_tier(config.floor_for(t), config) for t in task_types])


def rules_tiers(
    requests: Sequence[str], task_types: Sequence[str | None], config: ACOConfig
) -> np.ndarray:
    """The tier the runtime's rule-based router (aco.rules) picks for each request."""
    pairs = zip(requests, task_types, strict=True)
    return np.array([route_by_rules(r, config, task_type=t).tier for r, t in pairs])


def task_floor_rule(
    success: np.ndarray,
    cost: np.ndarray,
    tiers: Sequence[int],
    task_types: Sequence[str | None],
    config: ACOConfig,
) -> PolicyResult:
    """Each request at its task type's floor tier from the config (tier 1 without a floor)."""
    chosen = task_floor_tiers(task_types, config)
    return replay_choices(TASK_FLOOR_NAME, success, cost, tiers, chosen)


def rules_router(
    success: np.ndarray,
    cost: np.ndarray,
    tiers: Sequence[int],
    requests: Sequence[str],
    task_types: Sequence[str | None],
    config: ACOConfig,
) -> PolicyResult:
    """The runtime's rule-based router (aco.rules), used when no bundle is configured."""
    chosen = rules_tiers(requests, task_types, config)
    return replay_choices(RULES_NAME, success, cost, tiers, chosen)


@dataclass(frozen=True, slots=True)
class TaskTypeTable:
    """Per task type, the training requests' success rate and mean cost at each tier."""

    task_types: tuple[str, ...]
    success: np.ndarray  # task types x tiers
    cost: np.ndarray  # task types x tiers
    overall_success: np.ndarray  # tiers: for task types never seen in training
    overall_cost: np.ndarray


def fit_task_type_table(
    success: np.ndarray, cost: np.ndarray, task_types: Sequence[str | None]
) -> TaskTypeTable:
    """Per-task-type success and cost per tier on the training requests (None is its own type)."""
    keys = np.array([_key(t) for t in task_types])
    names = tuple(sorted(set(keys.tolist())))
    s = np.array([success[keys == k].mean(axis=0) for k in names])
    c = np.array([cost[keys == k].mean(axis=0) for k in names])
    return TaskTypeTable(names, s, c, success.mean(axis=0), cost.mean(axis=0))


def _key(task_type: str | None) -> str:
    return task_type if task_type is not None else "(none)"


def choose_by_tradeoff(
    table: TaskTypeTable, tiers: Sequence[int], tradeoff: float
) -> dict[str, int]:
    """Per task type, the tier maximising success - tradeoff x cost (ties: the cheaper tier)."""
    chosen = {}
    for i, name in enumerate(table.task_types):
        value = table.success[i] - tradeoff * table.cost[i]
        chosen[name] = int(tiers[int(np.flatnonzero(value >= value.max() - 1e-12)[0])])
    value = table.overall_success - tradeoff * table.overall_cost
    chosen["*"] = int(tiers[int(np.flatnonzero(value >= value.max() - 1e-12)[0])])
    return chosen


def apply_task_type_choice(choice: dict[str, int], task_types: Sequence[str | None]) -> np.ndarray:
    """The tier of each request under a per-task-type choice (unseen types: the overall choice)."""
    return np.array([choice.get(_key(t), choice["*"]) for t in task_types])


def task_type_curve(
    table: TaskTypeTable,
    tiers: Sequence[int],
    success: np.ndarray,
    cost: np.ndarray,
    task_types: Sequence[str | None],
) -> tuple[Curve, list[dict[str, int]]]:
    """Replay every trade-off's per-task-type choice on the given requests: the baseline's curve."""
    costs, successes, choices = [], [], []
    rows = np.arange(success.shape[0])
    for tradeoff in TRADEOFFS:
        choice = choose_by_tradeoff(table, tiers, tradeoff)
        index = np.searchsorted(np.asarray(tiers), apply_task_type_choice(choice, task_types))
        costs.append(float(cost[rows, index].mean()))
        successes.append(float(success[rows, index].mean()))
        choices.append(choice)
    return Curve("best tier per task type", tuple(costs), tuple(successes), TRADEOFFS), choices


def static_cascade(
    success: np.ndarray,
    cost: np.ndarray,
    tiers: Sequence[int],
    verifier_error: float = DEFAULT_VERIFIER_ERROR,
    verifier_cost: float = 0.0,
) -> PolicyResult:
    """Cheapest tier first; a verifier wrong with probability `verifier_error` accepts or escalates.

    Every call made is paid (and `verifier_cost` USD per verification). The top tier's answer is
    accepted unverified. Exact expectation over the verifier's errors.
    """
    n, k = success.shape
    ok = success.astype(float)
    accept = ok * (1.0 - verifier_error) + (1.0 - ok) * verifier_error
    reach = np.ones(n)  # P(the cascade calls tier j)
    final = np.zeros((n, k))
    paid = np.zeros(n)
    for j in range(k):
        paid += reach * cost[:, j]
        if j == k - 1:
            final[:, j] = reach
            break
        paid += reach * verifier_cost
        final[:, j] = reach * accept[:, j]
        reach = reach * (1.0 - accept[:, j])
    name = f"static cascade (verifier error {verifier_error:.0%})"
    note = "cheapest tier first, every call paid; exact expectation over verifier errors"
    return replay_mixture(name, success, cost, tiers, final, paid=paid, note=note)


def kind_label(result: PolicyResult) -> str:
    """How a row's figures were obtained, for tables."""
    return {KIND_REPLAY: "replay", KIND_EXPECTED: "expected (replay)"}.get(result.kind, "ESTIMATE")


# -- assembled for an evaluation (aco_lab.evaluate.evaluation) ------------------------------
def build_baselines(
    payload: dict,
    config: ACOConfig,
    ev: OutcomeMatrix,
    success: np.ndarray,
    cost: np.ndarray,
    singles: list[PolicyResult],
    router: PolicyResult,
    options: EvalOptions,
    training_runs: pl.DataFrame | None,
) -> tuple[list[PolicyResult], list[Curve], list[tuple[str, str]]]:
    """Every baseline row of a replay, their curves, and the ones skipped with the reason."""
    tiers = tuple(spec.tier for spec in config.tiers)
    rows = list(singles)
    rows.append(random_mix_at_cost(success, cost, tiers, singles, router.cost_per_request))
    curves = [random_mix_curve(singles)]
    rows.append(task_floor_rule(success, cost, tiers, ev.task_types, config))
    rows.append(rules_router(success, cost, tiers, ev.requests, ev.task_types, config))
    rows.append(static_cascade(success, cost, tiers, options.verifier_error))
    skipped = []
    if training_runs is None or training_runs.is_empty():
        why = "the bundle's training traces are not readable here (recorded paths)"
        skipped = [("best tier per task type", why)] + [
            (f"{m} router", why) for m in options.compare_models
        ]
    else:
        train = build_outcome_matrix(training_runs, config)
        train = train.take(train.available[:, np.asarray(tiers) - 1].all(axis=1))
        if train.n_requests == 0:
            skipped.append(
                (
                    "best tier per task type",
                    "no training request was run at every "
                    "configured tier (ordinary logs): the table needs each tier's outcome",
                )
            )
        else:
            row, curve = task_type_baseline(train, ev, success, cost, tiers, options.target)
            rows.append(row)
            curves.append(curve)
        for model in options.compare_models:
            row, curve = trained_baseline(
                model, payload, config, training_runs, ev, success, cost, tiers, options.thresholds
            )
            rows.append(row)
            curves.append(curve)
    rows.append(oracle(success, cost, tiers))
    return rows, curves, skipped


def task_type_baseline(
    train: OutcomeMatrix,
    ev: OutcomeMatrix,
    success: np.ndarray,
    cost: np.ndarray,
    tiers: tuple[int, ...],
    target: float,
) -> tuple[PolicyResult, Curve]:
    """Best tier per task type: trade-off chosen on the training requests, replayed here."""
    cols = np.asarray(tiers) - 1
    table = fit_task_type_table(train.success[:, cols], train.cost[:, cols], train.task_types)
    fitted, choices = task_type_curve(
        table, tiers, train.success[:, cols], train.cost[:, cols], train.task_types
    )
    top = float(train.success[:, cols[-1]].mean())
    i = choose_point(fitted, target * top)
    if i is None:
        i = int(np.argmax(fitted.successes))
    chosen = apply_task_type_choice(choices[i], ev.task_types)
    shown = ", ".join(f"{k}: tier {v}" for k, v in sorted(choices[i].items()) if k != "*")
    row = replay_choices(
        "best tier per task type (fit on training)",
        success,
        cost,
        tiers,
        chosen,
        note=f"{shown}; chosen for {target:.0%} of the top tier's success on the training requests",
    )
    curve, _ = task_type_curve(table, tiers, success, cost, ev.task_types)
    return row, curve


def trained_baseline(
    model: str,
    payload: dict,
    config: ACOConfig,
    training_runs: pl.DataFrame,
    ev: OutcomeMatrix,
    success: np.ndarray,
    cost: np.ndarray,
    tiers: tuple[int, ...],
    thresholds: Sequence[float],
) -> tuple[PolicyResult, Curve]:
    """A kNN or logistic router trained by aco_lab.train.router on the bundle's training runs."""
    from aco_lab.train.router import build_router

    stage(f"training the {model} comparison router")
    other = build_router(training_runs, config, train_options_like(payload, model)).payload
    scores = score_outcomes(other, config, ev)
    chosen, _ = scores.decide()
    name = f"{model} router (same training data)"
    row = replay_choices(
        name,
        success,
        cost,
        tiers,
        chosen,
        note=f"aco-lab train --model {model}, its own operating point",
    )
    return row, build_curve(
        name, build_router_sweep(scores, replayer(success, cost, tiers), thresholds)
    )
