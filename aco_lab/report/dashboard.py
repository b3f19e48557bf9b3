"""The monitoring dashboard: the metrics of any traces as one self-contained HTML page.

`aco-lab report PATHS --out DIR` -> DIR/report.html, report.md and metrics.json. Every number
comes from aco_lab.report.stats (the one definition of the monitoring metrics, shared with `aco
stats`): overall, per day (the runs of each UTC day), per tier and per task type. Each rate is
drawn against its alert line from the config's `alerts:` section where the config has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from aco.config import ACOConfig, load_config
from aco.monitoring import NULL_GROUP, TASK_TYPE_FROM, Metrics
from aco_lab.files import write_text
from aco_lab.report import plots
from aco_lab.report.document import (
    CALLOUT_WARNING,
    Callout,
    Document,
    Figure,
    Section,
    build_table,
    dumps_json,
    fmt_pct,
    fmt_usd,
    write_document,
)
from aco_lab.report.evaluation_report import METRICS_FILE
from aco_lab.report.stats import compute_stats
from aco_lab.traces import schema as S
from aco_lab.traces.reading import expand_paths, read_traces

DAY = "_day"  # the UTC day of a run's timestamp, YYYY-MM-DD
# The rates drawn over time: (metric key, title, the AlertThresholds field of its line or None).
RATES = (
    ("escalation_rate", "Escalation rate", "max_escalation_rate"),
    ("verifier_call_rate", "Verifier-call rate", "max_verifier_call_rate"),
    ("cache_hit_rate", "Cache-hit rate", "min_cache_hit_rate"),
    ("false_done_rate", "False-DONE rate", "max_false_done_rate"),
)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The monitoring metrics of a set of runs, overall and sliced."""

    overall: Metrics
    by_day: tuple[tuple[str, Metrics], ...]  # days in order; runs without timestamp left out
    by_tier: Metrics  # grouped by tier
    by_task_type: Metrics  # grouped by task type
    n_without_timestamp: int
    config: ACOConfig
    files: tuple[str, ...] = ()
    n_rejected_lines: int = 0
    # Grouped by metadata.task_type_from, when the runtime wrote the traces; else None.
    by_task_type_from: Metrics | None = None


def build_dashboard(runs: pl.DataFrame, config: ACOConfig, files: Sequence[str] = (),
                    n_rejected_lines: int = 0) -> Dashboard:
    """The dashboard's numbers from a runs table (pure; aco_lab.report.stats does the sums)."""
    dated = runs.filter(pl.col(S.TIMESTAMP).is_not_null()).with_columns(
        pl.col(S.TIMESTAMP).dt.strftime("%Y-%m-%d").alias(DAY)
    )
    by_day = tuple(
        (str(key[0]), compute_stats(part.drop(DAY), config))
        for key, part in sorted(dated.group_by(DAY), key=lambda kv: str(kv[0][0]))
    )
    # Only traces the runtime wrote say where their task type came from (metadata).
    by_type_from = (compute_stats(runs, config, by=TASK_TYPE_FROM)
                    if S.METADATA in runs.columns else None)
    return Dashboard(
        overall=compute_stats(runs, config),
        by_day=by_day,
        by_tier=compute_stats(runs, config, by=S.TIER),
        by_task_type=compute_stats(runs, config, by=S.TASK_TYPE),
        n_without_timestamp=runs.height - dated.height,
        config=config,
        files=tuple(files),
        n_rejected_lines=n_rejected_lines,
        by_task_type_from=(None if by_type_from is None or set(by_type_from.groups) <= {NULL_GROUP}
                           else by_type_from),
    )


def alert_line(config: ACOConfig, field: str | None) -> float | None:
    """The config's alert line for a metric, None when the config has none for it."""
    return getattr(config.alerts, field, None) if field else None


