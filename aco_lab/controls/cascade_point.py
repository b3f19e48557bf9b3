"""The cascade's operating point: one value per success, chosen on requests the policies did not
learn from.

Each group's frontier (`cascade_fit`) runs from cheap policies to dear ones; one value per
success (USD) picks, in every group, the point maximizing value * successes - cost. The value
is chosen on a grid, by the successes and cost its picks reach:

- out of fold (the default): the training requests are cut in `select_folds` folds by request;
  for each fold, every group is fitted again without it (evidence models, search) and its
  picks at every value are replayed on the fold, every call paid. Summed over the folds,
  each value gets the successes and cost of policies on requests they did not learn from,
  beside the top model's on the same requests;
- in sample: the frontier's own training figures (accepted answers counted at their
  out-of-fold P(right)): optimistic, since the frontier is the best of thousands of
  threshold combinations on these requests.

The rule is the same for both: the cheapest value (by the measured cost) whose success reaches
`target_success_ratio` of the top model's, within `max_cost_ratio` of its cost when a budget
is set; when no value does, the most successful one within the budget (the cheapest one when
none is within it), and the point records that it falls short.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from aco_lab.controls.cascade_data import CascadeData
from aco_lab.controls.cascade_fit import (
    CascadeSettings,
    GroupFit,
    StateCache,
    fit_group,
    replay_fit,
)
from aco_lab.controls.cascade_search import pick_at_value

log = logging.getLogger(__name__)

EPS = 1e-9  # successes and USD: ties in the rule are decided by value, not by rounding


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The chosen value per success and the figures the rule chose it on."""

    value: float  # USD per success
    rule: str  # "out_of_fold" or "in_sample"
    folds: int  # folds of the out-of-fold figures; 0 in sample
    successes: float  # of the picks, on the requests the rule measured
    cost: float  # USD, every call paid
    top_successes: float  # of the top model on the same requests
    top_cost: float
    reached: bool  # the target was reached (within the budget, when one is set)

    def to_dict(self, settings: CascadeSettings) -> dict:
        """Plain figures for the spec's train block."""
        return {
            "rule": self.rule,
            "folds": self.folds,
            "target_success_ratio": settings.target_success_ratio,
            "max_cost_ratio": settings.max_cost_ratio,
            "reached": self.reached,
            "successes": round(self.successes, 4),
            "cost": round(self.cost, 6),
            "top_successes": round(self.top_successes, 4),
            "top_cost": round(self.top_cost, 6),
            "success_ratio": round(_share(self.successes, self.top_successes), 4),
            "cost_ratio": round(_share(self.cost, self.top_cost), 4),
        }


