"""Learn the cascade: which cheap models to call, in what order, and when to stop or escalate.

From counterfactual traces (`CascadeData`), per task type (and pooled, for unknown types):
the options, the evidence models and every staged policy on the cost-success frontier
(`cascade_fit`); then one value per success picks a frontier point in every task type at
once, the value chosen so that the picks reach `target_success_ratio` of the top model's
success on requests they did not learn from, within `max_cost_ratio` of its cost when a
budget is set (`cascade_point`: out-of-fold replays of the training requests, every call
paid). The spec records that point's figures and whether it reached the target.

The result is the plain-data spec `aco.cascade.CascadePolicy` applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from aco.cascade import ANY_TASK, KIND, SPEC_VERSION, subset_key
from aco.errors import DataError
from aco_lab.controls.cascade_data import CascadeData
from aco_lab.controls.cascade_fit import (
    CascadeSettings,
    GroupFit,
    StateCache,
    covering,
    fit_groups,
)
from aco_lab.controls.cascade_point import (
    OperatingPoint,
    choose_operating_points,
    choose_point,
    in_sample_figures,
    value_grid,
)
from aco_lab.controls.cascade_search import PolicyPoint, pick_at_value

__all__ = ["CascadeSettings", "cascade_curve_specs", "learn_cascade", "learn_cascades"]

DEFAULT_SETTINGS = CascadeSettings()


def learn_cascade(
    data: CascadeData, seed: int, settings: CascadeSettings = DEFAULT_SETTINGS
) -> dict:
    """The learned cascade spec (plain data) from counterfactual training traces."""
    return learn_cascades(data, seed, [settings])[0]


def learn_cascades(data: CascadeData, seed: int, settings: Sequence[CascadeSettings]) -> list[dict]:
    """One spec per settings that differ only in the operating point (its target, budget
    and rule): the policies and the figures the rules read are computed once."""
    first = settings[0]
    for other in settings:
        if (
            replace(
                other,
                target_success_ratio=first.target_success_ratio,
                max_cost_ratio=first.max_cost_ratio,
                operating_point=first.operating_point,
            )
            != first
        ):
            raise DataError(
                "cascade settings: learn_cascades takes settings that differ only "
                "in target_success_ratio, max_cost_ratio and operating_point"
            )
    cache = StateCache()
    fits, typed = fit_groups(data, seed, first, cache)
    points = choose_operating_points(data, typed, seed, settings, cache)
    return [_spec(data, fits, p.value, one, p) for p, one in zip(points, settings, strict=True)]


def cascade_curve_specs(
    data: CascadeData,
    seed: int,
    settings: CascadeSettings = DEFAULT_SETTINGS,
    spread: tuple[float, float] = (0.2, 8.0),
    points: int = 40,
) -> list[dict]:
    """Specs at `points` values per success around the one chosen in sample (that value
    times geomspace(*spread)), the evidence fitted once. Replayed on held-out requests they
    trace the trade-off curve of the cascade's policies out of sample (a diagnostic:
    scripts/bench_controls.py --curve); learn_cascade's operating point picks from the same
    policies."""
    fits, typed = fit_groups(data, seed, settings, StateCache())
    values = value_grid(typed, settings)
    chosen = choose_point(
        values, in_sample_figures(typed, values), replace(settings, max_cost_ratio=None)
    ).value
    return [
        _spec(data, fits, float(chosen * factor), settings)
        for factor in np.geomspace(*spread, points)
    ]


def _spec(
    data: CascadeData,
    fits: dict[str, GroupFit],
    value: float,
    settings: CascadeSettings,
    point: OperatingPoint | None = None,
) -> dict:
    """The spec of the policies picked at one value per success."""
    typed = covering(fits)
    policies = {
        name: _policy(pick_at_value(fit.frontier, value), fit) for name, fit in fits.items()
    }
    chosen = [pick_at_value(f.frontier, value) for f in typed]
    # The baseline a cascade must beat: one model per task type, chosen on the training
    # requests (a few choices, so their own figures are nearly honest).
    single_fits = [replace(f, frontier=f.singles) for f in typed]
    values = value_grid(single_fits, settings)
    single_value = choose_point(values, in_sample_figures(single_fits, values), settings).value
    per_type = {f.name: pick_at_value(f.singles, single_value).fallback for f in single_fits}
    per_type[ANY_TASK] = pick_at_value(fits[ANY_TASK].singles, single_value).fallback
    used = (
        {m for p in policies.values() for m in [*p["sequence"], p["fallback"]]}
        | {data.top}
        | set(per_type.values())
    )
    return {
        "kind": KIND,
        "version": SPEC_VERSION,
        "top": data.top,
        "options": {
            m: {
                "tier": data.tier_of(m),
                "mean_cost": round(float(np.nanmean(data.cost[:, data.col(m)])), 8),
            }
            for m in sorted(used)
        },
        "value_per_success": round(value, 8),
        "policies": policies,
        "baseline_per_task_type": per_type,
        "train": {
            "requests": int(sum(len(f.rows) for f in typed)),
            "successes": sum(p.successes for p in chosen),
            "cost": round(sum(p.cost for p in chosen), 6),
            "top_successes": sum(f.top_successes for f in typed),
            "top_cost": round(sum(f.top_cost for f in typed), 6),
            **({} if point is None else {"operating_point": point.to_dict(settings)}),
        },
    }


def _policy(point: PolicyPoint, fit: GroupFit) -> dict:
    used = {subset_key(point.sequence[: k + 1]) for k in range(len(point.sequence))}
    return {
        "sequence": list(point.sequence),
        "fallback": point.fallback,
        "accept_at": list(point.accept_at),
        "escalate_below": list(point.escalate_below),
        "rank": list(fit.rank),
        "models": {key: model for key, model in fit.models.items() if key in used},
        "train": {
            "requests": len(fit.rows),
            "successes": point.successes,
            "cost": round(point.cost, 6),
            "top_successes": fit.top_successes,
            "top_cost": round(fit.top_cost, 6),
        },
    }
