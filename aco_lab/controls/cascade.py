"""Learn the cascade: which cheap models to call, in what order, and when to stop or escalate.

From counterfactual traces (`CascadeData`), per task type (and pooled, for unknown types):

1. options: a model may be asked before the fallback (*cheap*, for short) when its mean cost
   is at most `cheap_cost_share` of the top model's. The candidates are the cheap models no
   other cheap model beats on both cost and success, topped up by success to
   `max_cheap_options`; the fallbacks (where a cascade ends when it does not trust the
   answers so far) are the other models on the cost-success frontier, the top model always
   among them;
2. evidence models: for every set of cheap models a cascade might have called, a logistic
   model of P(the candidate answer is right | answer-level evidence), the features of
   `aco.cascade.state_features` (agreement, answer form, log-probabilities). Thresholds are
   chosen on out-of-fold predictions (k folds), so they are not fitted to the models' own
   training rows;
3. policies: for every cheap sequence (cheapest first) and fallback, every combination of
   thresholds is replayed on the training requests with every call paid
   (`cascade_search`), keeping the cost-success frontier;
4. the operating point: one value per success (USD) for all task types, each picking the
   frontier point maximizing value * successes - cost; the cheapest value whose total success
   reaches `target_success_ratio` of the top model's (on training requests) is kept. That
   in-sample total is optimistic (the frontier is the best of thousands of combinations):
   `cross_fit=True` instead raises the in-sample target until the picks, learned on four
   fifths of the training requests and replayed on the fifth they did not see (every call
   paid), reach `target_success_ratio` out of sample.

The result is the plain-data spec `aco.cascade.CascadePolicy` applies.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from threadpoolctl import threadpool_limits

from aco.cascade import ANY_TASK, KIND, SPEC_VERSION, state_features, subset_key
from aco.errors import DataError
from aco_lab.controls.cascade_data import CascadeData
from aco_lab.controls.cascade_search import (
    PolicyPoint,
    StageData,
    build_frontier,
    frontier_indices,
    pick_at_value,
    replay_point,
    search_sequence,
)
from aco_lab.controls.logistic import (
    DEFAULT_C,
    build_matrix,
    fit_logistic,
    out_of_fold,
    predict_logistic,
)

log = logging.getLogger(__name__)

TARGET_STEP = 0.0025  # in-sample targets tried when calibrating on cross-fitted figures


@dataclass(frozen=True, slots=True)
class CascadeSettings:
    """How the cascade is learned; every number with its unit and reason."""

    target_success_ratio: float = 0.95  # of the top model's success, reached on training requests
    # A model may be asked before the fallback when its mean cost is at most this share of the
    # top model's: cheap models for agreement, and a mid-priced one as a last check before the
    # top (on RouterBench, 0.85 over 0.25: +0.2 points of success for 0.5 points less cost,
    # mean of six splits).
    cheap_cost_share: float = 0.85
    max_cheap_options: int = 5  # candidates asked before the fallback (the search grows as 2**n)
    max_cheap_calls: int = 3  # cheap answers a cascade may ask for before it must decide
    min_requests: int = 40  # a task type with fewer training requests uses the pooled policy
    min_available: float = 0.95  # a model is an option when it answered this share of requests
    folds: int = 5  # out-of-fold predictions for choosing thresholds honestly
    C: float = DEFAULT_C  # inverse L2 strength of the evidence models
    values_per_success: int = 400  # value-per-success grid size of the operating point
    # Count an accepted answer as its out-of-fold P(right) rather than its 0/1 outcome when
    # comparing policies: choosing among thousands of threshold combinations on a few hundred
    # requests otherwise picks the ones that fit the outcomes' noise (winner's curse).
    expected_successes: bool = True
    # Calibrate the target on cross-fitted figures (`_calibrate_target`): the in-sample target
    # whose picks, learned without a fold and replayed on it, reach target_success_ratio. Honest
    # but dear: on RouterBench (six splits) the held-out success rises from 94.6% to 96.7% and
    # the cost from 18.4% to 32.3% of the top's, and learning takes 4x longer; so off by default.
    cross_fit: bool = False
    select_folds: int = 5  # folds of that cross-fitting


@dataclass(frozen=True, slots=True)
class GroupFit:
    """One task type's (or the pooled) candidate policies and evidence models."""

    name: str
    rows: np.ndarray  # row indices of the CascadeData used
    rank: tuple[str, ...]  # options by training success, best first
    frontier: tuple[PolicyPoint, ...]
    models: dict  # subset key -> plain logistic model
    top_successes: float  # successes of the top model on these rows
    top_cost: float  # USD of the top model on these rows
    singles: tuple[PolicyPoint, ...]  # every option alone: the per-task-type baseline's choices
    options: tuple[str, ...] = ()  # the models answering every request in `rows`


