"""`Router`: a trained bundle -> `RoutingDecision`, without lightgbm or scikit-learn.

    router = Router.load("router_models/router_bundle_v3.pkl")
    decision = router.decide("Fix the failing test in auth.py", task_type="coding")

Per request: features (aco.features) -> P(success) per tier (aco.scoring on the bundle's
plain model) -> calibration -> non-decreasing in the tier -> the decision rule (aco.policy)
with the request's own expected cost per tier. The lab computes its validation figures with
the same functions (`predict_success`, `expected_cost_table`), so both decide identically.

Settings: the operating point (safety_threshold, downgrade_threshold, success_value) and the
learned task floors come from the bundle, where they were chosen on validation data. A config
given to `load` supplies the tier table (model ids, prices) and its own task floors, which
only ever raise a learned floor. docs/config.md says what each threshold means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aco import scoring
from aco.config import ACOConfig, TierSpec
from aco.decisions import (
    FROM_CALLER,
    FROM_CLASSIFIER,
    FROM_NONE,
    FROM_RULE_CUES,
    MODE_BUNDLE,
    RoutingDecision,
)
from aco.errors import BundleError
from aco.features import request_features, set_task_type
from aco.formatting import format_money
from aco.payload import BundlePayload, Novelty, read_payload
from aco.payload_fields import PayloadError
from aco.policy import (
    REASONS,
    PolicyParams,
    calibrate_margins_one,
    calibrate_one,
    choose_tier,
    make_monotone,
    make_monotone_one,
    mix_coin,
)
from aco.rules import read_cues
from aco.trace_format import TIERS

N_TIERS = len(TIERS)
_TIERS = np.arange(1.0, N_TIERS + 1)  # the tier column's values


# -- model evaluation (shared with the lab) -----------------------------------------------
def predict_success(model: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """(n, 5) uncalibrated P(success) per tier 1..5 from a bundle's plain model."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    kind, objective = model["kind"], model["objective"]
    if kind == "ensemble":  # the members' mean, each non-decreasing in the tier
        return np.mean([make_monotone(predict_success(m, X)) for m in model["members"]], axis=0)
    if kind == "knn":  # neighbours' outcomes per tier (or "cheapest <= t" indicators)
        return scoring.predict_knn(model["knn"], X)
    if objective == "success":
        if kind == "lgbm":
            return scoring.sigmoid(lgbm_success_margins(model, X))
        return scoring.sigmoid(scoring.predict_linear(model["linear"], X))
    # "cheapest": class probabilities (0 = no tier succeeds, 1..5) -> P(cheapest <= t).
    if kind == "lgbm":
        raw = scoring.predict_lgbm_raw(model["booster"], X).reshape(len(X), N_TIERS + 1)
    else:
        raw = scoring.predict_linear(model["linear"], X)
    return success_from_cheapest(scoring.softmax(raw))


def all_tier_rows(X: np.ndarray, tier_values: np.ndarray = _TIERS) -> np.ndarray:
    """The success model's rows: each request's features at each tier 1..5, the last column
    holding the tier's value (the tier itself, or the skill of the model standing for it)."""
    rows = np.empty((len(X) * N_TIERS, X.shape[1] + 1))
    rows[:, :-1] = np.repeat(X, N_TIERS, axis=0)
    rows[:, -1] = np.tile(tier_values, len(X))
    return rows


def tier_values(model: Mapping[str, Any]) -> np.ndarray:
    """The values a LightGBM success model reads in its last column for tiers 1..5: the tier
    number, or (models pooled over several models per tier) the skill of each tier's model."""
    values = model.get("tier_values")
    return _TIERS if values is None else np.asarray(values, dtype=np.float64)


