"""The monitoring dashboard: the metrics of any traces as one self-contained HTML page.

`aco-lab report PATHS --out DIR` -> DIR/report.html, report.md and metrics.json. The
monitoring metrics and alerts come from aco_lab.report.stats (the one definition, shared with
`aco stats`): overall, per UTC day, per tier, per task type and per model. Spend, tokens,
latency and the savings against the top tier are the dashboard's own (aco_lab.report.usage).
The page's interactive charts (aco_lab.report.dashboard_charts, dashboard_outcomes)
re-aggregate the same cells under its filters; its tables and metrics.json are over all runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from aco.config import ACOConfig, load_config
from aco.monitoring import NULL_GROUP, TASK_TYPE_FROM, Metrics, sorted_groups
from aco_lab.files import write_text
from aco_lab.report import dashboard_charts as C
from aco_lab.report import dashboard_data as D
from aco_lab.report import dashboard_outcomes as O
from aco_lab.report import usage as U
from aco_lab.report.dashboard_tables import alerts_section, group_section, summary_table
from aco_lab.report.document import (
    CALLOUT_INFO,
    CALLOUT_WARNING,
    Callout,
    Document,
    Section,
    dumps_json,
    fmt_pct,
    fmt_usd,
    write_document,
)
from aco_lab.report.evaluation_report import METRICS_FILE
from aco_lab.report.stats import compute_stats
from aco_lab.traces import schema as S
from aco_lab.traces.reading import TraceTables, expand_paths, read_traces

# The rates drawn per day: (metric key, title, AlertThresholds field or None, numerator and
# denominator in the run cells, the sum that must be > 0 for the rate to exist).
RATES = (
    ("escalation_rate", "Escalation rate", "max_escalation_rate", "escalated", "runs", None),
    (
        "verifier_call_rate",
        "Verifier-call rate",
        "max_verifier_call_rate",
        "verifier_steps",
        "steps",
        None,
    ),
    (
        "cache_hit_rate",
        "Cache-hit rate",
        None,
        "cached_input_tokens",
        "input_tokens",
        "cache_reported",
    ),
    ("false_done_rate", "False-DONE rate", None, "false_dones", "completed_known", None),
)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The figures of a set of runs: monitoring metrics, overall and sliced, and the cells."""

    overall: Metrics
    by_day: tuple[tuple[str, Metrics], ...]  # days in order; runs without timestamp left out
    by_tier: Metrics  # grouped by tier
    by_task_type: Metrics  # grouped by task type
    by_model: tuple[tuple[str, Metrics], ...]  # per run model (model_id), null group last
    n_without_timestamp: int
    config: ACOConfig
    run_cells: pl.DataFrame  # usage.build_run_cells
    call_cells: pl.DataFrame  # usage.build_call_cells
    usage: Mapping[str, Any]  # usage.usage_figures of the call cells
    files: tuple[str, ...] = ()
    n_rejected_lines: int = 0
    # Grouped by metadata.task_type_from, when the runtime wrote the traces; else None.
    by_task_type_from: Metrics | None = None


def build_dashboard(
    tables: TraceTables, config: ACOConfig, files: Sequence[str] = (), n_rejected_lines: int = 0
) -> Dashboard:
    """The dashboard's numbers from the trace tables (pure; stats and usage do the sums)."""
    runs = tables.runs
    run_cells = U.build_run_cells(runs)
    call_cells = U.build_call_cells(runs, tables.steps, config)
    day = pl.col(S.TIMESTAMP).dt.strftime("%Y-%m-%d")
    model = pl.col(S.MODEL_ID).fill_null(NULL_GROUP)
    # Only traces the runtime wrote say where their task type came from (metadata).
    by_type_from = (
        compute_stats(runs, config, by=TASK_TYPE_FROM) if S.METADATA in runs.columns else None
    )
    return Dashboard(
        overall=compute_stats(runs, config),
        by_day=_split(runs.filter(day.is_not_null()), day, config),
        by_tier=compute_stats(runs, config, by=S.TIER),
        by_task_type=compute_stats(runs, config, by=S.TASK_TYPE),
        by_model=_split(runs, model, config),
        n_without_timestamp=runs.filter(day.is_null()).height,
        config=config,
        run_cells=run_cells,
        call_cells=call_cells,
        usage=U.usage_figures(call_cells),
        files=tuple(files),
        n_rejected_lines=n_rejected_lines,
        by_task_type_from=(
            None
            if by_type_from is None or set(by_type_from.groups) <= {NULL_GROUP}
            else by_type_from
        ),
    )


def _split(runs: pl.DataFrame, key: pl.Expr, config: ACOConfig) -> tuple[tuple[str, Metrics], ...]:
    """compute_stats of the runs of each value of `key`, in sorted_groups order."""
    parts = {
        str(k[0]): part.drop("_key")
        for k, part in runs.with_columns(key.alias("_key")).group_by("_key")
    }
    return tuple((k, compute_stats(part, config)) for k, part in sorted_groups(parts).items())


