"""The dashboard's tables: the summary against the alert lines, the alerts, and one table per
model, tier and task type (all over every run; the page's filters act on its charts)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from aco.config import ACOConfig
from aco.monitoring import Metrics, sorted_groups
from aco_lab.report.document import Section, Table, build_table, fmt_pct, fmt_usd

# Summary rows of the rates: (metric key, label, AlertThresholds field or None).
RATE_ROWS = (
    ("escalation_rate", "escalation rate", "max_escalation_rate"),
    ("verifier_call_rate", "verifier-call rate", "max_verifier_call_rate"),
    ("cache_hit_rate", "cache-hit rate", None),
    ("false_done_rate", "false-DONE rate", None),
)
GROUP_COLUMNS = (
    "runs",
    "labelled",
    "success",
    "cost/success",
    "spend",
    "saved vs top",
    "p50 latency",
    "p95 latency",
    "escalation",
    "false DONE",
    "alerts",
)


def fmt_count(value: int | None) -> str:
    """A count with thousands separators, `-` for missing."""
    return "-" if value is None else f"{value:,}"


def fmt_ms(value: float | None) -> str:
    """A latency: ms below a second, else seconds, three significant digits (as the page's
    charts write it: d3's `,.3~r`)."""
    if value is None:
        return "-"
    return f"{_significant(value / 1000)} s" if value >= 1000 else f"{_significant(value)} ms"


def _significant(value: float, digits: int = 3) -> str:
    """`digits` significant digits, thousands separated, no exponent, no trailing zeros."""
    if value == 0:
        return "0"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    text = f"{round(value, decimals):,.{max(decimals, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def summary_table(
    overall: Metrics,
    usage: Mapping[str, Any],
    config: ACOConfig,
    cost_line: float | None,
    top_tier: int,
) -> Table:
    """The overall figures, each beside its alert line (highlighted where crossed)."""
    lines = config.alerts
    rows = [
        ("runs", fmt_count(overall.runs), "", ""),
        ("labelled share (outcome known)", fmt_pct(overall.labelled_share), "", ""),
        ("success rate", fmt_pct(overall.success_rate), fmt_pct(lines.min_success_rate), "min"),
        ("total cost", fmt_usd(overall.total_cost), "", ""),
        ("cost per successful task", fmt_usd(overall.cost_per_success), fmt_usd(cost_line), "max"),
        (
            f"saved against tier {top_tier}",
            f"{fmt_usd(usage['savings'])} ({fmt_pct(usage['savings_share'])})",
            "",
            "",
        ),
        (
            "tokens in / out / cached",
            " / ".join(fmt_count(usage[k]) for k in ("input_tokens", "output_tokens"))
            + " / "
            + (
                fmt_count(usage["cached_input_tokens"])
                if usage["cache_reported_calls"]
                else "not reported"
            ),
            "",
            "",
        ),
        (
            "latency p50 / p95",
            f"{fmt_ms(usage['latency_p50_ms'])} / {fmt_ms(usage['latency_p95_ms'])}",
            "",
            "",
        ),
    ]
    for key, label, field in RATE_ROWS:
        line = getattr(lines, field) if field else None
        rows.append(
            (
                label,
                fmt_pct(getattr(overall, key)),
                fmt_pct(line),
                ("min" if field.startswith("min") else "max") if field else "no line in config",
            )
        )
    fired = {a.metric for a in overall.alerts}
    keys = [
        "runs",
        "labelled",
        "success_rate",
        "total_cost",
        "cost_per_success",
        "savings",
        "tokens",
        "latency",
        *(k for k, _, _ in RATE_ROWS),
    ]
    return build_table(
        ("metric", "value", "alert line", "kind"),
        rows,
        caption="All runs (alert lines from the config's alerts: section)",
        highlight=[i for i, key in enumerate(keys) if key in fired],
    )


def alerts_section(
    overall: Metrics,
    scoped: Sequence[tuple[str, Metrics]],
    days: Sequence[tuple[str, Metrics]],
    summary: Table,
) -> Section:
    """The summary against the alert lines, every alert of every slice, and the days' alerts."""
    rows = [
        (scope, a.name, _value(a.metric, a.value), _value(a.metric, a.threshold))
        for scope, m in [("all runs", overall), *scoped]
        for a in m.alerts
    ]
    rows += _daily_alerts(days)
    blocks: list = [summary]
    if rows:
        blocks.append(
            build_table(
                ("where", "alert", "value", "line"),
                rows,
                caption="Alerts fired, overall, per task type and model "
                "(each against its own reference), and by day",
            )
        )
    else:
        blocks.append("No alert line is crossed, overall or in any task type, model or day.")
    return Section("Alerts", tuple(blocks))


def _daily_alerts(days: Sequence[tuple[str, Metrics]]) -> list[tuple[str, str, str, str]]:
    """One row per alert that fired on some day: how many days, the worst, the latest."""
    fired: dict[str, list[tuple[str, Any]]] = {}
    for day, m in days:
        for a in m.alerts:
            fired.setdefault(a.name, []).append((day, a))
    rows = []
    for name, hits in fired.items():
        low = hits[0][1].metric == "success_rate"  # the one alert that fires below its line
        day, worst = (min if low else max)(hits, key=lambda hit: hit[1].value)
        where = (
            f"{len(hits)} of {len(days)} days (latest {hits[-1][0]}, worst {day})"
            if len(hits) > 1
            else f"day {day}"
        )
        rows.append(
            (where, name, _value(worst.metric, worst.value), _value(worst.metric, worst.threshold))
        )
    return rows


def _value(metric: str, value: float) -> str:
    return fmt_usd(value) if metric == "cost_per_success" else fmt_pct(value)


def group_section(
    label: str,
    groups: Sequence[tuple[str, Metrics]],
    usage: Mapping[str, Mapping[str, Any]],
    note: str = "",
) -> Section:
    """One row per group: runs and outcomes, spend and savings, latency, rates, alerts."""
    metrics = dict(groups)
    keys = list(sorted_groups(dict.fromkeys([*metrics, *usage])))
    rows = []
    for key in keys:
        m, u = metrics.get(key), usage.get(key, {})
        rows.append(
            (
                key,
                fmt_count(m.runs if m else None),
                fmt_pct(m.labelled_share if m else None),
                fmt_pct(m.success_rate if m else None),
                fmt_usd(m.cost_per_success if m else None),
                fmt_usd(u.get("spend")),
                fmt_pct(u.get("savings_share")),
                fmt_ms(u.get("latency_p50_ms")),
                fmt_ms(u.get("latency_p95_ms")),
                fmt_pct(m.escalation_rate if m else None),
                fmt_pct(m.false_done_rate if m else None),
                ", ".join(a.name for a in m.alerts) if m and m.alerts else "-",
            )
        )
    blocks: list = [note] if note else []
    return Section(f"By {label}", (*blocks, build_table((label, *GROUP_COLUMNS), rows)))
