"""The feature matrix of a runs table: the runtime's request_features, row by row.

No feature logic lives here: every number comes from ``aco.features.request_features``, so
a router trained on this matrix sees at run time exactly what it saw in training (a parity
test checks it on real traces). This module only feeds the table's columns to it, computes
each distinct request once (counterfactual traces repeat a request on every tier) and
spreads large tables over processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import numpy as np
import polars as pl

from aco.errors import DataError
from aco.features import FeatureSpec, request_features
from aco_lab.traces import schema as S

log = logging.getLogger(__name__)

FEATURE_COLUMNS = (S.REQUEST, S.TASK_TYPE, S.DIFFICULTY, S.FIRST_INPUT_TOKENS)
OPTIONAL_COLUMNS = (S.TASK_TYPE, S.DIFFICULTY, S.FIRST_INPUT_TOKENS)  # missing -> all null
PARALLEL_MIN_ROWS = 40_000  # distinct requests; below this a process pool costs more than it saves
MAX_WORKERS = 2  # the machines this runs on share few cores
EXECUTOR_PART_ROWS = 20_000  # distinct requests per task given to an executor (a Dask cluster)

Key = tuple[str, str | None, float | None, float | None]


def build_features(
    runs: pl.DataFrame,
    spec: FeatureSpec,
    workers: int | None = None,
    executor: Executor | None = None,
) -> np.ndarray:
    """The (rows, spec.n_features) float64 matrix of request_features for every run.

    executor: computes the distinct requests in parts of EXECUTOR_PART_ROWS (the Dask
    engine's workers) instead of this machine's processes."""
    keys = _feature_keys(runs)
    index: dict[Key, int] = {}
    inverse = np.fromiter(
        (index.setdefault(key, len(index)) for key in keys), dtype=np.int64, count=len(keys)
    )
    distinct = list(index)
    log.info("features: %d runs, %d distinct requests", len(keys), len(distinct))
    matrix = _features_of(distinct, spec, workers, executor)
    return matrix[inverse] if len(distinct) != len(keys) else matrix


def _feature_keys(runs: pl.DataFrame) -> list[Key]:
    if S.REQUEST not in runs.columns:
        raise DataError(f"runs: no {S.REQUEST!r} column; build features from read_traces(...).runs")
    nulls = runs.get_column(S.REQUEST).is_null()
    if nulls.any():
        row = int(nulls.arg_max())
        where = _where(runs, row)
        raise DataError(f"{where}{S.REQUEST}: expected a string, got null; drop or fix that run")
    n = runs.height
    columns = [
        runs.get_column(name).to_list() if name in runs.columns else [None] * n
        for name in FEATURE_COLUMNS
    ]
    return list(zip(*columns, strict=True))


def _where(runs: pl.DataFrame, row: int) -> str:
    if S.SOURCE_FILE in runs.columns and S.LINE in runs.columns:
        return f"{runs[row, S.SOURCE_FILE]}:{runs[row, S.LINE]}: "
    return f"runs row {row}: "


def _features_of(
    keys: Sequence[Key], spec: FeatureSpec, workers: int | None, executor: Executor | None = None
) -> np.ndarray:
    if executor is not None and keys:
        parts = [keys[i : i + EXECUTOR_PART_ROWS] for i in range(0, len(keys), EXECUTOR_PART_ROWS)]
        specs = [spec.to_dict()] * len(parts)
        return np.concatenate(list(executor.map(_compute, parts, specs)))
    workers = min(MAX_WORKERS, os.cpu_count() or 1) if workers is None else workers
    if workers <= 1 or len(keys) < PARALLEL_MIN_ROWS:
        return _compute(keys, spec.to_dict())
    chunks = np.array_split(np.arange(len(keys)), workers)
    parts = [[keys[i] for i in chunk] for chunk in chunks]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_compute, parts, [spec.to_dict()] * len(parts)))
    return np.concatenate(results, axis=0)


def _compute(keys: Sequence[Key], spec_dict: dict[str, Any]) -> np.ndarray:
    # Module-level and given a plain dict, so a process pool can pickle it.
    spec = FeatureSpec.from_dict(spec_dict)
    out = np.empty((len(keys), spec.n_features), dtype=np.float64)
    for row, (request, task_type, difficulty, tokens) in enumerate(keys):
        out[row] = request_features(spec, request, task_type, difficulty, tokens)
    return out
