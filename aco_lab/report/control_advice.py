"""What to do with each learned run control: one plain sentence from its held-out figures, and
one line saying what the control is, for the top of its report section (report/controls.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from aco.decisions import ADVISORY
from aco_lab.controls.cascade_replay import CascadeSummary
from aco_lab.controls.context_budget import ContextResult
from aco_lab.controls.doom import DoomResult, DoomSettings
from aco_lab.controls.tool_gate import LEARNED_ADVICE, LEARNED_ENFORCED, GateResult
from aco_lab.controls.verifier_budget import VerifierResult
from aco_lab.report.document import fmt_pct, fmt_usd

GOAL_SUCCESS, GOAL_COST = 0.95, 0.20  # the cascade's goal: >= 95% of top success at <= 20% cost
MAX_LOST_SUCCESS = DoomSettings().max_lost_success_share  # the doom check's own training limit
MIN_CONTEXT_COVERAGE = 0.85  # successful held-out runs a context budget must fit

WHAT = {
    "cascade": "A cascade asks a cheap model first and calls a stronger one only when the "
    "cheap answer looks unsure.",
    "doom": "The doom check stops a run early once its chance of success has fallen so low that "
    "more steps would be money wasted.",
    "gate": "The tool gate allows or denies a tool call by what the tool has been worth to "
    "runs of the same task type.",
    "verify": "The verifier checks an answer before the run declares it done; a false DONE is "
    "a run that declared done with a wrong answer.",
    "context_budget": "The context budget caps the prompt tokens a run sends per call; what "
    "does not fit is trimmed.",
}


def _named(rows: Sequence, name: str):
    return next((r for r in rows if r.name == name), rows[0])


def cascade_advice(rows: Sequence[CascadeSummary]) -> str:
    """Turn the learned cascade on, use a cheaper baseline cascade, or leave it off."""
    learned = rows[0]
    if learned.success_ratio < GOAL_SUCCESS:
        return (
            f"Leave the learned cascade off: it keeps only {fmt_pct(learned.success_ratio)} "
            f"of the top model's success (the goal is {GOAL_SUCCESS:.0%})."
        )
    cheaper = [
        s for s in rows[1:] if s.success_ratio >= GOAL_SUCCESS and s.cost_ratio < learned.cost_ratio
    ]
    if cheaper:
        best = min(cheaper, key=lambda s: s.cost_ratio)
        return (
            f"Use the {best.name} rather than the learned cascade: it keeps "
            f"{fmt_pct(best.success_ratio)} of the top model's success at "
            f"{fmt_pct(best.cost_ratio)} of its cost, against the learned cascade's "
            f"{fmt_pct(learned.cost_ratio)}."
        )
    return (
        f"Turn the learned cascade on: it keeps {fmt_pct(learned.success_ratio)} of the top "
        f"model's success at {fmt_pct(learned.cost_ratio)} of its cost."
    )


def doom_advice(rows: Sequence[DoomResult]) -> str:
    """Turn the learned doom check on when it costs few successes, else leave it off."""
    r = _named(rows, "learned")
    saved = fmt_pct(r.saved / r.spend if r.spend else None)
    if not r.flagged:
        return (
            f"The learned doom check changes nothing here: it stopped none of the {r.runs} "
            "held-out runs; leaving it on costs nothing."
        )
    if r.successes and r.lost_success_share > MAX_LOST_SUCCESS:
        return (
            f"Leave the doom check off: on these runs it stops "
            f"{fmt_pct(r.lost_success_share)} of the runs that would have succeeded "
            f"(its limit is {MAX_LOST_SUCCESS:.0%}), to save {saved} of spend."
        )
    return (
        f"Turn the doom check on: it saves {saved} of spend and stops only "
        f"{fmt_pct(r.lost_success_share)} of the runs that would have succeeded."
    )


def gate_advice(rows: Sequence[GateResult]) -> str:
    """Which mode the learned gate runs in, why, and what its denies would touch."""
    advice, enforced = _named(rows, LEARNED_ADVICE), _named(rows, LEARNED_ENFORCED)
    share = fmt_pct(advice.denied_calls / advice.tool_calls if advice.tool_calls else None)
    if not advice.denied_calls:
        return (
            "Leave the learned tool gate on: it denies none of the held-out tool calls, so "
            "it changes nothing here."
        )
    touched = (
        f"runs that made those calls succeeded {fmt_pct(advice.denied_runs_success)} "
        f"against {fmt_pct(advice.other_runs_success)} for the others, which may be why "
        "they called them rather than a result of it"
    )
    would = (
        f"it would deny {share} of held-out tool calls ({fmt_usd(advice.denied_cost)}), "
        f"but {advice.why}; {touched}"
    )
    if advice.enforcement == ADVISORY:
        return (
            f"The learned tool gate runs advisory (every call goes ahead, a deny is recorded "
            f"as advice): {would}. Keep it advisory unless a trial shows those calls do not "
            "help."
        )
    if enforced.denied_calls == 0:
        return (
            f"The learned tool gate runs {advice.enforcement}, but none of its enforced "
            f"denies touches a held-out call, so here it only advises: {would}."
        )
    return (
        f"The learned tool gate runs {advice.enforcement}: it denies "
        f"{fmt_pct(enforced.denied_calls / enforced.tool_calls)} of held-out tool calls "
        f"({fmt_usd(enforced.denied_cost)}) and advises against {share}; {advice.why}; "
        f"{touched}."
    )


def verify_advice(rows: Sequence[VerifierResult]) -> str:
    """Turn the learned verifier on when it catches more false DONEs than it costs good ones."""
    r = _named(rows, "learned")
    if not r.false_dones:
        return (
            f"Leave the verifier off: none of the {r.dones} completed held-out runs "
            "declared done with a wrong answer."
        )
    caught = r.caught / r.false_dones
    if r.caught <= r.rejected_good or not r.verified:
        return (
            f"Leave the learned verifier off: it would catch {fmt_pct(caught)} of the false "
            f"DONEs but reject {r.rejected_good:.1f} good answers for "
            f"{r.caught:.1f} wrong ones."
        )
    return (
        f"Turn the learned verifier on: it catches {fmt_pct(caught)} of the false DONEs "
        f"({r.caught:.1f} of {r.false_dones}) by checking {fmt_pct(r.call_rate)} of "
        f"completed runs, for {fmt_usd(r.verifier_cost)} of checks "
        f"({fmt_usd(r.verifier_cost / r.dones)} per completed run), rejecting "
        f"{r.rejected_good:.1f} good answers."
    )


def context_advice(rows: Sequence[ContextResult]) -> str:
    """Use the learned context budget when it fits nearly every successful run."""
    r, rules = _named(rows, "learned"), _named(rows, "rules")
    fits = r.covered_successes / r.successful_runs if r.successful_runs else None
    vs = f" (the rules allow {rules.mean_allowance:,.0f})" if rules is not r else ""
    if fits is None:
        return "No held-out run succeeded: nothing to judge the context budget on."
    if fits < MIN_CONTEXT_COVERAGE:
        return (
            f"Keep the rule context budget: only {fmt_pct(fits)} of the successful held-out "
            f"runs fit the learned one."
        )
    return (
        f"Use the learned context budget: {fmt_pct(fits)} of the successful held-out runs "
        f"fit in its {r.mean_allowance:,.0f} tokens per call on average{vs}, and "
        f"{fmt_pct(r.trimmed_share)} of their prompt tokens would be trimmed."
    )


ADVICE = {
    "cascade": cascade_advice,
    "doom": doom_advice,
    "gate": gate_advice,
    "verify": verify_advice,
    "context_budget": context_advice,
}
