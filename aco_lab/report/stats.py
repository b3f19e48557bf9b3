"""The monitoring metrics over the trace tables: Polars sums, the runtime's formulas.

`compute_stats(tables, config, by)` sums the runs table into `aco.monitoring.Totals` (overall,
per tier, and per group with `by`) and hands them to `aco.monitoring.build_metrics`, the one
place the metrics and alerts are defined; `aco stats` computes the same totals in pure Python.
Definitions and null handling: docs/metrics.md.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from aco.config import ACOConfig
from aco.errors import DataError
from aco.monitoring import (
    GROUP_FIELDS,
    TASK_TYPE_FROM,
    Metrics,
    TierTotals,
    Totals,
    build_metrics,
    group_key,
)
from aco_lab.traces import schema as S

# Columns of the runs table the metrics read.
NEEDED = (
    S.TASK_SUCCESS, S.TOTAL_COST, S.FINAL_OUTCOME, S.TIER, S.ESCALATED, S.INPUT_TOKENS,
    S.CACHED_INPUT_TOKENS, S.N_STEPS, S.N_VERIFIER_CALLS,
)  # fmt: skip
_GROUP = "_group"
EMPTY = Totals(0, 0, 0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0)  # the totals of no runs


def compute_stats(data: Any, config: ACOConfig | None = None, by: str | None = None) -> Metrics:
    """The monitoring metrics of a runs table (or TraceTables), overall and per `by` group."""
    config = config or ACOConfig()
    runs = _runs_frame(data, by)
    overall = _totals(runs.with_columns(pl.lit("all").alias(_GROUP))).get("all", EMPTY)
    groups = _totals(runs.with_columns(_group_column(by).alias(_GROUP))) if by else None
    return build_metrics(overall, config.alerts, by, groups)


def _runs_frame(data: Any, by: str | None) -> pl.DataFrame:
    runs = getattr(data, "runs", data)
    if isinstance(runs, pl.LazyFrame):
        runs = runs.collect()
    if not isinstance(runs, pl.DataFrame):
        raise DataError(f"stats: expected a runs table or TraceTables, got {type(data).__name__}")
    if by is not None and by not in GROUP_FIELDS:
        raise DataError(f"--by: expected one of {', '.join(GROUP_FIELDS)}, got {by!r}")
    column = S.METADATA if by == TASK_TYPE_FROM else by
    missing = [c for c in (*NEEDED, *([column] if by else [])) if c not in runs.columns]
    if missing:
        raise DataError(
            f"stats: the runs table lacks {', '.join(missing)}; load traces with read_traces"
        )
    return runs


def _group_column(by: str) -> pl.Expr:
    """The value a run is grouped by (task_type_from lives in the metadata's JSON text)."""
    if by == TASK_TYPE_FROM:
        return pl.col(S.METADATA).str.json_path_match(f"$.{TASK_TYPE_FROM}")
    return pl.col(by)


def total_sums() -> list[pl.Expr]:
    """The sums of `Totals` as Polars aggregations (the dashboard keeps them per cell)."""
    return _sums()


def _sums() -> list[pl.Expr]:
    """One Totals' worth of sums, as Polars aggregations (names = Totals fields)."""
    success = pl.col(S.TASK_SUCCESS)
    completed = pl.col(S.FINAL_OUTCOME) == "completed"
    return [
        pl.len().alias("runs"),
        success.sum().alias("successes"),  # sum of a boolean column counts the trues
        success.count().alias("known"),  # count skips nulls
        pl.col(S.TOTAL_COST).sum().alias("total_cost"),
        pl.col(S.TOTAL_COST).filter(success.is_not_null()).sum().alias("known_cost"),
        pl.col(S.ESCALATED).sum().alias("escalated"),
        pl.col(S.INPUT_TOKENS).sum().alias("input_tokens"),
        pl.col(S.CACHED_INPUT_TOKENS).sum().alias("cached_input_tokens"),
        pl.col(S.CACHED_INPUT_TOKENS).count().alias("cache_reported"),
        pl.col(S.N_STEPS).sum().alias("steps"),
        pl.col(S.N_VERIFIER_CALLS).sum().alias("verifier_steps"),
        (completed & success.is_not_null()).sum().alias("completed_known"),
        (completed & ~success).sum().alias("false_dones"),
    ]


def _totals(runs: pl.DataFrame) -> dict[str, Totals]:
    """Totals per value of the _GROUP column, keyed by group_key(value)."""
    per_group = runs.group_by(_GROUP).agg(_sums())
    per_tier = (
        runs.filter(pl.col(S.TIER).is_not_null())
        .group_by(_GROUP, S.TIER)
        .agg(
            pl.len().alias("runs"),
            pl.col(S.TASK_SUCCESS).sum().alias("successes"),
            pl.col(S.TASK_SUCCESS).count().alias("known"),
            pl.col(S.TOTAL_COST).sum().alias("cost"),
            pl.col(S.TOTAL_COST)
            .filter(pl.col(S.TASK_SUCCESS).is_not_null())
            .sum()
            .alias("known_cost"),
        )
        .sort(S.TIER)
    )
    tiers: dict[Any, list[TierTotals]] = {}
    for row in per_tier.iter_rows(named=True):
        group, tier = row.pop(_GROUP), int(row.pop(S.TIER))
        tiers.setdefault(group, []).append(TierTotals(tier=tier, **_plain(row)))
    totals = {}
    for row in per_group.iter_rows(named=True):
        group = row.pop(_GROUP)
        totals[group_key(group)] = Totals(**_plain(row), tiers=tuple(tiers.get(group, ())))
    return totals


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Polars sums as Python numbers (a sum over no rows or only nulls is 0)."""
    usd = ("total_cost", "cost", "known_cost")
    return {k: float(v or 0.0) if k in usd else int(v or 0) for k, v in row.items()}
