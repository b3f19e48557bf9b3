"""The dashboard's interactive charts of spend, savings, tokens and latency: Vega-Lite specs
(Altair) over the page's two datasets (aco_lab/report/dashboard_data.py).

Every chart reads the run cells (`runs`) or the call cells (`calls`) of aco_lab/report/usage.py
by name, keeps the cells the page's filters select (task type, model, tier, first and last
day) and sums them in the browser with the formulas of docs/metrics.md: a ratio is always a
ratio of sums, so a filtered figure is the figure of the filtered runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt

from aco.config import TierSpec
from aco_lab.report import usage as U
from aco_lab.report.charts import Chart
from aco_lab.report.dashboard_data import (
    CALLS,
    DAY_AXIS,
    HALF,
    RUNS,
    WIDE,
    Choices,
    bin_value,
    cells,
    duration,
    page_chart,
    pct,
    ratio,
    usd,
)


# -- the overview tiles ---------------------------------------------------------------------------
def kpi_chart(top: TierSpec) -> Chart:
    """The headline figures, as tiles that follow the filters."""
    runs = cells(RUNS, totals=True).transform_aggregate(
        n="sum(runs)", known="sum(known)", ok="sum(successes)", cost="sum(known_cost)"
    )
    calls = cells(CALLS, totals=True).transform_aggregate(
        spend=f"sum({U.SPEND})",
        top=f"sum({U.TOP_SPEND})",
        i=f"sum({U.INPUT})",
        o=f"sum({U.OUTPUT})",
        c=f"sum({U.CACHED})",
        reported=f"sum({U.CACHE_REPORTED})",
    )
    tiles = [
        _tile(calls, "Spend", usd("datum.spend"), "'model calls and tools'"),
        _tile(
            runs,
            "Runs",
            "format(datum.n, ',')",
            "format(datum.known, ',') + ' with a known outcome'",
        ),
        _tile(
            runs,
            "Labelled share",
            pct(ratio("datum.known", "datum.n")),
            "'runs whose task_success is known'",
        ),
        _tile(runs, "Success rate", pct(ratio("datum.ok", "datum.known")), "'of labelled runs'"),
        _tile(
            runs,
            "Cost per success",
            f"(datum.ok ? {usd('datum.cost / datum.ok')} : '–')",
            "'labelled runs only'",
        ),
        _tile(
            calls,
            f"Saved vs tier {top.tier}",
            usd("datum.top - datum.spend"),
            f"{pct(ratio('datum.top - datum.spend', 'datum.top'))} + ' of {_js(top.model_id)} "
            "prices'",
        ),
        _tile(
            calls,
            "Tokens in / out",
            "format(datum.i, '.3~s') + ' / ' + format(datum.o, '.3~s')",
            f"datum.reported ? {pct(ratio('datum.c', 'datum.i'))} + ' of input cached' "
            ": 'no call reports its cache'",
        ),
        _tile(
            _latency(cells(CALLS, totals=True), []),
            "Latency p50 / p95",
            f"{duration('datum.p50')} + ' / ' + {duration('datum.p95')}",
            "datum.calls ? format(datum.calls, ',') + ' calls with latency' "
            ": 'no call records latency_ms'",
        ),
    ]
    chart = alt.concat(*tiles, columns=4, spacing=12).configure_view(stroke="#ddd")
    return page_chart("overview", chart, "headline figures of the selected runs")


def _tile(data: alt.Chart, title: str, value: str, sub: str) -> alt.LayerChart:
    texts = data.transform_calculate(value=value, sub=sub)
    big = texts.mark_text(fontSize=20, fontWeight="bold", dy=-6).encode(text="value:N")
    small = texts.mark_text(fontSize=10, color="#666", dy=16).encode(text="sub:N")
    return alt.layer(big, small).properties(
        width=190, height=54, title=alt.TitleParams(title, fontSize=12, fontWeight="normal")
    )


def _js(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


# -- spend and savings ----------------------------------------------------------------------------
def spend_by_day_chart(choices: Choices) -> Chart:
    """Spend per day, stacked by the model called (tools and unitemised cost their own)."""
    chart = (
        cells(CALLS, dated=True)
        .mark_bar()
        .encode(
            x=alt.X(f"{U.DAY}:T", **DAY_AXIS),
            y=alt.Y(f"sum({U.SPEND}):Q", title="USD", axis=alt.Axis(format="$,.2~f")),
            color=alt.Color(
                f"{U.CALL_MODEL}:N",
                title="model called",
                scale=alt.Scale(domain=list(choices.call_models)),
            ),
            tooltip=[
                alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate", title="day"),
                alt.Tooltip(f"{U.CALL_MODEL}:N", title="model"),
                alt.Tooltip(f"sum({U.SPEND}):Q", title="spend", format="$,.2f"),
            ],
        )
        .properties(width="container", height=240)
    )
    return page_chart("spend_by_day", chart, "spend per UTC day by model called")


def spend_breakdown_chart(choices: Choices) -> Chart:
    """Spend by model called, by task type and by tier (horizontal bars, largest first)."""
    by_model = _bars(cells(CALLS), U.CALL_MODEL, "model called", U.SPEND, WIDE, choices.call_models)
    by_type = _bars(cells(CALLS), U.TASK_TYPE, "task type", U.SPEND, HALF)
    by_tier = _bars(cells(CALLS), U.TIER, "tier", U.SPEND, HALF)
    chart = alt.vconcat(by_model, alt.hconcat(by_type, by_tier, spacing=30), spacing=20)
    return page_chart("spend_breakdown", chart, "spend by model called, task type and tier")


def _bars(
    data: alt.Chart, key: str, title: str, field: str, width: int, domain: Sequence[str] = ()
) -> alt.LayerChart:
    summed = data.transform_aggregate(v=f"sum({field})", groupby=[key]).transform_calculate(
        label=usd("datum.v")
    )
    largest_first = alt.EncodingSortField("v", op="max", order="descending")
    y = alt.Y(f"{key}:N", title=title, sort=largest_first)
    colour = (
        alt.Color(f"{key}:N", scale=alt.Scale(domain=list(domain)), legend=None)
        if domain
        else alt.value("#1f77b4")
    )
    bars = summed.mark_bar().encode(
        x=alt.X("v:Q", title="spend (USD)", axis=alt.Axis(format="$,.2~f")),
        y=y,
        color=colour,
        tooltip=[alt.Tooltip(f"{key}:N", title=title), alt.Tooltip("label:N", title="spend")],
    )
    labels = summed.mark_text(align="left", dx=3, fontSize=10).encode(x="v:Q", y=y, text="label:N")
    return alt.layer(bars, labels).properties(width=width, height=alt.Step(22))


def savings_chart(top: TierSpec, dated: bool) -> Chart:
    """Spend per day against the same calls at the top tier's prices; savings by task type."""
    by_type = (
        cells(CALLS)
        .transform_aggregate(
            spent=f"sum({U.SPEND})", top=f"sum({U.TOP_SPEND})", groupby=[U.TASK_TYPE]
        )
        .transform_calculate(
            saved="datum.top - datum.spent",
            share=ratio("datum.saved", "datum.top"),
            label=f"{usd('datum.saved')} + ' (' + {pct('datum.share')} + ')'",
        )
    )
    y = alt.Y(
        f"{U.TASK_TYPE}:N",
        title="task type",
        sort=alt.EncodingSortField("saved", op="max", order="descending"),
    )
    bars = by_type.mark_bar(color="#2ca02c").encode(
        x=alt.X(
            "saved:Q",
            title=f"saved against tier {top.tier} prices (USD)",
            axis=alt.Axis(format="$,.2~f"),
        ),
        y=y,
        tooltip=["label:N"],
    )
    text = by_type.mark_text(align="left", dx=3, fontSize=10).encode(
        x="saved:Q", y=y, text="label:N"
    )
    panels = [alt.layer(bars, text).properties(width=WIDE, height=alt.Step(22))]
    if dated:
        panels.insert(0, _spend_against_top(top))
    return page_chart(
        "savings", alt.vconcat(*panels), f"spend against every call at tier {top.tier} prices"
    )