def lgbm_success_margins(model: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """(n, 5) raw margins of a LightGBM success model: its trees at each tier, plus the logits
    of its prior (a per-task-type table, for a model learned as a residual over it)."""
    X = np.asarray(X, dtype=np.float64)
    raw = scoring.predict_lgbm_raw(model["booster"], all_tier_rows(X, tier_values(model)))
    raw = raw.reshape(len(X), N_TIERS)
    prior = model.get("prior")
    return raw if prior is None else raw + scoring.predict_linear(prior, X)


def success_from_cheapest(classes: np.ndarray) -> np.ndarray:
    """(n, 5) P(success at t) = P(cheapest succeeding tier <= t) from the "cheapest" model's
    class probabilities (class 0: no tier succeeds, then tiers 1..5)."""
    return np.clip(np.cumsum(classes[:, 1:], axis=1), 0.0, 1.0)


def predict_task_types(
    task_model: Mapping[str, Any], X: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(index into task_model["task_types"], probability) per row, from a softmax model."""
    X = np.array(X, dtype=np.float64, ndmin=2)
    X[:, task_model["task_columns"]] = 0.0  # as if no task type were given, as in training
    X[:, task_model["missing_column"]] = 1.0
    probs = scoring.softmax(scoring.predict_linear(task_model["linear"], X))
    best = probs.argmax(axis=1)
    return best, probs[np.arange(len(best)), best]


def build_novelty(
    centroids: np.ndarray, offset: int, threshold: float, quantile: float
) -> dict[str, Any]:
    """Plain data of the task-type novelty check: unit-length centroids of training requests'
    hashed n-gram vectors (features[offset:]), float16, and the similarity to the nearest
    below which a request is novel (the `quantile` of held-out requests')."""
    stored = np.ascontiguousarray(centroids, dtype="<f2")
    return {
        "centroids": stored.tobytes(),
        "count": int(stored.shape[0]),
        "width": int(stored.shape[1]),
        "offset": int(offset),
        "threshold": float(threshold),
        "quantile": float(quantile),
    }


def read_novelty(
    task_model: Mapping[str, Any], n_features: int, source: str = "bundle"
) -> tuple[np.ndarray, int, float] | None:
    """(centroids as float32 (count, width), offset, threshold) of a task model's novelty
    check; None for a bundle trained without one. BundleError when its shapes do not fit."""
    if task_model.get("novelty") is None:
        return None
    try:
        novelty = Novelty.from_dict(task_model["novelty"], "task_type_model.novelty", n_features)
    except PayloadError as exc:
        raise BundleError(f"{source}: {exc}; retrain with `aco-lab train`") from None
    centroids = np.frombuffer(novelty.centroids, dtype="<f2").reshape(novelty.count, novelty.width)
    return centroids.astype(np.float32), novelty.offset, novelty.threshold


def nearest_similarity(centroids: np.ndarray, hashed: np.ndarray) -> np.ndarray:
    """Per row of `hashed` (unit-length n-gram vectors), the cosine similarity of its nearest
    centroid; 0 for an empty text (no n-grams)."""
    return (np.atleast_2d(hashed) @ centroids.T).max(axis=1)


def novel_rows(task_model: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """(n,) bool: the requests the task model's novelty check calls unlike its training ones
    (all False for a model without the check)."""
    novelty = read_novelty(task_model, X.shape[1])
    if novelty is None:
        return np.zeros(len(X), dtype=bool)
    centroids, offset, threshold = novelty
    return nearest_similarity(centroids, X[:, offset:]) < threshold


def infer_task_types(
    task_model: Mapping[str, Any], requests: Sequence[str], X: np.ndarray
) -> list[str | None]:
    """TaskTypePredictor.infer for many requests (the lab's replay): the predicted type, or
    for a request unlike the training requests the rules' type when the model knows it."""
    X = np.asarray(X, dtype=np.float64)
    index, _ = predict_task_types(task_model, X)
    types = [task_model["task_types"][int(k)] for k in index]
    known = frozenset(task_model["task_types"])
    for i in np.flatnonzero(novel_rows(task_model, X)):
        types[i] = cue_task_type(requests[i], known)
    return types


def cue_task_type(request: str, known: frozenset[str]) -> str | None:
    """The type a novel request takes: the one its rule cues name, when the model knows it."""
    cue = read_cues(request).task_type
    return cue if cue in known else None


class TaskTypePredictor:
    """predict_task_types and the novelty check for one feature vector, folded at load time.

    The linear model reads z = (x - mean) / scale with NaN as the mean and the task-type
    columns overridden (one-hots 0, "missing" 1): standardisation and the overridden columns
    fold into the weights and one constant, so a request costs one dot product. The novelty
    check is one more, with the centroids in float32 (half the memory a decision streams
    through: in float64 they pushed the trees out of cache).
    """

    def __init__(self, task_model: Mapping[str, Any], source: str = "bundle") -> None:
        linear = task_model["linear"]
        n_feat, n_out = int(linear["n_features"]), int(linear["n_outputs"])
        coef = np.frombuffer(linear["coef"], dtype="<f8").reshape(n_out, n_feat)
        mean = np.frombuffer(linear["mean"], dtype="<f8")
        scale = np.frombuffer(linear["scale"], dtype="<f8")
        weights = coef / scale
        fixed = np.full(n_feat, np.nan)
        fixed[list(task_model["task_columns"])] = 0.0
        fixed[task_model["missing_column"]] = 1.0
        overridden = ~np.isnan(fixed)
        constant = np.frombuffer(linear["intercept"], dtype="<f8") - weights @ mean
        constant += weights[:, overridden] @ fixed[overridden]
        weights[:, overridden] = 0.0
        self.types: list[str] = list(task_model["task_types"])
        self._known = frozenset(self.types)
        self._weights, self._constant, self._mean = weights, constant, mean.copy()
        self._novelty = read_novelty(task_model, n_feat, source)

    def infer(self, request: str, x: np.ndarray) -> tuple[str | None, str, str]:
        """(task type or None, where it came from (aco.decisions.FROM_*), what was done, for the
        reason) for a request given without one.

        A request unlike the training requests (less similar to every centroid of theirs
        than the bundle's threshold) is not predicted: the model's confidence means nothing
        there. It takes the type the rules' cues name when the model knows that type, else
        none."""
        if self._novelty is not None:
            centroids, offset, threshold = self._novelty
            similarity = float(nearest_similarity(centroids, x[offset:].astype(np.float32))[0])
            if similarity < threshold:
                cue = cue_task_type(request, self._known)
                unlike = (
                    f"request unlike the training requests (similarity {similarity:.2f} "
                    f"< {threshold:.2f})"
                )
                if cue is not None:
                    return cue, FROM_RULE_CUES, f"{unlike}: task type {cue} from rule cues"
                return None, FROM_NONE, f"{unlike}: task type unknown"
        task_type, prob = self.predict(x)
        return task_type, FROM_CLASSIFIER, f"task type predicted: {task_type} (p={prob:.2f})"

    def predict(self, x: np.ndarray) -> tuple[str, float]:
        """(most likely task type, its probability) for one request's features."""
        x = np.where(x == x, x, self._mean)  # NaN reads as the mean: contributes nothing
        logits = (self._weights @ x + self._constant).tolist()
        best = max(range(len(logits)), key=logits.__getitem__)
        top = logits[best]
        return self.types[best], 1.0 / math.fsum(math.exp(v - top) for v in logits)


def output_token_table(
    cost_model: Mapping[str, Any], task_types: Sequence[str | None]
) -> np.ndarray:
    """(n, 5) predicted output tokens per tier: the task type's medians, else the overall ones."""
    by_type = cost_model["output_tokens"]
    default = cost_model["default_output_tokens"]
    return np.array(
        [by_type.get(t, default) if t is not None else default for t in task_types],
        dtype=np.float64,
    ).reshape(len(task_types), N_TIERS)


def expected_cost_table(
    cost_model: Mapping[str, Any],
    tiers: Sequence[TierSpec],
    input_tokens: np.ndarray,
    task_types: Sequence[str | None],
    request_chars: np.ndarray,
) -> np.ndarray:
    """(n, 5) expected USD per request and tier; unknown input tokens estimated from length."""
    tokens = np.asarray(input_tokens, dtype=np.float64)
    estimate = np.asarray(request_chars, dtype=np.float64) / cost_model["chars_per_token"]
    tokens = np.where(np.isnan(tokens), estimate, tokens)
    price_in, price_out = tier_prices(tiers)
    out = output_token_table(cost_model, task_types)
    factors = cost_factor_table(cost_model, task_types)
    return (tokens[:, None] * price_in + out * price_out) / 1000.0 * factors


def cost_factors(cost_model: Mapping[str, Any], task_type: str | None = None) -> list[float]:
    """Five factors from priced tokens to what runs cost, for one task type: the training runs'
    observed cost over their priced-token estimate (an agent's many calls, paid tools, token
    counts the traces lack). The task type's own factors where the bundle has them, else the
    tier's, else 1 (bundles before either)."""
    by_type = cost_model.get("task_cost_factor") or {}
    factors = by_type.get(task_type) if task_type is not None else None
    if factors is None:
        factors = cost_model.get("tier_cost_factor")
    return [1.0] * N_TIERS if factors is None else [float(f) for f in factors]


def cost_factor_table(
    cost_model: Mapping[str, Any], task_types: Sequence[str | None]
) -> np.ndarray:
    """(n, 5) cost factors of each request's task type (cost_factors)."""
    rows = {t: cost_factors(cost_model, t) for t in set(task_types)}
    return np.array([rows[t] for t in task_types], dtype=np.float64).reshape(
        len(task_types), N_TIERS
    )


def tier_prices(tiers: Sequence[TierSpec]) -> tuple[np.ndarray, np.ndarray]:
    """Prices per 1K input and output tokens for tiers 1..5 (0 for an unconfigured tier)."""
    price_in, price_out = np.zeros(N_TIERS), np.zeros(N_TIERS)
    for spec in tiers:
        price_in[spec.tier - 1] = spec.cost_per_1k_input
        price_out[spec.tier - 1] = spec.cost_per_1k_output
    return price_in, price_out


# -- the runtime router -------------------------------------------------------------------
class Router:
    """Routes one request at a time with a trained bundle (mode "bundle")."""

    def __init__(
        self,
        bundle: BundlePayload | Mapping[str, Any],
        config: ACOConfig | None = None,
        source: str = "bundle",
    ) -> None:
        # Every field checked once (aco.payload); a plain dict is read into the dataclasses.
        self.payload = bundle if isinstance(bundle, BundlePayload) else read_payload(bundle, source)
        self.bundle = bundle if isinstance(bundle, Mapping) else self.payload.to_dict()
        self.source = source
        self.spec = self.payload.feature_spec
        self.model = self.bundle["model"]  # plain data, as aco.scoring reads it
        self.calibration = self.bundle["calibration"]
        self.params = self.payload.policy
        self.cost_model = self.bundle["cost_model"]
        self.task_model = self.bundle.get("task_type_model")
        self._task_types = TaskTypePredictor(self.task_model, source) if self.task_model else None
        self.tiers = config.tiers if config is not None else self.payload.tiers
        learned = dict(self.payload.task_floors)
        extra = dict(config.task_floors) if config is not None else {}
        self.task_floors = {t: max(learned.get(t, 1), extra.get(t, 1)) for t in {*learned, *extra}}
        self._models = {spec.tier: spec.model_id for spec in self.tiers}
        self._prices_in, self._prices_out = (a.tolist() for a in tier_prices(self.tiers))
        self._configured = [t in self._models for t in TIERS]
        self._allowed_by_floor: dict[int, list[bool]] = {}
        # Output tokens x output price per tier, by task type (None: the overall medians).
        by_type = {
            **self.cost_model["output_tokens"],
            None: self.cost_model["default_output_tokens"],
        }
        self._output_costs = {
            t: [o * po for o, po in zip(out, self._prices_out, strict=True)]
            for t, out in by_type.items()
        }
        typed = {*by_type, *(self.cost_model.get("task_cost_factor") or {})}
        self._cost_factors = {t: cost_factors(self.cost_model, t) for t in typed}
        self.mix = self.payload.policy_mix
        self.version: int | None = None  # from the manifest, when loaded from a file
        self._label = "bundle"
        self._lgbm_success = self.model["kind"] == "lgbm" and self.model["objective"] == "success"

    @classmethod
    def load(cls, path: str | Path, config: ACOConfig | None = None) -> Router:
        """Load a bundle (integrity-checked, restricted unpickler) and build its router."""
        from aco.bundle import load_payload, read_manifest

        router = cls(load_payload(path), config, source=str(path))
        router.version = read_manifest(path).get("version")
        router._label = f"bundle v{router.version}"
        return router

    def decide(
        self,
        request: str,
        task_type: str | None = None,
        input_tokens: int | None = None,
        difficulty: int | None = None,
    ) -> RoutingDecision:
        """The tier for one request, with P(success) per tier and the reason."""
        x = request_features(self.spec, request, task_type, difficulty, input_tokens)
        note, source = "", FROM_CALLER if task_type is not None else FROM_NONE
        if task_type is None and self._task_types is not None:
            task_type, source, how = self._task_types.infer(request, x)
            note = f"; {how}"
            set_task_type(self.spec, x, task_type)
        p = make_monotone_one(self._calibrated(x))
        costs = self._costs(request, task_type, input_tokens)
        floor, allowed = self._allowed(task_type)
        params, mixed = self._params_for(request)
        i, code = choose_tier(p, costs, allowed, params)
        return RoutingDecision(
            tier=i + 1,
            model_id=self._models[i + 1],
            confidence=p[i],
            cost_estimate=costs[i],
            task_type=task_type,
            reason=self._reason(code, i, p, floor, params) + mixed + note,
            mode=MODE_BUNDLE,
            probabilities=tuple(p),
            task_type_from=source,
        )

    def _calibrated(self, x: np.ndarray) -> list[float]:
        """Calibrated P(success) per tier for one feature vector."""
        if self._lgbm_success:  # raw margins: the sigmoid is fused into the calibration
            raw = lgbm_success_margins(self.model, x[None, :])[0]
            return calibrate_margins_one(raw.tolist(), self.calibration)
        return calibrate_one(predict_success(self.model, x)[0].tolist(), self.calibration)

    def _costs(self, request: str, task_type: str | None, input_tokens: int | None) -> list[float]:
        """USD per tier: the request's input tokens, the task type's predicted output tokens."""
        tokens = (
            len(request) / self.cost_model["chars_per_token"]
            if input_tokens is None
            else float(input_tokens)
        )
        output = self._output_costs.get(task_type) if task_type else None
        if output is None:
            output = self._output_costs[None]
        factors = self._cost_factors.get(task_type, self._cost_factors[None])
        return [
            (tokens * pi + oc) / 1000.0 * f
            for pi, oc, f in zip(self._prices_in, output, factors, strict=True)
        ]

    def _params_for(self, request: str) -> tuple[PolicyParams, str]:
        """The operating point's parameters for this request, and a note when the bundle mixes
        two points and this request's hash puts it in the second one's share."""
        if self.mix is None or mix_coin(request, self.mix.salt) >= self.mix.share:
            return self.params, ""
        return self.mix.params, (
            f"; mixed operating point: its second policy, taken by {self.mix.share:.0%} of requests"
        )

    def _allowed(self, task_type: str | None) -> tuple[int, list[bool]]:
        """(task floor, tiers allowed): configured tiers at or above the floor, else the top."""
        floor = self.task_floors.get(task_type, 1) if task_type is not None else 1
        allowed = self._allowed_by_floor.get(floor)
        if allowed is None:
            allowed = [ok and t >= floor for ok, t in zip(self._configured, TIERS, strict=True)]
            if not any(allowed):
                allowed = [t == max(self._models) for t in TIERS]
            self._allowed_by_floor[floor] = allowed  # floors are few: 1..5
        return floor, allowed

    def _reason(self, code: int, i: int, p: list[float], floor: int, params: PolicyParams) -> str:
        """Why tier i, in words: the probabilities, then the rule of the operating point."""
        where = f"{self._label}: P(success) {p[i]:.2f} at tier {i + 1}, best {max(p):.2f}"
        floor_note = f"; task floor {floor}" if floor > 1 else ""
        if REASONS[code] == "safety":
            return (
                f"{where}; no allowed tier reaches P(success) {params.safety_threshold:.2f}: "
                f"the top allowed tier{floor_note}"
            )
        among = (
            ""
            if params.downgrade_threshold <= 0
            else f" among the tiers within {1 - params.downgrade_threshold:.0%} of the best"
        )
        if params.success_value == 0:
            return f"{where}; the cheapest tier{among}{floor_note}"
        worth = format_money(params.success_value * params.cost_scale)
        return (
            f"{where}; the most success for the money{among}: this operating point counts a "
            f"success as worth {worth}, so a dearer tier is taken only when its gain in "
            f"P(success) x {worth} exceeds its extra cost{floor_note}"
        )
