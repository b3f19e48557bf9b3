"""The controls' part of the evaluation report: a section per control against its rule version.

`build_controls_sections` gives report sections (aco_lab/report/document.py),
`build_controls_metrics` the metrics.json part, `write_cascade_evaluation` the output folder of
`aco-lab evaluate --policy cascade` (decisions.jsonl, metrics.json, report.md, report.html).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aco_lab.controls.cascade_replay import (
    CascadeDecisionLine,
    CascadeSummary,
    write_decisions,
)
from aco_lab.controls.suite import ControlsEvaluation
from aco_lab.files import write_text
from aco_lab.report.control_advice import ADVICE, GOAL_COST, GOAL_SUCCESS, WHAT
from aco_lab.report.document import (
    CALLOUT_INFO,
    Callout,
    Document,
    Section,
    build_table,
    dumps_json,
    fmt_pct,
    fmt_usd,
    write_document,
)

CASCADE_COLUMNS = (
    "policy",
    "requests",
    "success",
    "vs top",
    "cost",
    "vs top cost",
    "calls/request",
    "escalated",
)


def cascade_rows(summaries: Sequence[CascadeSummary]) -> list[tuple[str, ...]]:
    """Formatted rows of the cascade table (the learned cascade first)."""
    return [
        (
            s.name,
            str(s.requests),
            fmt_pct(s.successes / s.requests if s.requests else None),
            fmt_pct(s.success_ratio),
            fmt_usd(s.cost),
            fmt_pct(s.cost_ratio),
            f"{s.calls_per_request:.2f}",
            fmt_pct(s.escalation_rate),
        )
        for s in summaries
    ]


def format_cascade_table(summaries: Sequence[CascadeSummary]) -> str:
    """A plain-text table of the cascade and its baselines (for the terminal)."""
    rows = [CASCADE_COLUMNS, *cascade_rows(summaries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(CASCADE_COLUMNS))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )


def _cascade_blocks(ev: ControlsEvaluation) -> tuple:
    learned = ev.cascade[0]
    met = learned.success_ratio >= GOAL_SUCCESS and learned.cost_ratio <= GOAL_COST
    text = (
        f"The learned cascade reached {fmt_pct(learned.success_ratio)} of the top model's "
        f"success at {fmt_pct(learned.cost_ratio)} of its cost on {learned.requests} "
        f"held-out requests, every call paid ({learned.calls_per_request:.2f} calls per "
        f"request). Goal: >= {GOAL_SUCCESS:.0%} of the top's success at <= "
        f"{GOAL_COST:.0%} of its cost: {'met' if met else 'not met'}. Each line of "
        f"decisions.jsonl lists the tiers called in order, their runs and the outcome."
    )
    return (
        text,
        build_table(
            CASCADE_COLUMNS,
            cascade_rows(ev.cascade),
            "Replayed on counterfactual held-out traces",
            highlight=(0,),
        ),
    )


def _doom_blocks(ev: ControlsEvaluation) -> tuple:
    cols = (
        "check",
        "runs",
        "stopped",
        "would have succeeded",
        "false alarms",
        "successes lost",
        "spend saved",
    )
    rows = [
        (
            r.name,
            str(r.runs),
            str(r.flagged),
            str(r.flagged_successes),
            fmt_pct(r.false_alarm_share),
            fmt_pct(r.lost_success_share),
            f"{fmt_usd(r.saved)} ({fmt_pct(r.saved / r.spend if r.spend else None)})",
        )
        for r in ev.doom
    ]
    text = (
        "A run is stopped at the first step where its learned P(eventual success) falls "
        "below the threshold chosen on training traces. False alarms: stopped runs that "
        "went on to succeed (prior art reports 58-72% of flagged runs recovering)."
    )
    return (
        text,
        build_table(cols, rows, "Held-out runs, stopped at the first flagged step", highlight=(0,)),
    )


def _gate_blocks(ev: ControlsEvaluation) -> tuple:
    cols = (
        "gate",
        "mode",
        "tool calls",
        "denied",
        "denied cost",
        "runs with a denied call",
        "their success",
        "success of the others",
    )
    rows = [
        (
            r.name,
            r.enforcement,
            str(r.tool_calls),
            str(r.denied_calls),
            fmt_usd(r.denied_cost),
            str(r.denied_runs),
            fmt_pct(r.denied_runs_success),
            fmt_pct(r.other_runs_success),
        )
        for r in ev.gate
    ]
    pairs = "; ".join(f"{r.name}: {', '.join(r.denied_pairs) or 'none'}" for r in ev.gate)
    modes = " ".join(
        f"{r.name}: {r.enforcement}, because {r.why}." for r in ev.gate if r.name != ev.gate[0].name
    )
    return (
        build_table(cols, rows, "Held-out tool calls", highlight=(0,)),
        f"Modes: {modes} Advisory: the call goes ahead and the deny is recorded as advice "
        "(trace metadata.gate_advice); enforced: the call is denied. The traces are "
        "observational: a tool used mostly by runs that fail looks harmful, but they cannot "
        "show that denying it keeps those runs' success.",
        f"Denied task/tool pairs: {pairs}.",
    )


def _verify_blocks(ev: ControlsEvaluation) -> tuple:
    cols = (
        "verifier policy",
        "DONEs",
        "verified",
        "false-DONE rate without",
        "false-DONE rate with",
        "false DONEs caught",
        "good answers rejected",
        "verifier cost",
    )
    rows = [
        (
            r.name,
            str(r.dones),
            fmt_pct(r.call_rate),
            fmt_pct(r.false_done_rate_without),
            fmt_pct(r.false_done_rate_with),
            f"{r.caught:.1f}",
            f"{r.rejected_good:.1f}",
            fmt_usd(r.verifier_cost),
        )
        for r in ev.verify
    ]
    return (
        "Expected effects: each verified DONE is caught or passed at the verifier's rates "
        "measured on training traces (or assumed where they have no verified DONE).",
        build_table(cols, rows, "Held-out completed runs", highlight=(0,)),
    )


def _context_blocks(ev: ControlsEvaluation) -> tuple:
    cols = (
        "budget",
        "runs",
        "successful runs that fit",
        "mean allowance (tokens)",
        "mean largest prompt",
        "tokens to trim",
    )
    rows = [
        (
            r.name,
            str(r.runs),
            fmt_pct(r.covered_successes / r.successful_runs if r.successful_runs else None),
            f"{r.mean_allowance:.0f}",
            f"{r.mean_largest_prompt:.0f}",
            fmt_pct(r.trimmed_share),
        )
        for r in ev.context_budget
    ]
    return (
        build_table(cols, rows, "Held-out runs' largest prompt against the budget", highlight=(0,)),
    )


def build_controls_sections(ev: ControlsEvaluation) -> tuple[Section, ...]:
    """One report section per evaluated control, and one listing what was not evaluated."""
    sections = []
    for title, name, blocks in (
        ("Cascade: accept or escalate", "cascade", _cascade_blocks),
        ("Doom check: stop hopeless runs", "doom", _doom_blocks),
        ("Tool gate", "gate", _gate_blocks),
        ("Verifier budget", "verify", _verify_blocks),
        ("Context budget", "context_budget", _context_blocks),
    ):
        rows = getattr(ev, name)
        if rows:  # what to do with it first, then what it is, then its figures
            lead = (Callout(ADVICE[name](rows), CALLOUT_INFO), WHAT[name])
            sections.append(Section(title, (*lead, *blocks(ev))))
    if ev.skipped:
        sections.append(
            Section(
                "Controls not evaluated",
                tuple(f"{name}: {why}" for name, why in sorted(ev.skipped.items())),
            )
        )
    return tuple(sections)


def build_controls_metrics(ev: ControlsEvaluation) -> dict:
    """The controls' figures for metrics.json."""
    return {
        "cascade": [s.to_dict() for s in ev.cascade],
        "doom": [r.to_dict() for r in ev.doom],
        "gate": [r.to_dict() for r in ev.gate],
        "verify": [r.to_dict() for r in ev.verify],
        "context_budget": [r.to_dict() for r in ev.context_budget],
        "skipped": dict(sorted(ev.skipped.items())),
    }


def write_cascade_evaluation(
    ev: ControlsEvaluation, out_dir: str | Path, command: str = "", meta: dict | None = None
) -> dict[str, Path]:
    """decisions.jsonl, metrics.json, report.md and report.html of a cascade evaluation."""
    out = Path(out_dir)
    metrics = {
        "policy": "cascade",
        "command": command,
        **(meta or {}),
        "cascade": [s.to_dict() for s in ev.cascade],
    }
    doc = Document(
        "Cascade evaluation",
        build_controls_sections(
            ControlsEvaluation(cascade=ev.cascade, cascade_lines=ev.cascade_lines)
        ),
    )
    md, page = write_document(doc, out)
    return {
        "decisions": write_decisions(_lines(ev.cascade_lines), out / "decisions.jsonl"),
        "metrics": write_text(out / "metrics.json", dumps_json(metrics)),
        "report_md": md,
        "report_html": page,
    }


def _lines(lines: Sequence[CascadeDecisionLine]) -> Sequence[CascadeDecisionLine]:
    return sorted(lines, key=lambda line: line.request_id)
