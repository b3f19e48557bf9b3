"""Training labels: success per run, and the request x tier outcome matrix of counterfactual data.

What is learned is P(success | request, tier). Two kinds of traces feed it:

- counterfactual data: the same request run on several tiers (runs share `request_id`, like
  RouterBench). `build_outcome_matrix` lays it out as one row per request and one column per
  tier (success, cost, output tokens, available);
- ordinary logs: one run per request at the tier that was used. Each run is one
  (request, tier) training row with its observed outcome.

When several models ran at one tier, one model stands for the tier (`select_tier_models`): the
model the config names for that tier when the traces have runs of it there, else the model
with the most runs at that tier (ties: the alphabetically first id). Runs of the other models
at that tier are left out, so a tier means one model everywhere, in training and evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl

from aco.config import ACOConfig
from aco.errors import DataError
from aco.trace_format import TIERS
from aco_lab.traces import schema as S

log = logging.getLogger(__name__)

# Columns add_labels adds.
SUCCESS = "success"  # Int8 0/1: the run solved its task; null when task_success is unknown
IS_TIER_MODEL = "is_tier_model"  # the run's model is the one standing for its tier

N_TIERS = len(TIERS)


@dataclass(frozen=True, slots=True)
class OutcomeMatrix:
    """Counterfactual outcomes: one row per request, one column per tier 1..5 (index tier-1)."""

    request_ids: tuple[str, ...]  # sorted
    requests: tuple[str, ...]
    task_types: tuple[str | None, ...]
    difficulty: np.ndarray  # (n,) float, nan when unknown
    input_tokens: np.ndarray  # (n,) float: first-call prompt tokens (mean over runs), nan unknown
    success: np.ndarray  # (n, 5) float: mean task_success of the tier model's runs, nan unavailable
    cost: np.ndarray  # (n, 5) float USD: mean total_cost, nan unavailable
    output_tokens: np.ndarray  # (n, 5) float: mean output tokens, nan unavailable or unknown
    available: np.ndarray  # (n, 5) bool: the tier's model ran this request with a known outcome
    tier_models: tuple[str | None, ...]  # model standing for tiers 1..5 (None: no runs)

    @property
    def n_requests(self) -> int:
        """Number of requests (rows)."""
        return len(self.request_ids)

    def take(self, rows: np.ndarray) -> OutcomeMatrix:
        """The matrix restricted to some rows (an index array or a boolean mask)."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
        pick = [int(i) for i in rows]
        return OutcomeMatrix(
            request_ids=tuple(self.request_ids[i] for i in pick),
            requests=tuple(self.requests[i] for i in pick),
            task_types=tuple(self.task_types[i] for i in pick),
            difficulty=self.difficulty[rows],
            input_tokens=self.input_tokens[rows],
            success=self.success[rows],
            cost=self.cost[rows],
            output_tokens=self.output_tokens[rows],
            available=self.available[rows],
            tier_models=self.tier_models,
        )


def select_tier_models(runs: pl.DataFrame, config: ACOConfig) -> dict[int, str]:
    """The model standing for each tier that has runs: the config's, else the most-run model."""
    counts = (
        runs.filter(pl.col(S.TIER).is_not_null() & pl.col(S.MODEL_ID).is_not_null())
        .group_by(S.TIER, S.MODEL_ID)
        .len()
        .sort([S.TIER, "len", S.MODEL_ID], descending=[False, True, False])
    )
    configured = {spec.tier: spec.model_id for spec in config.tiers}
    chosen: dict[int, str] = {}
    for tier, models in counts.group_by(S.TIER, maintain_order=True):
        tier_value = int(tier[0])
        ids = models[S.MODEL_ID].to_list()
        wanted = configured.get(tier_value)
        chosen[tier_value] = wanted if wanted in ids else ids[0]
        if wanted not in ids:
            log.info("tier %d: config model %r has no runs; using %r", tier_value, wanted, ids[0])
    return chosen


def check_tier_models(runs: pl.DataFrame, config: ACOConfig) -> list[str]:
    """Warnings when the config and the traces disagree on models: a configured model with no
    runs (its tier is learned from another model, or not at all), or most traced models not
    named by the config (routing would choose among models the traces barely know)."""
    traced = runs.filter(pl.col(S.TIER).is_not_null() & pl.col(S.MODEL_ID).is_not_null())
    models = set(traced[S.MODEL_ID].unique().to_list())
    if not models:
        return []
    chosen = select_tier_models(traced, config)
    out = []
    for spec in config.tiers:
        if spec.model_id in models:
            continue
        stand_in = chosen.get(spec.tier)
        instead = (
            f"tier {spec.tier} is learned from {stand_in!r}, whose prices the config does not give"
            if stand_in
            else f"no run is at tier {spec.tier} at all"
        )
        out.append(
            f"tier {spec.tier}: the config's model {spec.model_id!r} has no runs in the "
            f"traces; {instead}; pass --config naming your traces' models, one per tier, "
            "with their prices (docs/config.md)"
        )
    named = {spec.model_id for spec in config.tiers}
    unnamed = sorted(models - named)
    if len(unnamed) * 2 > len(models):
        out.append(
            f"{len(unnamed)} of the {len(models)} traced models are not in the config "
            f"(e.g. {', '.join(unnamed[:3])}): the router predicts success for the "
            "config's model of each tier only (LightGBM routers learn from all models' "
            "runs); check that the config names the models you route to"
        )
    return out