def cost_alert_line(d: Dashboard) -> float | None:
    """USD per success above which `high_cost_per_success` fires: ratio x the top tier's."""
    tiers = [t for t in d.by_tier.groups.values() if t.cost_per_success is not None]
    if not d.by_tier.groups or not tiers:
        return None
    top = d.by_tier.groups[max(d.by_tier.groups, key=lambda k: int(k) if k.isdigit() else -1)]
    if top.cost_per_success is None:
        return None
    return d.config.alerts.max_cost_ratio_vs_frontier * top.cost_per_success


def build_callouts(d: Dashboard) -> tuple[Callout, ...]:
    """What the page shows above everything: crossed alert lines and rejected lines."""
    callouts = tuple(Callout(f"ALERT {a.name}: {a.message}", CALLOUT_WARNING)
                     for a in d.overall.alerts)
    if d.n_rejected_lines:
        callouts += (Callout(f"{d.n_rejected_lines} trace lines were rejected and are not counted "
                             "(aco-lab validate lists them)", CALLOUT_WARNING),)
    return callouts


def build_dashboard_document(d: Dashboard) -> Document:
    """The dashboard as a Document (tables, figures, alerts), rendered to HTML and markdown."""
    sections = (_summary(d), _over_time(d), _by_group(d, d.by_tier, "tier"),
                _by_group(d, d.by_task_type, "task type"))
    if d.by_task_type_from is not None:  # runtime traces: given task types against guessed
        sections += (_by_group(d, d.by_task_type_from, "task type source"),)
    sections += (_sources(d),)
    return Document("ACO monitoring dashboard", sections, build_callouts(d))


def _summary(d: Dashboard) -> Section:
    m, cfg = d.overall, d.config
    rows = [
        ("runs", str(m.runs), "", ""),
        ("labelled share (outcome known)", fmt_pct(m.labelled_share), "", ""),
        ("success rate", fmt_pct(m.success_rate), fmt_pct(cfg.alerts.min_success_rate), "min"),
        ("total cost", fmt_usd(m.total_cost), "", ""),
        ("cost per successful task", fmt_usd(m.cost_per_success), fmt_usd(cost_alert_line(d)),
         "max"),
    ]
    for key, title, field in RATES:
        line = alert_line(cfg, field)
        rows.append((title.lower(), fmt_pct(getattr(m, key)), fmt_pct(line),
                     ("max" if field.startswith("max") else "min") if line is not None else
                     "no line in config"))
    fired = {a.metric for a in m.alerts}
    table = build_table(("metric", "value", "alert line", "kind"), rows,
                        caption="Overall (alert lines from the config's alerts: section)",
                        highlight=[i for i, r in enumerate(rows) if _metric_of(r[0]) in fired])
    return Section("Summary", (
        "Cost per successful task is the primary metric: total cost / successful runs.", table))


def _metric_of(label: str) -> str:
    return {"success rate": "success_rate", "cost per successful task": "cost_per_success"}.get(
        label, label.replace("-", "_").replace(" ", "_"))


def _over_time(d: Dashboard) -> Section:
    if not d.by_day:
        return Section("Over time", (f"No run has a timestamp ({d.n_without_timestamp} runs): "
                                     "nothing to draw by day.",))
    days = [day for day, _ in d.by_day]
    cfg = d.config
    blocks: list = []
    if d.n_without_timestamp:
        blocks.append(f"{d.n_without_timestamp} runs without a timestamp are left out of these "
                      "plots (they are in every other table).")
    blocks.append(_fig("cost_per_success_by_day", plots.plot_lines(
        days, {"cost per success": [m.cost_per_success for _, m in d.by_day]},
        "Cost per successful task by day", "USD per success", cost_alert_line(d)),
        "cost per successful task by day"))
    blocks.append(_fig("success_rate_by_day", plots.plot_lines(
        days, {"success rate": [m.success_rate for _, m in d.by_day]}, "Success rate by day",
        "success rate", cfg.alerts.min_success_rate), "success rate by day"))
    for key, title, field in RATES:
        line = alert_line(cfg, field)
        blocks.append(_fig(f"{key}_by_day", plots.plot_lines(
            days, {title.lower(): [getattr(m, key) for _, m in d.by_day]}, f"{title} by day",
            title.lower(), line), f"{title.lower()} by day"
            + ("" if line is not None else " (no alert line in the config)")))
    return Section("Over time (by UTC day)", tuple(blocks))


