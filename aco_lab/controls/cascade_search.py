"""Search the thresholds of a staged cascade: every combination, replayed exactly, vectorized.

A staged policy calls the models of `sequence` in order. At stage k it has P(candidate right)
`p[k]` for each request: it accepts when p >= accept_at[k], jumps to the fallback model when
p < escalate_below[k] (or at the last stage), and otherwise calls the next model. Every call
made is paid. For one sequence and fallback, all threshold combinations are evaluated at
once by broadcasting over the requests still running, and only the cost-success frontier is
kept. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEVER_ACCEPT = 1.01  # an accept threshold no probability reaches: always call on at this stage
ACCEPT_QUANTILES = tuple(np.linspace(0.0, 1.0, 11))  # accept thresholds: quantiles of p
ESCALATE_QUANTILES = (0.10, 0.25)  # early-escalation thresholds: low quantiles of p


@dataclass(frozen=True, slots=True)
class StageData:
    """One stage of a sequence: per request, P(candidate right), its truth and the call cost."""

    p: np.ndarray  # (n,) out-of-fold probability that the stage's candidate answer is right
    correct: np.ndarray  # (n,) 0/1: the candidate answer is right
    cost: np.ndarray  # (n,) USD of the call made at this stage


@dataclass(frozen=True, slots=True)
class PolicyPoint:
    """One staged policy and its totals over the training requests."""

    sequence: tuple[str, ...]  # the cheap models, in call order
    fallback: str
    accept_at: tuple[float, ...]
    escalate_below: tuple[float, ...]
    successes: float
    cost: float


def stage_options(p: np.ndarray, last: bool) -> np.ndarray:
    """The (accept_at, escalate_below) pairs tried at one stage, shape (q, 2)."""
    accepts = np.unique(np.concatenate([np.quantile(p, ACCEPT_QUANTILES), [NEVER_ACCEPT]]))
    escalates = (
        [0.0] if last else np.unique(np.concatenate([[0.0], np.quantile(p, ESCALATE_QUANTILES)]))
    )
    pairs = [(a, e) for a in accepts for e in escalates if e <= a]
    return np.round(np.array(pairs, dtype=float), 6)


def search_sequence(
    sequence: Sequence[str],
    fallback: str,
    stages: Sequence[StageData],
    fallback_correct: np.ndarray,
    fallback_cost: np.ndarray,
) -> list[PolicyPoint]:
    """Every threshold combination of one sequence, replayed; the frontier points returned."""
    n = len(fallback_correct)
    if not stages:  # no cheap call: the fallback answers everything
        return [
            PolicyPoint(
                (),
                str(fallback),
                (NEVER_ACCEPT,),
                (0.0,),
                float(fallback_correct.sum()),
                float(fallback_cost.sum()),
            )
        ]
    alive = np.ones((1, n))
    succ, cost = np.zeros(1), np.zeros(1)
    options = []
    for k, stage in enumerate(stages):
        last = k == len(stages) - 1
        opts = stage_options(stage.p, last)
        options.append(opts)
        accept = stage.p[None, :] >= opts[:, :1]  # (q, n)
        escalate = ~accept & ((stage.p[None, :] < opts[:, 1:]) | last)
        cost = cost + alive @ stage.cost  # every request still running pays this call
        succ = (
            succ[:, None]
            + alive @ (accept * stage.correct).T
            + alive @ (escalate * fallback_correct).T
        )
        cost = cost[:, None] + alive @ (escalate * fallback_cost).T
        if not last:
            cont = (~accept & ~escalate).astype(float)
            alive = (alive[:, None, :] * cont[None, :, :]).reshape(-1, n)
        succ, cost = succ.reshape(-1), cost.reshape(-1)
    keep = frontier_indices(cost, succ)
    shape = [len(o) for o in options]
    points = []
    for flat in keep:
        idx = np.unravel_index(flat, shape)
        chosen = [options[k][i] for k, i in enumerate(idx)]
        points.append(
            PolicyPoint(
                tuple(str(m) for m in sequence),
                str(fallback),
                tuple(float(c[0]) for c in chosen),
                tuple(float(c[1]) for c in chosen),
                float(succ[flat]),
                float(cost[flat]),
            )
        )
    return points


def replay_point(
    point: PolicyPoint,
    p: Sequence[np.ndarray],
    correct: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    fallback_correct: np.ndarray,
    fallback_cost: np.ndarray,
) -> tuple[float, float]:
    """(successes, cost) of one staged policy on requests it was not searched on, every call
    paid: `p[k]`, `correct[k]` and `costs[k]` are the stage-k probability, truth and call cost
    of the models of `point.sequence` (the same rule as `search_sequence`)."""
    alive = np.ones(len(fallback_correct), dtype=bool)
    succ = cost = 0.0
    for k in range(len(point.sequence)):
        last = k == len(point.sequence) - 1
        accept = alive & (p[k] >= point.accept_at[k])
        escalate = alive & ~accept & ((p[k] < point.escalate_below[k]) | last)
        cost += float(costs[k][alive].sum() + fallback_cost[escalate].sum())
        succ += float(correct[k][accept].sum() + fallback_correct[escalate].sum())
        alive &= ~accept & ~escalate
    if not point.sequence:
        succ, cost = float(fallback_correct.sum()), float(fallback_cost.sum())
    return succ, cost


def frontier_indices(cost: np.ndarray, succ: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (cheaper or equal cost, more success)."""
    order = np.lexsort((-succ, cost))  # by cost, then most success first
    best = -np.inf
    keep = []
    for i in order:
        if succ[i] > best + 1e-12:
            keep.append(i)
            best = succ[i]
    return np.array(keep, dtype=int)


def build_frontier(points: Sequence[PolicyPoint]) -> list[PolicyPoint]:
    """The points of several searches that no other point beats, by ascending cost."""
    if not points:
        return []
    cost = np.array([p.cost for p in points])
    succ = np.array([p.successes for p in points])
    return [points[i] for i in frontier_indices(cost, succ)]


def pick_at_value(points: Sequence[PolicyPoint], value_per_success: float) -> PolicyPoint:
    """The point maximizing value * successes - cost (ties: the cheaper)."""
    gains = [value_per_success * p.successes - p.cost for p in points]
    best = max(gains)
    return min(
        (p for p, g in zip(points, gains, strict=True) if g >= best - 1e-12), key=lambda p: p.cost
    )
