"""The model section of a bundle payload: a union of model kinds, discriminated by `kind`.

The routing model (`payload["model"]`) is one of `ROUTER_MODELS`, keyed by its `kind`:

    lgbm    LightGBM trees ("booster": LgbmTrees); for models pooled over several models per
            tier, the tier column's value per tier ("tier_values"), and for a residual over a
            per-task-type table, that table's logits ("prior": LinearWeights)
    logreg  logistic weights per output ("linear": LinearWeights)
    knn     cosine nearest neighbours ("knn": KnnTable)
    table   per-task-type success rates as logistic weights on the task-type columns
            ("linear": LinearWeights; "shrink": the pseudo-requests toward the overall rate)
    ensemble  the mean P(success) of 2-8 members of the kinds above ("members")

each with the `objective` it was trained for ("success": P(success) per tier from the
features plus a tier column, or per-tier outputs; "cheapest": the cheapest succeeding tier's
class probabilities). A new kind is a dataclass with `KIND`, `from_dict`, `to_dict` and
`check_fits`, added to `ROUTER_MODELS`. The tables inside (LgbmTrees, LinearWeights,
KnnTable) keep their arrays as the little-endian bytes the payload stores, checked at load:
lengths agree with the counts, every tree index points inside the tables, each tree is a
proper binary tree (children after their parent, every entry reached once), numbers finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from aco.payload_fields import (
    Fields,
    PayloadError,
    as_float,
    as_floats,
    check_finite,
)
from aco.payload_trees import LgbmTrees
from aco.trace_format import TIERS

N_TIERS = len(TIERS)
OBJECTIVES = ("success", "cheapest")
LINEAR_KIND = "linear"
KNN_KIND = "knn"


def _outputs(objective: str) -> int:
    """Outputs a model of this objective scores: 5 tiers, or 6 cheapest-tier classes."""
    return N_TIERS if objective == "success" else N_TIERS + 1


def _fits(where: str, what: str, got: int, expected: int) -> None:
    if got != expected:
        raise PayloadError(
            f"{where}: {what} {got} does not fit the bundle (expected "
            f"{expected}); rebuild the bundle with this aco-lab"
        )


# -- tables ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LinearWeights:
    """z = (x - mean) / scale (NaN -> 0); outputs z @ coef.T + intercept."""

    n_features: int
    n_outputs: int
    coef: bytes  # <f8, n_outputs x n_features
    intercept: bytes  # <f8, n_outputs
    mean: bytes  # <f8, n_features
    scale: bytes  # <f8, n_features, never 0

    FIELDS: ClassVar = ("kind", "n_features", "n_outputs", "coef", "intercept", "mean", "scale")

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LinearWeights:
        """Checked: counts >= 1, array lengths, finite numbers, no zero scale."""
        f = Fields(data, where, cls.FIELDS)
        f.str("kind", (LINEAR_KIND,))
        n_feat, n_out = f.int("n_features", 1), f.int("n_outputs", 1)
        for key, count in (
            ("coef", n_out * n_feat),
            ("intercept", n_out),
            ("mean", n_feat),
            ("scale", n_feat),
        ):
            check_finite(f.array(key, "<f8", count), f.at(key))
        scale = f.array("scale", "<f8")
        if (scale == 0).any():
            raise PayloadError(
                f"{f.at('scale')}[{int(np.flatnonzero(scale == 0)[0])}]: "
                "expected a nonzero number, got 0.0"
            )
        return cls(n_feat, n_out, *(f.get(k) for k in ("coef", "intercept", "mean", "scale")))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        return {
            "kind": LINEAR_KIND,
            "n_features": self.n_features,
            "n_outputs": self.n_outputs,
            "coef": self.coef,
            "intercept": self.intercept,
            "mean": self.mean,
            "scale": self.scale,
        }


@dataclass(frozen=True, slots=True)
class KnnTable:
    """Stored unit-length standardised rows, their targets (NaN: unknown) and priors."""

    n_features: int
    n_targets: int
    k: int
    vectors: bytes  # <f8, rows x n_features
    targets: bytes  # <f8, rows x n_targets, NaN where unknown
    prior: bytes  # <f8, n_targets
    prior_weight: float
    mean: bytes
    scale: bytes

    FIELDS: ClassVar = (
        "kind",
        "n_features",
        "n_targets",
        "k",
        "vectors",
        "targets",
        "prior",
        "prior_weight",
        "mean",
        "scale",
    )

    @classmethod
    def from_dict(cls, data: Any, where: str) -> KnnTable:
        """Checked: at least one stored row, k >= 1, lengths, finite numbers, no zero scale."""
        f = Fields(data, where, cls.FIELDS)
        f.str("kind", (KNN_KIND,))
        n_feat, n_targets, k = f.int("n_features", 1), f.int("n_targets", 1), f.int("k", 1)
        vectors = f.array("vectors", "<f8")
        rows = len(vectors) // n_feat
        if rows < 1 or rows * n_feat != len(vectors):
            raise PayloadError(
                f"{f.at('vectors')}: expected a positive multiple of "
                f"n_features ({n_feat}) values, got {len(vectors)}"
            )
        check_finite(vectors, f.at("vectors"))
        check_finite(f.array("targets", "<f8", rows * n_targets), f.at("targets"), allow_nan=True)
        for key, count in (("prior", n_targets), ("mean", n_feat), ("scale", n_feat)):
            check_finite(f.array(key, "<f8", count), f.at(key))
        if (f.array("scale", "<f8") == 0).any():
            raise PayloadError(f"{f.at('scale')}: expected nonzero numbers, got a 0.0")
        return cls(
            n_feat,
            n_targets,
            k,
            f.get("vectors"),
            f.get("targets"),
            f.get("prior"),
            f.float("prior_weight", 0.0),
            f.get("mean"),
            f.get("scale"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        return {
            "kind": KNN_KIND,
            "n_features": self.n_features,
            "n_targets": self.n_targets,
            "k": self.k,
            "vectors": self.vectors,
            "targets": self.targets,
            "prior": self.prior,
            "prior_weight": self.prior_weight,
            "mean": self.mean,
            "scale": self.scale,
        }


@dataclass(frozen=True, slots=True)
class LgbmRouterModel:
    """LightGBM trees: "success" scores (features, tier value) rows; "cheapest" 6 classes."""

    objective: str
    booster: LgbmTrees
    tier_values: tuple[float, ...] | None = None  # the last column per tier (None: 1..5)
    prior: LinearWeights | None = None  # logits added to the trees' margins (success only)

    KIND: ClassVar = "lgbm"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LgbmRouterModel:
        """Checked, with its trees (and tier values, prior)."""
        f = Fields(data, where, ("kind", "objective", "booster", "tier_values", "prior"))
        values = (
            as_floats(data["tier_values"], f.at("tier_values"), N_TIERS)
            if f.has("tier_values")
            else None
        )
        prior = LinearWeights.from_dict(data["prior"], f.at("prior")) if f.has("prior") else None
        objective = f.str("objective", OBJECTIVES)
        if objective != "success" and (values is not None or prior is not None):
            raise PayloadError(f"{where}: tier_values and prior belong to success models only")
        return cls(objective, LgbmTrees.from_dict(f.get("booster"), f.at("booster")), values, prior)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        out = {"kind": self.KIND, "objective": self.objective, "booster": self.booster.to_dict()}
        if self.tier_values is not None:
            out["tier_values"] = list(self.tier_values)
        if self.prior is not None:
            out["prior"] = self.prior.to_dict()
        return out

    def check_fits(self, n_features: int, where: str) -> None:
        """Refuse trees that read other features or score other classes than the bundle's."""
        success = self.objective == "success"
        _fits(
            f"{where}.booster.num_features",
            "num_features",
            self.booster.num_features,
            n_features + 1 if success else n_features,
        )
        _fits(
            f"{where}.booster.num_class",
            "num_class",
            self.booster.num_class,
            1 if success else N_TIERS + 1,
        )
        if self.prior is not None:
            _fits(f"{where}.prior.n_features", "n_features", self.prior.n_features, n_features)
            _fits(f"{where}.prior.n_outputs", "n_outputs", self.prior.n_outputs, N_TIERS)


