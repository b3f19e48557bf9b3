"""Spend, tokens, latency and savings over the trace tables: the dashboard's own figures.

The shared monitoring metrics (success rate, cost per success, the rates and alerts) are
`aco_lab.report.stats`' and `aco stats`'. What only the dashboard shows is summed here into two
tables of *cells*, one row per (UTC day, task type, tier, model) of the runs:

- run cells: the monitoring totals (`stats.total_sums`) of the runs in the cell;
- call cells: per model called, the calls' spend, tokens, latency histogram and what the same
  tokens would have cost at the top tier's prices (tool costs, and any part of `total_cost`
  the calls do not itemise, are rows of their own, so that spend sums to `total_cost`).

The page's charts re-aggregate these cells in the browser under its filters, and
`summarise_usage` aggregates the same cells here for metrics.json, so the two agree.
Definitions: docs/metrics.md ("Dashboard figures").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from aco.config import ACOConfig, TierSpec
from aco.monitoring import NULL_GROUP, sorted_groups
from aco_lab.report.stats import total_sums
from aco_lab.traces import schema as S

# Cell keys: a run's UTC day (YYYY-MM-DD, null without timestamp), task type, tier and model
# (the runs table's model_id: the model of its last call at its highest tier), as text.
DAY, TASK_TYPE, TIER, MODEL = "day", "task_type", "tier", "model"
KEYS = (DAY, TASK_TYPE, TIER, MODEL)
CALL_MODEL = "call_model"  # the model a call went to; TOOLS and NOT_ITEMISED for other spend
TOOLS = "(tools)"
NOT_ITEMISED = "(not itemised)"
# Call cell sums.
CALLS = "calls"
SPEND = "spend"  # USD
TOP_SPEND = "top_spend"  # USD: the calls' tokens at the top tier's prices (other rows as spent)
UNPRICED = "unpriced_calls"  # calls without input tokens: counted at their own cost in TOP_SPEND
INPUT, OUTPUT, CACHED = "input_tokens", "output_tokens", "cached_input_tokens"
CACHE_REPORTED = "cache_reported_calls"  # calls that report cached_input_tokens (null: unknown)
LAT_BINS, LAT_COUNTS = "lat_bins", "lat_counts"  # the latency histogram: bins and call counts
KNOWN_COST = "known_cost"  # run cells (a Totals sum): USD of the runs with a known outcome

# Latency percentiles come from a log-scale histogram, as Prometheus and DDSketch do: so the
# page stays small for any number of calls, and its filters can add histograms up. A value is
# reported as its bin's centre, within LATENCY_ACCURACY of the true value (relative).
LATENCY_ACCURACY = 0.02
GAMMA = (1 + LATENCY_ACCURACY) / (1 - LATENCY_ACCURACY)  # bin i holds (GAMMA^(i-1), GAMMA^i] ms
LATENCY_QUANTILES = (("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95))
_ALL = "_all"


def top_tier(config: ACOConfig) -> TierSpec:
    """The tier the savings are measured against: the highest in the config's tier table."""
    return max(config.tiers, key=lambda t: t.tier)


def build_run_cells(runs: pl.DataFrame) -> pl.DataFrame:
    """The monitoring totals of the runs of each cell (one row per cell, keys as text)."""
    return (
        _keyed(runs).group_by(KEYS).agg(total_sums()).pipe(_fill_zero).sort(KEYS, nulls_last=True)
    )