def _share(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


def value_grid(fits: Sequence[GroupFit], settings: CascadeSettings) -> np.ndarray:
    """Values per success (USD) tried, around the top model's cost per request."""
    per_request = sum(f.top_cost for f in fits) / max(1, sum(len(f.rows) for f in fits))
    return np.geomspace(per_request * 1e-3, per_request * 1e5, settings.values_per_success)


def in_sample_figures(fits: Sequence[GroupFit], values: np.ndarray) -> np.ndarray:
    """(len(values), 4): successes, cost, top successes, top cost of each value's picks, on
    the fits' own requests."""
    out = np.zeros((len(values), 4))
    for f in fits:
        for i, value in enumerate(values):
            p = pick_at_value(f.frontier, float(value))
            out[i] += (p.successes, p.cost, f.top_successes, f.top_cost)
    return out


def out_of_fold_figures(
    data: CascadeData,
    fits: Sequence[GroupFit],
    values: np.ndarray,
    seed: int,
    settings: CascadeSettings,
    cache: StateCache,
) -> np.ndarray:
    """(len(values), 4) as `in_sample_figures`, each value's picks learned without a fold of
    the fits' requests and replayed on it, every call paid; summed over the folds."""
    rows = np.concatenate([f.rows for f in fits])
    order = np.random.default_rng(seed + 1).permutation(len(rows))
    fold_of = np.full(data.n_requests, -1)
    fold_of[rows[order]] = np.arange(len(rows)) % settings.select_folds
    out = np.zeros((len(values), 4))
    top = data.col(data.top)
    with threadpool_limits(limits=1, user_api="blas"):
        for k in range(settings.select_folds):
            for f in fits:
                inner = fit_group(data, f.name, f.rows[fold_of[f.rows] != k], seed, settings, cache)
                test = f.rows[fold_of[f.rows] == k]
                test = test[
                    data.available[np.ix_(test, [data.col(m) for m in inner.options])].all(axis=1)
                ]
                if not len(test):
                    continue
                tops = (data.success[test, top].sum(), data.cost[test, top].sum())
                replayed: dict[int, tuple[float, float]] = {}
                for i, value in enumerate(values):
                    point = pick_at_value(inner.frontier, float(value))
                    if id(point) not in replayed:
                        replayed[id(point)] = replay_fit(data, test, point, inner, cache)
                    out[i] += (*replayed[id(point)], *tops)
    return out


def choose_point(
    values: np.ndarray,
    figures: np.ndarray,
    settings: CascadeSettings,
    rule: str = "in_sample",
    folds: int = 0,
) -> OperatingPoint:
    """The cheapest value reaching the target within the budget; else the most successful
    value within the budget (the cheapest of those); else, none within it, the cheapest."""
    succ, cost, top_succ, top_cost = figures.T
    within = np.ones(len(values), dtype=bool)
    if settings.max_cost_ratio is not None:
        within = cost <= settings.max_cost_ratio * top_cost + EPS
    reach = within & (succ >= settings.target_success_ratio * top_succ - EPS)
    if reach.any():
        i = _first_min(np.where(reach, cost, np.inf))
    elif within.any():
        best = succ[within].max()
        i = _first_min(np.where(within & (succ >= best - EPS), cost, np.inf))
    else:
        i = _first_min(cost)
    return OperatingPoint(
        float(values[i]), rule, folds, *(float(x) for x in figures[i]), bool(reach.any())
    )


def _first_min(x: np.ndarray) -> int:
    return int(np.flatnonzero(x <= x.min() + EPS)[0])


def choose_operating_points(
    data: CascadeData,
    fits: Sequence[GroupFit],
    seed: int,
    settings: Sequence[CascadeSettings],
    cache: StateCache,
) -> list[OperatingPoint]:
    """The operating point of each settings, by the rule it names (see the module); the
    figures of each rule are measured once. The settings differ only in the point's target,
    budget and rule (`settings[0]` fits the policies)."""
    values = value_grid(fits, settings[0])
    smallest = min(len(f.rows) for f in fits)
    figures: dict[str, np.ndarray] = {}
    points = []
    for one in settings:
        rule = one.operating_point
        if rule == "out_of_fold" and smallest < 2 * one.select_folds:
            log.warning(
                "cascade: %d requests in a task type are too few for %d folds; the "
                "operating point is chosen in sample (optimistic)",
                smallest,
                one.select_folds,
            )
            rule = "in_sample"
        if rule not in figures:
            figures[rule] = (
                out_of_fold_figures(data, fits, values, seed, one, cache)
                if rule == "out_of_fold"
                else in_sample_figures(fits, values)
            )
        folds = one.select_folds if rule == "out_of_fold" else 0
        points.append(choose_point(values, figures[rule], one, rule, folds))
        _warn_short(points[-1], one)
    return points


def _warn_short(point: OperatingPoint, settings: CascadeSettings) -> None:
    if point.reached:
        return
    budget = (
        ""
        if settings.max_cost_ratio is None
        else f" within {settings.max_cost_ratio:.0%} of its cost"
    )
    log.warning(
        "cascade: %.1f%% of the top model's success%s is out of reach: the chosen "
        "point reaches %.1f%% at %.1f%% of its cost (%s figures)",
        100 * settings.target_success_ratio,
        budget,
        100 * _share(point.successes, point.top_successes),
        100 * _share(point.cost, point.top_cost),
        point.rule.replace("_", " "),
    )
