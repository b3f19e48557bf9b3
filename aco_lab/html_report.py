"""A report as a small document (sections of text, tables, callouts and figures) and its HTML.

One document renders to both report.md (aco_lab.report) and a self-contained report.html:
CSS inline, every plot embedded as a base64 PNG, no scripts, no external requests, so the
page opens offline and the same document always gives the same bytes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aco_lab.plots import Series, plot_cost_success, plot_reliability, plot_tier_mix

if TYPE_CHECKING:
    from aco_lab.evaluate import Evaluation

CALLOUT_WARNING = "warning"
CALLOUT_INFO = "info"


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of already formatted cells under column headers."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    highlight: tuple[int, ...] = ()  # row indexes to emphasise (e.g. the router)


@dataclass(frozen=True, slots=True)
class Figure:
    """A PNG plot with its alternative text."""

    name: str  # stable identifier, e.g. "cost_success"
    png: bytes
    alt: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Callout:
    """A boxed message; warnings are what a reader must not miss (an estimate, an overlap)."""

    text: str
    level: str = CALLOUT_INFO


@dataclass(frozen=True, slots=True)
class Section:
    """A titled part of a report: paragraphs (str), tables, callouts and figures, in order."""

    title: str
    blocks: tuple[str | Table | Figure | Callout, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """A whole report."""

    title: str
    sections: tuple[Section, ...]
    callouts: tuple[Callout, ...] = ()  # shown above everything else


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 62rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .85rem; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
tr.highlight td { background: #fff6d6; font-weight: 600; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3rem; }
.callout { border-left: 5px solid #1f77b4; background: #eef5fb; padding: .6rem .9rem;
           margin: .8rem 0; }
.callout.warning { border-color: #d62728; background: #fdecea; font-weight: 600; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; }
"""


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(doc.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(doc.title)}</h1>",
    ]
    parts.extend(_callout(c) for c in doc.callouts)
    for section in doc.sections:
        parts.append(f"<h2>{_esc(section.title)}</h2>")
        parts.extend(_block(b) for b in section.blocks)
    parts.extend(["</body>", "</html>", ""])
    return "\n".join(parts)


def _block(block: str | Table | Figure | Callout) -> str:
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return _figure(block)
    if isinstance(block, Callout):
        return _callout(block)
    return f"<p>{_esc(block)}</p>"


def _table(t: Table) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in t.columns)
    rows = []
    for i, row in enumerate(t.rows):
        cls = ' class="highlight"' if i in t.highlight else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>")
    caption = f"<caption>{_esc(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    caption = f"<figcaption>{_esc(f.caption)}</figcaption>" if f.caption else ""
    return (
        f'<figure><img class="plot" data-plot="{_esc(f.name)}" alt="{_esc(f.alt)}" '
        f'src="data:image/png;base64,{data}">{caption}</figure>'
    )


def _callout(c: Callout) -> str:
    return f'<div class="callout {_esc(c.level)}">{_esc(c.text)}</div>'


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def figure_names(doc: Document) -> list[str]:
    """Names of every figure in the document, in order (what a page must show)."""
    return [b.name for s in doc.sections for b in s.blocks if isinstance(b, Figure)]


def fmt_number(value: float | None, digits: int = 3) -> str:
    """A table cell: `-` for missing, else `digits` significant digits."""
    if value is None or value != value:  # NaN is missing too
        return "-"
    return f"{value:.{digits}g}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage cell, `-` for missing."""
    if value is None or value != value:
        return "-"
    return f"{value * 100:.{digits}f}%"


def fmt_usd(value: float | None) -> str:
    """USD with four significant digits (per-request costs are often fractions of a cent)."""
    if value is None or value != value:
        return "-"
    return f"${value:.4g}"


def build_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    caption: str = "",
    highlight: Sequence[int] = (),
) -> Table:
    """A Table from plain sequences."""
    return Table(tuple(columns), tuple(tuple(r) for r in rows), caption, tuple(highlight))


