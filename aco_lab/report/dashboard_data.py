"""The dashboard's data in the browser: the page's two datasets, the filters over them, and the
Vega expressions that format and divide their sums.

The run cells (`runs`) and the call cells (`calls`) of aco_lab/report/usage.py go into the page
once, as columns; every chart (aco_lab/report/dashboard_charts.py, dashboard_outcomes.py)
reads them by name and keeps the cells the filters select (task type, model, tier, first and
last day).
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import polars as pl

from aco_lab.report import usage as U
from aco_lab.report.charts import ALL, Chart, Controls, Select, build_chart

RUNS, CALLS = "runs", "calls"  # the page's dataset names
ZERO = "zero"  # 1 on each dataset's zero row (page_datasets), 0 on the cells
# (chart parameter, cell key, label) of each select filter; then the day range.
KEY_FILTERS = (
    ("f_task_type", U.TASK_TYPE, "task type"),
    ("f_model", U.MODEL, "model"),
    ("f_tier", U.TIER, "tier"),
)
FIRST_DAY, LAST_DAY = "f_from", "f_to"
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
        selects += [
            Select(FIRST_DAY, "from", (ALL, *choices.days)),
            Select(LAST_DAY, "to", (ALL, *choices.days)),
        ]
    return Controls(
        tuple(selects),
        "The charts follow these filters (a run's model is the model "
        "of its last call at its highest tier); the tables are over all runs.",
    )


def filter_expression() -> str:
    """The Vega expression that keeps the cells the filters select."""
    parts = [f"({param} == '{ALL}' || datum.{key} == {param})" for param, key, _ in KEY_FILTERS]
    # A chart with days on a time axis reads them as dates, the others as text: toDate both.
    parts += [
        f"({FIRST_DAY} == '{ALL}' || (datum.day != null && "
        f"toDate(datum.day) >= toDate({FIRST_DAY})))",
        f"({LAST_DAY} == '{ALL}' || (datum.day != null && "
        f"toDate(datum.day) <= toDate({LAST_DAY})))",
    ]
    return " && ".join(parts)


PARAMS = (*(param for param, _, _ in KEY_FILTERS), FIRST_DAY, LAST_DAY)


def cells(dataset: str, dated: bool = False, totals: bool = False) -> alt.Chart:
    """The cells the filters keep; for `totals` also the dataset's zero row, so that a sum over
    no cell is a row of zeros (Vega aggregates nothing into no row, and a tile would be blank)."""
    zero = f"datum.{ZERO} || " if totals else f"!datum.{ZERO} && "
    chart = alt.Chart(alt.NamedData(name=dataset)).transform_filter(
        f"{zero}({filter_expression()})"
    )
    return chart.transform_filter("datum.day != null") if dated else chart


def page_datasets(run_cells: pl.DataFrame, call_cells: pl.DataFrame) -> dict[str, dict]:
    """The page's datasets: the cells as columns, each with its zero row (ZERO = 1)."""
    return {RUNS: _with_zero_row(run_cells), CALLS: _with_zero_row(call_cells)}


def _with_zero_row(table: pl.DataFrame) -> dict[str, list]:
    columns = U.cells_as_columns(table)
    for name, dtype in table.schema.items():
        # Keys null; sums 0; the latency histogram one empty bin (flatten drops empty lists).
        zero = None if name in (*U.KEYS, U.CALL_MODEL) else 0
        if isinstance(dtype, pl.List):
            zero = [None] if name == U.LAT_BINS else [0]
        columns[name].append(zero)
    columns[ZERO] = [0] * table.height + [1]
    return columns


def page_chart(name: str, chart: alt.TopLevelMixin, alt_text: str, caption: str = "") -> Chart:
    """A chart of the page, following its filters."""
    return build_chart(name, chart, alt_text, caption, PARAMS)


# -- formats (Vega expressions, the same rules as the page's tables) ------------------------------
def usd(value: str) -> str:
    """USD: cents from $1 up, else three significant digits."""
    return f"(abs({value}) >= 1 ? format({value}, {USD}) : format({value}, '$,.3~r'))"


def pct(value: str) -> str:
    """A share as a percentage, one decimal; a dash when there is none."""
    return f"(isValid({value}) && isFinite({value}) ? format({value}, '.1%') : '–')"


def ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator, null when the denominator is 0 (as aco.monitoring's _ratio)."""
    return f"({denominator} ? ({numerator}) / ({denominator}) : null)"


def duration(ms: str) -> str:
    """Latency: ms below a second, else seconds."""
    return (
        f"(!isValid({ms}) ? '–' : {ms} >= 1000 ? format({ms} / 1000, ',.3~r') + ' s' "
        f": format({ms}, ',.3~r') + ' ms')"
    )


def bin_value(field: str) -> str:
    """The latency a histogram bin stands for (usage.bin_value), null for no bin."""
    value = f"2 * pow({U.GAMMA!r}, datum.{field}) / {U.GAMMA + 1!r}"  # usage.bin_value
    return f"(isValid(datum.{field}) ? {value} : null)"
