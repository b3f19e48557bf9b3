"""The router bundle's payload, typed: every field checked once, when a bundle is read or written.

`BundlePayload.from_dict(data)` turns the unpickled plain data into frozen dataclasses, or
raises `PayloadError` (a `BundleError`) naming the first bad field by its path:
``model.booster.threshold: expected <f8 bytes of 2038 items (16304 bytes), got 13 bytes``.
`to_dict()` gives the plain data back (what `aco_lab.train.bundle_writer.write_bundle`
pickles), so the writer and the reader share this one schema. docs/bundle.md lists the
fields; the model section is a union of kinds (aco.payload_models).

Sections: the feature spec (aco.features.FeatureSpec), the routing model, its calibration,
the operating point (aco.policy.PolicyParams), learned task floors, the cost model, the tier
table (aco.config.TierSpec), the task-type model and its novelty check, the training-data
fingerprint, validation figures, the training options and provenance (those four in
aco.payload_provenance), and the learned run controls (checked by aco.cascade and
aco.learned_controls, which apply them).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aco import cascade, learned_controls
from aco.config import TierSpec
from aco.errors import BundleError, ConfigError, FeatureVersionError
from aco.features import FEATURE_VERSION, FeatureSpec, check_feature_version
from aco.payload_fields import (
    Fields,
    PayloadError,
    as_floats,
    as_int,
    as_ints,
    as_list,
    as_str,
    as_strings,
    check,
    check_finite,
)
from aco.payload_models import LinearWeights, RouterModel, router_model_from_dict
from aco.payload_provenance import TrainingData, read_options
from aco.payload_validation import read_validation
from aco.policy import CALIBRATION_METHODS, PolicyMix, PolicyParams
from aco.trace_format import TIERS

BUNDLE_FORMAT = "aco-router"  # payload["format"]
PAYLOAD_VERSION = 1  # payload["payload_version"]: bump when a field's meaning changes
BUNDLE_FORMAT_VERSION = 1  # payload["bundle_format_version"]: the container's layout
N_TIERS = len(TIERS)
CONTROL_NAMES = ("cascade", *learned_controls.KINDS)


# -- calibration: a union by method ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Calibration:
    """P(success) -> calibrated: "platt" (a * logit(p) + b), "isotonic" (knots x -> y), "none"."""

    method: str
    a: float = 1.0  # platt
    b: float = 0.0  # platt
    x: tuple[float, ...] = ()  # isotonic: non-decreasing knots in [0, 1]
    y: tuple[float, ...] = ()  # isotonic: calibrated values in [0, 1]

    FIELDS: ClassVar = {"platt": ("a", "b"), "isotonic": ("x", "y"), "none": ()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "calibration") -> Calibration:
        """Checked: a known method and its fields."""
        method = Fields(data, where, ("method", "a", "b", "x", "y")).str(
            "method", CALIBRATION_METHODS
        )
        f = Fields(data, where, ("method", *cls.FIELDS[method]))
        if method == "platt":
            return cls(method, a=f.float("a"), b=f.float("b"))
        if method == "isotonic":
            x = as_floats(f.get("x"), f.at("x"), lo=0.0, hi=1.0)
            y = as_floats(f.get("y"), f.at("y"), len(x), 0.0, 1.0)
            if not x or any(b < a for a, b in zip(x, x[1:], strict=False)):
                raise PayloadError(f"{f.at('x')}: expected at least one knot, non-decreasing")
            return cls(method, x=x, y=y)
        return cls(method)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what aco.policy.calibrate reads)."""
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}
        return {"method": "none"}


