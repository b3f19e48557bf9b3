"""The dashboard's charts of outcomes and monitoring rates, each against its alert line.

Success rate and labelled share, cost per success, and the rates of docs/metrics.md per day,
over the run cells of aco_lab/report/dashboard_data.py as the filters keep them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt

from aco_lab.report import usage as U
from aco_lab.report.charts import Chart
from aco_lab.report.dashboard_data import DAY_AXIS, HALF, RUNS, WIDE, cells, page_chart, ratio
from aco_lab.report.document import fmt_usd

ALERT_COLOR = "#d62728"


def _alert_rule(line: float | None, label: str) -> list[alt.LayerChart]:
    if line is None:
        return []
    one = alt.Chart(alt.Data(values=[{"y": line, "label": label}]))
    rule = one.mark_rule(color=ALERT_COLOR, strokeDash=[5, 3]).encode(y="y:Q")
    # Right of the plot, at the line's height: inside it would cover bars and points.
    text = one.mark_text(
        color=ALERT_COLOR, align="left", baseline="middle", fontSize=10, x="width", dx=4
    ).encode(y="y:Q", text="label:N")
    return [rule, text]


def outcomes_chart(min_success: float, cost_line: float | None) -> Chart:
    """Labelled share and success rate per day; cost per success per day; against their lines."""
    daily = (
        cells(RUNS, dated=True)
        .transform_aggregate(
            n="sum(runs)",
            known="sum(known)",
            ok="sum(successes)",
            cost="sum(known_cost)",
            groupby=[U.DAY],
        )
        .transform_calculate(
            **{
                "labelled share": ratio("datum.known", "datum.n"),
                "success rate": ratio("datum.ok", "datum.known"),
                "cost per success": ratio("datum.cost", "datum.ok"),
            }
        )
    )
    x = alt.X(f"{U.DAY}:T", **DAY_AXIS)
    shares = (
        daily.transform_fold(["labelled share", "success rate"], as_=["rate", "value"])
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y(
                "value:Q", title=None, axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
            ),
            color=alt.Color("rate:N", title=None, legend=alt.Legend(orient="top")),
            tooltip=[
                alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"),
                "rate:N",
                alt.Tooltip("value:Q", format=".1%"),
            ],
        )
    )
    cost = daily.mark_line(point=True, color="#9467bd").encode(
        x=x,
        y=alt.Y("cost per success:Q", title="USD per success", axis=alt.Axis(format="$,.3~r")),
        tooltip=[
            alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"),
            alt.Tooltip("cost per success:Q", format="$,.4~r"),
        ],
    )
    chart = alt.vconcat(
        alt.layer(shares, *_alert_rule(min_success, f"min {min_success:.0%}")).properties(
            width=WIDE, height=200
        ),
        alt.layer(cost, *_alert_rule(cost_line, f"max {fmt_usd(cost_line)}")).properties(
            width=WIDE, height=200
        ),
    )
    return page_chart(
        "outcomes_by_day",
        chart,
        "labelled share, success rate and cost per success per UTC day",
        "The cost line is the alert line of all runs: max_cost_ratio_vs_frontier x the "
        "top tier's cost per success.",
    )


def success_by_group_chart(min_success: float) -> Chart:
    """Success rate by task type and by tier, against the minimum success rate."""

    def bars(key: str, title: str) -> alt.LayerChart:
        summed = (
            cells(RUNS)
            .transform_aggregate(
                ok="sum(successes)", known="sum(known)", n="sum(runs)", groupby=[key]
            )
            .transform_calculate(
                rate=ratio("datum.ok", "datum.known"), share=ratio("datum.known", "datum.n")
            )
        )
        bar = summed.mark_bar().encode(
            x=alt.X(f"{key}:N", title=title, sort=None, axis=alt.Axis(labelAngle=-30)),
            y=alt.Y(
                "rate:Q",
                title="success rate",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=[
                f"{key}:N",
                alt.Tooltip("rate:Q", format=".1%", title="success rate"),
                alt.Tooltip("share:Q", format=".1%", title="labelled share"),
            ],
        )
        rule = _alert_rule(min_success, f"min {min_success:.0%}")
        return alt.layer(bar, *rule).properties(width=HALF, height=200)

    chart = alt.hconcat(bars(U.TASK_TYPE, "task type"), bars(U.TIER, "tier"), spacing=30)
    return page_chart("success_by_group", chart, "success rate by task type and by tier")


@dataclass(frozen=True, slots=True)
class Rate:
    """A monitoring rate drawn per day: a ratio of two run-cell sums, maybe an alert line."""

    key: str  # the metric key (docs/metrics.md)
    title: str
    numerator: str
    denominator: str
    line: float | None = None
    kind: str = "max"  # "max": alert above the line, "min": below
    known: str | None = None  # a sum that must be > 0 for the rate to exist (cache reports)


def rates_chart(rates: Sequence[Rate]) -> Chart:
    """Each rate per day against its alert line, two per row."""
    panels = []
    for rate in rates:
        # Names of their own per panel: Vega-Lite merges panels' identical-looking dataflows.
        a, b, k = (f"{rate.key}_{part}" for part in ("a", "b", "k"))
        daily = (
            cells(RUNS, dated=True)
            .transform_aggregate(
                **{
                    a: f"sum({rate.numerator})",
                    b: f"sum({rate.denominator})",
                    k: f"sum({rate.known or rate.denominator})",
                },
                groupby=[U.DAY],
            )
            .transform_calculate(
                **{rate.key: f"datum.{k} ? {ratio(f'datum.{a}', f'datum.{b}')} : null"}
            )
        )
        line = daily.mark_line(point=True).encode(
            x=alt.X(f"{U.DAY}:T", **DAY_AXIS),
            y=alt.Y(f"{rate.key}:Q", title=None, axis=alt.Axis(format="%")),
            tooltip=[
                alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"),
                alt.Tooltip(f"{rate.key}:Q", format=".1%", title=rate.title),
            ],
        )
        label = f"{rate.kind} {rate.line:.0%}" if rate.line is not None else ""
        panels.append(
            alt.layer(line, *_alert_rule(rate.line, label)).properties(
                width=HALF - 20, height=160, title=rate.title
            )
        )
    chart = alt.concat(*panels, columns=2, spacing=30)
    return page_chart(
        "rates_by_day", chart, "monitoring rates per UTC day against their alert lines"
    )
