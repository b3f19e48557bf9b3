"""The evaluation report as a Document (aco_lab/report/document.py): summary, the comparison
table, cost-success and tier-mix figures, the threshold sweep, calibration, per task type, the
controls' sections and how to reproduce it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aco_lab.report.controls import build_controls_sections
from aco_lab.report.document import (
    CALLOUT_INFO,
    CALLOUT_VERDICT,
    CALLOUT_VERDICT_WARN,
    CALLOUT_WARNING,
    Callout,
    Document,
    Figure,
    Section,
    Table,
    build_table,
    fmt_number,
    fmt_pct,
    fmt_usd,
)
from aco_lab.report.evaluation_charts import (  # noqa: F401 - notebooks import the figure here
    build_cost_success_figure,
    cost_success_chart_block,
)
from aco_lab.report.plots import plot_reliability, plot_tier_mix
from aco_lab.report.verdict import build_verdict

if TYPE_CHECKING:
    from aco_lab.evaluate.results import Evaluation


# -- the evaluation page ----------------------------------------------------------------------
def build_evaluation_document(
    ev: Evaluation, metrics: dict, columns: Sequence[str], rows: Sequence[Sequence[str]]
) -> Document:
    """The evaluation report: summary, the comparison table, plots, sweep, calibration, data."""
    callouts = tuple(
        Callout(w, CALLOUT_WARNING if ("ESTIMATE" in w or "train" in w) else CALLOUT_INFO)
        for w in ev.warnings
    )
    verdict = build_verdict(ev, metrics["quality_goal"])
    level = (
        CALLOUT_VERDICT
        if verdict.router_wins and verdict.point_keeps_target
        else CALLOUT_VERDICT_WARN
    )
    chart, datasets = cost_success_chart_block(ev, metrics["quality_goal"]["best_baseline"])
    sections = [
        Section("Verdict", (Callout(verdict.headline, level), *verdict.details)),
        Section("Summary", _summary_blocks(ev)),
        Section("Cost against success", (chart,)),
        Section("The router against every alternative", _comparison_blocks(ev, columns, rows)),
        Section("Threshold sweep and area metrics", _sweep_blocks(ev)),
        Section("Tier mix", (_tier_mix_figure(ev),)),
        Section("Calibration", _calibration_blocks(ev, metrics["calibration"])),
    ]
    if not ev.per_task_type.is_empty():
        sections.append(Section("Per task type", (_per_task_type_table(ev),)))
    if ev.task_type_inference:
        sections.append(
            Section(
                "Task types of requests given without one",
                (_task_type_inference_text(ev.task_type_inference),),
            )
        )
    if ev.controls is not None:  # a section per learned run control against its rules
        sections.extend(build_controls_sections(ev.controls))
    sections.append(Section("Reproduce", _reproduce_blocks(ev, metrics)))
    return Document(f"Router evaluation: {ev.bundle.name}", tuple(sections), callouts, datasets)


def _summary_blocks(ev: Evaluation) -> tuple:
    r, ref = ev.router, ev.reference
    how = (
        "replayed on the observed runs of"
        if ev.mode == "replay"
        else "ESTIMATED (not replayed) on ordinary logs of"
    )
    top = max(ev.tiers)
    text = (
        f"Router {ev.bundle.name} ({ev.bundle.model}), {how} {ev.data.n_requests} evaluation "
        f"requests it did not train on{' (overlap allowed!)' if ev.data.n_overlap else ''}: "
        f"success {fmt_pct(r.success_rate)} ({fmt_pct(_div(r.success_rate, ref.strong_success))} "
        f"of always tier {top}) at {fmt_usd(r.cost_per_request)} per request "
        f"({fmt_pct(_div(r.cost_per_request, ref.strong_cost))} of always tier {top}); cost per "
        f"successful task {fmt_usd(r.cost_per_success)}."
    )
    return (text,)


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _comparison_blocks(
    ev: Evaluation, columns: Sequence[str], rows: Sequence[Sequence[str]]
) -> tuple:
    caption = (
        "figures: replay = observed runs of the chosen tier; expectation = exact "
        "expectation of a randomised policy over observed runs; ESTIMATE = not observed"
    )
    blocks: list = [build_table(columns, rows, caption=caption, highlight=[0])]
    notes = [f"{r.name}: {r.note}" for r in (ev.router, *ev.baselines) if r.note]
    blocks.extend(notes)
    if ev.skipped:
        blocks.append("Not computed: " + "; ".join(f"{n} ({why})" for n, why in ev.skipped) + ".")
    return tuple(blocks)


CURVE_COLUMNS = (
    "curve",
    "AIQ",
    "APGR",
    "CPT(50%)",
    "CPT(80%)",
    "cost @80% top",
    "@90%",
    "@95%",
    "@100%",
)


def build_curve_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """Area metrics of every curve: AIQ, APGR, CPT and cost at shares of the top success."""
    rows = []
    for name, a in ev.areas:
        d = a.to_dict()
        rows.append(
            (
                name,
                fmt_number(d["aiq"]),
                fmt_number(d["apgr"]),
                fmt_pct(d["cpt"]["50"]),
                fmt_pct(d["cpt"]["80"]),
                *(fmt_pct(d["cost_fraction_at"][k]) for k in ("80", "90", "95", "100")),
            )
        )
    return rows


def _sweep_blocks(ev: Evaluation) -> tuple:
    columns, rows = CURVE_COLUMNS, build_curve_rows(ev)
    caption = (
        "AIQ: mean success over the single tiers' cost range along the non-decreasing "
        "convex hull (RouterBench). APGR: mean share of the weak-to-strong success gap "
        "recovered over the weak-to-strong cost range; CPT(x%): cost (as a share of that "
        "range) to recover x% of the gap (RouteLLM). cost @y%: cost, as a share of the top "
        "tier's, to reach y% of the top tier's success."
    )
    blocks: list = [build_table(columns, rows, caption=caption, highlight=[0])]
    rec = ev.recommended
    if rec is None:
        blocks.append(
            f"No threshold reaches {ev.options.target:.0%} of the top tier's success "
            "on these requests: no operating point to recommend."
        )
    else:
        blocks.append(
            f"Recommended operating point: downgrade_threshold "
            f"{rec.downgrade_threshold:g}, success_value {rec.success_value:.4g}. Why: "
            f"{rec.why}"
        )
    blocks.append("Every threshold point is in sweep.csv.")
    return tuple(blocks)


def _tier_mix_figure(ev: Evaluation) -> Figure:
    keep = [r for r in (ev.router, *ev.baselines) if not r.name.startswith("tier ")]
    mixes = {r.name: dict(r.tier_mix) for r in keep}
    png = plot_tier_mix(mixes, ev.tiers, "Share of requests per tier")
    return Figure("tier_mix", png, "share of requests each policy sends to each tier")


def _calibration_blocks(ev: Evaluation, summary: dict) -> tuple:
    predicted, observed = ev.reliability
    what = (
        "every observed (request, tier) cell"
        if ev.mode == "replay"
        else "the tier each logged run used"
    )
    png = plot_reliability(predicted, observed, "Reliability of P(success)")
    text = (
        f"Calibrated P(success) against the observed outcome over {what}: "
        f"{summary['n']} cells, Brier score {fmt_number(summary['brier'])}, expected "
        f"calibration error {fmt_number(summary['ece'])} (10 equal-width bins; the numbers "
        "on the plot are the cells per bin)."
    )
    return (text, Figure("reliability", png, "reliability diagram of the router's P(success)"))


def _task_type_inference_text(figures: dict) -> str:
    novelty = (
        ""
        if "novel_share" not in figures
        else (
            f"The novelty check calls {fmt_pct(figures['novel_share'])} of them unlike the "
            "training requests (it was set to call "
            f"{fmt_pct(figures['novel_share_expected'])} of held-out training-like requests "
            "so; far more means the requests have changed since training)."
        )
    )
    return (
        f"On the {figures['requests']:,} evaluation requests with a task type, taken as if "
        f"given without one: the bundle's task-type classifier names the right type for "
        f"{fmt_pct(figures['accuracy'])}; as the runtime infers it (requests unlike the "
        f"training ones typed by rule cues, or left untyped) "
        f"{fmt_pct(figures['accuracy_as_routed'])}. {novelty}"
    )


def _per_task_type_table(ev: Evaluation) -> Table:
    rows = [
        (
            r["task_type"],
            str(r["n_requests"]),
            fmt_pct(r["router_success"]),
            fmt_usd(r["router_cost_per_success"]),
            f"tier {r['router_main_tier']}",
            fmt_pct(r["top_success"]),
            fmt_usd(r["top_cost_per_success"]),
            fmt_pct(r["oracle_success"]),
            fmt_usd(r["oracle_cost_per_success"]),
        )
        for r in ev.per_task_type.to_dicts()
    ]
    return build_table(
        (
            "task type",
            "requests",
            "router success",
            "router cost/success",
            "router's main tier",
            "top tier success",
            "top cost/success",
            "oracle success",
            "oracle cost/success",
        ),
        rows,
    )


def _reproduce_blocks(ev: Evaluation, metrics: dict) -> tuple:
    files = "; ".join(f"{p} (sha256 {h[:12]})" for p, h in ev.data.files) or "(in memory)"
    return (
        f"Command: {metrics['command'] or '(library call)'}",
        f"Bundle: {ev.bundle.path} (sha256 {ev.bundle.sha256[:12]}), trained on "
        f"{ev.bundle.n_training_requests} requests.",
        f"Traces: {files}. {ev.data.n_runs} runs, {ev.data.n_requests} requests evaluated, "
        f"{ev.data.n_excluded} left out.",
        "metrics.json is the source of truth; decisions.jsonl holds every decision with its "
        "per-tier P(success); rerunning the command gives the same bytes.",
    )
