"""The dashboard's interactive charts: Vega-Lite specs (Altair) over the page's two datasets.

Every chart reads the run cells (`runs`) or the call cells (`calls`) of aco_lab/report/usage.py
by name, keeps the cells the page's filters select (task type, model, tier, first and last
day) and sums them in the browser with the formulas of docs/metrics.md: a ratio is always a
ratio of sums, so a filtered figure is the figure of the filtered runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import polars as pl

from aco.config import TierSpec
from aco_lab.report import usage as U
from aco_lab.report.charts import ALL, Chart, Controls, Select, build_chart
from aco_lab.report.document import fmt_usd

RUNS, CALLS = "runs", "calls"  # the page's dataset names
ZERO = "zero"  # 1 on each dataset's zero row (page_datasets), 0 on the cells
# (chart parameter, cell key, label) of each select filter; then the day range.
KEY_FILTERS = (("f_task_type", U.TASK_TYPE, "task type"), ("f_model", U.MODEL, "model"),
               ("f_tier", U.TIER, "tier"))
FIRST_DAY, LAST_DAY = "f_from", "f_to"
ALERT_COLOR = "#d62728"
WIDE, HALF = 860, 390  # px: a chart across the page, one of two side by side
USD = "'$,.2f'"  # d3 formats, as Vega expression strings
DAY_AXIS = {"timeUnit": "utcyearmonthdate", "title": None}


@dataclass(frozen=True, slots=True)
class Choices:
    """What the filters offer and the scales keep fixed (so a model keeps its colour)."""

    task_types: tuple[str, ...]
    models: tuple[str, ...]  # the runs' models (the model filter)
    call_models: tuple[str, ...]  # the models called, then tools and unitemised spend
    tiers: tuple[str, ...]
    days: tuple[str, ...]


def build_controls(choices: Choices) -> Controls:
    """The filter bar: task type, model, tier, first and last day."""
    options = {U.TASK_TYPE: choices.task_types, U.MODEL: choices.models, U.TIER: choices.tiers}
    selects = [Select(param, label, (ALL, *options[key])) for param, key, label in KEY_FILTERS]
    if choices.days:
        selects += [Select(FIRST_DAY, "from", (ALL, *choices.days)),
                    Select(LAST_DAY, "to", (ALL, *choices.days))]
    return Controls(tuple(selects), "The charts follow these filters (a run's model is the model "
                    "of its last call at its highest tier); the tables are over all runs.")


def filter_expression() -> str:
    """The Vega expression that keeps the cells the filters select."""
    parts = [f"({param} == '{ALL}' || datum.{key} == {param})" for param, key, _ in KEY_FILTERS]
    # A chart with days on a time axis reads them as dates, the others as text: toDate both.
    parts += [f"({FIRST_DAY} == '{ALL}' || (datum.day != null && "
              f"toDate(datum.day) >= toDate({FIRST_DAY})))",
              f"({LAST_DAY} == '{ALL}' || (datum.day != null && "
              f"toDate(datum.day) <= toDate({LAST_DAY})))"]
    return " && ".join(parts)


PARAMS = (*(param for param, _, _ in KEY_FILTERS), FIRST_DAY, LAST_DAY)


def _cells(dataset: str, dated: bool = False, totals: bool = False) -> alt.Chart:
    """The cells the filters keep; for `totals` also the dataset's zero row, so that a sum over
    no cell is a row of zeros (Vega aggregates nothing into no row, and a tile would be blank)."""
    zero = f"datum.{ZERO} || " if totals else f"!datum.{ZERO} && "
    chart = alt.Chart(alt.NamedData(name=dataset)).transform_filter(
        f"{zero}({filter_expression()})")
    return chart.transform_filter("datum.day != null") if dated else chart


def page_datasets(run_cells: pl.DataFrame, call_cells: pl.DataFrame) -> dict[str, dict]:
    """The page's datasets: the cells as columns, each with its zero row (ZERO = 1)."""
    return {RUNS: _with_zero_row(run_cells), CALLS: _with_zero_row(call_cells)}


