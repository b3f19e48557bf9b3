"""Training on a Dask cluster (`aco-lab train --engine dask`): the local training, with its heavy
parts on the workers.

`DaskTrainer(engine)` is what `train_router` / `build_router` take as `engine`:
- the traces are decoded by the workers, chunk by chunk (aco_lab/traces/dask_engine.py);
- the request features are computed by the workers, a part of the distinct requests each,
  with the same code as the local engine (aco_lab/train/features.py);
- LightGBM is fitted by its own Dask estimator (`lightgbm.dask`, data-parallel): each worker
  stacks the (request, tier) rows of its partitions, and the trees are grown over all of them
  with the local engine's parameters, tuning grid and early stopping (see HeldOutStopping);
- the other estimators (logistic regression, kNN) are fitted by the client on a seeded sample
  of at most SAMPLE_REQUESTS requests of the fit fold, its size recorded in the bundle's
  options (`fit_sample_requests`); the per-task-type table is a count, fitted whole; the
  task-type classifier and the novelty check already learn from samples.

Every fit of the cross-validation (aco_lab/train/model_selection.py) and the final one go
through it. The labels, folds, calibration, operating point and run controls are computed by
the client, from the tables the workers decoded. The bundle is the one format `aco route`
loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass

import dask.array as da
import lightgbm as lgb
import numpy as np
import pandas  # noqa: F401 - lightgbm.dask refuses to fit without it: fail here, by name
from dask import delayed
from distributed import get_client
from lightgbm.dask import DaskLGBMRegressor

from aco.policy import clip_probability
from aco_lab.traces.dask_engine import DaskEngine
from aco_lab.train.estimators import (
    LGBM_EARLY_STOP,
    LGBM_MAX_ROUNDS,
    fit_estimator,
    lgbm_grid,
)
from aco_lab.train.fit_data import (
    FitData,
    FittedModel,
    LgbmRows,
    TierRows,
)

log = logging.getLogger(__name__)

SAMPLE_REQUESTS = 100_000  # fit-fold requests the client-side estimators learn from, at most
PART_ROWS = 100_000  # LightGBM training rows per partition (a worker holds several)
# Held-out rows every worker scores each round to stop early (a seeded sample beyond this):
# each worker holds them, so they bound the memory early stopping costs per worker.
EARLY_STOP_MAX_ROWS = 500_000


class DaskTrainer:
    """The Dask engine of training: what build_router hands to the cluster (module docstring)."""

    def __init__(self, engine: DaskEngine, sample_requests: int = SAMPLE_REQUESTS) -> None:
        self.engine = engine
        self.sample_requests = sample_requests
        self.fit_sample: int | None = None  # the largest sample an estimator was fitted on

    def map_chunks(self, function, tasks, workers: int = 0):  # noqa: ANN001, ANN201
        """The traces' chunks decoded by the workers (DaskEngine.map_chunks)."""
        return self.engine.map_chunks(function, tasks, workers)

    def executor(self) -> Executor:
        """A concurrent.futures executor over the cluster (the request features' parts)."""
        return self.engine.client.get_executor()

    def fit_estimator(
        self, kind: str, objective: str, data: FitData, seed: int, num_threads: int
    ) -> FittedModel:
        """LightGBM on the cluster; another estimator on a seeded sample of the fit fold."""
        if kind == "lgbm":
            return fit_estimator(kind, objective, data, seed, num_threads, self.train_lgbm)
        sample = sample_fit_data(data, self.sample_requests, seed)
        self.fit_sample = max(self.fit_sample or 0, len(sample.X))
        log.info(
            "%s fitted by the client on %d of %d fit-fold requests",
            kind,
            len(sample.X),
            len(data.X),
        )
        return fit_estimator(kind, objective, sample, seed, num_threads)

    def recorded(self) -> dict:
        """What the bundle's options record about the engine."""
        return {
            "engine": "dask",
            "engine_workers": self.engine.workers(),
            "fit_sample_requests": self.fit_sample,
        }

    def train_lgbm(self, params: dict, train: LgbmRows, held: LgbmRows) -> lgb.Booster:
        """The local engine's train_lgbm (grid, early stopping on the held-out rows), with
        every setting fitted by lightgbm.dask over partitions of the training rows."""
        client = self.engine.client
        split = list(split_rows(train, self.engine.workers()))
        shapes = [p.shape() for p in split]
        # Spread over the workers, each stacking its own rows; keys of their own (hash=False):
        # data equal to an earlier fit's must not share a key that fit is releasing.
        parts = client.scatter(split, hash=False)
        del split
        data = da.concatenate(
            [
                da.from_delayed(delayed(PartRows.matrix)(f), shape, np.float64)
                for f, shape in zip(parts, shapes, strict=True)
            ]
        )
        label, init = (
            da.concatenate(
                [
                    da.from_delayed(delayed(column)(f), shape[:1], np.float64)
                    for f, shape in zip(parts, shapes, strict=True)
                ]
            )
            for column in (PartRows.labels, PartRows.margins)
        )
        init = init if train.init is not None else None
        stopping = (
            HeldOutStopping.publish(client, held, params["seed"]) if len(held.label) else None
        )
        try:
            best, best_loss = None, np.inf
            for extra in lgbm_grid(len(train.label), stopping is not None):
                booster, loss = _fit_once(client, {**params, **extra}, data, label, init, stopping)
                log.info(
                    "lightgbm.dask %s: %d trees, held-out log loss %.4f",
                    extra or "defaults",
                    booster.num_trees(),
                    loss,
                )
                if best is None or loss < best_loss - 1e-12:
                    best, best_loss = booster, loss
            return best
        finally:
            if stopping is not None:
                stopping.unpublish(client)
            client.cancel(parts)


