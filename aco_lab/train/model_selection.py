"""Which router to ship: every candidate cross-validated on the training requests, by request.

The training requests are cut into CV_FOLDS folds by a seeded hash of `request_id` (all runs
of a request in one fold). Each candidate (aco_lab.candidates) is fitted on all folds but one
and predicts the one left out, so every training request gets an out-of-fold P(success).
Those predictions, calibrated, are routed by the decision rule over a sweep of its thresholds
and replayed on the requests' observed outcomes: a cost-success curve per candidate, judged
where the router will be used, by

- the cost at the target success (the success floor, e.g. 95% of the top tier's), as a share
  of the top tier's cost, along the curve's frontier (two policies mixed where it lies between
  them, as the operating point does);
- AIQ, the mean success along the frontier over the single tiers' cost range.

A point on a curve is a noisy judge: a paired bootstrap over requests measures how much each
candidate's difference from the lowest cost would move with other requests, and among the
candidates within one standard error of the lowest, the lowest log loss of the out-of-fold
predictions (a proper score, far steadier) wins; ties go to the simpler candidate
(aco_lab.train.candidates' order). The out-of-fold predictions also fit the
calibration and choose the operating point (aco_lab.operating_point), so both are judged on
requests the model did not fit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aco.policy import PolicyParams, build_allowed, calibrate, choose_tiers, make_monotone
from aco_lab.traces.split import assign_splits
from aco_lab.train.calibration import fit_calibration
from aco_lab.train.candidates import (
    CANDIDATES,
    ENSEMBLE,
    ENSEMBLE_MEMBERS,
    TrainingSet,
    fit_candidate,
    predict_candidate,
)
from aco_lab.train.curves import (
    Curve,
    build_area_metrics,
    build_frontier,
    build_reference,
    frontier_cost_at,
)
from aco_lab.train.estimators import held_out_log_loss
from aco_lab.train.operating_point import TOP_POLICY, ValidationSet

if TYPE_CHECKING:
    from aco_lab.train.dask_fit import DaskTrainer

log = logging.getLogger(__name__)

CV_FOLDS = 5
BOOTSTRAP_SAMPLES = 200  # paired bootstrap replicates for the standard errors
BOOTSTRAP_MAX_REQUESTS = 5_000  # beyond: replicates of a seeded sample, the error rescaled
# The curve's policies: the cheapest tier keeping a share of the best P (0..1), what one
# success is worth in units of the top tier's cost (log grid), and every request at the top.
CURVE_DOWNGRADES = tuple(round(float(x), 3) for x in np.linspace(0.0, 1.0, 51))
CURVE_VALUES = tuple(float(v) for v in np.geomspace(0.01, 1000.0, 31))


@dataclass(frozen=True, slots=True)
class CandidateScore:
    """One candidate's out-of-fold predictions and what they are worth."""

    name: str
    oof: np.ndarray  # (n, 5) uncalibrated out-of-fold P(success), non-decreasing in the tier
    calibration: dict  # fitted on the out-of-fold predictions
    cost_at_target: float | None  # share of the top tier's cost; None: the curve never gets there
    aiq: float
    log_loss: float  # of the calibrated out-of-fold predictions, observed cells
    seconds: float  # fitting and predicting all folds
    replicates: np.ndarray  # (B,) cost at the target in bootstrap replicates (1.0: not reached)

    @property
    def p(self) -> np.ndarray:
        """Calibrated out-of-fold P(success), non-decreasing in the tier."""
        return make_monotone(calibrate(self.oof, self.calibration))

    def figures(self) -> dict:
        """Plain data for the bundle."""
        return {
            "cost_at_target": self.cost_at_target,
            "aiq": round(self.aiq, 6),
            "log_loss": round(self.log_loss, 6),
        }


@dataclass(frozen=True, slots=True)
class Selection:
    """The candidates' figures, the winner and why it won."""

    winner: CandidateScore
    scores: tuple[CandidateScore, ...]
    standard_errors: dict[str, float]  # of each candidate's difference from the lowest cost
    target: float
    folds: int
    why: str

    def to_dict(self) -> dict:
        """Plain data for the bundle (validation.selection)."""
        return {
            "winner": self.winner.name,
            "why": self.why,
            "target": self.target,
            "folds": self.folds,
            "candidates": {
                s.name: {**s.figures(), "standard_error": self.standard_errors.get(s.name)}
                for s in self.scores
            },
        }