def _spend_against_top(top: TierSpec) -> alt.Chart:
    daily = (
        cells(CALLS, dated=True)
        .transform_aggregate(spent=f"sum({U.SPEND})", top=f"sum({U.TOP_SPEND})", groupby=[U.DAY])
        .transform_fold(["spent", "top"], as_=["series", "usd"])
        .transform_calculate(
            series=f"datum.series == 'spent' ? 'spent' : 'every call at tier {top.tier} prices'"
        )
    )
    return (
        daily.mark_line(point=True)
        .encode(
            x=alt.X(f"{U.DAY}:T", **DAY_AXIS),
            y=alt.Y("usd:Q", title="USD", axis=alt.Axis(format="$,.2~f")),
            color=alt.Color(
                "series:N",
                title=None,
                legend=alt.Legend(orient="top"),
                scale=alt.Scale(
                    domain=["spent", f"every call at tier {top.tier} prices"],
                    range=["#1f77b4", "#999"],
                ),
            ),
            tooltip=[
                alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate", title="day"),
                "series:N",
                alt.Tooltip("usd:Q", format="$,.2f"),
            ],
        )
        .properties(width=WIDE, height=220)
    )


# -- tokens and latency ---------------------------------------------------------------------------
TOKEN_KINDS = ("input, not cached", "input, cached", "output")