def learn_cascade(data: CascadeData, seed: int,
                  settings: CascadeSettings = CascadeSettings()) -> dict:
    """The learned cascade spec (plain data) from counterfactual training traces."""
    fits, typed = _fit_groups(data, seed, settings)
    crossed, target = None, settings.target_success_ratio
    if settings.cross_fit:
        with threadpool_limits(limits=1, user_api="blas"):
            target, crossed = _calibrate_target(data, typed, seed, settings)
    value = _choose_value(typed, replace(settings, target_success_ratio=target))
    return _spec(data, fits, value, settings, target, crossed)


def cascade_curve_specs(data: CascadeData, seed: int,
                        settings: CascadeSettings = CascadeSettings(),
                        spread: tuple[float, float] = (0.2, 8.0), points: int = 40
                        ) -> list[dict]:
    """Specs at `points` values per success around the one learn_cascade chooses (that value
    times geomspace(*spread)), the evidence fitted once. Replayed on held-out requests they
    trace the cascade's out-of-sample trade-off curve (a diagnostic: scripts/bench_controls.py
    --curve), of which learn_cascade's operating point is one point."""
    fits, typed = _fit_groups(data, seed, settings)
    chosen = _choose_value(typed, settings)
    return [_spec(data, fits, float(chosen * factor), settings, settings.target_success_ratio)
            for factor in np.geomspace(*spread, points)]


def _fit_groups(data: CascadeData, seed: int, settings: CascadeSettings
                ) -> tuple[dict[str, GroupFit], list[GroupFit]]:
    """Every group's fit, and the fits that cover each request once (task types, else pooled)."""
    with threadpool_limits(limits=1, user_api="blas"):  # small products: threads only contend
        fits = {name: _fit_group(data, name, rows, seed, settings)
                for name, rows in _groups(data, settings).items()}
    return fits, _covering(fits)


def _covering(fits: dict[str, GroupFit]) -> list[GroupFit]:
    """The fits that cover each request once: the task types', else the pooled one."""
    return [f for name, f in fits.items() if name != ANY_TASK] or [fits[ANY_TASK]]


def _spec(data: CascadeData, fits: dict[str, GroupFit], value: float,
          settings: CascadeSettings, target: float, crossed: np.ndarray | None = None) -> dict:
    """The spec of the policies picked at one value per success."""
    typed = _covering(fits)
    policies = {name: _policy(pick_at_value(fit.frontier, value), fit)
                for name, fit in fits.items()}
    chosen = [pick_at_value(f.frontier, value) for f in typed]
    # The baseline a cascade must beat: one model per task type, chosen the same way.
    single_fits = [replace(f, frontier=f.singles) for f in typed]
    single_value = _choose_value(single_fits, settings)
    per_type = {f.name: pick_at_value(f.singles, single_value).fallback for f in single_fits}
    per_type[ANY_TASK] = pick_at_value(fits[ANY_TASK].singles, single_value).fallback
    used = ({m for p in policies.values() for m in [*p["sequence"], p["fallback"]]}
            | {data.top} | set(per_type.values()))
    return {
        "kind": KIND, "version": SPEC_VERSION, "top": data.top,
        "options": {m: {"tier": data.tier_of(m),
                        "mean_cost": round(float(np.nanmean(data.cost[:, data.col(m)])), 8)}
                    for m in sorted(used)},
        "value_per_success": round(value, 8),
        "policies": policies,
        "baseline_per_task_type": per_type,
        "train": {"requests": int(sum(len(f.rows) for f in typed)),
                  "successes": sum(p.successes for p in chosen),
                  "cost": round(sum(p.cost for p in chosen), 6),
                  "top_successes": sum(f.top_successes for f in typed),
                  "top_cost": round(sum(f.top_cost for f in typed), 6),
                  "target_success_ratio": settings.target_success_ratio,
                  "in_sample_target": round(target, 4),
                  **({} if crossed is None else {"cross_fitted": _crossed_figures(crossed)})},
    }