# -- cost model, tiers, floors -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CostModel:
    """Predicted output tokens per tier (by task type, and overall) and characters per token."""

    output_tokens: Mapping[str, tuple[float, ...]]
    default_output_tokens: tuple[float, ...]
    chars_per_token: float
    cost_scale: float  # USD: the training requests' mean top-tier expected cost
    # Per tier, observed run cost over the priced-token estimate (None: bundles before it).
    tier_cost_factor: tuple[float, ...] | None = None
    # The same per task type, shrunk toward tier_cost_factor (empty: bundles before it).
    task_cost_factor: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str = "cost_model") -> CostModel:
        """Checked: five finite token counts >= 0 per row, positive ratios."""
        f = Fields(
            data,
            where,
            (
                "output_tokens",
                "default_output_tokens",
                "chars_per_token",
                "cost_scale",
                "tier_cost_factor",
                "task_cost_factor",
            ),
        )
        by_type = {
            as_str(k, f"{f.at('output_tokens')} key"): as_floats(
                v, f"{f.at('output_tokens')}.{k}", N_TIERS, 0.0
            )
            for k, v in f.mapping("output_tokens").items()
        }
        factors = (
            as_floats(data["tier_cost_factor"], f.at("tier_cost_factor"), N_TIERS, 0.0)
            if f.has("tier_cost_factor")
            else None
        )
        by_type_factors = (
            {
                as_str(k, f"{f.at('task_cost_factor')} key"): as_floats(
                    v, f"{f.at('task_cost_factor')}.{k}", N_TIERS, 0.0
                )
                for k, v in f.mapping("task_cost_factor").items()
            }
            if f.has("task_cost_factor")
            else {}
        )
        return cls(
            by_type,
            as_floats(f.get("default_output_tokens"), f.at("default_output_tokens"), N_TIERS, 0.0),
            f.float("chars_per_token", 0.0, lo_open=True),
            f.float("cost_scale", 0.0, lo_open=True),
            factors,
            by_type_factors,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what aco.router.expected_cost_table reads)."""
        out = {
            "output_tokens": {k: list(v) for k, v in self.output_tokens.items()},
            "default_output_tokens": list(self.default_output_tokens),
            "chars_per_token": self.chars_per_token,
            "cost_scale": self.cost_scale,
        }
        if self.tier_cost_factor is not None:
            out["tier_cost_factor"] = list(self.tier_cost_factor)
        if self.task_cost_factor:
            out["task_cost_factor"] = {k: list(v) for k, v in self.task_cost_factor.items()}
        return out


def read_tiers(data: Any, where: str = "tiers") -> tuple[TierSpec, ...]:
    """The tier table: distinct tiers 1..5, each with a model id and prices >= 0."""
    items = as_list(data, where)
    if not items:
        raise PayloadError(f"{where}: expected at least one tier, got none")
    tiers = []
    for i, item in enumerate(items):
        f = Fields(item, f"{where}[{i}]", TierSpec.__slots__)
        tiers.append(
            TierSpec(
                f.int("tier", TIERS[0], TIERS[-1]),
                f.str("model_id"),
                f.str("provider"),
                f.float("cost_per_1k_input", 0.0),
                f.float("cost_per_1k_output", 0.0),
            )
        )
    if len({t.tier for t in tiers}) != len(tiers):
        raise PayloadError(f"{where}: expected distinct tiers, got {[t.tier for t in tiers]}")
    return tuple(tiers)


def tier_to_dict(tier: TierSpec) -> dict[str, Any]:
    """Plain data of one tier."""
    return {name: getattr(tier, name) for name in TierSpec.__slots__}


def read_policy(data: Any, where: str = "policy") -> PolicyParams:
    """The operating point: thresholds in [0, 1], success_value >= 0, cost_scale > 0."""
    f = Fields(data, where, PolicyParams.__slots__)
    return PolicyParams(
        f.float("safety_threshold", 0.0, 1.0),
        f.float("downgrade_threshold", 0.0, 1.0),
        f.float("success_value", 0.0),
        f.float("cost_scale", 0.0, lo_open=True),
    )


def read_policy_mix(data: Any, where: str = "policy_mix") -> PolicyMix:
    """The second policy of a mixed operating point, its share in [0, 1] and the hash salt."""
    f = Fields(data, where, ("policy", "share", "salt"))
    return PolicyMix(
        read_policy(f.get("policy"), f.at("policy")), f.float("share", 0.0, 1.0), f.int("salt")
    )


def read_feature_spec(data: Any, where: str = "feature_spec") -> FeatureSpec:
    """The feature spec, each field type-checked before FeatureSpec checks the settings."""
    f = Fields(
        data,
        where,
        (
            "version",
            "task_types",
            "hash_buckets",
            "word_ngrams",
            "char_ngrams",
            "window_head",
            "window_tail",
            "names",
        ),
    )
    check_feature_version(f.get("version"), where=f.at("version"))
    try:
        return FeatureSpec(
            task_types=as_strings(f.get("task_types"), f.at("task_types"), distinct=True),
            hash_buckets=f.int("hash_buckets"),
            word_ngrams=as_ints(f.get("word_ngrams"), f.at("word_ngrams"), length=2),
            char_ngrams=as_ints(f.get("char_ngrams"), f.at("char_ngrams"), length=2),
            window_head=f.int("window_head"),
            window_tail=f.int("window_tail"),
            names=as_strings(f.get("names"), f.at("names")),
        )
    except ConfigError as exc:
        raise PayloadError(f"{where}: {exc}") from None


# -- task-type model -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Novelty:
    """Unit-length centroids of training requests' hashed n-grams (features[offset:])."""

    centroids: bytes  # <f2, count x width
    count: int
    width: int
    offset: int
    threshold: float  # cosine similarity to the nearest centroid below which a request is novel
    quantile: float  # the held-out share the threshold was set at

    @classmethod
    def from_dict(cls, data: Any, where: str, n_features: int) -> Novelty:
        """Checked against the feature count: offset + width == n_features."""
        f = Fields(data, where, cls.__slots__)
        count, width, offset = f.int("count", 1), f.int("width", 1), f.int("offset", 0)
        if offset + width != n_features:
            raise PayloadError(
                f"{where}: {count} x {width} centroids at feature {offset} do "
                f"not fit {n_features} features; retrain with `aco-lab train`"
            )
        check_finite(f.array("centroids", "<f2", count * width), f.at("centroids"))
        return cls(
            f.get("centroids"),
            count,
            width,
            offset,
            f.float("threshold", -1.0, 1.0),
            f.float("quantile", 0.0, 1.0),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what aco.router.read_novelty reads)."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class TaskTypeModel:
    """A softmax model of the task type from features computed without one."""

    task_types: tuple[str, ...]
    task_columns: tuple[int, ...]  # zeroed before predicting, as in training
    missing_column: int  # set to 1 before predicting
    linear: LinearWeights
    novelty: Novelty | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str, n_features: int) -> TaskTypeModel:
        """Checked: one output per task type, columns and weights over the bundle's features."""
        f = Fields(data, where, cls.__slots__)
        types = as_strings(f.get("task_types"), f.at("task_types"), distinct=True)
        if not types:
            raise PayloadError(f"{f.at('task_types')}: expected at least one task type")
        linear = LinearWeights.from_dict(f.get("linear"), f.at("linear"))
        if linear.n_features != n_features or linear.n_outputs != len(types):
            raise PayloadError(
                f"{f.at('linear')}: {linear.n_outputs} x {linear.n_features} "
                f"weights do not fit {len(types)} task types and {n_features} "
                "features"
            )
        novelty = (
            Novelty.from_dict(data["novelty"], f.at("novelty"), n_features)
            if f.has("novelty")
            else None
        )
        return cls(
            types,
            as_ints(f.get("task_columns"), f.at("task_columns"), 0, n_features - 1),
            f.int("missing_column", 0, n_features - 1),
            linear,
            novelty,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what aco.router.TaskTypePredictor reads)."""
        out = {
            "task_types": list(self.task_types),
            "task_columns": list(self.task_columns),
            "missing_column": self.missing_column,
            "linear": self.linear.to_dict(),
        }
        if self.novelty is not None:
            out["novelty"] = self.novelty.to_dict()
        return out


def read_controls(data: Any, where: str = "controls") -> dict[str, Any]:
    """The learned run controls, each checked by the module that applies it."""
    check(type(data) is dict, where, "a mapping", data)
    for name, spec in data.items():
        if name not in CONTROL_NAMES:
            raise PayloadError(
                f"{where}.{name}: unknown control; known: {', '.join(CONTROL_NAMES)}"
            )
        try:
            if name == "cascade":
                cascade.check_spec(spec, f"{where}.cascade")
            else:
                learned_controls.check_spec(name, spec, f"{where}.{name}")
        except BundleError as exc:  # the spec's own check: already names the field
            raise PayloadError(str(exc)) from None
        except Exception as exc:  # a spec's own check met a shape it did not expect
            raise PayloadError(
                f"{where}.{name}: unreadable ({type(exc).__name__}: {exc})"
            ) from None
    return dict(data)


# -- the payload -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BundlePayload:
    """Everything a router bundle holds, checked (see the module docstring)."""

    feature_spec: FeatureSpec
    model: RouterModel
    calibration: Calibration
    policy: PolicyParams
    task_floors: Mapping[str, int]
    cost_model: CostModel
    tiers: tuple[TierSpec, ...]
    task_type_model: TaskTypeModel | None
    training_data: TrainingData
    validation: Mapping[str, Mapping[str, Any]]
    options: Mapping[str, Any]
    seed: int
    command: str  # the command line that trained it (bundles before it: cli_args, a list)
    package_versions: Mapping[str, str]
    created_at: str
    controls: Mapping[str, Any] | None = None
    policy_mix: PolicyMix | None = None  # a mixed operating point's second policy and share
    warnings: tuple[str, ...] = ()  # what training warned of (config/trace mismatch, shortfall)

    FIELDS: ClassVar = (
        "format",
        "payload_version",
        "feature_version",
        "feature_spec",
        "model",
        "calibration",
        "policy",
        "task_floors",
        "cost_model",
        "tiers",
        "task_type_model",
        "training_data",
        "validation",
        "options",
        "seed",
        "command",
        "cli_args",
        "package_versions",
        "created_at",
        "bundle_format_version",
        "controls",
        "policy_mix",
        "warnings",
    )

    @classmethod
    def from_dict(cls, data: Any) -> BundlePayload:
        """Check every field of an unpickled payload; PayloadError names the first bad one."""
        f = Fields(data, "", cls.FIELDS)
        f.str("format", (BUNDLE_FORMAT,))
        f.int("bundle_format_version", BUNDLE_FORMAT_VERSION, BUNDLE_FORMAT_VERSION)
        f.int("payload_version", PAYLOAD_VERSION, PAYLOAD_VERSION)
        check_feature_version(f.get("feature_version"), where="feature_version")
        spec = read_feature_spec(f.get("feature_spec"))
        model = router_model_from_dict(f.get("model"))
        model.check_fits(spec.n_features, "model")
        floors = f.mapping("task_floors")
        task_model = (
            TaskTypeModel.from_dict(data["task_type_model"], "task_type_model", spec.n_features)
            if f.has("task_type_model")
            else None
        )
        return cls(
            feature_spec=spec,
            model=model,
            calibration=Calibration.from_dict(f.get("calibration")),
            policy=read_policy(f.get("policy")),
            task_floors={
                as_str(k, "task_floors key"): as_int(v, f"task_floors.{k}", 1, N_TIERS)
                for k, v in floors.items()
            },
            cost_model=CostModel.from_dict(f.get("cost_model")),
            tiers=read_tiers(f.get("tiers")),
            task_type_model=task_model,
            training_data=TrainingData.from_dict(f.get("training_data")),
            validation=read_validation(f.get("validation")),
            options=read_options(f.get("options")),
            seed=f.int("seed"),
            command=(
                f.str("command")
                if f.has("command")
                else shlex.join(as_strings(f.get("cli_args"), "cli_args"))
            ),
            package_versions={
                as_str(k, "package_versions key"): as_str(v, f"package_versions.{k}")
                for k, v in f.mapping("package_versions").items()
            },
            created_at=f.str("created_at"),
            controls=read_controls(data["controls"]) if f.has("controls") else None,
            policy_mix=(read_policy_mix(data["policy_mix"]) if f.has("policy_mix") else None),
            warnings=(as_strings(data["warnings"], "warnings") if f.has("warnings") else ()),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the bundle file (dict, list, str, int, float, bool, None, bytes)."""
        out = {
            "format": BUNDLE_FORMAT,
            "payload_version": PAYLOAD_VERSION,
            "feature_version": FEATURE_VERSION,
            "feature_spec": self.feature_spec.to_dict(),
            "model": self.model.to_dict(),
            "calibration": self.calibration.to_dict(),
            "policy": self.policy.to_dict(),
            "task_floors": dict(self.task_floors),
            "cost_model": self.cost_model.to_dict(),
            "tiers": [tier_to_dict(t) for t in self.tiers],
            "task_type_model": (
                None if self.task_type_model is None else self.task_type_model.to_dict()
            ),
            "training_data": self.training_data.to_dict(),
            "validation": {k: dict(v) for k, v in self.validation.items()},
            "options": dict(self.options),
            "seed": self.seed,
            "command": self.command,
            "package_versions": dict(self.package_versions),
            "created_at": self.created_at,
            "bundle_format_version": BUNDLE_FORMAT_VERSION,
        }
        if self.controls is not None:
            out["controls"] = dict(self.controls)
        if self.policy_mix is not None:
            out["policy_mix"] = self.policy_mix.to_dict()
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def read_payload(data: Any, source: str = "bundle") -> BundlePayload:
    """BundlePayload.from_dict with the source (a file) leading its one-line errors."""
    try:
        return BundlePayload.from_dict(data)
    except FeatureVersionError as exc:
        raise FeatureVersionError(f"{source}: {exc}") from None
    except PayloadError as exc:
        raise BundleError(f"{source}: {exc}") from None
