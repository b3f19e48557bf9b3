"""The operating point: thresholds and task floors chosen on requests the model did not fit.

Goal: the lowest cost per request subject to a success floor, success >= floor x the success
of always using the top tier (default floor 0.95). The rule is aco.policy's; this module
sweeps its parameters over a grid (plus "every request at its top allowed tier") and takes
the cheapest point of the grid's frontier that holds the floor. A point between two grid
policies is a *mix* of them (aco.policy.PolicyMix): a share of requests, picked by a hash of
their text, takes the second policy. Mixing reaches the frontier where single policies jump
(a per-task-type table moves whole task types at once); a floor no policy reaches is a
shortfall, which the trainer refuses unless asked to ship it.

A policy is scored on validation requests with their observed outcome at the chosen tier
where one exists (counterfactual data has every tier) and the calibrated prediction where
none does (ordinary logs observe one tier per request): success from the outcome or
P(success), cost from the observed total_cost or the request's expected cost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from aco.policy import PolicyMix, PolicyParams, build_allowed, choose_tiers
from aco_lab.train.curves import build_frontier

log = logging.getLogger(__name__)

SAFETY_GRID = (0.0, 0.1, 0.2, 0.3, 0.4)
DOWNGRADE_GRID = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98, 1.0)
SUCCESS_VALUE_GRID = (0.0, *(round(float(v), 6) for v in np.geomspace(0.01, 100.0, 25)))
# Every request at its top allowed tier: a safety threshold no calibrated probability reaches.
TOP_POLICY = (1.0, 0.0, 0.0)
MIN_MIX_SHARE = 1e-3  # a mix giving the second policy less than this is just the first
FLOOR_SHARE = 0.5  # a tier solving < half of what a task type's best tier solves is not allowed
MIN_FLOOR_ROWS = 20  # fewer runs of a (task type, tier): no opinion, the tier stays allowed


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The chosen policy and how it did on the validation requests."""

    params: PolicyParams
    task_floors: Mapping[str, int] = field(default_factory=dict)
    n_requests: int = 0
    success: float = 0.0  # success rate
    cost: float = 0.0  # USD per request
    top_success: float = 0.0  # always the top tier
    top_cost: float = 0.0
    met_floor: bool = False
    mix: PolicyMix | None = None  # the second policy and its share, when the point mixes two
    floor: float = 0.0  # the success floor asked for, as a share of the top tier's success
    aim: float = 0.0  # the success ratio the point was chosen for: floor + margin x error
    standard_error: float = 0.0  # of its success ratio (bootstrap), when a margin was asked

    @property
    def success_ratio(self) -> float:
        """Success relative to always using the top tier."""
        return self.success / self.top_success if self.top_success else float("nan")

    @property
    def cost_ratio(self) -> float:
        """Cost relative to always using the top tier."""
        return self.cost / self.top_cost if self.top_cost else float("nan")

    def to_dict(self) -> dict:
        """Plain data for the bundle's validation metrics."""
        return {
            "n_requests": self.n_requests,
            "success": self.success,
            "cost": self.cost,
            "top_success": self.top_success,
            "top_cost": self.top_cost,
            "success_ratio": self.success_ratio,
            "cost_ratio": self.cost_ratio,
            "met_floor": self.met_floor,
            "floor": self.floor,
            "shortfall": max(0.0, self.floor - self.success_ratio) if self.top_success else 0.0,
            "mix_share": 0.0 if self.mix is None else self.mix.share,
            "aim": self.aim,
            "standard_error": self.standard_error,
        }


@dataclass(frozen=True, slots=True)
class ValidationSet:
    """What a policy is scored on: per request and tier, predictions and outcomes."""

    p: np.ndarray  # (n, tiers) calibrated P(success), non-decreasing in the tier
    costs: np.ndarray  # (n, tiers) expected USD (what the policy sees)
    success: np.ndarray  # (n, tiers) observed success, nan where unobserved
    cost: np.ndarray  # (n, tiers) observed USD, nan where unobserved
    task_types: Sequence[str | None]
    configured: np.ndarray  # (tiers,) bool

    def scored(self) -> tuple[np.ndarray, np.ndarray]:
        """Success and cost tables: observed where available, else predicted."""
        success = np.where(np.isnan(self.success), self.p, self.success)
        cost = np.where(np.isnan(self.cost), self.costs, self.cost)
        return success, cost