def _groups(data: CascadeData, settings: CascadeSettings) -> dict[str, np.ndarray]:
    types = np.array([t or "" for t in data.task_types], dtype=object)
    groups = {ANY_TASK: np.arange(data.n_requests)}
    for name in sorted(set(types.tolist()) - {""}):
        rows = np.flatnonzero(types == name)
        if len(rows) >= settings.min_requests:
            groups[name] = rows
    return groups


def _fit_group(data: CascadeData, name: str, rows: np.ndarray, seed: int,
               settings: CascadeSettings) -> GroupFit:
    avail = data.available[rows]
    cols = [j for j in range(len(data.options))
            if avail[:, j].mean() >= settings.min_available or data.options[j] == data.top]
    rows = rows[avail[:, cols].all(axis=1)]
    if len(rows) < 2:
        raise DataError(f"cascade: task type {name!r}: fewer than 2 requests answered by the top "
                        f"model {data.top} and the others; add counterfactual traces")
    options = [data.options[j] for j in cols]
    success = {m: data.success[rows, data.col(m)] for m in options}
    cost = {m: data.cost[rows, data.col(m)] for m in options}
    cheap, fallbacks = _choose_options(options, success, cost, data.top, settings)
    rank = tuple(sorted(options, key=lambda m: (-success[m].mean(), -data.tier_of(m), m)))
    stages, models = _evidence(data, rows, cheap, rank, seed, settings)
    points: list[PolicyPoint] = []
    for size in range(0, min(len(cheap), settings.max_cheap_calls) + 1):
        for subset in itertools.combinations(cheap, size):  # cheap is sorted: cheapest first
            staged = []
            for k, m in enumerate(subset):
                p, y = stages[subset_key(subset[:k + 1])]
                staged.append(StageData(p, p if settings.expected_successes else y, cost[m]))
            for fb in fallbacks:
                points += search_sequence(subset, fb, staged, success[fb], cost[fb])
    frontier = tuple(build_frontier(points))
    log.info("cascade %s: %d requests, cheap %s, fallbacks %s, %d frontier points",
             name, len(rows), cheap, fallbacks, len(frontier))
    singles = tuple(build_frontier([PolicyPoint((), m, (0.0,), (0.0,), float(success[m].sum()),
                                                float(cost[m].sum())) for m in options]))
    return GroupFit(name, rows, rank, frontier, models, float(success[data.top].sum()),
                    float(cost[data.top].sum()), singles, tuple(options))