def _with_zero_row(cells: pl.DataFrame) -> dict[str, list]:
    columns = U.cells_as_columns(cells)
    for name, dtype in cells.schema.items():
        # Keys null; sums 0; the latency histogram one empty bin (flatten drops empty lists).
        zero = None if name in (*U.KEYS, U.CALL_MODEL) else 0
        if isinstance(dtype, pl.List):
            zero = [None] if name == U.LAT_BINS else [0]
        columns[name].append(zero)
    columns[ZERO] = [0] * cells.height + [1]
    return columns


def _chart(name: str, chart: alt.TopLevelMixin, alt_text: str, caption: str = "") -> Chart:
    return build_chart(name, chart, alt_text, caption, PARAMS)


# -- formats (Vega expressions, the same rules as the page's tables) ------------------------------
def usd(value: str) -> str:
    """USD: cents from $1 up, else three significant digits."""
    return f"(abs({value}) >= 1 ? format({value}, {USD}) : format({value}, '$,.3~r'))"


def pct(value: str) -> str:
    return f"(isValid({value}) && isFinite({value}) ? format({value}, '.1%') : '–')"


def ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator, null when the denominator is 0 (as aco.monitoring's _ratio)."""
    return f"({denominator} ? ({numerator}) / ({denominator}) : null)"


def duration(ms: str) -> str:
    """Latency: ms below a second, else seconds."""
    return (f"(!isValid({ms}) ? '–' : {ms} >= 1000 ? format({ms} / 1000, ',.3~r') + ' s' "
            f": format({ms}, ',.3~r') + ' ms')")


def _bin_value(field: str) -> str:
    value = f"2 * pow({U.GAMMA!r}, datum.{field}) / {U.GAMMA + 1!r}"  # usage.bin_value
    return f"(isValid(datum.{field}) ? {value} : null)"


# -- the overview tiles ---------------------------------------------------------------------------
def kpi_chart(top: TierSpec) -> Chart:
    """The headline figures, as tiles that follow the filters."""
    runs = _cells(RUNS, totals=True).transform_aggregate(
        n="sum(runs)", known="sum(known)", ok="sum(successes)", cost="sum(known_cost)")
    calls = _cells(CALLS, totals=True).transform_aggregate(
        spend=f"sum({U.SPEND})", top=f"sum({U.TOP_SPEND})", i=f"sum({U.INPUT})",
        o=f"sum({U.OUTPUT})", c=f"sum({U.CACHED})", reported=f"sum({U.CACHE_REPORTED})")
    tiles = [
        _tile(calls, "Spend", usd("datum.spend"), "'model calls and tools'"),
        _tile(runs, "Runs", "format(datum.n, ',')",
              "format(datum.known, ',') + ' with a known outcome'"),
        _tile(runs, "Labelled share", pct(ratio("datum.known", "datum.n")),
              "'runs whose task_success is known'"),
        _tile(runs, "Success rate", pct(ratio("datum.ok", "datum.known")), "'of labelled runs'"),
        _tile(runs, "Cost per success", f"(datum.ok ? {usd('datum.cost / datum.ok')} : '–')",
              "'labelled runs only'"),
        _tile(calls, f"Saved vs tier {top.tier}", usd("datum.top - datum.spend"),
              f"{pct(ratio('datum.top - datum.spend', 'datum.top'))} + ' of {_js(top.model_id)} "
              "prices'"),
        _tile(calls, "Tokens in / out", "format(datum.i, '.3~s') + ' / ' + format(datum.o, '.3~s')",
              f"datum.reported ? {pct(ratio('datum.c', 'datum.i'))} + ' of input cached' "
              ": 'no call reports its cache'"),
        _tile(_latency(_cells(CALLS, totals=True), []), "Latency p50 / p95",
              f"{duration('datum.p50')} + ' / ' + {duration('datum.p95')}",
              "datum.calls ? format(datum.calls, ',') + ' calls with latency' "
              ": 'no call records latency_ms'"),
    ]
    chart = alt.concat(*tiles, columns=4, spacing=12).configure_view(stroke="#ddd")
    return _chart("overview", chart, "headline figures of the selected runs")


def _tile(data: alt.Chart, title: str, value: str, sub: str) -> alt.LayerChart:
    texts = data.transform_calculate(value=value, sub=sub)
    big = texts.mark_text(fontSize=20, fontWeight="bold", dy=-6).encode(text="value:N")
    small = texts.mark_text(fontSize=10, color="#666", dy=16).encode(text="sub:N")
    return alt.layer(big, small).properties(
        width=190, height=54, title=alt.TitleParams(title, fontSize=12, fontWeight="normal"))


def _js(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


# -- spend and savings ----------------------------------------------------------------------------
def spend_by_day_chart(choices: Choices) -> Chart:
    """Spend per day, stacked by the model called (tools and unitemised cost their own)."""
    chart = _cells(CALLS, dated=True).mark_bar().encode(
        x=alt.X(f"{U.DAY}:T", **DAY_AXIS),
        y=alt.Y(f"sum({U.SPEND}):Q", title="USD", axis=alt.Axis(format="$,.2~f")),
        color=alt.Color(f"{U.CALL_MODEL}:N", title="model called",
                        scale=alt.Scale(domain=list(choices.call_models))),
        tooltip=[alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate", title="day"),
                 alt.Tooltip(f"{U.CALL_MODEL}:N", title="model"),
                 alt.Tooltip(f"sum({U.SPEND}):Q", title="spend", format="$,.2f")],
    ).properties(width="container", height=240)
    return _chart("spend_by_day", chart, "spend per UTC day by model called")


def spend_breakdown_chart(choices: Choices) -> Chart:
    """Spend by model called, by task type and by tier (horizontal bars, largest first)."""
    by_model = _bars(_cells(CALLS), U.CALL_MODEL, "model called", U.SPEND, WIDE,
                     choices.call_models)
    by_type = _bars(_cells(CALLS), U.TASK_TYPE, "task type", U.SPEND, HALF)
    by_tier = _bars(_cells(CALLS), U.TIER, "tier", U.SPEND, HALF)
    chart = alt.vconcat(by_model, alt.hconcat(by_type, by_tier, spacing=30), spacing=20)
    return _chart("spend_breakdown", chart, "spend by model called, task type and tier")


def _bars(data: alt.Chart, key: str, title: str, field: str, width: int,
          domain: Sequence[str] = ()) -> alt.LayerChart:
    summed = data.transform_aggregate(v=f"sum({field})", groupby=[key]).transform_calculate(
        label=usd("datum.v"))
    largest_first = alt.EncodingSortField("v", op="max", order="descending")
    y = alt.Y(f"{key}:N", title=title, sort=largest_first)
    colour = (alt.Color(f"{key}:N", scale=alt.Scale(domain=list(domain)), legend=None)
              if domain else alt.value("#1f77b4"))
    bars = summed.mark_bar().encode(
        x=alt.X("v:Q", title="spend (USD)", axis=alt.Axis(format="$,.2~f")), y=y, color=colour,
        tooltip=[alt.Tooltip(f"{key}:N", title=title), alt.Tooltip("label:N", title="spend")])
    labels = summed.mark_text(align="left", dx=3, fontSize=10).encode(
        x="v:Q", y=y, text="label:N")
    return alt.layer(bars, labels).properties(width=width, height=alt.Step(22))


def savings_chart(top: TierSpec, dated: bool) -> Chart:
    """Spend per day against the same calls at the top tier's prices; savings by task type."""
    by_type = _cells(CALLS).transform_aggregate(
        spent=f"sum({U.SPEND})", top=f"sum({U.TOP_SPEND})", groupby=[U.TASK_TYPE]
    ).transform_calculate(saved="datum.top - datum.spent", share=ratio("datum.saved", "datum.top"),
                          label=f"{usd('datum.saved')} + ' (' + {pct('datum.share')} + ')'")
    y = alt.Y(f"{U.TASK_TYPE}:N", title="task type",
              sort=alt.EncodingSortField("saved", op="max", order="descending"))
    bars = by_type.mark_bar(color="#2ca02c").encode(
        x=alt.X("saved:Q", title=f"saved against tier {top.tier} prices (USD)",
                axis=alt.Axis(format="$,.2~f")), y=y, tooltip=["label:N"])
    text = by_type.mark_text(align="left", dx=3, fontSize=10).encode(x="saved:Q", y=y,
                                                                      text="label:N")
    panels = [alt.layer(bars, text).properties(width=WIDE, height=alt.Step(22))]
    if dated:
        panels.insert(0, _spend_against_top(top))
    return _chart("savings", alt.vconcat(*panels),
                  f"spend against every call at tier {top.tier} prices")


def _spend_against_top(top: TierSpec) -> alt.Chart:
    daily = _cells(CALLS, dated=True).transform_aggregate(
        spent=f"sum({U.SPEND})", top=f"sum({U.TOP_SPEND})", groupby=[U.DAY]
    ).transform_fold(["spent", "top"], as_=["series", "usd"]).transform_calculate(
        series=f"datum.series == 'spent' ? 'spent' : 'every call at tier {top.tier} prices'")
    return daily.mark_line(point=True).encode(
        x=alt.X(f"{U.DAY}:T", **DAY_AXIS),
        y=alt.Y("usd:Q", title="USD", axis=alt.Axis(format="$,.2~f")),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top"), scale=alt.Scale(
            domain=["spent", f"every call at tier {top.tier} prices"], range=["#1f77b4", "#999"])),
        tooltip=[alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate", title="day"),
                 "series:N", alt.Tooltip("usd:Q", format="$,.2f")],
    ).properties(width=WIDE, height=220)


