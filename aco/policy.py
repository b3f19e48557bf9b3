"""The decision rule: calibrated P(success) per tier + each request's own expected cost -> tier.

One rule for the lab's sweeps (`choose_tiers`, vectorised over many requests) and the runtime
(`choose_tier`, one request in plain Python for speed); a test keeps them identical.

For one request, with p[t] the calibrated probability of success at tier t (non-decreasing
in t) and c[t] the request's expected USD at tier t:

1. allowed tiers: configured tiers at or above the task type's floor (the top configured
   tier when the floor is above every configured tier);
2. p_best = the highest p over allowed tiers;
3. safety: if p_best < safety_threshold, no allowed tier is likely to succeed and the
   request goes to the top allowed tier (reason "safety");
4. candidates: allowed tiers that keep at least downgrade_threshold of p_best,
   p[t] >= downgrade_threshold * p_best;
5. among candidates, the tier maximising  success_value * p[t] - c[t] / cost_scale
   (ties: the lower tier). success_value = 0 picks the cheapest candidate; a positive value
   is what one success is worth in units of cost_scale (USD, the training data's average
   top-tier cost), so a request whose strong tier is cheap is upgraded more readily than
   one whose strong tier is dear.

A bundle's operating point may be a *mix* of two such parameter sets (`PolicyMix`): a fixed
share of requests, picked by a hash of the request text (`mix_coin`, so one request always
routes the same way), is decided with the second set. Mixing two points of a cost-success
curve reaches any point on the segment between them, which a single set often cannot.

Full meanings and units: docs/config.md.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CALIBRATION_METHODS = ("platt", "isotonic", "none")
PROBABILITY_EPS = 1e-6  # clip for logits and log loss

REASON_SAFETY = "safety"  # every allowed tier is below safety_threshold: top allowed tier
REASON_DOWNGRADE = "downgrade"  # a tier below the top allowed one qualified
REASON_TOP = "top"  # the top allowed tier was the best choice
REASONS = (REASON_SAFETY, REASON_DOWNGRADE, REASON_TOP)


@dataclass(frozen=True, slots=True)
class PolicyParams:
    """The operating point: the two config thresholds and the learned cost trade-off."""

    safety_threshold: float  # 0..1
    downgrade_threshold: float  # 0..1
    success_value: float = 0.0  # >= 0, in units of cost_scale per success; 0 = cheapest candidate
    cost_scale: float = 1.0  # USD > 0

    def to_dict(self) -> dict[str, float]:
        """Plain data for a bundle."""
        return {name: float(getattr(self, name)) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> PolicyParams:
        """Rebuild from to_dict's output."""
        return cls(**{name: float(data[name]) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class PolicyMix:
    """The second parameter set of a mixed operating point and the share of requests it takes."""

    params: PolicyParams
    share: float  # 0..1: requests whose mix_coin is below it are decided with `params`
    salt: int = 0  # mixed into the hash, so two bundles need not pick the same requests

    def to_dict(self) -> dict:
        """Plain data for a bundle."""
        return {"policy": self.params.to_dict(), "share": float(self.share), "salt": int(self.salt)}

    @classmethod
    def from_dict(cls, data: Mapping | None) -> PolicyMix | None:
        """Rebuild from to_dict's output; None for a bundle without a mix."""
        if not data:
            return None
        return cls(
            PolicyParams.from_dict(data["policy"]), float(data["share"]), int(data.get("salt", 0))
        )


def mix_coin(request: str, salt: int = 0) -> float:
    """A number in [0, 1) fixed by the request text and the salt (blake2b, first 8 bytes)."""
    digest = hashlib.blake2b(
        request.encode("utf-8", "surrogatepass"),
        digest_size=8,
        salt=salt.to_bytes(8, "little", signed=True)[:8].ljust(16, b"\0"),
    )
    return int.from_bytes(digest.digest(), "little") / 2.0**64


def clip_probability(p: np.ndarray) -> np.ndarray:
    """Probabilities kept inside [eps, 1 - eps] (finite logits and log losses)."""
    return np.clip(p, PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)


def calibrate(p: np.ndarray, calibration: Mapping) -> np.ndarray:
    """Apply a stored calibration ({"method": "platt"|"isotonic"|"none", ...}) to probabilities."""
    method = calibration.get("method", "none")
    p = np.asarray(p, dtype=np.float64)
    if method == "none":
        return p
    if method == "platt":
        q = clip_probability(p)
        z = calibration["a"] * (np.log(q) - np.log1p(-q)) + calibration["b"]
        return 1.0 / (1.0 + np.exp(-np.clip(z, -700.0, 700.0)))  # clip: no overflow warning
    if method == "isotonic":
        return np.interp(p, calibration["x"], calibration["y"])
    raise ValueError(f"calibration.method: expected one of {CALIBRATION_METHODS}, got {method!r}")


def calibrate_one(p: Sequence[float], calibration: Mapping) -> list[float]:
    """calibrate for one request's few probabilities, in plain Python (run-time speed)."""
    method = calibration.get("method", "none")
    if method == "none":
        return [float(v) for v in p]
    if method == "platt":
        a, b = calibration["a"], calibration["b"]
        out = []
        for v in p:
            q = min(max(v, PROBABILITY_EPS), 1.0 - PROBABILITY_EPS)
            z = min(max(a * (math.log(q) - math.log1p(-q)) + b, -700.0), 700.0)
            out.append(1.0 / (1.0 + math.exp(-z)))
        return out
    if method == "isotonic":
        p = np.asarray(p, dtype=np.float64)
        return np.interp(p, calibration["x"], calibration["y"]).tolist()
    raise ValueError(f"calibration.method: expected one of {CALIBRATION_METHODS}, got {method!r}")


# logit(1 - eps): clip_probability keeps every logit inside +-this.
LOGIT_LIMIT = math.log((1.0 - PROBABILITY_EPS) / PROBABILITY_EPS)


def calibrate_margins_one(raw: Sequence[float], calibration: Mapping) -> list[float]:
    """calibrate(sigmoid(raw)) for one request's raw scores, in plain Python.

    Platt on a sigmoid's output is a sigmoid of the clipped margin: logit(sigmoid(z)) = z,
    so no log is taken (the same numbers as the vectorised path up to rounding).
    """
    if calibration.get("method", "none") != "platt":
        return calibrate_one([_sigmoid(z) for z in raw], calibration)
    a, b = calibration["a"], calibration["b"]
    return [_sigmoid(a * min(max(z, -LOGIT_LIMIT), LOGIT_LIMIT) + b) for z in raw]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(max(z, -700.0), 700.0)))  # clamped: exp never overflows