def _choose_options(options: Sequence[str], success: dict, cost: dict, top: str,
                    settings: CascadeSettings) -> tuple[list[str], list[str]]:
    mean_cost = {m: float(cost[m].mean()) for m in options}
    rate = {m: float(success[m].mean()) for m in options}
    limit = settings.cheap_cost_share * mean_cost[top]
    cheap = [m for m in options if m != top and mean_cost[m] <= limit]
    dear = [m for m in options if m not in cheap]

    def efficient(models: list[str]) -> list[str]:
        if not models:
            return []
        keep = frontier_indices(np.array([mean_cost[m] for m in models]),
                                np.array([rate[m] for m in models]))
        return [models[i] for i in keep]

    chosen = efficient(cheap)[: settings.max_cheap_options]
    for m in sorted(cheap, key=lambda m: (-rate[m], mean_cost[m], m)):
        if len(chosen) >= settings.max_cheap_options:
            break
        if m not in chosen:
            chosen.append(m)
    fallbacks = sorted(set(efficient(dear)) | {top}, key=lambda m: (mean_cost[m], m))
    return sorted(chosen, key=lambda m: (mean_cost[m], m)), fallbacks


def _evidence(data: CascadeData, rows: np.ndarray, cheap: Sequence[str], rank: Sequence[str],
              seed: int, settings: CascadeSettings
              ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, dict]]:
    # Per set of called models: out-of-fold P(candidate right), the truth, and the full model.
    stages, models = {}, {}
    for size in range(1, min(len(cheap), settings.max_cheap_calls) + 1):
        for subset in itertools.combinations(cheap, size):
            key = subset_key(subset)
            candidates, feats = [], []
            for i in rows:
                model, f = state_features([data.answer(int(i), m) for m in subset], rank)
                candidates.append(data.col(model))
                feats.append(f)
            X, names = build_matrix(feats)
            y = data.success[rows, np.array(candidates)]
            models[key] = fit_logistic(X, y, names, settings.C)
            stages[key] = (out_of_fold(X, y, names, settings.folds, seed, settings.C), y)
    return stages, models


def _value_grid(fits: Sequence[GroupFit], settings: CascadeSettings) -> np.ndarray:
    per_request = sum(f.top_cost for f in fits) / max(1, sum(len(f.rows) for f in fits))
    return np.geomspace(per_request * 1e-3, per_request * 1e5, settings.values_per_success)


def _calibrate_target(data: CascadeData, fits: Sequence[GroupFit], seed: int,
                      settings: CascadeSettings) -> tuple[float, np.ndarray]:
    """The in-sample success target whose picks reach `target_success_ratio` out of sample.

    The training requests are cut in `select_folds` folds; on each, the whole learning (evidence
    models, search, common value for an in-sample target) runs on the other folds and its
    picks are replayed on the fold, every call paid. -> (in-sample target, the cross-fitted
    successes, cost, top successes and top cost at that target)."""
    rows = np.concatenate([f.rows for f in fits])
    order = np.random.default_rng(seed + 1).permutation(len(rows))
    fold_of = np.full(data.n_requests, -1)
    fold_of[rows[order]] = np.arange(len(rows)) % max(2, min(settings.select_folds, len(rows)))
    targets = np.unique(np.round(np.concatenate([
        np.arange(settings.target_success_ratio, 1.0 + 1e-9, TARGET_STEP),
        [settings.target_success_ratio]]), 4))
    top = data.col(data.top)
    groups = {f.name: f.rows for f in fits}
    out = np.zeros((len(targets), 4))
    for k in range(max(fold_of) + 1):
        inner = [_fit_group(data, f.name, f.rows[fold_of[f.rows] != k], seed, settings)
                 for f in fits]
        values = _value_grid(inner, settings)
        succ, cost = _value_curve(inner, values)
        need = sum(f.top_successes for f in inner)
        replayed: dict[tuple[str, int], tuple[float, float]] = {}
        stage_p: dict[str, dict] = {f.name: {} for f in inner}
        tests = {}
        for f in inner:
            test = groups[f.name][fold_of[groups[f.name]] == k]
            cols = [data.col(m) for m in f.options]
            tests[f.name] = test[data.available[np.ix_(test, cols)].all(axis=1)]
        for t, target in enumerate(targets):
            value = _pick_value(values, succ, cost, target * need)
            for f in inner:
                test = tests[f.name]
                point = pick_at_value(f.frontier, value)
                key = (f.name, id(point))
                if key not in replayed:
                    replayed[key] = _replay_on(data, test, point, f, stage_p[f.name])
                out[t] += (*replayed[key], data.success[test, top].sum(),
                           data.cost[test, top].sum())
    reach = np.flatnonzero(out[:, 0] >= settings.target_success_ratio * out[:, 2] - 1e-9)
    if not len(reach):
        log.warning("cascade: %.0f%% of the top model's success is out of reach on "
                    "cross-fitted training requests; aiming at the most successful policies",
                    100 * settings.target_success_ratio)
        best = len(targets) - 1
    else:
        best = int(reach[np.argmin(out[reach, 1])])
    return float(targets[best]), out[best]


