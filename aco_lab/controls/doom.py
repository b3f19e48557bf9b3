"""Learn when to stop a run: P(eventual success | state so far), and the threshold that pays.

A run's *state* after each step is what the runtime knows at that point: steps so far, USD
spent, failed steps (all tool calls failed, or the verifier failed: the runtime's definition
of a step without progress), failed steps in a row, task type and tier. Spend and steps are
divided by a typical successful run of the same task type and tier, so one model serves
cheap and dear tiers alike. A logistic model of the run's eventual success is fitted on the
states of training runs, each run weighted once (long runs do not outvote short ones).

The threshold is chosen on out-of-fold predictions (folds by request): the run is stopped at
the first state whose P(success) falls below it; the threshold saving the most spend while
losing at most `max_lost_success_share` of the training successes is kept.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from aco.config import ACOConfig
from aco.controls import Controls
from aco.errors import DataError
from aco.learned_controls import KINDS, SPEC_VERSION, doom_features, group_key
from aco_lab.controls.logistic import (
    DEFAULT_C,
    build_matrix,
    fit_logistic,
    predict_logistic,
)
from aco_lab.traces import schema as S
from aco_lab.traces.reading import TraceTables

log = logging.getLogger(__name__)

# Columns of the states table.
STATE_STEPS = "state_steps"  # steps done so far
STATE_SPEND = "state_spend"  # USD spent so far (model and tool calls)
STATE_FAILURES = "state_failures"  # steps so far without progress
STATE_STALLED = "state_stalled"  # steps without progress in a row, counting back
REMAINING = "remaining_spend"  # USD the run went on to spend after this state
SUCCESS = "success"  # the run's eventual task_success, 0/1


@dataclass(frozen=True, slots=True)
class DoomSettings:
    """How the doom check is learned."""

    max_lost_success_share: float = 0.02  # of training successes the stops may cost
    min_steps: int = 2  # never stop before this many steps: one step says little
    min_group_runs: int = 10  # successful runs a (task, tier) needs for its own typical run
    folds: int = 5  # out-of-fold predictions for the threshold, folds by request
    C: float = DEFAULT_C  # inverse L2 strength
    thresholds: int = 60  # candidate thresholds (quantiles of the predictions)


@dataclass(frozen=True, slots=True)
class DoomResult:
    """What stopping runs at some threshold does on a set of runs."""

    name: str
    runs: int
    successes: int
    flagged: int  # runs stopped
    flagged_successes: int  # stopped runs that went on to succeed (false alarms)
    spend: float  # USD the runs spent in total
    saved: float  # USD the stopped runs would not have spent

    @property
    def false_alarm_share(self) -> float:
        """Share of stopped runs that would have succeeded anyway."""
        return self.flagged_successes / self.flagged if self.flagged else math.nan

    @property
    def lost_success_share(self) -> float:
        """Share of all successes lost to stops."""
        return self.flagged_successes / self.successes if self.successes else math.nan

    def to_dict(self) -> dict:
        """Plain figures for reports."""
        return {
            "name": self.name,
            "runs": self.runs,
            "successes": self.successes,
            "flagged": self.flagged,
            "flagged_successes": self.flagged_successes,
            "false_alarm_share": _round(self.false_alarm_share),
            "lost_success_share": _round(self.lost_success_share),
            "spend": round(self.spend, 6),
            "saved": round(self.saved, 6),
            "saved_share": _round(self.saved / self.spend if self.spend else math.nan),
        }


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def build_doom_states(tables: TraceTables) -> pl.DataFrame:
    """One row per run and step before its last: the state then, and what followed (pure)."""
    runs = tables.runs.filter(pl.col(S.TASK_SUCCESS).is_not_null() & pl.col(S.TIER).is_not_null())
    no_progress = (
        ((pl.col(S.N_TOOL_CALLS) > 0) & (pl.col(S.N_TOOL_FAILURES) >= pl.col(S.N_TOOL_CALLS)))
        | (pl.col(S.VERIFIER_CALLED) & (pl.col(S.VERIFIER_PASSED) == False))  # noqa: E712
    )
    position = pl.int_range(1, pl.len() + 1).over(S.TRACE_ID)
    last_ok = pl.when(~pl.col("_failed")).then(position).otherwise(0).cum_max().over(S.TRACE_ID)
    steps = (
        tables.steps.join(runs.select(S.TRACE_ID), on=S.TRACE_ID, how="semi")
        .sort(S.TRACE_ID, S.STEP_INDEX)
        .with_columns(
            no_progress.fill_null(False).alias("_failed"),
            (pl.col(S.COST).fill_null(0.0) + pl.col(S.TOOL_COST).fill_null(0.0)).alias("_cost"),
        )
        .with_columns(
            position.alias(STATE_STEPS),
            pl.col("_cost").cum_sum().over(S.TRACE_ID).alias(STATE_SPEND),
            pl.col("_failed").cast(pl.Int32).cum_sum().over(S.TRACE_ID).alias(STATE_FAILURES),
            (position - last_ok).alias(STATE_STALLED),
            pl.len().over(S.TRACE_ID).alias("_n"),
        )
        .filter(pl.col(STATE_STEPS) < pl.col("_n"))  # after the last step there is nothing to stop
    )
    return (
        steps.select(S.TRACE_ID, STATE_STEPS, STATE_SPEND, STATE_FAILURES, STATE_STALLED)
        .join(
            runs.select(
                S.TRACE_ID,
                S.REQUEST_ID,
                S.TASK_TYPE,
                S.TIER,
                S.TOTAL_COST,
                pl.col(S.TASK_SUCCESS).cast(pl.Int8).alias(SUCCESS),
            ),
            on=S.TRACE_ID,
        )
        .with_columns((pl.col(S.TOTAL_COST) - pl.col(STATE_SPEND)).clip(0.0).alias(REMAINING))
        .sort(S.TRACE_ID, STATE_STEPS)
    )


def build_typical(runs: pl.DataFrame, min_runs: int) -> dict[str, dict[str, float]]:
    """Median cost and steps of successful runs per task/tier, per tier, and overall."""
    ok = runs.filter(pl.col(S.TASK_SUCCESS) & pl.col(S.TIER).is_not_null())
    if ok.is_empty():
        raise DataError("doom: no successful run with a tier; the typical run is unknown")
    table: dict[str, dict[str, float]] = {}
    for keys in ([S.TASK_TYPE, S.TIER], [S.TIER], []):
        grouped = ok.group_by(keys) if keys else ok.group_by(pl.lit(1))
        stats = grouped.agg(
            pl.col(S.TOTAL_COST).median().alias("cost"),
            pl.col(S.N_STEPS).median().alias("steps"),
            pl.len().alias("n"),
        )
        stats = stats.sort(keys) if keys else stats  # same data, same bytes: a stable order
        for rec in stats.iter_rows(named=True):
            if rec["n"] < min_runs and keys:
                continue
            key = group_key(
                rec.get(S.TASK_TYPE) if S.TASK_TYPE in keys else None,
                rec.get(S.TIER) if S.TIER in keys else None,
            )
            table[key] = {"cost": float(rec["cost"]), "steps": float(rec["steps"])}
    return table


def state_matrix(states: pl.DataFrame, typical: dict) -> tuple[list[dict], np.ndarray]:
    """Feature dicts of every state (through the runtime's doom_features) and run weights."""
    rows = [
        doom_features(
            typical,
            r[S.TASK_TYPE],
            r[S.TIER],
            r[STATE_STEPS],
            r[STATE_SPEND],
            r[STATE_FAILURES],
            r[STATE_STALLED],
        )
        for r in states.iter_rows(named=True)
    ]
    per_run = states.group_by(S.TRACE_ID).len()
    counts = states.join(per_run, on=S.TRACE_ID, how="left")["len"].to_numpy()
    return rows, 1.0 / counts


def learn_doom(tables: TraceTables, seed: int, settings: DoomSettings = DoomSettings()) -> dict:
    """The learned doom spec (plain data) from training traces with step-level detail."""
    states = build_doom_states(tables)
    if states.is_empty() or states[SUCCESS].n_unique() < 2:
        raise DataError(
            "doom: needs multi-step runs with known task_success, some successful and some not"
        )
    typical = build_typical(tables.runs, settings.min_group_runs)
    feats, weight = state_matrix(states, typical)
    X, names = build_matrix(feats)
    y = states[SUCCESS].to_numpy().astype(float)
    oof = _out_of_fold(X, y, names, weight, states[S.REQUEST_ID].to_list(), seed, settings)
    threshold, train = choose_threshold(states, oof, settings)
    model = fit_logistic(X, y, names, settings.C, sample_weight=weight)
    return {
        "kind": KINDS["doom"],
        "version": SPEC_VERSION,
        "model": model,
        "threshold": round(threshold, 6),
        "min_steps": settings.min_steps,
        "typical": typical,
        "train": train.to_dict() | {"max_lost_success_share": settings.max_lost_success_share},
    }


def _out_of_fold(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    weight: np.ndarray,
    request_ids: list[str],
    seed: int,
    settings: DoomSettings,
) -> np.ndarray:
    # Folds by request: the states of one run (and the runs of one request) share a fold.
    ids = sorted(set(request_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    fold_of_id = {ids[i]: k % settings.folds for k, i in enumerate(order)}
    fold = np.array([fold_of_id[r] for r in request_ids])
    out = np.empty(len(y))
    for k in range(settings.folds):
        test = fold == k
        if test.any():
            model = fit_logistic(X[~test], y[~test], names, settings.C, weight[~test])
            out[test] = predict_logistic(model, X[test], names)
    return out


def replay_stops(
    name: str, states: pl.DataFrame, runs: pl.DataFrame, stop: np.ndarray
) -> DoomResult:
    """Stop each run at its first state where `stop` is true; count what that saves and costs."""
    judged = runs.filter(pl.col(S.TASK_SUCCESS).is_not_null() & pl.col(S.TIER).is_not_null())
    first = first_stops(states[S.TRACE_ID].to_numpy(), stop)
    return DoomResult(
        name=name,
        runs=judged.height,
        successes=int(judged[S.TASK_SUCCESS].sum()),
        flagged=len(first),
        flagged_successes=int(states[SUCCESS].to_numpy()[first].sum()),
        spend=float(judged[S.TOTAL_COST].sum()),
        saved=float(states[REMAINING].to_numpy()[first].sum()),
    )


def first_stops(trace_ids: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Row index of each run's first stopping state (states sorted by run, then step)."""
    rows = np.flatnonzero(stop)
    _, first = np.unique(trace_ids[rows], return_index=True)
    return rows[first]


def choose_threshold(
    states: pl.DataFrame, p: np.ndarray, settings: DoomSettings
) -> tuple[float, DoomResult]:
    """The threshold saving the most while losing at most the allowed share of successes."""
    runs = states.group_by(S.TRACE_ID).agg(
        pl.col(SUCCESS).first().cast(pl.Boolean).alias(S.TASK_SUCCESS),
        pl.col(S.TOTAL_COST).first(),
        pl.col(S.TIER).first(),
    )
    eligible = states[STATE_STEPS].to_numpy() >= settings.min_steps
    candidates = np.unique(np.quantile(p[eligible], np.linspace(0.0, 0.5, settings.thresholds)))
    best = (0.0, replay_stops("learned", states, runs, np.zeros(len(p), dtype=bool)))
    for threshold in candidates:
        result = replay_stops("learned", states, runs, eligible & (p < threshold))
        if (
            result.lost_success_share <= settings.max_lost_success_share
            and result.saved > best[1].saved
        ):
            best = (float(threshold), result)
    log.info(
        "doom: threshold %.3f saves $%.2f of $%.2f, stops %d runs (%d would succeed)",
        best[0],
        best[1].saved,
        best[1].spend,
        best[1].flagged,
        best[1].flagged_successes,
    )
    return best


def evaluate_doom(spec: dict, tables: TraceTables, config: ACOConfig) -> list[DoomResult]:
    """The learned check and the rule check replayed on held-out traces."""
    states = build_doom_states(tables)
    if states.is_empty():
        raise DataError("doom: the evaluation traces have no multi-step run with a known outcome")
    feats, _ = state_matrix(states, spec["typical"])
    X, names = build_matrix(feats)
    p = predict_logistic(spec["model"], X, names)
    learned = (states[STATE_STEPS].to_numpy() >= spec["min_steps"]) & (p < spec["threshold"])
    rules = Controls(config)
    rule_stop = np.array(
        [
            rules.doom(r[STATE_SPEND], r[STATE_STALLED], r[STATE_STEPS]).doomed
            for r in states.iter_rows(named=True)
        ],
        dtype=bool,
    )
    runs = tables.runs
    return [
        replay_stops("learned", states, runs, learned),
        replay_stops("rules", states, runs, rule_stop),
    ]