# -- the evaluation page ----------------------------------------------------------------------
def build_evaluation_document(
    ev: Evaluation, metrics: dict, columns: Sequence[str], rows: Sequence[Sequence[str]]
) -> Document:
    """The evaluation report: summary, the comparison table, plots, sweep, calibration, data."""
    callouts = tuple(
        Callout(w, CALLOUT_WARNING if ("ESTIMATE" in w or "train" in w) else CALLOUT_INFO)
        for w in ev.warnings
    )
    sections = [
        Section("Summary", _summary_blocks(ev, metrics)),
        Section("The router against every alternative", _comparison_blocks(ev, columns, rows)),
        Section("Cost against success", (build_cost_success_figure(ev),)),
        Section("Threshold sweep and area metrics", _sweep_blocks(ev)),
        Section("Tier mix", (_tier_mix_figure(ev),)),
        Section("Calibration", _calibration_blocks(ev, metrics["calibration"])),
    ]
    if not ev.per_task_type.is_empty():
        sections.append(Section("Per task type", (_per_task_type_table(ev),)))
    if ev.task_type_inference:
        sections.append(Section("Task types of requests given without one",
                                (_task_type_inference_text(ev.task_type_inference),)))
    if ev.controls is not None:  # a section per learned run control against its rules
        from aco_lab.controls.report import build_controls_sections

        sections.extend(build_controls_sections(ev.controls))
    sections.append(Section("Reproduce", _reproduce_blocks(ev, metrics)))
    return Document(f"Router evaluation: {ev.bundle.name}", tuple(sections), callouts)


def _summary_blocks(ev: Evaluation, metrics: dict) -> tuple:
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
    goal = metrics["quality_goal"]
    point = goal["operating_point"]
    best = goal["best_baseline"]
    goal_text = (
        f"At {goal['target']:.0%} of the top tier's success the router needs "
        f"{fmt_pct(goal['curve_cost_fraction_at_target'])} of the top tier's cost along its "
        f"curve ({'no baseline curve reaches it' if best is None else 'best baseline: ' + best}"
        f"{'' if best is None else ' ' + fmt_pct(goal['best_baseline_cost_fraction_at_target'])})"
        + ("; its operating point keeps LESS than that success, so its cost is no saving at "
           "that quality" if point["below_target"] else "")
        + f". Quality goal (>= {goal['success_fraction_of_top']:.0%} of the top tier's success "
        f"at <= {goal['max_cost_fraction_of_top']:.0%} of its cost): operating point "
        f"{'MET' if point['met'] else 'NOT MET'}."
    )
    return (text, goal_text)


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


def dense_series(
    name: str, costs: Sequence[float], successes: Sequence[float], style: str
) -> Series:
    """A frontier with enough points to draw its (linear-cost) segments on a log cost axis."""
    from aco_lab.sweep import build_frontier, frontier_success

    fc, fs = build_frontier(costs, successes)
    if fc.size < 2:
        return Series(name, tuple(fc.tolist()), tuple(fs.tolist()), "point")
    grid = np.geomspace(fc[0], fc[-1], 80) if fc[0] > 0 else np.linspace(fc[0], fc[-1], 80)
    grid = np.unique(np.concatenate((grid, fc)))
    return Series(name, tuple(grid.tolist()), tuple(frontier_success(fc, fs, grid).tolist()), style)


def operating_point_series(ev: Evaluation) -> Series:
    """The router's own operating point, drawn as a star on a cost-against-success plot."""
    r = ev.router
    return Series(f"{r.name}: operating point", (r.cost_per_request,), (r.success_rate,), "star")


def build_cost_success_figure(ev: Evaluation) -> Figure:
    """The cost-against-success plot of an evaluation (its curves, baselines and points)."""
    series = []
    for i, curve in enumerate(ev.curves):
        style = "dashed" if curve.name.startswith("random mixing") else "line"
        label = f"{curve.name} (frontier)" if i else f"{curve.name}: threshold sweep frontier"
        series.append(dense_series(label, curve.costs, curve.successes, style))
    for r in ev.baselines:
        if not r.name.startswith(("random mixing",)):
            series.append(Series(r.name, (r.cost_per_request,), (r.success_rate,), "point"))
    series.append(operating_point_series(ev))
    rec = ev.recommended
    png = plot_cost_success(
        series,
        "Cost per request against success rate",
        None if rec is None else (rec.cost_per_request, rec.success_rate),
    )
    return Figure(
        "cost_success",
        png,
        "cost per request against success rate for the router's threshold sweep and every baseline",
        caption="Circle: the recommended operating point. Dashed: random mixing of "
        "tiers, the line a router must beat.",
    )


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
    novelty = "" if "novel_share" not in figures else (
        f"The novelty check calls {fmt_pct(figures['novel_share'])} of them unlike the training "
        f"requests (it was set to call {fmt_pct(figures['novel_share_expected'])} of held-out "
        f"training-like requests so; far more means the requests have changed since training).")
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