def _replay_on(data: CascadeData, rows: np.ndarray, point: PolicyPoint, fit: GroupFit,
               stage_p: dict) -> tuple[float, float]:
    # A policy learned elsewhere, on these requests: evidence from fit.models, outcomes real.
    p, correct = [], []
    for k in range(len(point.sequence)):
        key = subset_key(point.sequence[:k + 1])
        if key not in stage_p:
            feats, candidates = [], []
            for i in rows:
                model, f = state_features([data.answer(int(i), m) for m in point.sequence[:k + 1]],
                                          fit.rank)
                candidates.append(data.col(model))
                feats.append(f)
            names = fit.models[key]["features"]
            X, _ = build_matrix(feats, names)
            stage_p[key] = (predict_logistic(fit.models[key], X, names),
                            data.success[rows, np.array(candidates)])
        p.append(stage_p[key][0])
        correct.append(stage_p[key][1])
    costs = [data.cost[rows, data.col(m)] for m in point.sequence]
    fb = data.col(point.fallback)
    return replay_point(point, p, correct, costs, data.success[rows, fb], data.cost[rows, fb])


def _crossed_figures(row: np.ndarray) -> dict:
    succ, cost, top_succ, top_cost = row
    return {"successes": float(succ), "cost": round(float(cost), 6),
            "top_successes": float(top_succ), "top_cost": round(float(top_cost), 6)}


def _value_curve(fits: Sequence[GroupFit], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-sample (successes, cost) in total of the picks at each value per success."""
    succ, cost = np.zeros(len(values)), np.zeros(len(values))
    for f in fits:
        for i, value in enumerate(values):
            p = pick_at_value(f.frontier, float(value))
            succ[i] += p.successes
            cost[i] += p.cost
    return succ, cost


def _pick_value(values: np.ndarray, succ: np.ndarray, cost: np.ndarray, needed: float
                ) -> float:
    # The cheapest value whose picks reach `needed` successes; the largest when none does.
    reach = np.flatnonzero(succ >= needed - 1e-9)
    return float(values[reach[np.argmin(cost[reach])]]) if len(reach) else float(values[-1])


def _choose_value(fits: Sequence[GroupFit], settings: CascadeSettings) -> float:
    values = _value_grid(fits, settings)
    succ, cost = _value_curve(fits, values)
    needed = settings.target_success_ratio * sum(f.top_successes for f in fits)
    if not (succ >= needed - 1e-9).any():  # out of reach: the most successful policies
        log.warning("cascade: %.0f%% of the top model's success is out of reach on training "
                    "requests; using the most successful policies",
                    100 * settings.target_success_ratio)
    return _pick_value(values, succ, cost, needed)


def _policy(point: PolicyPoint, fit: GroupFit) -> dict:
    used = {subset_key(point.sequence[:k + 1]) for k in range(len(point.sequence))}
    return {
        "sequence": list(point.sequence), "fallback": point.fallback,
        "accept_at": list(point.accept_at), "escalate_below": list(point.escalate_below),
        "rank": list(fit.rank),
        "models": {key: model for key, model in fit.models.items() if key in used},
        "train": {"requests": len(fit.rows), "successes": point.successes,
                  "cost": round(point.cost, 6), "top_successes": fit.top_successes,
                  "top_cost": round(fit.top_cost, 6)},
    }