# -- tokens and latency ---------------------------------------------------------------------------
TOKEN_KINDS = ("input, not cached", "input, cached", "output")


def tokens_chart(choices: Choices, dated: bool) -> Chart:
    """Tokens per day and per model called: uncached input, cached input, output."""
    def kinds(data: alt.Chart, key: str) -> alt.Chart:
        return data.transform_filter(f"datum.{U.CALLS} > 0").transform_aggregate(
            i=f"sum({U.INPUT})", c=f"sum({U.CACHED})", o=f"sum({U.OUTPUT})", groupby=[key]
        ).transform_calculate(**{TOKEN_KINDS[0]: "datum.i - datum.c", TOKEN_KINDS[1]: "datum.c",
                                 TOKEN_KINDS[2]: "datum.o"}
                              ).transform_fold(list(TOKEN_KINDS), as_=["kind", "tokens"])

    colour = alt.Color("kind:N", title=None, scale=alt.Scale(domain=list(TOKEN_KINDS)),
                       legend=alt.Legend(orient="top"))
    tip = [alt.Tooltip("kind:N"), alt.Tooltip("tokens:Q", format=",")]
    daily = kinds(_cells(CALLS, dated=True), U.DAY).mark_bar().encode(
        x=alt.X(f"{U.DAY}:T", **DAY_AXIS), y=alt.Y("tokens:Q", axis=alt.Axis(format="~s")),
        color=colour, tooltip=[alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"), *tip],
    ).properties(width=WIDE, height=200)
    per_model = kinds(_cells(CALLS), U.CALL_MODEL).mark_bar().encode(
        y=alt.Y(f"{U.CALL_MODEL}:N", title="model called", sort=list(choices.call_models)),
        x=alt.X("tokens:Q", axis=alt.Axis(format="~s")), color=colour,
        tooltip=[f"{U.CALL_MODEL}:N", *tip]).properties(width=WIDE, height=alt.Step(22))
    chart = alt.vconcat(daily, per_model) if dated else per_model
    return _chart("tokens", chart, "tokens per day and per model called")


def _latency(data: alt.Chart, groupby: list[str]) -> alt.Chart:
    """p50 and p95 of the summed latency histograms per group (nearest rank, as usage.py)."""
    keys = groupby or alt.Undefined
    # The zero row's one bin is null with no call: it adds a row, never a quantile.
    return data.transform_flatten([U.LAT_BINS, U.LAT_COUNTS]).transform_aggregate(
        n=f"sum({U.LAT_COUNTS})", groupby=[*groupby, U.LAT_BINS]
    ).transform_window(
        cum="sum(n)", sort=[alt.SortField(U.LAT_BINS)], groupby=keys, frame=[None, 0]
    ).transform_joinaggregate(total="sum(n)", groupby=keys).transform_calculate(
        b50=f"datum.cum >= ceil(0.5 * datum.total) ? datum.{U.LAT_BINS} : null",
        b95=f"datum.cum >= ceil(0.95 * datum.total) ? datum.{U.LAT_BINS} : null",
    ).transform_aggregate(
        b50="min(b50)", b95="min(b95)", calls="max(total)", groupby=keys
    ).transform_calculate(p50=_bin_value("b50"), p95=_bin_value("b95"))


def latency_chart(dated: bool) -> Chart:
    """p50 and p95 latency per day and per model called."""
    quantile = alt.Color("quantile:N", title=None, scale=alt.Scale(domain=["p50", "p95"]),
                         legend=alt.Legend(orient="top"))
    daily = _latency(_cells(CALLS, dated=True), [U.DAY]).transform_fold(
        ["p50", "p95"], as_=["quantile", "ms"]).mark_line(point=True).encode(
        x=alt.X(f"{U.DAY}:T", **DAY_AXIS), y=alt.Y("ms:Q", title="latency (ms)"),
        color=quantile, tooltip=[alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"),
                                 "quantile:N", alt.Tooltip("ms:Q", format=",.0f")],
    ).properties(width=WIDE, height=200)
    models = _latency(_cells(CALLS), [U.CALL_MODEL])
    y = alt.Y(f"{U.CALL_MODEL}:N", title="model called",
              sort=alt.EncodingSortField("p50", op="max"))
    span = models.mark_rule(color="#999").encode(y=y, x=alt.X("p50:Q", title="latency (ms)"),
                                                  x2="p95:Q")
    points = models.transform_fold(["p50", "p95"], as_=["quantile", "ms"]).mark_point(
        filled=True, size=60).encode(y=y, x="ms:Q", color=quantile,
                                     tooltip=[f"{U.CALL_MODEL}:N", "quantile:N",
                                              alt.Tooltip("ms:Q", format=",.0f"), "calls:Q"])
    per_model = alt.layer(span, points).properties(width=WIDE, height=alt.Step(22))
    chart = alt.vconcat(daily, per_model) if dated else per_model
    return _chart("latency", chart, "p50 and p95 latency per day and per model called")


# -- outcomes and rates against their alert lines ------------------------------------------------
def _alert_rule(line: float | None, label: str) -> list[alt.LayerChart]:
    if line is None:
        return []
    one = alt.Chart(alt.Data(values=[{"y": line, "label": label}]))
    rule = one.mark_rule(color=ALERT_COLOR, strokeDash=[5, 3]).encode(y="y:Q")
    # Right of the plot, at the line's height: inside it would cover bars and points.
    text = one.mark_text(color=ALERT_COLOR, align="left", baseline="middle", fontSize=10,
                         x="width", dx=4).encode(y="y:Q", text="label:N")
    return [rule, text]


def outcomes_chart(min_success: float, cost_line: float | None) -> Chart:
    """Labelled share and success rate per day; cost per success per day; against their lines."""
    daily = _cells(RUNS, dated=True).transform_aggregate(
        n="sum(runs)", known="sum(known)", ok="sum(successes)", cost="sum(known_cost)",
        groupby=[U.DAY]).transform_calculate(
        **{"labelled share": ratio("datum.known", "datum.n"),
           "success rate": ratio("datum.ok", "datum.known"),
           "cost per success": ratio("datum.cost", "datum.ok")})
    x = alt.X(f"{U.DAY}:T", **DAY_AXIS)
    shares = daily.transform_fold(["labelled share", "success rate"], as_=["rate", "value"]
                                  ).mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title=None, axis=alt.Axis(format="%"),
                     scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("rate:N", title=None, legend=alt.Legend(orient="top")),
        tooltip=[alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"), "rate:N",
                 alt.Tooltip("value:Q", format=".1%")])
    cost = daily.mark_line(point=True, color="#9467bd").encode(
        x=x, y=alt.Y("cost per success:Q", title="USD per success",
                     axis=alt.Axis(format="$,.3~r")),
        tooltip=[alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"),
                 alt.Tooltip("cost per success:Q", format="$,.4~r")])
    chart = alt.vconcat(
        alt.layer(shares, *_alert_rule(min_success, f"min {min_success:.0%}")
                  ).properties(width=WIDE, height=200),
        alt.layer(cost, *_alert_rule(cost_line, f"max {fmt_usd(cost_line)}")
                  ).properties(width=WIDE, height=200))
    return _chart("outcomes_by_day", chart,
                  "labelled share, success rate and cost per success per UTC day",
                  "The cost line is the alert line of all runs: max_cost_ratio_vs_frontier x the "
                  "top tier's cost per success.")


