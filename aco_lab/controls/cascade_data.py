"""Cascade training data: per request and model, the answer, its success and what it cost.

A cascade is learned from counterfactual traces (RouterBench keeps every model's answer to a
prompt): the same request answered by several models, so the cheap answers *and* what a
stronger model would have done are both known. The options are the models the traces ran
(`pool="traces"`), or only the one model standing for each tier as the router sees them
(`pool="tiers"`, `aco_lab.traces.labels.select_tier_models`). The answer of a run is the text and
log-probabilities of its last model call; its cost is the run's total_cost (every call paid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from aco.cascade import Answer
from aco.config import ACOConfig
from aco.errors import DataError
from aco_lab.traces import schema as S
from aco_lab.traces.labels import IS_TIER_MODEL, SUCCESS, add_labels, select_tier_models
from aco_lab.traces.reading import TraceTables

Pool = Literal["traces", "tiers"]
POOLS = ("traces", "tiers")


@dataclass(frozen=True, slots=True)
class CascadeData:
    """Requests x options (models): answers, outcomes and costs; nan = the model did not run."""

    request_ids: tuple[str, ...]  # sorted
    task_types: tuple[str | None, ...]
    options: tuple[str, ...]  # model ids, by tier then id
    option_tiers: tuple[int, ...]
    top: str  # the model standing for the top tier: the reference a cascade is measured against
    success: np.ndarray  # (n, k) float 0/1, nan when the model did not run the request
    cost: np.ndarray  # (n, k) float USD, nan when not run
    texts: tuple[tuple[str | None, ...], ...]  # [request][option] answer text
    mean_logprob: np.ndarray  # (n, k) float, nan unknown
    min_logprob: np.ndarray  # (n, k) float, nan unknown
    trace_ids: tuple[tuple[str | None, ...], ...]  # [request][option] the run

    @property
    def n_requests(self) -> int:
        """Number of requests (rows)."""
        return len(self.request_ids)

    @property
    def available(self) -> np.ndarray:
        """(n, k) bool: the model answered the request with a known outcome."""
        return ~np.isnan(self.success)

    def col(self, model_id: str) -> int:
        """The column of an option."""
        return self.options.index(model_id)

    def tier_of(self, model_id: str) -> int:
        """The tier an option serves."""
        return self.option_tiers[self.col(model_id)]

    def answer(self, row: int, model_id: str) -> Answer:
        """One model's Answer to one request (as the runtime would see it)."""
        j = self.col(model_id)
        mean, low = self.mean_logprob[row, j], self.min_logprob[row, j]
        known = not (np.isnan(mean) or np.isnan(low))
        return Answer(
            model_id,
            self.option_tiers[j],
            self.texts[row][j],
            float(mean) if known else None,
            float(low) if known else None,
        )

    def take(self, rows: np.ndarray) -> CascadeData:
        """The data restricted to some rows (index array or boolean mask)."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
        pick = [int(i) for i in rows]
        return CascadeData(
            request_ids=tuple(self.request_ids[i] for i in pick),
            task_types=tuple(self.task_types[i] for i in pick),
            options=self.options,
            option_tiers=self.option_tiers,
            top=self.top,
            success=self.success[rows],
            cost=self.cost[rows],
            texts=tuple(self.texts[i] for i in pick),
            mean_logprob=self.mean_logprob[rows],
            min_logprob=self.min_logprob[rows],
            trace_ids=tuple(self.trace_ids[i] for i in pick),
        )

    def select(self, request_ids: set[str] | frozenset[str]) -> CascadeData:
        """The rows of these request_ids."""
        return self.take(np.array([rid in request_ids for rid in self.request_ids], dtype=bool))


def build_cascade_data(
    tables: TraceTables, config: ACOConfig, pool: Pool = "traces"
) -> CascadeData:
    """Lay counterfactual runs out per request and model, with each run's final answer (pure)."""
    if pool not in POOLS:
        raise DataError(f"cascade pool: expected one of {', '.join(POOLS)}, got {pool!r}")
    labeled = add_labels(tables.runs, config).filter(
        pl.col(SUCCESS).is_not_null()
        & pl.col(S.TIER).is_not_null()
        & pl.col(S.MODEL_ID).is_not_null()
    )
    if pool == "tiers":
        labeled = labeled.filter(pl.col(IS_TIER_MODEL))
    last_calls = (
        tables.steps.filter(pl.col(S.TIER).is_not_null())
        .sort(S.TRACE_ID, S.STEP_INDEX)
        .group_by(S.TRACE_ID)
        .agg(
            pl.col(S.OUTPUT_TEXT).last(),
            pl.col(S.MEAN_LOGPROB).last(),
            pl.col(S.MIN_LOGPROB).last(),
        )
    )
    cells = (
        labeled.select(
            S.TRACE_ID, S.REQUEST_ID, S.TASK_TYPE, S.TIER, S.MODEL_ID, SUCCESS, S.TOTAL_COST
        )
        .join(last_calls, on=S.TRACE_ID, how="left")
        # Several runs of one request by one model: keep the first by trace_id.
        .sort(S.REQUEST_ID, S.MODEL_ID, S.TRACE_ID)
        .unique(subset=[S.REQUEST_ID, S.MODEL_ID], keep="first", maintain_order=True)
    )
    multi = cells.group_by(S.REQUEST_ID).agg(pl.col(S.TIER).n_unique().alias("n"))
    cells = cells.join(
        multi.filter(pl.col("n") > 1).select(S.REQUEST_ID), on=S.REQUEST_ID, how="semi"
    )
    if cells.is_empty():
        raise DataError(
            "no request was answered at two tiers or more: a cascade is learned from "
            "counterfactual traces (runs of one request at several tiers sharing "
            "request_id), e.g. `aco-lab simulate --mode counterfactual`"
        )
    tiers = set(cells[S.TIER].to_list())
    top_tier = config.top_tier if config.top_tier in tiers else max(tiers)
    top = select_tier_models(labeled, config)[top_tier]
    return _lay_out(cells, top)