@dataclass(frozen=True, slots=True)
class LogregRouterModel:
    """Logistic weights: one output per tier ("success") or per class ("cheapest")."""

    objective: str
    linear: LinearWeights
    C: float | None = None  # the regularisation it was fitted with (informational)

    KIND: ClassVar = "logreg"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LogregRouterModel:
        """Checked, with its weights."""
        f = Fields(data, where, ("kind", "objective", "linear", "C"))
        c = as_float(data["C"], f.at("C"), 0.0, lo_open=True) if f.has("C") else None
        return cls(
            f.str("objective", OBJECTIVES),
            LinearWeights.from_dict(f.get("linear"), f.at("linear")),
            c,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        out = {"kind": self.KIND, "objective": self.objective}
        if self.C is not None:
            out["C"] = self.C
        return {**out, "linear": self.linear.to_dict()}

    def check_fits(self, n_features: int, where: str) -> None:
        """Refuse weights over other features or outputs than the bundle's."""
        _fits(f"{where}.linear.n_features", "n_features", self.linear.n_features, n_features)
        _fits(
            f"{where}.linear.n_outputs",
            "n_outputs",
            self.linear.n_outputs,
            _outputs(self.objective),
        )


@dataclass(frozen=True, slots=True)
class KnnRouterModel:
    """Nearest neighbours' outcomes per tier (or "cheapest <= t" indicators)."""

    objective: str
    knn: KnnTable

    KIND: ClassVar = "knn"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> KnnRouterModel:
        """Checked, with its table."""
        f = Fields(data, where, ("kind", "objective", "knn"))
        return cls(f.str("objective", OBJECTIVES), KnnTable.from_dict(f.get("knn"), f.at("knn")))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        return {"kind": self.KIND, "objective": self.objective, "knn": self.knn.to_dict()}

    def check_fits(self, n_features: int, where: str) -> None:
        """Refuse a table over other features, or with other targets than the 5 tiers."""
        _fits(f"{where}.knn.n_features", "n_features", self.knn.n_features, n_features)
        _fits(f"{where}.knn.n_targets", "n_targets", self.knn.n_targets, N_TIERS)


@dataclass(frozen=True, slots=True)
class TableRouterModel:
    """Per-task-type success rates per tier, as logistic weights: intercepts the overall
    logits, each task-type column its type's difference (every other weight 0)."""

    objective: str
    linear: LinearWeights
    shrink: float  # pseudo-requests at the tier's overall rate added to each task type

    KIND: ClassVar = "table"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TableRouterModel:
        """Checked, with its weights."""
        f = Fields(data, where, ("kind", "objective", "linear", "shrink"))
        return cls(
            f.str("objective", ("success",)),
            LinearWeights.from_dict(f.get("linear"), f.at("linear")),
            f.float("shrink", 0.0),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        return {
            "kind": self.KIND,
            "objective": self.objective,
            "shrink": self.shrink,
            "linear": self.linear.to_dict(),
        }

    def check_fits(self, n_features: int, where: str) -> None:
        """Refuse weights over other features than the bundle's, or other than 5 tiers."""
        _fits(f"{where}.linear.n_features", "n_features", self.linear.n_features, n_features)
        _fits(f"{where}.linear.n_outputs", "n_outputs", self.linear.n_outputs, N_TIERS)


SingleModel = LgbmRouterModel | LogregRouterModel | KnnRouterModel | TableRouterModel
SINGLE_MODELS: dict[str, type[SingleModel]] = {
    kind.KIND: kind
    for kind in (LgbmRouterModel, LogregRouterModel, KnnRouterModel, TableRouterModel)
}
MAX_MEMBERS = 8


@dataclass(frozen=True, slots=True)
class EnsembleRouterModel:
    """The mean of its members' P(success) per tier, each made non-decreasing in the tier
    first (members: models of the single kinds, success objective)."""

    objective: str
    members: tuple[SingleModel, ...]

    KIND: ClassVar = "ensemble"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> EnsembleRouterModel:
        """Checked, with every member."""
        f = Fields(data, where, ("kind", "objective", "members"))
        items = f.get("members")
        if type(items) is not list or not 2 <= len(items) <= MAX_MEMBERS:
            raise PayloadError(
                f"{f.at('members')}: expected a list of 2..{MAX_MEMBERS} "
                f"models, got {type(items).__name__}"
            )
        members = tuple(
            _single_from_dict(m, f"{f.at('members')}[{i}]") for i, m in enumerate(items)
        )
        for i, member in enumerate(members):
            if member.objective != "success":
                raise PayloadError(
                    f"{f.at('members')}[{i}].objective: expected success, got {member.objective!r}"
                )
        return cls(f.str("objective", ("success",)), members)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        return {
            "kind": self.KIND,
            "objective": self.objective,
            "members": [m.to_dict() for m in self.members],
        }

    def check_fits(self, n_features: int, where: str) -> None:
        """Every member fits the bundle's features."""
        for i, member in enumerate(self.members):
            member.check_fits(n_features, f"{where}.members[{i}]")


RouterModel = SingleModel | EnsembleRouterModel
ROUTER_MODELS: dict[str, type[RouterModel]] = {
    **SINGLE_MODELS,
    EnsembleRouterModel.KIND: EnsembleRouterModel,
}
_MODEL_FIELDS = (
    "kind",
    "objective",
    "booster",
    "linear",
    "knn",
    "C",
    "tier_values",
    "prior",
    "shrink",
    "members",
)


def router_model_from_dict(data: Any, where: str = "model") -> RouterModel:
    """The routing model of the kind `data["kind"]` names, checked."""
    kind = Fields(data, where, _MODEL_FIELDS).str("kind", ROUTER_MODELS)
    return ROUTER_MODELS[kind].from_dict(data, where)


def _single_from_dict(data: Any, where: str) -> SingleModel:
    """An ensemble's member: a model of a single kind (no ensemble inside an ensemble)."""
    kind = Fields(data, where, _MODEL_FIELDS).str("kind", SINGLE_MODELS)
    return SINGLE_MODELS[kind].from_dict(data, where)
