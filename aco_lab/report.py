"""Writing reports: report.md from a Document, and the JSON/JSONL/CSV files beside it.

Every writer is atomic (a temp file in the target directory, then os.replace) and
deterministic: keys sorted, floats as Python's shortest repr, NaN written as null, no
timestamps. The same evaluation therefore always gives the same bytes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aco_lab.html_report import (
    CURVE_COLUMNS,
    Callout,
    Document,
    Figure,
    Table,
    build_curve_rows,
    build_evaluation_document,
    fmt_pct,
    fmt_usd,
    render_html,
)
from aco_lab.replay import KIND_EXPECTED, KIND_REPLAY, PolicyResult
from aco_lab.sweep import Curve, Reference, build_frontier, frontier_cost_at

if TYPE_CHECKING:
    from aco_lab.evaluate import Evaluation

METRICS_FILE = "metrics.json"
DECISIONS_FILE = "decisions.jsonl"
SWEEP_FILE = "sweep.csv"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def render_markdown(doc: Document) -> str:
    """The document as GitHub-flavoured markdown (figures are named; they live in the HTML)."""
    lines = [f"# {doc.title}", ""]
    for callout in doc.callouts:
        lines += [_md_callout(callout), ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += [_md_block(block), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _md_block(block: str | Table | Figure | Callout) -> str:
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Figure):
        return f"*Figure `{block.name}`: {block.alt} (see the HTML report).*"
    if isinstance(block, Callout):
        return _md_callout(block)
    return block


def _md_callout(c: Callout) -> str:
    prefix = "**WARNING:** " if c.level == "warning" else ""
    return f"> {prefix}{c.text}"


def _md_table(t: Table) -> str:
    def cell(text: str, bold: bool) -> str:
        text = str(text).replace("|", "\\|")
        return f"**{text}**" if bold and text else text

    out = [f"*{t.caption}*", ""] if t.caption else []
    out.append("| " + " | ".join(cell(c, False) for c in t.columns) + " |")
    out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(t.columns))) + "|")
    for i, row in enumerate(t.rows):
        out.append("| " + " | ".join(cell(v, i in t.highlight) for v in row) + " |")
    return "\n".join(out)


def to_json_value(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become None, tuples lists, keys strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return to_json_value(value.item())
    return value


def dumps_json(data: Any) -> str:
    """Deterministic pretty JSON (sorted keys, NaN as null), newline-terminated."""
    return json.dumps(to_json_value(data), sort_keys=True, indent=2, allow_nan=False) + "\n"


def dumps_jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    """One compact JSON object per line, keys sorted."""
    return "".join(
        json.dumps(to_json_value(r), sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
        for r in records
    )


def dumps_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small CSV: numbers as repr, None/NaN empty, no quoting needed for our columns."""

    def cell(v: Any) -> str:
        v = to_json_value(v)
        return "" if v is None else str(v)

    lines = [",".join(columns)] + [",".join(cell(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (temp file beside it, then rename)."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a file atomically (temp file beside it, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; a report is as readable as any file
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_document(doc: Document, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
    """Write `<stem>.md` and the self-contained `<stem>.html` of a document."""
    out = Path(out_dir)
    md = write_text(out / f"{stem}.md", render_markdown(doc))
    page = write_text(out / f"{stem}.html", render_html(doc))
    return md, page


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
        + "\n" + format_verdict(build_quality_goal(ev)) + "\n"
    )


def format_verdict(goal: dict) -> str:
    """The verdict line: the router's cost at the target success against the best baseline's,
    its operating point, and the quality goal."""
    target, point = goal["target"], goal["operating_point"]
    best = goal["best_baseline"]
    baseline = ("no baseline curve reaches it" if best is None else
                f"best baseline {best} {fmt_pct(goal['best_baseline_cost_fraction_at_target'])}")
    op = (f"operating point {fmt_pct(point['success_fraction_of_top'])} of the top's success at "
          f"{fmt_pct(point['cost_fraction_of_top'])} of its cost"
          + (f" (below the {target:.0%} target)" if point["below_target"] else ""))
    return (f"verdict at {target:.0%} of the top tier's success: router curve "
            f"{fmt_pct(goal['curve_cost_fraction_at_target'])} of the top's cost, {baseline}; "
            f"{op}; quality goal (>= {QUALITY_SUCCESS:.0%} of the top's success at <= "
            f"{QUALITY_COST:.0%} of its cost) {'met' if point['met'] else 'not met'}")


def format_headline(ev: Evaluation) -> str:
    """The line a user reads first: what the router costs at the target success, and what its
    own operating point keeps; a point below the target is never quoted as a saving."""
    ref, r = ev.reference, ev.router
    goal = build_quality_goal(ev)
    target, point = goal["target"], goal["operating_point"]
    curve = goal["curve_cost_fraction_at_target"]
    top_cps = _ratio(ref.strong_cost, ref.strong_success)
    text = (f"headline: at {target:.0%} of the top tier's success, {r.name} costs "
            f"{fmt_pct(curve)} of the top tier's cost along its curve" if curve is not None else
            f"headline: {r.name} never reaches {target:.0%} of the top tier's success along "
            "its curve")
    kept = fmt_pct(point["success_fraction_of_top"])
    if point["below_target"]:
        text += (f"; its operating point keeps only {kept} of the top tier's success, below the "
                 f"{target:.0%} target: its cost ({fmt_pct(point['cost_fraction_of_top'])} of "
                 "the top tier's) is not a saving at that quality")
    else:
        text += (f"; its operating point keeps {kept} of the top tier's success at "
                 f"{fmt_pct(point['cost_fraction_of_top'])} of its cost "
                 f"({fmt_usd(r.cost_per_success)} per successful task against {fmt_usd(top_cps)})")
    if ev.bundle.shortfall:
        text += (f"; the bundle was shipped short of its {ev.bundle.floor:.0%} floor "
                 f"(by {ev.bundle.shortfall:.1%} on its training requests)")
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
    per_type = next((v for name, v in baselines.items()
                     if name.startswith("best tier per task type")), None)
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
        **({"controls": _controls_metrics(ev.controls)} if ev.controls is not None else {}),
    }


def _controls_metrics(controls: Any) -> dict:
    from aco_lab.controls.report import build_controls_metrics

    return build_controls_metrics(controls)


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
