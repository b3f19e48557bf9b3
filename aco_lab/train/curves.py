"""Cost-success curves and the area metrics routers are compared by in the literature.

Every policy is a set of (cost per request, success rate) points. Mixing two policies at
random (route a request by one or the other with a seeded coin) realises any point on the
segment between them, so what a family of policies can achieve is the upper-left part of
the convex hull of its points: the *non-decreasing convex hull* ("frontier").

- AIQ (RouterBench, Hu et al. 2024): the average success over a cost range along the
  frontier, i.e. the area under the frontier divided by the width of the range.
- APGR (RouteLLM, Ong et al. 2024): the average, over the cost range from the weakest to the
  strongest model, of the performance gap recovered,
  PGR(c) = (success(c) - weak success) / (strong success - weak success).
- CPT(x%): the cost needed to recover x% of that gap, as a fraction of the way from the weak
  model's cost to the strong model's (RouteLLM states it as the share of calls sent to the
  strong model, which is the same number when there are two models).

All functions are pure and work on numpy arrays or tuples; nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# The success levels, as fractions of the top tier's success, at which cost is reported.
COST_AT_FRACTIONS = (0.80, 0.90, 0.95, 1.00)
# The gap-recovered levels of RouteLLM's call-performance thresholds.
CPT_LEVELS = (0.50, 0.80)
# Default thresholds swept: a fine grid over 0..1 (probabilities), endpoints included.
DEFAULT_THRESHOLDS = tuple(round(x, 3) for x in np.linspace(0.0, 1.0, 101))


@dataclass(frozen=True, slots=True)
class Curve:
    """A policy family's cost-success points, e.g. one per threshold."""

    name: str
    costs: tuple[float, ...]  # USD per request
    successes: tuple[float, ...]  # success rate 0..1
    params: tuple[float, ...] = ()  # the threshold (or trade-off) that produced each point


@dataclass(frozen=True, slots=True)
class Reference:
    """The anchors area metrics are measured against: the weak and strong single tiers."""

    weak_cost: float
    weak_success: float
    strong_cost: float  # the top tier's cost per request
    strong_success: float  # the top tier's success rate
    cost_lo: float  # the cost range AIQ averages over (USD per request)
    cost_hi: float


@dataclass(frozen=True, slots=True)
class AreaMetrics:
    """A curve summarised the way RouterBench and RouteLLM summarise routers."""

    aiq: float
    apgr: float
    cpt: tuple[tuple[float, float | None], ...]  # (gap level, cost fraction weak->strong)
    cost_at: tuple[tuple[float, float | None], ...]  # (fraction of top success, USD/request)
    cost_fraction_at: tuple[tuple[float, float | None], ...]  # same, / top tier's cost

    def to_dict(self) -> dict:
        """Plain JSON-ready values, keys as percentages ("95")."""
        return {
            "aiq": self.aiq,
            "apgr": self.apgr,
            "cpt": {_pct(k): v for k, v in self.cpt},
            "cost_at": {_pct(k): v for k, v in self.cost_at},
            "cost_fraction_at": {_pct(k): v for k, v in self.cost_fraction_at},
        }


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}"