def assign_folds(request_ids: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """(n,) fold index of each request: a seeded hash of its id, equal-sized folds."""
    parts = assign_splits(request_ids, [(str(k), 1.0 / folds) for k in range(folds)], seed)
    fold_of = {rid: int(k) for k, ids in parts.items() for rid in ids}
    return np.array([fold_of[r] for r in request_ids], dtype=np.int64)


def out_of_fold(
    name: str,
    objective: str,
    data: TrainingSet,
    folds: np.ndarray,
    seed: int,
    num_threads: int,
    engine: DaskTrainer | None = None,
) -> np.ndarray:
    """(n, 5) P(success) of every training request from the candidate fitted without its fold."""
    oof = np.full((data.n_requests, 5), np.nan)
    for k in np.unique(folds):
        held, fit = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
        fitted = fit_candidate(name, objective, data, fit, seed, num_threads, engine)
        oof[held] = predict_candidate(fitted, data.X[held], num_threads)
    return oof


def score_candidate(
    name: str,
    oof: np.ndarray,
    validation: ValidationSet,
    cost_scale: float,
    target: float,
    calibration_method: str,
    seconds: float = 0.0,
    seed: int = 0,
) -> CandidateScore:
    """Calibrate a candidate's out-of-fold predictions and measure its curve."""
    seen = ~np.isnan(validation.success)
    calibration = fit_calibration(
        oof[seen], (validation.success[seen] >= 0.5).astype(float), calibration_method
    )
    p = make_monotone(calibrate(oof, calibration))
    curve = CurveTable.build(p, validation, cost_scale)
    cost = curve.cost_at(target)
    return CandidateScore(
        name=name,
        oof=oof,
        calibration=calibration,
        cost_at_target=cost,
        aiq=curve.aiq(),
        log_loss=held_out_log_loss(p, validation.success),
        seconds=seconds,
        replicates=curve.bootstrap(target, seed),
    )


@dataclass(frozen=True, slots=True)
class CurveTable:
    """Per curve policy and request, the outcome and cost the policy's tier gets."""

    success: np.ndarray  # (policies, n)
    cost: np.ndarray  # (policies, n)
    singles: tuple[np.ndarray, np.ndarray]  # (tiers, n) success and cost of each single tier
    configured: tuple[int, ...]  # 0-based columns of the configured tiers

    @classmethod
    def build(cls, p: np.ndarray, validation: ValidationSet, cost_scale: float) -> CurveTable:
        """Route p over the curve's policies (no task floors) and look up the outcomes."""
        success, cost = validation.scored()
        allowed = build_allowed(np.ones(len(p), dtype=np.int64), validation.configured)
        params = (
            [PolicyParams(0.0, d, 0.0, cost_scale) for d in CURVE_DOWNGRADES]
            + [PolicyParams(0.0, 0.0, v, cost_scale) for v in CURVE_VALUES]
            + [PolicyParams(*TOP_POLICY, cost_scale)]
        )
        rows = np.arange(len(p))
        chosen = np.array([choose_tiers(p, validation.costs, allowed, x)[0] for x in params])
        configured = tuple(int(t) for t in np.flatnonzero(validation.configured))
        return cls(
            success[rows, chosen],
            cost[rows, chosen],
            (success[:, configured].T, cost[:, configured].T),
            configured,
        )

    def cost_at(self, target: float, weights: np.ndarray | None = None) -> float | None:
        """Least cost along the frontier reaching target x the top tier's success, as a share
        of the top tier's cost; weights: per-request (bootstrap) weights."""
        s, c, top_s, top_c = self._means(weights)
        fc, fs = build_frontier(c, s)
        cost = frontier_cost_at(fc, fs, target * top_s)
        return None if cost is None or top_c <= 0 else cost / top_c

    def aiq(self) -> float:
        """AIQ of the frontier over the single tiers' cost range (aco_lab.train.curves)."""
        s, c, _, _ = self._means(None)
        single_s, single_c = (a.mean(axis=1) for a in self.singles)
        tiers = range(len(self.configured))
        ref = build_reference(
            {t: float(single_c[t]) for t in tiers},
            {t: float(single_s[t]) for t in tiers},
            len(self.configured) - 1,
        )
        return build_area_metrics(Curve("cv", tuple(c.tolist()), tuple(s.tolist())), ref).aiq

    def bootstrap(self, target: float, seed: int) -> np.ndarray:
        """(B,) cost at the target over Poisson-bootstrap replicates of the requests (1.0 where
        a replicate never reaches it), seeded so every candidate sees the same replicates."""
        n = self.success.shape[1]
        rng = np.random.default_rng(seed)
        sample = None
        if n > BOOTSTRAP_MAX_REQUESTS:
            sample = np.sort(rng.choice(n, BOOTSTRAP_MAX_REQUESTS, replace=False))
        size = n if sample is None else BOOTSTRAP_MAX_REQUESTS
        weights = rng.poisson(1.0, (BOOTSTRAP_SAMPLES, size)).astype(np.float64)
        out = np.empty(BOOTSTRAP_SAMPLES)
        for b in range(BOOTSTRAP_SAMPLES):
            w = weights[b] if sample is None else _scatter(weights[b], sample, n)
            cost = self.cost_at(target, w)
            out[b] = 1.0 if cost is None else cost
        if sample is not None:  # a smaller sample spreads more: back to n requests' spread
            out = out.mean() + (out - out.mean()) * np.sqrt(BOOTSTRAP_MAX_REQUESTS / n)
        return out

    def _means(self, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float, float]:
        w = np.ones(self.success.shape[1]) if weights is None else weights
        total = max(float(w.sum()), 1e-12)
        top_s, top_c = (a[-1] @ w / total for a in self.singles)
        return self.success @ w / total, self.cost @ w / total, float(top_s), float(top_c)


def _scatter(values: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[index] = values
    return out


def select(scores: Sequence[CandidateScore], target: float, folds: int) -> Selection:
    """Among the candidates whose cross-validated cost at the target is within one standard
    error (paired bootstrap) of the lowest, the lowest log loss (then the simplest); no
    candidate reaching the target: the highest AIQ."""
    reached = [s for s in scores if s.cost_at_target is not None]
    if not reached:
        best = max(scores, key=lambda s: s.aiq)
        why = (
            f"no candidate's cross-validated curve reaches {target:.0%} of the top tier's "
            f"success; {best.name} has the highest AIQ ({best.aiq:.4f})"
        )
        return Selection(best, tuple(scores), {}, target, folds, why)
    best = min(reached, key=lambda s: (s.cost_at_target, -s.aiq))
    errors = {s.name: float(np.std(s.replicates - best.replicates)) for s in reached}
    order = {name: i for i, name in enumerate(CANDIDATES)}
    near = [s for s in reached if s.cost_at_target <= best.cost_at_target + errors[s.name]]
    winner = min(near, key=lambda s: (round(s.log_loss, 4), order.get(s.name, len(order))))
    why = (
        f"cross-validated over {folds} folds by request, {winner.name} reaches "
        f"{target:.0%} of the top tier's success at {winner.cost_at_target:.1%} of its cost "
        f"(AIQ {winner.aiq:.4f}, log loss {winner.log_loss:.4f})"
    )
    if winner is best:
        why += ", the lowest of the candidates"
    else:
        why += (
            f", within one standard error ({errors[winner.name]:.1%}) of the lowest "
            f"({best.name}, {best.cost_at_target:.1%}), with the lowest log loss of those"
        )
    if len(near) == 1 and winner is best:
        why += " and the only one within one standard error of it"
    return Selection(winner, tuple(scores), errors, target, folds, why)


def cross_validate(
    names: Sequence[str],
    objective: str,
    data: TrainingSet,
    validation: ValidationSet,
    cost_scale: float,
    target: float,
    calibration_method: str,
    seed: int,
    num_threads: int,
    folds: int = CV_FOLDS,
    engine: DaskTrainer | None = None,
) -> Selection:
    """Every named candidate's out-of-fold curve, and the one to ship (engine: fitted on a
    Dask cluster, aco_lab/train/dask_fit.py)."""
    fold = assign_folds(data.request_ids, folds, seed)
    scores, oofs = [], {}
    for name in names:
        start = time.perf_counter()
        if name == ENSEMBLE:  # its members' out-of-fold predictions, averaged: no refit
            for member in ENSEMBLE_MEMBERS:
                if member not in oofs:
                    oofs[member] = out_of_fold(
                        member, objective, data, fold, seed, num_threads, engine
                    )
            oof = np.mean([oofs[m] for m in ENSEMBLE_MEMBERS], axis=0)
        else:
            oof = oofs[name] = out_of_fold(name, objective, data, fold, seed, num_threads, engine)
        score = score_candidate(
            name,
            oof,
            validation,
            cost_scale,
            target,
            calibration_method,
            time.perf_counter() - start,
            seed,
        )
        log.info(
            "candidate %s: cost at %.0f%% of the top's success %s, AIQ %.4f, log loss %.4f (%.1fs)",
            name,
            100 * target,
            "-" if score.cost_at_target is None else f"{score.cost_at_target:.1%}",
            score.aiq,
            score.log_loss,
            score.seconds,
        )
        scores.append(score)
    selection = select(scores, target, folds)
    log.info("chose %s: %s", selection.winner.name, selection.why)
    return selection
