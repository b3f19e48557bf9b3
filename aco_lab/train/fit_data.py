"""The data every fitter shares: the training rows per tier, a fit fold with its held-out fold,
LightGBM's row layout, and a fitted model with what it came from (aco_lab.train.estimators fits
them, aco_lab.train.candidates and aco_lab.train.dask_fit pass them around)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class TierRows:
    """Training rows of the success objective: (request, tier, 0/1 outcome), and for rows of
    several models per tier, the model of each row."""

    request: np.ndarray  # (m,) int index into the request feature matrix
    tier: np.ndarray  # (m,) int 1..5
    label: np.ndarray  # (m,) float 0/1
    model: np.ndarray | None = None  # (m,) int index into a list of model ids

    def take(self, mask: np.ndarray) -> TierRows:
        """The rows where mask holds."""
        model = None if self.model is None else self.model[mask]
        return TierRows(self.request[mask], self.tier[mask], self.label[mask], model)


@dataclass(frozen=True, slots=True)
class FitData:
    """A fit fold and a held-out fold: request features, tier rows, outcome grids."""

    X: np.ndarray  # (n, d) request features
    rows: TierRows  # indices into X
    outcomes: np.ndarray  # (n, 5) observed success per tier, nan unobserved
    X_held: np.ndarray
    rows_held: TierRows
    outcomes_held: np.ndarray
    # LightGBM success models only: rows of every traced model (TierRows.model set), and the
    # model standing for each tier 1..5 (None: none ran there). The trees then read a model's
    # skill instead of its tier (aco_lab.candidates.model_skills).
    pooled: TierRows | None = None
    pooled_held: TierRows | None = None
    tier_models: tuple[int | None, ...] = ()


@dataclass(frozen=True, slots=True)
class FittedModel:
    """The model as plain data, and the LightGBM booster it came from (parity checks)."""

    model: dict
    booster: object | None = None
    members: tuple[FittedModel, ...] = ()  # an ensemble's fitted members


def build_cheapest_labels(success: np.ndarray) -> np.ndarray:
    """Class per request: the lowest tier (1..5) whose outcome is a success, 0 when none is."""
    solved = np.nan_to_num(success, nan=0.0) >= 0.5
    return np.where(solved.any(axis=1), np.argmax(solved, axis=1) + 1, 0)


def stack_tier_rows(X: np.ndarray, request: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of [request features, tier value] for the LightGBM success model: the tier, or
    the skill of the row's model."""
    return np.hstack([X[request], values.astype(np.float64)[:, None]])


@dataclass(frozen=True, slots=True)
class LgbmRows:
    """LightGBM's rows: X[request] with a tier value as a last column, or, without request, X."""

    X: np.ndarray
    label: np.ndarray
    request: np.ndarray | None = None  # (m,) row of X per training row
    values: np.ndarray | None = None  # (m,) the tier (or model skill), with request
    init: np.ndarray | None = None  # (m,) starting margins (a prior's logits), or None

    def stacked(self) -> np.ndarray:
        """The rows as one matrix."""
        return (
            self.X if self.request is None else stack_tier_rows(self.X, self.request, self.values)
        )


LgbmTrainer = Callable[[dict, LgbmRows, LgbmRows], object]  # train_lgbm, or dask_fit's