def _by_group(d: Dashboard, grouped: Metrics, label: str) -> Section:
    keys = list(grouped.groups)
    ms = [grouped.groups[k] for k in keys]
    rows = [(k, str(m.runs), fmt_pct(m.success_rate), fmt_usd(m.cost_per_success),
             fmt_pct(m.escalation_rate), fmt_pct(m.verifier_call_rate), fmt_pct(m.cache_hit_rate),
             fmt_pct(m.false_done_rate)) for k, m in zip(keys, ms, strict=True)]
    table = build_table((label, "runs", "success", "cost/success", "escalation", "verifier calls",
                         "cache hits", "false DONE"), rows)
    name = label.replace(" ", "_")
    labels = [f"{label} {k}" if label == "tier" else k for k in keys]
    return Section(f"By {label}", (
        table,
        _fig(f"success_rate_by_{name}", plots.plot_bars(
            labels, [m.success_rate for m in ms], f"Success rate by {label}", "success rate",
            d.config.alerts.min_success_rate), f"success rate by {label}"),
        _fig(f"cost_per_success_by_{name}", plots.plot_bars(
            labels, [m.cost_per_success for m in ms], f"Cost per successful task by {label}",
            "USD per success", cost_alert_line(d)), f"cost per successful task by {label}"),
    ))


def _sources(d: Dashboard) -> Section:
    files = ", ".join(d.files) if d.files else "(a runs table)"
    return Section("Data", (f"Traces: {files}. Runs: {d.overall.runs}. Metric definitions: "
                            "docs/metrics.md.",))


def _fig(name: str, png: bytes, alt: str) -> Figure:
    return Figure(name, png, alt)


def build_dashboard_metrics(d: Dashboard) -> dict:
    """metrics.json of the dashboard: overall, per day, per tier, per task type (and per task
    type source for runtime traces)."""
    return {
        "format": "aco-monitoring",
        "overall": d.overall.to_dict(),
        "by_day": {day: m.to_dict() for day, m in d.by_day},
        "by_tier": {k: m.to_dict() for k, m in d.by_tier.groups.items()},
        "by_task_type": {k: m.to_dict() for k, m in d.by_task_type.groups.items()},
        **({} if d.by_task_type_from is None else {"by_task_type_from": {
            k: m.to_dict() for k, m in d.by_task_type_from.groups.items()}}),
        "runs_without_timestamp": d.n_without_timestamp,
        "rejected_lines": d.n_rejected_lines,
        "files": list(d.files),
        "cost_per_success_alert_line": cost_alert_line(d),
    }


def write_dashboard(d: Dashboard, out_dir: str | Path) -> tuple[Path, Path, Path]:
    """Write report.md, report.html and metrics.json into out_dir (atomically each)."""
    md, page = write_document(build_dashboard_document(d), out_dir)
    metrics = write_text(Path(out_dir) / METRICS_FILE, dumps_json(build_dashboard_metrics(d)))
    return md, page, metrics


def report_traces(paths: Sequence[str | Path], out_dir: str | Path,
                  config_path: str | Path | None = None, on_error: str = "skip",
                  ) -> tuple[Dashboard, tuple[Path, ...]]:
    """Read traces (bad lines fail, or are skipped and counted), build and write the
    dashboard."""
    files = expand_paths(paths)
    tables = read_traces(files, on_error=on_error)
    d = build_dashboard(tables.runs, load_config(config_path), [str(f) for f in files],
                        len(tables.rejected))
    return d, write_dashboard(d, out_dir)