def build_task_floors(
    task_types: Sequence[str | None], tiers: np.ndarray, success: np.ndarray
) -> dict[str, int]:
    """Per task type, the lowest tier solving >= FLOOR_SHARE of what its best tier solves."""
    floors: dict[str, int] = {}
    types = np.array([t if t is not None else "" for t in task_types], dtype=object)
    for task_type in sorted({t for t in task_types if t is not None}):
        rates = {}
        for tier in np.unique(tiers):
            mask = (types == task_type) & (tiers == tier)
            if mask.sum() >= MIN_FLOOR_ROWS:
                rates[int(tier)] = float(success[mask].mean())
        if not rates:
            continue
        best = max(rates.values())
        floor = 1
        # Raise the floor past each known weak tier, stopping at the first tier that is not.
        while floor in rates and rates[floor] < FLOOR_SHARE * best:
            floor += 1
        floors[task_type] = floor
    return floors


def request_floors(task_types: Sequence[str | None], floors: Mapping[str, int]) -> np.ndarray:
    """Each request's floor (1 when its task type has none)."""
    return np.array([floors.get(t, 1) if t is not None else 1 for t in task_types], dtype=np.int64)


def sweep(
    data: ValidationSet, floors: Mapping[str, int], cost_scale: float
) -> tuple[list[PolicyParams], np.ndarray, np.ndarray]:
    """Every grid policy with its validation success rate and cost per request."""
    success, cost = data.scored()
    allowed = build_allowed(request_floors(data.task_types, floors), data.configured)
    # aco.policy.choose_tiers, unrolled: what does not depend on a parameter is computed once,
    # and the safety threshold only overrides the chosen tier (a test checks the two agree).
    p = data.p
    p_best = np.where(allowed, p, -np.inf).max(axis=1)
    top = p.shape[1] - 1 - np.argmax(allowed[:, ::-1], axis=1)
    rows = np.arange(len(success))
    top_success, top_cost = success[rows, top], cost[rows, top]
    safety_masks = [p_best < s for s in SAFETY_GRID]
    scaled = data.costs / cost_scale
    found: dict[tuple[float, float, float], tuple[float, float]] = {}
    for downgrade in DOWNGRADE_GRID:
        candidates = allowed & (p >= downgrade * p_best[:, None])
        for value in SUCCESS_VALUE_GRID:
            chosen = np.argmax(np.where(candidates, value * p - scaled, -np.inf), axis=1)
            s_chosen, c_chosen = success[rows, chosen], cost[rows, chosen]
            for safety, mask in zip(SAFETY_GRID, safety_masks, strict=True):
                found[(safety, downgrade, value)] = (
                    float(np.where(mask, top_success, s_chosen).mean()),
                    float(np.where(mask, top_cost, c_chosen).mean()),
                )
    found[TOP_POLICY] = (float(top_success.mean()), float(top_cost.mean()))
    keys = sorted(found)  # safety, then downgrade, then value: a fixed order for ties
    points = [PolicyParams(s, d, v, cost_scale) for s, d, v in keys]
    return points, np.array([found[k][0] for k in keys]), np.array([found[k][1] for k in keys])


def choose_operating_point(
    data: ValidationSet,
    success_floor: float,
    cost_scale: float,
    candidate_floors: Mapping[str, int] | None = None,
    salt: int = 0,
    margin: float = 0.0,
) -> OperatingPoint:
    """The cheapest frontier point of the grid with success >= success_floor x the top tier's
    success (a mix of two grid policies where it lies between them); when no policy reaches
    the floor, the most successful one (met_floor False).

    With a margin, the point is chosen for the floor plus `margin` standard errors of its
    success ratio (a bootstrap over the requests, seeded by salt): on other requests of the
    same kind its success then falls below the floor less often."""
    point = _choose(data, success_floor, cost_scale, candidate_floors, salt)
    if margin > 0 and point.met_floor:
        error = success_ratio_error(data, point, salt)
        aim = success_floor + margin * error
        if aim > success_floor:
            tighter = _choose(data, aim, cost_scale, candidate_floors, salt)
            point = replace(
                tighter,
                floor=success_floor,
                aim=aim,
                standard_error=error,
                met_floor=bool(tighter.success_ratio >= success_floor - 1e-9),
            )
    if not point.met_floor:
        log.warning(
            "no policy reached %.0f%% of the top tier's success; the most successful "
            "one keeps %.1f%%",
            100 * success_floor,
            100 * point.success_ratio,
        )
    return point


