"""Replay routing decisions on counterfactual outcomes, or estimate them from ordinary logs.

Counterfactual data holds, for each evaluation request, the observed run at every tier
(an outcome matrix: success and cost per request x tier). Replaying a policy is then exact:
its tier's observed run is what it would have got. A policy may also be a *mixture*
(per-request probabilities over tiers, e.g. random mixing of two tiers); its figures are
then exact expectations over that mixture, not samples.

Ordinary logs carry one run per request, so nothing can be replayed. The two estimators here
say so in their `kind`: the direct method (the calibrated success model's probabilities and
the cost model's prices) and self-normalised inverse-propensity weighting (when the logs
carry the probability with which the logging policy chose each tier).

Pure functions over numpy arrays; rows are requests, columns are tiers in ascending order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aco.errors import DataError

KIND_REPLAY = "replay"  # observed runs of the chosen tiers
KIND_EXPECTED = "expected"  # exact expectation over a randomised policy, on observed runs
KIND_ESTIMATE = "estimate"  # not observed: a model-based or importance-weighted estimate
# A tier "succeeded" on a request when at least half its runs did (cells may average repeats).
SUCCEEDED = 0.5


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """What one policy got (or would get) on the evaluation requests."""

    name: str
    kind: str  # KIND_REPLAY, KIND_EXPECTED or KIND_ESTIMATE
    n_requests: int
    success_rate: float
    cost_per_request: float  # USD
    cost_per_success: float | None  # USD; None when nothing succeeded (the primary metric)
    tier_mix: tuple[tuple[int, float], ...]  # (tier, share of requests)
    under_routing: float | None  # share: chosen tier failed where a higher tier succeeded
    over_routing: float | None  # share: a cheaper tier succeeded, the chosen tier was paid
    note: str = ""  # how the figures were obtained, in one line

    def to_dict(self) -> dict:
        """JSON-ready values."""
        return {
            "name": self.name,
            "kind": self.kind,
            "n_requests": self.n_requests,
            "success_rate": self.success_rate,
            "cost_per_request": self.cost_per_request,
            "cost_per_success": self.cost_per_success,
            "tier_mix": {str(t): share for t, share in self.tier_mix},
            "under_routing": self.under_routing,
            "over_routing": self.over_routing,
            "note": self.note,
        }


def build_under_over(success: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per request x tier: would choosing it under-route, and would it over-route."""
    ok = success >= SUCCEEDED
    # any success strictly above column j: reverse cumulative "or", shifted by one.
    above = np.zeros_like(ok)
    above[:, :-1] = np.flip(np.logical_or.accumulate(np.flip(ok[:, 1:], axis=1), axis=1), axis=1)
    below = np.zeros_like(ok)
    below[:, 1:] = np.logical_or.accumulate(ok[:, :-1], axis=1)
    return (~ok) & above, below


def replay_choices(
    name: str,
    success: np.ndarray,
    cost: np.ndarray,
    tiers: Sequence[int],
    chosen: np.ndarray,
    note: str = "",
) -> PolicyResult:
    """Replay one tier per request: the observed run at that tier (chosen = tier numbers)."""
    index = tier_index(tiers, chosen)
    weights = np.zeros(success.shape, dtype=float)
    weights[np.arange(len(index)), index] = 1.0
    return replay_mixture(name, success, cost, tiers, weights, kind=KIND_REPLAY, note=note)


def replay_mixture(
    name: str,
    success: np.ndarray,
    cost: np.ndarray,
    tiers: Sequence[int],
    weights: np.ndarray,
    paid: np.ndarray | None = None,
    final_weights: np.ndarray | None = None,
    kind: str = KIND_EXPECTED,
    note: str = "",
) -> PolicyResult:
    """Exact expectation of a randomised policy: weights[i, j] = P(request i ends at tier j).

    `paid` overrides the expected cost per request (a cascade pays every call it makes).
    """
    _check_shapes(success, cost, weights)
    n = success.shape[0]
    if n == 0:
        raise DataError("no evaluation requests to replay; pass traces with outcomes")
    under, over = build_under_over(success)
    s = (weights * success).sum(axis=1)
    c = (weights * cost).sum(axis=1) if paid is None else np.asarray(paid, dtype=float)
    mix = (weights if final_weights is None else final_weights).mean(axis=0)
    return summarise(
        name,
        kind,
        s,
        c,
        tier_mix=tuple((int(t), float(m)) for t, m in zip(tiers, mix, strict=True)),
        under=float((weights * under).sum(axis=1).mean()),
        over=float((weights * over).sum(axis=1).mean()),
        note=note,
    )