def build_frontier(
    costs: Sequence[float], successes: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing convex hull of (cost, success) points, sorted by cost."""
    c = np.asarray(costs, dtype=float)
    s = np.asarray(successes, dtype=float)
    keep = np.isfinite(c) & np.isfinite(s)
    if not keep.any():
        return np.empty(0), np.empty(0)
    # Sort by cost, then by success descending so the best point at a cost comes first.
    order = np.lexsort((-s[keep], c[keep]))
    pts = np.column_stack((c[keep][order], s[keep][order]))
    hull: list[np.ndarray] = []
    for p in pts:
        if hull and p[0] == hull[-1][0]:
            continue  # same cost, lower success: dominated
        # Pop points that lie on or below the segment from the one before to p (upper hull).
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()
        hull.append(p)
    arr = np.array(hull)
    # Past the best success the upper hull goes down; a policy never needs to go there.
    best = int(np.argmax(arr[:, 1]))
    arr = arr[: best + 1]
    return arr[:, 0].copy(), arr[:, 1].copy()


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def frontier_success(fc: np.ndarray, fs: np.ndarray, cost: np.ndarray | float) -> np.ndarray:
    """Success the frontier reaches at a cost: 0 below its cheapest point, flat past its last."""
    cost = np.asarray(cost, dtype=float)
    if fc.size == 0:
        return np.zeros_like(cost)
    value = np.interp(cost, fc, fs, left=0.0, right=float(fs[-1]))
    return np.where(cost < fc[0], 0.0, value)


def frontier_cost_at(fc: np.ndarray, fs: np.ndarray, target: float) -> float | None:
    """The least cost at which the frontier reaches a success rate; None if it never does."""
    if fs.size == 0 or fs[-1] < target - 1e-12:
        return None
    if fs[0] >= target - 1e-12:  # the same tolerance as the test above: never step past the end
        return float(fc[0])
    i = int(np.searchsorted(fs, target))  # fs is increasing along the frontier
    if i >= fs.size:  # target within the tolerance above the last point
        return float(fc[-1])
    c0, c1, s0, s1 = fc[i - 1], fc[i], fs[i - 1], fs[i]
    return float(c0 + (target - s0) * (c1 - c0) / (s1 - s0))


def _area(fc: np.ndarray, fs: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral of the piecewise-linear frontier over [lo, hi] (0 left of its start)."""
    if fc.size == 0 or hi <= lo:
        return 0.0
    start = max(lo, float(fc[0]))
    if start >= hi:
        return 0.0
    knots = np.concatenate(([start], fc[(fc > start) & (fc < hi)], [hi]))
    values = np.interp(knots, fc, fs)
    return float(np.sum((values[1:] + values[:-1]) * np.diff(knots) / 2.0))


def build_area_metrics(curve: Curve, ref: Reference) -> AreaMetrics:
    """AIQ, APGR, CPT and cost at fractions of the top tier's success, for one curve."""
    fc, fs = build_frontier(curve.costs, curve.successes)
    width = ref.cost_hi - ref.cost_lo
    aiq = _area(fc, fs, ref.cost_lo, ref.cost_hi) / width if width > 0 else float(fs.max(initial=0))
    gap = ref.strong_success - ref.weak_success
    span = ref.strong_cost - ref.weak_cost
    apgr = float("nan")
    if gap > 0 and span > 0:
        mean_success = _area(fc, fs, ref.weak_cost, ref.strong_cost) / span
        apgr = (mean_success - ref.weak_success) / gap
    cpt = []
    for level in CPT_LEVELS:
        c = frontier_cost_at(fc, fs, ref.weak_success + level * gap) if gap > 0 else None
        cpt.append(
            (level, None if c is None or span <= 0 else max(0.0, (c - ref.weak_cost) / span))
        )
    cost_at, fraction_at = [], []
    for frac in COST_AT_FRACTIONS:
        c = frontier_cost_at(fc, fs, frac * ref.strong_success)
        cost_at.append((frac, c))
        fraction_at.append(
            (frac, None if c is None or ref.strong_cost <= 0 else c / ref.strong_cost)
        )
    return AreaMetrics(aiq, apgr, tuple(cpt), tuple(cost_at), tuple(fraction_at))


def build_reference(
    single_costs: dict[int, float], single_successes: dict[int, float], top_tier: int
) -> Reference:
    """Anchors from the single-tier points: weak = the cheapest tier, strong = the top tier."""
    weak = min(single_costs, key=lambda t: (single_costs[t], t))
    return Reference(
        weak_cost=single_costs[weak],
        weak_success=single_successes[weak],
        strong_cost=single_costs[top_tier],
        strong_success=single_successes[top_tier],
        cost_lo=min(single_costs.values()),
        cost_hi=max(single_costs.values()),
    )


def build_sweep(
    decide: Callable[[float], np.ndarray],
    score: Callable[[np.ndarray], tuple[float, float]],
    thresholds: Sequence[float],
    name: str = "router",
) -> Curve:
    """The curve of a thresholded policy: decide(t) -> tiers, score(tiers) -> (cost, success)."""
    costs, successes = [], []
    for t in thresholds:
        cost, success = score(decide(float(t)))
        costs.append(cost)
        successes.append(success)
    return Curve(name, tuple(costs), tuple(successes), tuple(float(t) for t in thresholds))


def choose_point(curve: Curve, target_success: float) -> int | None:
    """Index of the cheapest point reaching a success rate (ties: higher success); else None."""
    best = None
    for i, (c, s) in enumerate(zip(curve.costs, curve.successes, strict=True)):
        if s + 1e-12 < target_success:
            continue
        if best is None or (c, -s) < (curve.costs[best], -curve.successes[best]):
            best = i
    return best