def build_call_cells(runs: pl.DataFrame, steps: pl.DataFrame, config: ACOConfig) -> pl.DataFrame:
    """Per cell and model called: calls, spend, tokens, top-tier spend, latency histogram."""
    top = top_tier(config)
    keyed = _keyed(runs).select(S.TRACE_ID, *KEYS)
    # A step with a tier made a model call; the cell's tier is the run's, not the call's.
    calls = (
        steps.filter(pl.col(S.TIER).is_not_null())
        .select(
            S.TRACE_ID,
            S.MODEL_ID,
            S.COST,
            S.INPUT_TOKENS,
            S.OUTPUT_TOKENS,
            S.CACHED_INPUT_TOKENS,
            S.LATENCY_MS,
        )
        .join(keyed, on=S.TRACE_ID, how="inner")
    )
    calls = calls.with_columns(
        _text(S.MODEL_ID).alias(CALL_MODEL),
        pl.when(pl.col(S.INPUT_TOKENS).is_null())
        .then(pl.col(S.COST).fill_null(0.0))
        .otherwise(
            (
                pl.col(S.INPUT_TOKENS) * top.cost_per_1k_input
                + pl.col(S.OUTPUT_TOKENS).fill_null(0) * top.cost_per_1k_output
            )
            / 1000.0
        )
        .alias(TOP_SPEND),
        latency_bin(pl.col(S.LATENCY_MS)).alias("_bin"),
    )
    cell = (*KEYS, CALL_MODEL)
    sums = calls.group_by(cell).agg(
        pl.len().alias(CALLS),
        pl.col(S.COST).sum().alias(SPEND),
        pl.col(TOP_SPEND).sum(),
        pl.col(S.INPUT_TOKENS).is_null().sum().alias(UNPRICED),
        pl.col(S.INPUT_TOKENS).sum().alias(INPUT),
        pl.col(S.OUTPUT_TOKENS).sum().alias(OUTPUT),
        pl.col(S.CACHED_INPUT_TOKENS).sum().alias(CACHED),
        pl.col(S.CACHED_INPUT_TOKENS).count().alias(CACHE_REPORTED),
    )
    histogram = (
        calls.drop_nulls("_bin")
        .group_by(*cell, "_bin")
        .agg(pl.len().alias("_n"))
        .sort("_bin")
        .group_by(cell)
        .agg(
            pl.col("_bin").cast(pl.Int64).alias(LAT_BINS),
            pl.col("_n").cast(pl.Int64).alias(LAT_COUNTS),
        )
    )
    model_calls = sums.join(histogram, on=cell, how="left", nulls_equal=True)
    empty = pl.lit([], dtype=pl.List(pl.Int64))  # a cell without latency has an empty histogram
    return (
        pl.concat([model_calls, _other_spend(runs)], how="diagonal_relaxed")
        .pipe(_fill_zero)
        .with_columns(pl.col(LAT_BINS, LAT_COUNTS).fill_null(empty))
        .sort(cell, nulls_last=True)
    )


def _other_spend(runs: pl.DataFrame) -> pl.DataFrame:
    """Rows for tool costs and for total_cost the calls and tools leave unexplained, per cell."""
    per_cell = (
        _keyed(runs)
        .group_by(KEYS)
        .agg(
            pl.col(S.TOOL_COST).sum().alias(TOOLS),
            (
                pl.col(S.TOTAL_COST).sum() - pl.col(S.MODEL_COST).sum() - pl.col(S.TOOL_COST).sum()
            ).alias(NOT_ITEMISED),
            pl.col(S.TOTAL_COST).sum().alias("_total"),
        )
    )
    rows = per_cell.unpivot(
        [TOOLS, NOT_ITEMISED], index=[*KEYS, "_total"], variable_name=CALL_MODEL, value_name=SPEND
    )
    # Float sums leave ~1e-15 of "unexplained" cost on traces whose costs do add up.
    material = pl.col(SPEND).abs() > 1e-9 * pl.col("_total").abs() + 1e-12
    return rows.filter(material).drop("_total").with_columns(pl.col(SPEND).alias(TOP_SPEND))


def _keyed(runs: pl.DataFrame) -> pl.DataFrame:
    return runs.with_columns(
        pl.col(S.TIMESTAMP).dt.strftime("%Y-%m-%d").alias(DAY),
        _text(S.TASK_TYPE).alias(TASK_TYPE),
        _text(S.TIER).alias(TIER),
        _text(S.MODEL_ID).alias(MODEL),
    )


def _text(column: str) -> pl.Expr:
    """A key column as text, null as the null group (what the page's filters list)."""
    return pl.col(column).cast(pl.String).fill_null(NULL_GROUP)


def _fill_zero(cells: pl.DataFrame) -> pl.DataFrame:
    """Sums over no values are 0 (Polars gives null for a sum of only nulls in some cases)."""
    numeric = [c for c, t in cells.schema.items() if t.is_numeric() and c not in KEYS]
    return cells.with_columns(pl.col(numeric).fill_null(0))