def _fit_once(
    client,
    params: dict,
    data: da.Array,
    label: da.Array,  # noqa: ANN001
    init: da.Array | None,
    stopping: HeldOutStopping | None,
) -> tuple[lgb.Booster, float]:
    """One setting fitted by lightgbm.dask; the booster cut at its best round, and its loss."""
    params = {k: v for k, v in params.items() if k != "num_threads"}  # each worker's threads
    model = DaskLGBMRegressor(client=client, n_estimators=LGBM_MAX_ROUNDS, **params)
    # A regressor's estimator with LightGBM's binary / multiclass objective: the labels reach
    # the booster as they are (a classifier would re-number the classes it happens to see).
    # lightgbm.dask prints its progress: to stderr, with the logs (stdout carries --json).
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored")  # the sklearn
        # wrapper's own default; lightgbm.dask gives each worker its threads anyway
        model.fit(data, label, init_score=init, callbacks=[stopping] if stopping else None)
    booster = model.booster_
    if stopping is None:
        return booster, 0.0
    best = booster.best_iteration
    loss = float(booster.best_score[HeldOutStopping.NAME][HeldOutStopping.METRIC])
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), loss


@dataclass(frozen=True, slots=True)
class PartRows:
    """One partition of LightGBM's rows, stacked by the worker that holds it."""

    rows: LgbmRows  # X: the rows of the requests this partition's rows use

    def matrix(self) -> np.ndarray:
        """The partition's training matrix."""
        return np.ascontiguousarray(self.rows.stacked())

    def labels(self) -> np.ndarray:
        """The partition's labels."""
        return self.rows.label

    def margins(self) -> np.ndarray:
        """The partition's starting margins (zeros without them)."""
        return self.rows.init if self.rows.init is not None else np.zeros(len(self.rows.label))

    def shape(self) -> tuple[int, int]:
        """The shape of matrix(), without making it."""
        return len(self.rows.label), self.rows.X.shape[1] + (self.rows.request is not None)