def _lay_out(cells: pl.DataFrame, top: str) -> CascadeData:
    ids = sorted(set(cells[S.REQUEST_ID].to_list()))
    pairs = sorted({(int(t), m) for t, m in cells.select(S.TIER, S.MODEL_ID).iter_rows()})
    options = tuple(m for _, m in pairs)
    col = {m: j for j, m in enumerate(options)}
    row_of = {rid: i for i, rid in enumerate(ids)}
    n, k = len(ids), len(options)
    grids = {
        name: np.full((n, k), np.nan)
        for name in (SUCCESS, S.TOTAL_COST, S.MEAN_LOGPROB, S.MIN_LOGPROB)
    }
    texts: list[list[str | None]] = [[None] * k for _ in range(n)]
    traces: list[list[str | None]] = [[None] * k for _ in range(n)]
    task_types: list[str | None] = [None] * n
    for rec in cells.iter_rows(named=True):
        i, j = row_of[rec[S.REQUEST_ID]], col[rec[S.MODEL_ID]]
        for name, grid in grids.items():
            grid[i, j] = np.nan if rec[name] is None else float(rec[name])
        texts[i][j] = rec[S.OUTPUT_TEXT]
        traces[i][j] = rec[S.TRACE_ID]
        task_types[i] = task_types[i] or rec[S.TASK_TYPE]
    return CascadeData(
        request_ids=tuple(ids),
        task_types=tuple(task_types),
        options=options,
        option_tiers=tuple(t for t, _ in pairs),
        top=top,
        success=grids[SUCCESS],
        cost=grids[S.TOTAL_COST],
        texts=tuple(tuple(t) for t in texts),
        mean_logprob=grids[S.MEAN_LOGPROB],
        min_logprob=grids[S.MIN_LOGPROB],
        trace_ids=tuple(tuple(t) for t in traces),
    )