def make_monotone_one(p: Sequence[float]) -> list[float]:
    """make_monotone for one request: a running maximum over the tiers."""
    out, best = [], -math.inf
    for v in p:
        best = v if v > best else best
        out.append(best)
    return out


def make_monotone(p: np.ndarray) -> np.ndarray:
    """P(success) made non-decreasing along the last axis (tiers): a running maximum."""
    return np.maximum.accumulate(p, axis=-1)


def expected_costs(
    input_tokens: np.ndarray,
    output_tokens: np.ndarray,
    price_in: np.ndarray,
    price_out: np.ndarray,
) -> np.ndarray:
    """USD per request and tier: tokens (n,) and (n, tiers), prices per 1K tokens (tiers,)."""
    tokens_in = np.asarray(input_tokens, dtype=np.float64)[..., None]
    return (tokens_in * price_in + np.asarray(output_tokens, dtype=np.float64) * price_out) / 1000.0


def build_allowed(floors: np.ndarray, configured: np.ndarray) -> np.ndarray:
    """(n, tiers) mask: configured tiers at or above each request's floor (1-based tiers)."""
    tiers = np.arange(1, configured.size + 1)
    allowed = (tiers[None, :] >= np.asarray(floors)[:, None]) & configured[None, :]
    # A floor above every configured tier leaves the top configured tier.
    none = ~allowed.any(axis=1)
    if none.any():
        allowed[none, np.flatnonzero(configured)[-1]] = True
    return allowed


def choose_tiers(
    p: np.ndarray, costs: np.ndarray, allowed: np.ndarray, params: PolicyParams
) -> tuple[np.ndarray, np.ndarray]:
    """Tier index (0-based) and reason code (index into REASONS) per request; vectorised."""
    p = np.asarray(p, dtype=np.float64)
    masked = np.where(allowed, p, -np.inf)
    p_best = masked.max(axis=1)
    n_tiers = p.shape[1]
    top = n_tiers - 1 - np.argmax(allowed[:, ::-1], axis=1)
    candidates = allowed & (p >= params.downgrade_threshold * p_best[:, None])
    score = params.success_value * p - costs / params.cost_scale
    chosen = np.argmax(np.where(candidates, score, -np.inf), axis=1)
    safety = p_best < params.safety_threshold
    chosen = np.where(safety, top, chosen)
    reason = np.where(safety, 0, np.where(chosen < top, 1, 2))
    return chosen, reason


def choose_tier(
    p: Sequence[float], costs: Sequence[float], allowed: Sequence[bool], params: PolicyParams
) -> tuple[int, int]:
    """choose_tiers for one request, in plain Python (microseconds at run time)."""
    p_best = -math.inf
    top = -1
    for i, ok in enumerate(allowed):
        if ok:
            top = i
            p_best = max(p_best, p[i])
    if p_best < params.safety_threshold:
        return top, 0
    bar = params.downgrade_threshold * p_best
    best_i, best_score = top, -math.inf
    for i, ok in enumerate(allowed):
        if ok and p[i] >= bar:
            score = params.success_value * p[i] - costs[i] / params.cost_scale
            if score > best_score:
                best_i, best_score = i, score
    return best_i, (1 if best_i < top else 2)