def tokens_chart(choices: Choices, dated: bool) -> Chart:
    """Tokens per day and per model called: uncached input, cached input, output."""

    def kinds(data: alt.Chart, key: str) -> alt.Chart:
        return (
            data.transform_filter(f"datum.{U.CALLS} > 0")
            .transform_aggregate(
                i=f"sum({U.INPUT})", c=f"sum({U.CACHED})", o=f"sum({U.OUTPUT})", groupby=[key]
            )
            .transform_calculate(
                **{
                    TOKEN_KINDS[0]: "datum.i - datum.c",
                    TOKEN_KINDS[1]: "datum.c",
                    TOKEN_KINDS[2]: "datum.o",
                }
            )
            .transform_fold(list(TOKEN_KINDS), as_=["kind", "tokens"])
        )

    colour = alt.Color(
        "kind:N",
        title=None,
        scale=alt.Scale(domain=list(TOKEN_KINDS)),
        legend=alt.Legend(orient="top"),
    )
    tip = [alt.Tooltip("kind:N"), alt.Tooltip("tokens:Q", format=",")]
    daily = (
        kinds(cells(CALLS, dated=True), U.DAY)
        .mark_bar()
        .encode(
            x=alt.X(f"{U.DAY}:T", **DAY_AXIS),
            y=alt.Y("tokens:Q", axis=alt.Axis(format="~s")),
            color=colour,
            tooltip=[alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"), *tip],
        )
        .properties(width=WIDE, height=200)
    )
    per_model = (
        kinds(cells(CALLS), U.CALL_MODEL)
        .mark_bar()
        .encode(
            y=alt.Y(f"{U.CALL_MODEL}:N", title="model called", sort=list(choices.call_models)),
            x=alt.X("tokens:Q", axis=alt.Axis(format="~s")),
            color=colour,
            tooltip=[f"{U.CALL_MODEL}:N", *tip],
        )
        .properties(width=WIDE, height=alt.Step(22))
    )
    chart = alt.vconcat(daily, per_model) if dated else per_model
    return page_chart("tokens", chart, "tokens per day and per model called")


def _latency(data: alt.Chart, groupby: list[str]) -> alt.Chart:
    """p50 and p95 of the summed latency histograms per group (nearest rank, as usage.py)."""
    keys = groupby or alt.Undefined
    # The zero row's one bin is null with no call: it adds a row, never a quantile.
    return (
        data.transform_flatten([U.LAT_BINS, U.LAT_COUNTS])
        .transform_aggregate(n=f"sum({U.LAT_COUNTS})", groupby=[*groupby, U.LAT_BINS])
        .transform_window(
            cum="sum(n)", sort=[alt.SortField(U.LAT_BINS)], groupby=keys, frame=[None, 0]
        )
        .transform_joinaggregate(total="sum(n)", groupby=keys)
        .transform_calculate(
            b50=f"datum.cum >= ceil(0.5 * datum.total) ? datum.{U.LAT_BINS} : null",
            b95=f"datum.cum >= ceil(0.95 * datum.total) ? datum.{U.LAT_BINS} : null",
        )
        .transform_aggregate(b50="min(b50)", b95="min(b95)", calls="max(total)", groupby=keys)
        .transform_calculate(p50=bin_value("b50"), p95=bin_value("b95"))
    )


def latency_chart(dated: bool) -> Chart:
    """p50 and p95 latency per day and per model called."""
    quantile = alt.Color(
        "quantile:N",
        title=None,
        scale=alt.Scale(domain=["p50", "p95"]),
        legend=alt.Legend(orient="top"),
    )
    daily = (
        _latency(cells(CALLS, dated=True), [U.DAY])
        .transform_fold(["p50", "p95"], as_=["quantile", "ms"])
        .mark_line(point=True)
        .encode(
            x=alt.X(f"{U.DAY}:T", **DAY_AXIS),
            y=alt.Y("ms:Q", title="latency (ms)"),
            color=quantile,
            tooltip=[
                alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"),
                "quantile:N",
                alt.Tooltip("ms:Q", format=",.0f"),
            ],
        )
        .properties(width=WIDE, height=200)
    )
    models = _latency(cells(CALLS), [U.CALL_MODEL])
    y = alt.Y(
        f"{U.CALL_MODEL}:N", title="model called", sort=alt.EncodingSortField("p50", op="max")
    )
    span = models.mark_rule(color="#999").encode(
        y=y, x=alt.X("p50:Q", title="latency (ms)"), x2="p95:Q"
    )
    points = (
        models.transform_fold(["p50", "p95"], as_=["quantile", "ms"])
        .mark_point(filled=True, size=60)
        .encode(
            y=y,
            x="ms:Q",
            color=quantile,
            tooltip=[
                f"{U.CALL_MODEL}:N",
                "quantile:N",
                alt.Tooltip("ms:Q", format=",.0f"),
                "calls:Q",
            ],
        )
    )
    per_model = alt.layer(span, points).properties(width=WIDE, height=alt.Step(22))
    chart = alt.vconcat(daily, per_model) if dated else per_model
    return page_chart("latency", chart, "p50 and p95 latency per day and per model called")