def cost_alert_line(d: Dashboard) -> float | None:
    """USD per success above which `high_cost_per_success` fires: ratio x the top tier's."""
    if not d.by_tier.groups:
        return None
    top = d.by_tier.groups[max(d.by_tier.groups, key=lambda k: int(k) if k.isdigit() else -1)]
    if top.cost_per_success is None:
        return None
    return d.config.alerts.max_cost_ratio_vs_frontier * top.cost_per_success


def build_callouts(d: Dashboard) -> tuple[Callout, ...]:
    """What the page shows above everything: crossed alert lines and rejected lines."""
    callouts = tuple(
        Callout(f"ALERT {a.name}: {a.message}", CALLOUT_WARNING) for a in d.overall.alerts
    )
    if d.n_rejected_lines:
        callouts += (
            Callout(
                f"{d.n_rejected_lines} trace lines were rejected and are not counted "
                "(aco-lab validate lists them)",
                CALLOUT_WARNING,
            ),
        )
    return callouts


def build_dashboard_document(d: Dashboard) -> Document:
    """The dashboard as a Document: filters, charts and tables, rendered to HTML and markdown."""
    sections = (
        _overview(d),
        _spend(d),
        _savings(d),
        _tokens(d),
        _latency(d),
        _outcomes(d),
        _rates(d),
        _alerts(d),
        *_groups(d),
        _sources(d),
    )
    return Document(
        "ACO monitoring dashboard",
        sections,
        build_callouts(d),
        D.page_datasets(d.run_cells, d.call_cells),
    )


def choices(d: Dashboard) -> D.Choices:
    """What the filters offer, from the cells."""
    runs, calls = d.run_cells, d.call_cells
    return D.Choices(
        task_types=tuple(U.keyed_values(runs, U.TASK_TYPE)),
        models=tuple(U.keyed_values(runs, U.MODEL)),
        call_models=tuple(U.keyed_values(calls, U.CALL_MODEL)),
        tiers=tuple(U.keyed_values(runs, U.TIER)),
        days=tuple(day for day, _ in d.by_day),
    )


def _overview(d: Dashboard) -> Section:
    top = U.top_tier(d.config)
    return Section(
        "Overview",
        (
            D.build_controls(choices(d)),
            C.kpi_chart(top),
            f"Savings compare what was spent with the same calls' tokens at the top tier's prices "
            f"(tier {top.tier}, {top.model_id}: ${top.cost_per_1k_input:g} per 1K input and "
            f"${top.cost_per_1k_output:g} per 1K output tokens, from the config). Cost per success "
            "and success rate count only the runs whose outcome is known.",
        ),
    )


def _no_days(d: Dashboard) -> str:
    return f"No run has a timestamp ({d.n_without_timestamp:,} runs): nothing to draw by day."


def _left_out(d: Dashboard) -> tuple[str, ...]:
    if not d.by_day or not d.n_without_timestamp:
        return ()
    return (
        f"{d.n_without_timestamp:,} runs without a timestamp are left out of the charts by "
        "day (they are in every other chart and table).",
    )


def _spend(d: Dashboard) -> Section:
    by_day = (C.spend_by_day_chart(choices(d)),) if d.by_day else (_no_days(d),)
    return Section("Spend", (*_left_out(d), *by_day, C.spend_breakdown_chart(choices(d))))


def _savings(d: Dashboard) -> Section:
    u, top = d.usage["overall"], U.top_tier(d.config)
    text = (
        f"All runs: spent {fmt_usd(u[U.SPEND])}; the same calls at tier {top.tier}'s prices "
        f"would have cost {fmt_usd(u[U.TOP_SPEND])}: {fmt_usd(u['savings'])} "
        f"({fmt_pct(u['savings_share'])}) saved. Cached-input discounts and tool costs are "
        "counted as spent on both sides."
    )
    blocks: list = [text]
    if u[U.UNPRICED]:
        blocks.append(
            f"{u[U.UNPRICED]:,} calls report no input tokens: they count at their own "
            "cost on both sides."
        )
    unknown = sorted(
        set(U.keyed_values(d.call_cells, U.CALL_MODEL))
        - {t.model_id for t in d.config.tiers}
        - {U.TOOLS, U.NOT_ITEMISED}
    )
    if unknown:
        blocks.append(
            Callout(
                f"Models not in the config's tier table: {', '.join(unknown[:5])}"
                f"{' ...' if len(unknown) > 5 else ''}. The savings price their tokens at tier "
                f"{top.tier}'s configured prices; pass --config with a tier table of the models "
                "you run for savings in your prices.",
                CALLOUT_INFO,
            )
        )
    if u["savings"] < 0:
        blocks.append(
            f"These calls cost more than tier {top.tier}'s configured prices would: "
            "check the config's tier prices against what the models charge."
        )
    return Section(
        f"Savings against the top tier (tier {top.tier})",
        (*blocks, C.savings_chart(top, bool(d.by_day))),
    )


def _tokens(d: Dashboard) -> Section:
    return Section("Tokens", (*_left_out(d), C.tokens_chart(choices(d), bool(d.by_day))))