def _choose(
    data: ValidationSet,
    success_floor: float,
    cost_scale: float,
    candidate_floors: Mapping[str, int] | None,
    salt: int,
) -> OperatingPoint:
    success, cost = data.scored()
    top = int(np.flatnonzero(data.configured)[-1])
    top_success, top_cost = float(success[:, top].mean()), float(cost[:, top].mean())
    options = [{}] if not candidate_floors else [{}, dict(candidate_floors)]
    best: OperatingPoint | None = None
    for floors in options:
        points, s, c = sweep(data, floors, cost_scale)
        first, second, share = _pick_mix(s, c, success_floor * top_success)
        mix = None if second is None else PolicyMix(points[second], share, salt)
        s_mix = s[first] if second is None else (1 - share) * s[first] + share * s[second]
        c_mix = c[first] if second is None else (1 - share) * c[first] + share * c[second]
        candidate = OperatingPoint(
            params=points[first],
            task_floors=floors,
            n_requests=len(success),
            success=float(s_mix),
            cost=float(c_mix),
            top_success=top_success,
            top_cost=top_cost,
            met_floor=bool(s_mix >= success_floor * top_success - 1e-9),
            mix=mix,
            floor=success_floor,
            aim=success_floor,
        )
        if best is None or _better(candidate, best):
            best = candidate
    assert best is not None
    return best


BOOTSTRAP_SAMPLES = 200


def success_ratio_error(data: ValidationSet, point: OperatingPoint, seed: int) -> float:
    """Standard error of a point's success over the top tier's, over Poisson-bootstrap
    replicates of the requests (the mix counted at its share)."""
    success, _ = data.scored()
    allowed = build_allowed(request_floors(data.task_types, point.task_floors), data.configured)
    rows = np.arange(len(success))
    mine = success[rows, choose_tiers(data.p, data.costs, allowed, point.params)[0]]
    if point.mix is not None:
        second = success[rows, choose_tiers(data.p, data.costs, allowed, point.mix.params)[0]]
        mine = (1 - point.mix.share) * mine + point.mix.share * second
    top = success[:, int(np.flatnonzero(data.configured)[-1])]
    weights = np.random.default_rng(seed).poisson(1.0, (BOOTSTRAP_SAMPLES, len(rows)))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = (weights @ mine) / (weights @ top)
    return float(np.nanstd(ratios))


def _pick_mix(s: np.ndarray, c: np.ndarray, needed: float) -> tuple[int, int | None, float]:
    """(first policy, second policy or None, the second's share): the cheapest point of the
    frontier of (c, s) holding `needed` success; else the most successful policy alone."""
    fc, fs = build_frontier(c, s)
    if fs.size == 0 or fs[-1] < needed - 1e-12:
        return int(np.lexsort((c, -s))[0]), None, 0.0
    j = int(np.searchsorted(fs, needed - 1e-12))
    lower = _vertex(s, c, fs[max(j - 1, 0)], fc[max(j - 1, 0)])
    upper = _vertex(s, c, fs[j], fc[j])
    if j == 0:
        return upper, None, 0.0
    share = float((needed - fs[j - 1]) / (fs[j] - fs[j - 1]))
    if share < MIN_MIX_SHARE:
        return lower, None, 0.0
    if share > 1.0 - MIN_MIX_SHARE:
        return upper, None, 0.0
    return lower, upper, share


def _vertex(s: np.ndarray, c: np.ndarray, success: float, cost: float) -> int:
    """The first grid policy at a frontier vertex (the grid's fixed order breaks ties)."""
    return int(np.flatnonzero((s == success) & (c == cost))[0])


def _better(a: OperatingPoint, b: OperatingPoint) -> bool:
    if a.met_floor != b.met_floor:
        return a.met_floor
    if a.met_floor:
        return a.cost < b.cost - 1e-15
    return a.success > b.success + 1e-15