def summarise(
    name: str,
    kind: str,
    success: np.ndarray,
    cost: np.ndarray,
    tier_mix: tuple[tuple[int, float], ...],
    under: float | None,
    over: float | None,
    note: str = "",
) -> PolicyResult:
    """A PolicyResult from per-request (expected) success and cost."""
    total_success = float(np.sum(success))
    total_cost = float(np.sum(cost))
    n = int(len(success))
    return PolicyResult(
        name=name,
        kind=kind,
        n_requests=n,
        success_rate=total_success / n,
        cost_per_request=total_cost / n,
        cost_per_success=total_cost / total_success if total_success > 0 else None,
        tier_mix=tier_mix,
        under_routing=under,
        over_routing=over,
        note=note,
    )


def tier_index(tiers: Sequence[int], chosen: np.ndarray) -> np.ndarray:
    """Column positions of tier numbers; an unknown tier is a DataError naming it."""
    lookup = np.full(max(tiers) + 2, -1, dtype=np.int64)
    lookup[list(tiers)] = np.arange(len(tiers))
    chosen = np.asarray(chosen, dtype=np.int64)
    bad = (chosen < 0) | (chosen >= len(lookup)) | (lookup[np.clip(chosen, 0, len(lookup) - 1)] < 0)
    if bad.any():
        raise DataError(
            f"decision {int(np.argmax(bad))}: tier {int(chosen[bad][0])} is not one of the "
            f"evaluated tiers {list(tiers)}; configure it or route only to configured tiers"
        )
    return lookup[chosen]


def _check_shapes(success: np.ndarray, cost: np.ndarray, weights: np.ndarray) -> None:
    if not success.shape == cost.shape == weights.shape:
        raise ValueError(
            f"shapes differ: success {success.shape}, cost {cost.shape}, weights {weights.shape}"
        )


def estimate_direct(
    name: str,
    probs: np.ndarray,
    cost_estimate: np.ndarray,
    tiers: Sequence[int],
    chosen: np.ndarray,
) -> PolicyResult:
    """Direct-method estimate: the success model's P(success) and estimated cost at the choice."""
    index = tier_index(tiers, chosen)
    rows = np.arange(len(index))
    mix = np.bincount(index, minlength=len(tiers)) / max(1, len(index))
    return summarise(
        name,
        KIND_ESTIMATE,
        probs[rows, index],
        cost_estimate[rows, index],
        tier_mix=tuple((int(t), float(m)) for t, m in zip(tiers, mix, strict=True)),
        under=None,
        over=None,
        note="direct-method estimate from the calibrated success model, not a replay",
    )


@dataclass(frozen=True, slots=True)
class LoggedRuns:
    """Ordinary logs: the one run each request got, and how likely its tier was."""

    tier: np.ndarray  # the tier that ran
    success: np.ndarray  # its observed success (0/1)
    cost: np.ndarray  # its observed cost (USD)
    propensity: np.ndarray  # P(logging policy picked that tier); NaN where unknown


def estimate_ipw(
    name: str, logs: LoggedRuns, tiers: Sequence[int], chosen: np.ndarray
) -> PolicyResult:
    """Self-normalised inverse-propensity estimate of a deterministic policy from logs."""
    p = np.asarray(logs.propensity, dtype=float)
    if not np.all(np.isfinite(p) & (p > 0)):
        raise DataError(
            "inverse-propensity weighting needs a routing probability > 0 on every "
            "logged run; these logs lack them, use the direct-method estimate"
        )
    match = np.asarray(chosen) == np.asarray(logs.tier)
    w = np.where(match, 1.0 / p, 0.0)
    if w.sum() <= 0:
        raise DataError("no logged run took the tier the policy chooses; IPW cannot estimate it")
    norm = w / w.sum()
    index = tier_index(tiers, chosen)
    mix = np.bincount(index, minlength=len(tiers)) / len(index)
    ess = float(
        w.sum() ** 2 / np.sum(w**2)
    )  # effective sample size: how much the estimate rests on
    n = len(index)
    return summarise(
        name,
        KIND_ESTIMATE,
        norm * n * logs.success,
        norm * n * logs.cost,
        tier_mix=tuple((int(t), float(m)) for t, m in zip(tiers, mix, strict=True)),
        under=None,
        over=None,
        note=f"self-normalised inverse-propensity estimate (effective sample size {ess:.0f} "
        f"of {n}), not a replay",
    )