def split_rows(rows: LgbmRows, workers: int) -> Iterator[PartRows]:
    """Partitions of about PART_ROWS rows (at least one per worker), none empty; each carries
    only the request features its rows use (all rows of a request in one partition)."""
    n_parts = max(workers, -(-len(rows.label) // PART_ROWS))
    if rows.request is None:
        for idx in np.array_split(np.arange(len(rows.label)), n_parts):
            if len(idx):
                yield PartRows(
                    LgbmRows(
                        rows.X[idx[0] : idx[-1] + 1], rows.label[idx], init=_take(rows.init, idx)
                    )
                )
        return
    order = np.argsort(rows.request, kind="stable")
    request = rows.request[order]
    starts = np.linspace(0, len(request), n_parts, endpoint=False).astype(np.int64)
    cuts = np.unique(np.searchsorted(request, request[starts]))  # at request boundaries
    for start, end in zip(cuts, [*cuts[1:], len(request)], strict=True):
        idx = order[start:end]
        lo, hi = request[start], request[end - 1] + 1
        yield PartRows(
            LgbmRows(
                rows.X[lo:hi],
                rows.label[idx],
                rows.request[idx] - lo,
                rows.values[idx],
                _take(rows.init, idx),
            )
        )


def _take(column: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if column is None else column[idx]


class HeldOutStopping:
    """LightGBM's early stopping, on the held-out rows, agreed on by every worker.

    lightgbm.dask gives each worker only some of an eval_set and does not combine the metric
    across workers, so its early stopping can stop workers at different rounds and hang the
    others (LightGBM issues #6351, #6963). Here every worker scores the same held-out rows
    (published to all workers once) with the same trees (data-parallel training grows the
    same trees everywhere): the same log loss, so every worker stops at the same round. The
    rule is the local engine's: stop LGBM_EARLY_STOP rounds after the best held-out log loss.
    """

    NAME, METRIC = "held_out", "log_loss"
    order = 30  # run after LightGBM's own callbacks
    before_iteration = False

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset  # name of the published [X, label, margins] on the cluster
        # Per booster being trained: workers in threads of one process share this object.
        self.runs: dict[int, _Run] = {}

    @classmethod
    def publish(cls, client, held: LgbmRows, seed: int) -> HeldOutStopping:  # noqa: ANN001
        """Put the held-out rows (a seeded sample beyond EARLY_STOP_MAX_ROWS) on every worker."""
        if len(held.label) > EARLY_STOP_MAX_ROWS:
            keep = np.sort(
                np.random.default_rng(seed).choice(
                    len(held.label), EARLY_STOP_MAX_ROWS, replace=False
                )
            )
            held = (
                LgbmRows(held.X[keep], held.label[keep], init=_take(held.init, keep))
                if held.request is None
                else LgbmRows(
                    held.X,
                    held.label[keep],
                    held.request[keep],
                    held.values[keep],
                    _take(held.init, keep),
                )
            )
        start = held.init if held.init is not None else np.float64(0.0)  # margins
        name = f"aco-held-out-{uuid.uuid4().hex}"
        client.publish_dataset(
            client.scatter([held.stacked(), held.label, start], broadcast=True, hash=False),
            name=name,
        )
        return cls(name)

    def unpublish(self, client) -> None:  # noqa: ANN001
        """Drop the held-out rows from the cluster."""
        client.unpublish_dataset(self.dataset)

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        """After each round: add the new trees' scores, stop when the loss stopped improving."""
        i = env.iteration
        if i == env.begin_iteration:
            client = get_client()
            X, y, start = client.gather(client.get_dataset(self.dataset))
            self.runs[id(env.model)] = _Run(X, y, start, np.inf, i)
        run = self.runs[id(env.model)]
        run.raw = run.raw + env.model.predict(
            run.X, start_iteration=i, num_iteration=1, raw_score=True
        )
        loss = log_loss(run.raw, run.y)
        if loss < run.best:
            run.best, run.best_round = loss, i
        if i - run.best_round >= LGBM_EARLY_STOP or i == env.end_iteration - 1:
            del self.runs[id(env.model)]
            raise lgb.callback.EarlyStopException(
                run.best_round, [(self.NAME, self.METRIC, run.best, False)]
            )


@dataclass(slots=True)
class _Run:
    """One worker's early-stopping state: the held-out rows, their scores, the best round."""

    X: np.ndarray
    y: np.ndarray
    raw: np.ndarray | float  # raw scores: the starting margins plus the trees' so far
    best: float
    best_round: int


def log_loss(raw: np.ndarray, y: np.ndarray) -> float:
    """Mean log loss of raw scores: binary (n,) via the logistic, multiclass (n, k) softmax."""
    if raw.ndim == 1:
        p = clip_probability(1.0 / (1.0 + np.exp(-raw)))
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
    shifted = raw - raw.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(y)), y.astype(np.int64)]))


def sample_fit_data(data: FitData, max_requests: int, seed: int) -> FitData:
    """The fit fold cut to a seeded sample of max_requests requests (all when fewer)."""
    n = len(data.X)
    if n <= max_requests:
        return data
    keep = np.sort(np.random.default_rng(seed).choice(n, max_requests, replace=False))
    position = np.full(n, -1, dtype=np.int64)
    position[keep] = np.arange(len(keep))
    return dataclasses.replace(
        data,
        X=data.X[keep],
        rows=_kept(data.rows, position),
        outcomes=data.outcomes[keep],
        pooled=data.pooled and _kept(data.pooled, position),
    )


def _kept(rows: TierRows, position: np.ndarray) -> TierRows:
    """The rows of the kept requests (position >= 0), re-indexed to the sample."""
    kept = rows.take(position[rows.request] >= 0)
    return TierRows(position[kept.request], kept.tier, kept.label, kept.model)