def add_labels(runs: pl.DataFrame, config: ACOConfig) -> pl.DataFrame:
    """The runs with SUCCESS (0/1, null unknown) and IS_TIER_MODEL (model stands for its tier)."""
    chosen = select_tier_models(runs, config)
    tier_model = pl.col(S.TIER).replace_strict(
        list(chosen), list(chosen.values()), default=None, return_dtype=pl.String
    )
    return runs.with_columns(
        pl.col(S.TASK_SUCCESS).cast(pl.Int8).alias(SUCCESS),
        (pl.col(S.MODEL_ID) == tier_model).fill_null(False).alias(IS_TIER_MODEL),
    )


def build_training_runs(labeled: pl.DataFrame) -> pl.DataFrame:
    """The labeled runs a router can learn from: known outcome, a tier, its tier's model."""
    return labeled.filter(
        pl.col(SUCCESS).is_not_null() & pl.col(S.TIER).is_not_null() & pl.col(IS_TIER_MODEL)
    )


def is_counterfactual(training_runs: pl.DataFrame) -> bool:
    """True when most requests were run at more than one tier (runs sharing request_id): an
    ordinary log with a few requests repeated at another tier is still a log."""
    if training_runs.is_empty():
        return False
    per_request = training_runs.group_by(S.REQUEST_ID).agg(pl.col(S.TIER).n_unique())
    return bool((per_request[S.TIER] > 1).mean() >= 0.5)


def build_outcome_matrix(runs: pl.DataFrame, config: ACOConfig) -> OutcomeMatrix:
    """Request x tier outcomes (success, cost, output tokens, available) of counterfactual runs."""
    usable = build_training_runs(add_labels(runs, config))
    if usable.is_empty():
        raise DataError(
            "no run has a known task_success, a tier and its tier's model; "
            "an outcome matrix needs runs with task_success true/false"
        )
    cells = usable.group_by(S.REQUEST_ID, S.TIER).agg(
        pl.col(SUCCESS).cast(pl.Float64).mean().alias(SUCCESS),
        pl.col(S.TOTAL_COST).mean().alias(S.TOTAL_COST),
        pl.col(S.OUTPUT_TOKENS).cast(pl.Float64).mean().alias(S.OUTPUT_TOKENS),
    )
    requests = (
        usable.group_by(S.REQUEST_ID)
        .agg(
            pl.col(S.REQUEST).first(),
            pl.col(S.TASK_TYPE).drop_nulls().first(),
            pl.col(S.DIFFICULTY).cast(pl.Float64).mean(),
            pl.col(S.FIRST_INPUT_TOKENS).cast(pl.Float64).mean(),
        )
        .sort(S.REQUEST_ID)
    )
    ids = requests[S.REQUEST_ID].to_list()
    row_of = {rid: i for i, rid in enumerate(ids)}
    grids = {
        name: np.full((len(ids), N_TIERS), np.nan)
        for name in (SUCCESS, S.TOTAL_COST, S.OUTPUT_TOKENS)
    }
    rows = np.array([row_of[r] for r in cells[S.REQUEST_ID].to_list()], dtype=np.int64)
    cols = cells[S.TIER].cast(pl.Int64).to_numpy() - 1
    for name, grid in grids.items():
        grid[rows, cols] = cells[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
    chosen = select_tier_models(usable, config)
    return OutcomeMatrix(
        request_ids=tuple(ids),
        requests=tuple(requests[S.REQUEST].to_list()),
        task_types=tuple(requests[S.TASK_TYPE].to_list()),
        difficulty=requests[S.DIFFICULTY].fill_null(np.nan).to_numpy().astype(float),
        input_tokens=requests[S.FIRST_INPUT_TOKENS].fill_null(np.nan).to_numpy().astype(float),
        success=grids[SUCCESS],
        cost=grids[S.TOTAL_COST],
        output_tokens=grids[S.OUTPUT_TOKENS],
        available=~np.isnan(grids[SUCCESS]),
        tier_models=tuple(chosen.get(t) for t in TIERS),
    )
