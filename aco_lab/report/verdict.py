"""The evaluation's verdict: what the router saves at the target quality, in plain sentences.

Built from the quality goal of metrics.json (`build_quality_goal` in evaluation_report.py: the
router's cost at the target success along its curve and at its operating point, the best
baseline curve's) and the router's cost per successful task; nothing is recomputed here. An
operating point that keeps less than the target success is never quoted as a saving, and a
baseline that reaches the target for less is named, with what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aco_lab.report.document import fmt_pct, fmt_usd

if TYPE_CHECKING:
    from aco_lab.evaluate.results import Evaluation

# What to do when a baseline reaches the target for less than the router, by its curve's name.
ADVICE = {
    "best tier per task type": "ship that table (the note under the comparison table lists "
    "it), or retrain with more data",
    "random mixing of tiers": "the router adds nothing over sending a fixed share of requests "
    "to each of two tiers; retrain with more data or other features",
}
ADVICE_OTHER = "use that router instead, or retrain with more data"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verdict: one headline sentence, then the sentences behind it."""

    headline: str
    details: tuple[str, ...]
    router_wins: bool  # the router's curve reaches the target, cheaper than every baseline's
    point_keeps_target: bool  # its operating point keeps the target success


def build_verdict(ev: Evaluation, goal: dict) -> Verdict:
    """The verdict of an evaluation from its quality goal (metrics.json's `quality_goal`)."""
    ref, r = ev.reference, ev.router
    target, point = goal["target"], goal["operating_point"]
    curve, best = goal["curve_cost_fraction_at_target"], goal["best_baseline"]
    best_cost = goal["best_baseline_cost_fraction_at_target"]
    top_cps = ref.strong_cost / ref.strong_success if ref.strong_success else None
    top = f"always using the top tier (tier {max(ev.tiers)})"
    quality = f"{target:.0%} of the top tier's success"
    baseline_wins = best is not None and (curve is None or best_cost < curve)
    if curve is None:
        headline = f"This router never reaches {quality} on these requests: no saving there."
    elif baseline_wins:
        headline = (
            f"The {_short(best)} reaches {quality} at {fmt_pct(best_cost)} of the top "
            f"tier's cost, cheaper than this router's {fmt_pct(curve)}: "
            f"{ADVICE.get(_short(best), ADVICE_OTHER)}."
        )
    else:
        headline = (
            f"At {quality}, this router costs {fmt_pct(curve)} of {top}, "
            f"{fmt_pct(1 - curve)} less: about "
            f"{fmt_usd(_per_success(curve, target, top_cps))} per successful task "
            f"against {fmt_usd(top_cps)}."
        )
    details = [_point_sentence(ev, point, target, top_cps)]
    if curve is not None and baseline_wins:
        details.append(
            f"Along its threshold sweep this router reaches {quality} at "
            f"{fmt_pct(curve)} of the top tier's cost (about "
            f"{fmt_usd(_per_success(curve, target, top_cps))} per successful task "
            f"against {fmt_usd(top_cps)})."
        )
    elif baseline_wins:
        details.append(
            f"The {_short(best)} reaches it at {fmt_pct(best_cost)} of the top "
            f"tier's cost: {ADVICE.get(_short(best), ADVICE_OTHER)}."
        )
    elif best is not None:
        details.append(
            f"Of the baselines, the {_short(best)} comes closest: it needs "
            f"{fmt_pct(best_cost)} of the top tier's cost for that success."
        )
    else:
        details.append(f"No baseline reaches {quality} on these requests.")
    details.append(
        f"Quality goal (at least {goal['success_fraction_of_top']:.0%} of the top tier's success "
        f"for at most {goal['max_cost_fraction_of_top']:.0%} of its cost): "
        f"{'met' if point['met'] else 'not met'} at the operating point "
        f"({r.n_requests} held-out requests)."
    )
    return Verdict(
        headline, tuple(details), curve is not None and not baseline_wins, not point["below_target"]
    )


def _point_sentence(ev: Evaluation, point: dict, target: float, top_cps: float | None) -> str:
    r, kept = ev.router, fmt_pct(point["success_fraction_of_top"])
    cost = fmt_pct(point["cost_fraction_of_top"])
    if point["below_target"]:
        rec = ev.recommended
        fix = (
            ""
            if rec is None
            else f"; the threshold sweep's recommended point (downgrade_threshold "
            f"{rec.downgrade_threshold:g}) reaches the target"
        )
        return (
            f"The bundle's operating point keeps only {kept} of the top tier's success, "
            f"below the {target:.0%} target, so its lower cost ({cost} of the top tier's) is "
            f"not a saving at the target quality{fix}."
        )
    saved = None if not top_cps or r.cost_per_success is None else 1 - r.cost_per_success / top_cps
    return (
        f"The bundle's operating point keeps {kept} of the top tier's success at {cost} of "
        f"its cost: {fmt_usd(r.cost_per_success)} per successful task against "
        f"{fmt_usd(top_cps)} ({fmt_pct(saved)} less)."
    )


def _per_success(cost_fraction: float, target: float, top_cps: float | None) -> float | None:
    """USD per successful task at a point of the curve: its cost over the target success."""
    return None if top_cps is None else cost_fraction / target * top_cps


def _short(name: str) -> str:
    """A baseline curve's name as a sentence reads it."""
    return name.removesuffix(" (fit on training)")