def latency_bin(ms: pl.Expr) -> pl.Expr:
    """The histogram bin of a latency: ceil(log_GAMMA(ms)), 1 ms and less in bin 0."""
    return (ms.clip(lower_bound=1.0).log() / math.log(GAMMA)).ceil().cast(pl.Int32)


def bin_value(index: int) -> float:
    """The latency a bin stands for (ms): the point within LATENCY_ACCURACY of all of it."""
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


# -- figures for metrics.json: the same cells, summed here ----------------------------------------
def summarise_usage(calls: pl.DataFrame, by: str | None = None) -> dict[str, dict[str, Any]]:
    """Spend, tokens, savings and latency percentiles of the call cells, overall or per `by`.

    `by` is a cell key or CALL_MODEL; overall the result has the single key "all".
    """
    group = pl.col(by) if by else pl.lit("all")
    cells = calls.with_columns(group.alias(_ALL)).filter(pl.col(_ALL).is_not_null())
    sums = cells.group_by(_ALL).agg(
        pl.col(CALLS, SPEND, TOP_SPEND, UNPRICED, INPUT, OUTPUT, CACHED, CACHE_REPORTED).sum()
    )
    quantiles = _latency_quantiles(cells)
    table = sums.join(quantiles, on=_ALL, how="left").sort(_ALL)
    return {row.pop(_ALL): _figures(row) for row in table.iter_rows(named=True)}


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    savings = row[TOP_SPEND] - row[SPEND]
    return {
        **row,
        "latency_calls": row["latency_calls"] or 0,
        "savings": savings,
        "savings_share": savings / row[TOP_SPEND] if row[TOP_SPEND] else None,
        **{
            name: None if row[name] is None else bin_value(row[name])
            for name, _ in LATENCY_QUANTILES
        },
    }


def _latency_quantiles(cells: pl.DataFrame) -> pl.DataFrame:
    """Nearest-rank quantiles of the summed histograms: the bin of the ceil(q*n)-th call."""
    bins = (
        cells.select(_ALL, LAT_BINS, LAT_COUNTS)
        .explode([LAT_BINS, LAT_COUNTS])
        .drop_nulls(LAT_BINS)
        .group_by(_ALL, LAT_BINS)
        .agg(pl.col(LAT_COUNTS).sum())
        .sort(_ALL, LAT_BINS)
    )
    bins = bins.with_columns(
        pl.col(LAT_COUNTS).cum_sum().over(_ALL).alias("_cum"),
        pl.col(LAT_COUNTS).sum().over(_ALL).alias("_n"),
    )
    return bins.group_by(_ALL).agg(
        pl.col("_n").first().alias("latency_calls"),
        *(
            pl.col(LAT_BINS).filter(pl.col("_cum") >= (q * pl.col("_n")).ceil()).min().alias(name)
            for name, q in LATENCY_QUANTILES
        ),
    )


def cells_as_columns(cells: pl.DataFrame) -> dict[str, list]:
    """A cells table as {column: values}: how the page carries it (keys written once)."""
    return {name: cells[name].to_list() for name in cells.columns}


def keyed_values(cells: pl.DataFrame, key: str) -> Sequence[str]:
    """The distinct values of a key column, in the page's order (the null group last)."""
    return list(sorted_groups(dict.fromkeys(cells[key].drop_nulls().unique().to_list())))


def usage_figures(calls: pl.DataFrame) -> Mapping[str, Any]:
    """metrics.json's `usage`: overall, and per day, model called, tier and task type."""
    return {
        "overall": summarise_usage(calls).get("all")
        or _figures(
            dict.fromkeys(
                (CALLS, SPEND, TOP_SPEND, UNPRICED, INPUT, OUTPUT, CACHED, CACHE_REPORTED), 0
            )
            | dict.fromkeys(("latency_calls", *(n for n, _ in LATENCY_QUANTILES)))
        ),
        "by_day": summarise_usage(calls, DAY),
        "by_model": summarise_usage(calls, CALL_MODEL),
        "by_tier": summarise_usage(calls, TIER),
        "by_task_type": summarise_usage(calls, TASK_TYPE),
    }
