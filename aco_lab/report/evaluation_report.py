"""The evaluation's output folder: metrics.json, decisions.jsonl, sweep.csv, report.md and
report.html, and the text table and headline the CLI prints.

Deterministic: the same evaluation always gives the same bytes (aco_lab/report/document.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aco_lab.evaluate.replay import KIND_EXPECTED, KIND_REPLAY, PolicyResult
from aco_lab.files import write_text
from aco_lab.report.controls import build_controls_metrics
from aco_lab.report.document import (
    dumps_csv,
    dumps_json,
    dumps_jsonl,
    fmt_pct,
    fmt_usd,
    write_document,
)
from aco_lab.report.evaluation_document import (
    CURVE_COLUMNS,
    build_curve_rows,
    build_evaluation_document,
)
from aco_lab.train.curves import Curve, Reference, build_frontier, frontier_cost_at

if TYPE_CHECKING:
    from aco_lab.evaluate.results import Evaluation

METRICS_FILE = "metrics.json"
DECISIONS_FILE = "decisions.jsonl"
SWEEP_FILE = "sweep.csv"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


# -- the evaluation report ------------------------------------------------------------------
QUALITY_SUCCESS = 0.95  # the quality goal: at >= this share of the top tier's success ...
QUALITY_COST = 0.25  # ... cost <= this share of the top tier's cost per request
TABLE_COLUMNS = (
    "policy",
    "figures",
    "success",
    "vs top",
    "cost/request",
    "vs top cost",
    "cost/success",
    "under-routed",
    "over-routed",
)


def build_evaluation_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """The comparison table: the router first, then every baseline, formatted."""
    ref = ev.reference
    rows = []
    for r in (ev.router, *ev.baselines):
        rows.append(
            (
                r.name,
                _figures(r),
                fmt_pct(r.success_rate),
                fmt_pct(_ratio(r.success_rate, ref.strong_success)),
                fmt_usd(r.cost_per_request),
                fmt_pct(_ratio(r.cost_per_request, ref.strong_cost)),
                fmt_usd(r.cost_per_success),
                fmt_pct(r.under_routing),
                fmt_pct(r.over_routing),
            )
        )
    return rows


def _figures(r: PolicyResult) -> str:
    return {KIND_REPLAY: "replay", KIND_EXPECTED: "expectation"}.get(r.kind, "ESTIMATE")


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def format_text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned plain text: the first column left, the others right, a rule under the header."""
    table = [tuple(columns), *map(tuple, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = []
    for k, row in enumerate(table):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def format_evaluation_table(ev: Evaluation) -> str:
    """What `aco-lab evaluate` prints: the comparison table, the curves, the verdict."""
    return (
        format_text_table(TABLE_COLUMNS, build_evaluation_rows(ev))
        + "\n"
        + format_text_table(CURVE_COLUMNS, build_curve_rows(ev))
        + "\n"
        + format_verdict(build_quality_goal(ev))
        + "\n"
    )


def format_verdict(goal: dict) -> str:
    """The verdict line: the router's cost at the target success against the best baseline's,
    its operating point, and the quality goal."""
    target, point = goal["target"], goal["operating_point"]
    best = goal["best_baseline"]
    baseline = (
        "no baseline curve reaches it"
        if best is None
        else f"best baseline {best} {fmt_pct(goal['best_baseline_cost_fraction_at_target'])}"
    )
    op = (
        f"operating point {fmt_pct(point['success_fraction_of_top'])} of the top's success at "
        f"{fmt_pct(point['cost_fraction_of_top'])} of its cost"
        + (f" (below the {target:.0%} target)" if point["below_target"] else "")
    )
    return (
        f"verdict at {target:.0%} of the top tier's success: router curve "
        f"{fmt_pct(goal['curve_cost_fraction_at_target'])} of the top's cost, {baseline}; "
        f"{op}; quality goal (>= {QUALITY_SUCCESS:.0%} of the top's success at <= "
        f"{QUALITY_COST:.0%} of its cost) {'met' if point['met'] else 'not met'}"
    )


def format_headline(ev: Evaluation) -> str:
    """The line a user reads first: what the router costs at the target success, and what its
    own operating point keeps; a point below the target is never quoted as a saving."""
    ref, r = ev.reference, ev.router
    goal = build_quality_goal(ev)
    target, point = goal["target"], goal["operating_point"]
    curve = goal["curve_cost_fraction_at_target"]
    top_cps = _ratio(ref.strong_cost, ref.strong_success)
    text = (
        f"headline: at {target:.0%} of the top tier's success, {r.name} costs "
        f"{fmt_pct(curve)} of the top tier's cost along its curve"
        if curve is not None
        else f"headline: {r.name} never reaches {target:.0%} of the top tier's success along "
        "its curve"
    )
    kept = fmt_pct(point["success_fraction_of_top"])
    if point["below_target"]:
        text += (
            f"; its operating point keeps only {kept} of the top tier's success, below the "
            f"{target:.0%} target: its cost ({fmt_pct(point['cost_fraction_of_top'])} of "
            "the top tier's) is not a saving at that quality"
        )
    else:
        text += (
            f"; its operating point keeps {kept} of the top tier's success at "
            f"{fmt_pct(point['cost_fraction_of_top'])} of its cost "
            f"({fmt_usd(r.cost_per_success)} per successful task against {fmt_usd(top_cps)})"
        )
    if ev.bundle.shortfall:
        text += (
            f"; the bundle was shipped short of its {ev.bundle.floor:.0%} floor "
            f"(by {ev.bundle.shortfall:.1%} on its training requests)"
        )
    return text + f" ({_figures(r)} on {r.n_requests} held-out requests)\n"


def curve_cost_at(curve: Curve, ref: Reference, target: float) -> float | None:
    """The least cost along a curve's frontier reaching target x the top tier's success, as a
    share of the top tier's cost; None when it never does."""
    fc, fs = build_frontier(curve.costs, curve.successes)
    cost = frontier_cost_at(fc, fs, target * ref.strong_success)
    return None if cost is None or ref.strong_cost <= 0 else cost / ref.strong_cost


def build_quality_goal(ev: Evaluation) -> dict:
    """The router's cost at the target success along its curve against the best baseline
    curve's, whether its operating point keeps the target, and the quality goal (>= 95% of the
    top tier's success at <= 25% of its cost)."""
    areas = dict(ev.areas)
    target = ev.options.target
    router_name = ev.curves[0].name
    router_curve = curve_cost_at(ev.curves[0], ev.reference, target)
    baselines = {c.name: curve_cost_at(c, ev.reference, target) for c in ev.curves[1:]}
    reached = {name: v for name, v in baselines.items() if v is not None}
    best = min(reached, key=reached.__getitem__) if reached else None
    per_type = next(
        (v for name, v in baselines.items() if name.startswith("best tier per task type")), None
    )
    success_ratio = _ratio(ev.router.success_rate, ev.reference.strong_success)
    cost_ratio = _ratio(ev.router.cost_per_request, ev.reference.strong_cost)
    return {
        "target": target,
        "success_fraction_of_top": QUALITY_SUCCESS,
        "max_cost_fraction_of_top": QUALITY_COST,
        "operating_point": {
            "success_fraction_of_top": success_ratio,
            "cost_fraction_of_top": cost_ratio,
            "below_target": success_ratio is None or success_ratio < target - 1e-9,
            "met": bool(
                success_ratio is not None
                and cost_ratio is not None
                and success_ratio >= QUALITY_SUCCESS
                and cost_ratio <= QUALITY_COST
            ),
        },
        "curve_cost_fraction_at_target": router_curve,
        "best_baseline": best,
        "best_baseline_cost_fraction_at_target": None if best is None else reached[best],
        "curve_cost_fraction_at_95": areas[router_name].to_dict()["cost_fraction_at"]["95"],
        "curve_met": router_curve is not None and router_curve <= QUALITY_COST,
        "per_task_type_cost_fraction_at_95": per_type,
        "beats_per_task_type": (
            router_curve is not None and (per_type is None or router_curve < per_type)
        ),
    }


def build_evaluation_metrics(ev: Evaluation, command: str = "") -> dict:
    """metrics.json: the source of truth every other output is rendered from."""
    ref = ev.reference
    return {
        "format": "aco-evaluation",
        "format_version": 1,
        "command": command,
        "mode": ev.mode,
        "warnings": list(ev.warnings),
        "bundle": {
            "name": ev.bundle.name,
            "path": ev.bundle.path,
            "sha256": ev.bundle.sha256,
            "model": ev.bundle.model,
            "training_requests": ev.bundle.n_training_requests,
            "policy": ev.bundle.params.to_dict(),
            "task_floors": dict(ev.bundle.task_floors),
        },
        "data": {
            "files": [{"path": p, "sha256": h} for p, h in ev.data.files],
            "runs": ev.data.n_runs,
            "requests": ev.data.n_requests,
            "excluded_requests": ev.data.n_excluded,
            "rejected_lines": ev.data.n_rejected_lines,
            "overlap": {"requests": ev.data.n_overlap, "allowed": ev.data.overlap_allowed},
        },
        "tiers": [
            {"tier": t, "model_id": m} for t, m in zip(ev.tiers, ev.tier_models, strict=True)
        ],
        "top_tier": {"success_rate": ref.strong_success, "cost_per_request": ref.strong_cost},
        "router": ev.router.to_dict(),
        "baselines": {r.name: r.to_dict() for r in ev.baselines},
        "skipped_baselines": dict(ev.skipped),
        "curves": {name: a.to_dict() for name, a in ev.areas},
        "recommended_operating_point": None
        if ev.recommended is None
        else {
            "downgrade_threshold": ev.recommended.downgrade_threshold,
            "success_value": ev.recommended.success_value,
            "success_rate": ev.recommended.success_rate,
            "cost_per_request": ev.recommended.cost_per_request,
            "why": ev.recommended.why,
        },
        "quality_goal": build_quality_goal(ev),
        "calibration": build_calibration_summary(*ev.reliability),
        "per_task_type": ev.per_task_type.to_dicts(),
        "task_type_inference": ev.task_type_inference,
        "settings": {
            "verifier_error": ev.options.verifier_error,
            "target": ev.options.target,
            "compare_models": list(ev.options.compare_models),
            "thresholds": len(ev.options.thresholds),
        },
        **({"estimates": ev.extra} if ev.extra else {}),
        **({"controls": build_controls_metrics(ev.controls)} if ev.controls is not None else {}),
    }


def build_calibration_summary(
    predicted: np.ndarray, observed: np.ndarray, n_bins: int = 10
) -> dict:
    """Brier score and expected calibration error (equal-width bins) of P(success)."""
    if len(predicted) == 0:
        return {"n": 0, "brier": None, "ece": None}
    bins = np.clip((predicted * n_bins).astype(int), 0, n_bins - 1)
    ece = sum(
        abs(predicted[bins == b].mean() - observed[bins == b].mean()) * np.sum(bins == b)
        for b in range(n_bins)
        if np.any(bins == b)
    ) / len(predicted)
    return {
        "n": int(len(predicted)),
        "brier": float(np.mean((predicted - observed) ** 2)),
        "ece": float(ece),
    }


def build_sweep_rows(ev: Evaluation) -> tuple[tuple[str, ...], list[tuple]]:
    """sweep.csv: one row per threshold point of the router."""
    columns = (
        "safety_threshold",
        "downgrade_threshold",
        "success_value",
        "figures",
        "success_rate",
        "cost_per_request",
        "cost_per_success",
        "under_routing",
        "over_routing",
        *(f"share_tier{t}" for t in ev.tiers),
    )
    rows = []
    for p in ev.sweep:
        r = p.result
        mix = dict(r.tier_mix)
        rows.append(
            (
                p.safety_threshold,
                p.downgrade_threshold,
                p.success_value,
                r.kind,
                r.success_rate,
                r.cost_per_request,
                r.cost_per_success,
                r.under_routing,
                r.over_routing,
                *(mix.get(t, 0.0) for t in ev.tiers),
            )
        )
    return columns, rows


def write_evaluation(ev: Evaluation, out_dir: str | Path, command: str = "") -> dict[str, Path]:
    """Write metrics.json, decisions.jsonl, sweep.csv, report.md and report.html into out_dir."""
    out = Path(out_dir)
    metrics = build_evaluation_metrics(ev, command)
    written = {
        METRICS_FILE: write_text(out / METRICS_FILE, dumps_json(metrics)),
        DECISIONS_FILE: write_text(out / DECISIONS_FILE, dumps_jsonl(ev.decisions.to_dicts())),
        SWEEP_FILE: write_text(out / SWEEP_FILE, dumps_csv(*build_sweep_rows(ev))),
    }
    doc = build_evaluation_document(ev, metrics, TABLE_COLUMNS, build_evaluation_rows(ev))
    md, page = write_document(doc, out)
    written[REPORT_MD], written[REPORT_HTML] = md, page
    return written