def success_by_group_chart(min_success: float) -> Chart:
    """Success rate by task type and by tier, against the minimum success rate."""
    def bars(key: str, title: str) -> alt.LayerChart:
        summed = _cells(RUNS).transform_aggregate(
            ok="sum(successes)", known="sum(known)", n="sum(runs)", groupby=[key]
        ).transform_calculate(rate=ratio("datum.ok", "datum.known"),
                              share=ratio("datum.known", "datum.n"))
        bar = summed.mark_bar().encode(
            x=alt.X(f"{key}:N", title=title, sort=None, axis=alt.Axis(labelAngle=-30)),
            y=alt.Y("rate:Q", title="success rate", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            tooltip=[f"{key}:N", alt.Tooltip("rate:Q", format=".1%", title="success rate"),
                     alt.Tooltip("share:Q", format=".1%", title="labelled share")])
        rule = _alert_rule(min_success, f"min {min_success:.0%}")
        return alt.layer(bar, *rule).properties(width=HALF, height=200)

    chart = alt.hconcat(bars(U.TASK_TYPE, "task type"), bars(U.TIER, "tier"), spacing=30)
    return _chart("success_by_group", chart, "success rate by task type and by tier")


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
        daily = _cells(RUNS, dated=True).transform_aggregate(
            **{a: f"sum({rate.numerator})", b: f"sum({rate.denominator})",
               k: f"sum({rate.known or rate.denominator})"}, groupby=[U.DAY]
        ).transform_calculate(
            **{rate.key: f"datum.{k} ? {ratio(f'datum.{a}', f'datum.{b}')} : null"})
        line = daily.mark_line(point=True).encode(
            x=alt.X(f"{U.DAY}:T", **DAY_AXIS),
            y=alt.Y(f"{rate.key}:Q", title=None, axis=alt.Axis(format="%")),
            tooltip=[alt.Tooltip(f"{U.DAY}:T", timeUnit="utcyearmonthdate"),
                     alt.Tooltip(f"{rate.key}:Q", format=".1%", title=rate.title)])
        label = f"{rate.kind} {rate.line:.0%}" if rate.line is not None else ""
        panels.append(alt.layer(line, *_alert_rule(rate.line, label)).properties(
            width=HALF - 20, height=160, title=rate.title))
    chart = alt.concat(*panels, columns=2, spacing=30)
    return _chart("rates_by_day", chart, "monitoring rates per UTC day against their alert lines")