def _latency(d: Dashboard) -> Section:
    if not d.usage["overall"]["latency_calls"]:
        return Section("Latency", ("No model call records latency_ms: nothing to draw.",))
    return Section(
        "Latency",
        (
            f"Percentiles of model-call latency, read from a log-scale histogram: each within "
            f"{U.LATENCY_ACCURACY:.0%} of the exact value.",
            C.latency_chart(bool(d.by_day)),
        ),
    )


def _outcomes(d: Dashboard) -> Section:
    lines = d.config.alerts
    daily = (O.outcomes_chart(lines.min_success_rate, cost_alert_line(d)),) if d.by_day else ()
    return Section("Outcomes", (*daily, O.success_by_group_chart(lines.min_success_rate)))


def _rates(d: Dashboard) -> Section:
    if not d.by_day:
        return Section("Monitoring rates by day", (_no_days(d),))
    drawn, flat = [], []
    for key, title, field, numerator, denominator, known in RATES:
        values = [getattr(m, key) for _, m in d.by_day]
        if all(v is None or v == 0 for v in values):  # a flat line at zero says nothing
            flat.append(
                f"{title.lower()} is {'0' if any(v == 0 for v in values) else 'unknown'}"
                " on every day"
            )
            continue
        line = getattr(d.config.alerts, field) if field else None
        kind = "min" if field and field.startswith("min") else "max"
        drawn.append(O.Rate(key, title, numerator, denominator, line, kind, known))
    blocks: list = [f"Not drawn: {'; '.join(flat)}."] if flat else []
    if drawn:
        blocks.append(O.rates_chart(drawn))
    return Section("Monitoring rates by day", (*_left_out(d), *blocks))


def _alerts(d: Dashboard) -> Section:
    scoped = [
        *((f"task type {k}", m) for k, m in d.by_task_type.groups.items()),
        *((f"model {k}", m) for k, m in d.by_model),
    ]
    summary = summary_table(
        d.overall, d.usage["overall"], d.config, cost_alert_line(d), U.top_tier(d.config).tier
    )
    return alerts_section(d.overall, scoped, d.by_day, summary)


def _groups(d: Dashboard) -> tuple[Section, ...]:
    """A table per model, tier and task type (and task type source for runtime traces)."""
    u = d.usage
    sections = (
        group_section(
            "model",
            d.by_model,
            u["by_model"],
            "Runs and outcomes by the run's model (the model of its last call at its "
            "highest tier); spend, savings and latency by the model each call went to.",
        ),
        group_section("tier", tuple(d.by_tier.groups.items()), u["by_tier"]),
        group_section("task type", tuple(d.by_task_type.groups.items()), u["by_task_type"]),
    )
    if d.by_task_type_from is not None:  # runtime traces: given task types against guessed
        sections += (
            group_section("task type source", tuple(d.by_task_type_from.groups.items()), {}),
        )
    return sections


def _sources(d: Dashboard) -> Section:
    files = ", ".join(d.files) if d.files else "(trace tables)"
    return Section(
        "Data",
        (
            f"Traces: {files}. Runs: {d.overall.runs:,}. Metric definitions: "
            "docs/metrics.md; the dashboard's own figures: docs/metrics.md "
            "(Dashboard figures).",
        ),
    )


def build_dashboard_metrics(d: Dashboard) -> dict:
    """metrics.json: the monitoring metrics overall and per day, tier, task type and model (and
    task type source for runtime traces), and the usage figures (spend, tokens, latency,
    savings) the page draws."""
    top = U.top_tier(d.config)
    return {
        "format": "aco-monitoring",
        "overall": d.overall.to_dict(),
        "by_day": {day: m.to_dict() for day, m in d.by_day},
        "by_tier": {k: m.to_dict() for k, m in d.by_tier.groups.items()},
        "by_task_type": {k: m.to_dict() for k, m in d.by_task_type.groups.items()},
        "by_model": {k: m.to_dict() for k, m in d.by_model},
        **(
            {}
            if d.by_task_type_from is None
            else {
                "by_task_type_from": {k: m.to_dict() for k, m in d.by_task_type_from.groups.items()}
            }
        ),
        "usage": d.usage,
        "top_tier": {
            "tier": top.tier,
            "model_id": top.model_id,
            "cost_per_1k_input": top.cost_per_1k_input,
            "cost_per_1k_output": top.cost_per_1k_output,
        },
        "latency_accuracy": U.LATENCY_ACCURACY,
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


def report_traces(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    config_path: str | Path | None = None,
    on_error: str = "skip",
) -> tuple[Dashboard, tuple[Path, ...]]:
    """Read traces (bad lines fail, or are skipped and counted), build and write the
    dashboard."""
    files = expand_paths(paths)
    tables = read_traces(files, on_error=on_error)
    d = build_dashboard(
        tables, load_config(config_path), [str(f) for f in files], len(tables.rejected)
    )
    return d, write_dashboard(d, out_dir)
