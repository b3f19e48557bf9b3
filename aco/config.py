"""ACOConfig: the routing settings, the tier table and the alert lines, from code or config.yaml.

The defaults are defined here, once: the dataclass fields below (docs/config.md shows them as a
config file). One loader serves both packages. Every value is checked when an ACOConfig is
built, from code or from a file, and errors name the file and the field, e.g.
``config.yaml: models.tier3.cost_per_1k_input: expected a finite number >= 0, got "cheap"``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aco.errors import ConfigError
from aco.trace_format import MAX_TIER, MIN_TIER, TIERS


@dataclass(frozen=True, slots=True)
class TierSpec:
    """One model tier: which model serves it and what it costs (USD per 1K tokens)."""

    tier: int
    model_id: str
    provider: str = "cloud"
    cost_per_1k_input: float = 0.0
    cost_per_1k_output: float = 0.0

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """USD for one call with these token counts."""
        return (
            input_tokens * self.cost_per_1k_input + output_tokens * self.cost_per_1k_output
        ) / 1000.0


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """The monitoring alert lines of the deployment guide (aco stats, aco-lab stats, reports)."""

    min_success_rate: float = 0.70  # share 0..1: alert below this success rate
    max_cost_ratio_vs_frontier: float = 2.0  # alert when cost per success exceeds this multiple
    #                                          of always using the top tier
    max_verifier_call_rate: float = 0.50  # share 0..1 of steps calling a verifier: alert above
    max_escalation_rate: float = 0.30  # share 0..1 of runs escalating: alert above


# The default tier table: five real models from small to strongest, at their list prices in USD
# per 1K input / output tokens (from litellm 1.110.2's model price map, read 2026-12-04; the
# same table as a file: examples/config.real_models.yaml). Replace it with your own models.
DEFAULT_TIERS = (
    TierSpec(1, "gpt-5-nano", "openai", 0.00005, 0.0004),
    TierSpec(2, "gpt-5-mini", "openai", 0.00025, 0.002),
    TierSpec(3, "gpt-5", "openai", 0.00125, 0.01),
    TierSpec(4, "claude-sonnet-4-5", "anthropic", 0.003, 0.015),
    TierSpec(5, "claude-opus-4-5", "anthropic", 0.005, 0.025),
)
# Lowest tier a task type may ever be routed to, whatever the router predicts.
DEFAULT_TASK_FLOORS = {
    "quick_answer": 1,
    "research": 2,
    "coding": 3,
    "long_horizon": 3,
    "legal_regulated": 4,
}


@dataclass(frozen=True, slots=True)
class ACOConfig:
    """Everything the runtime and the lab need to know besides the traces and the bundle."""

    # Routing (the decision rule that uses the thresholds: docs/config.md).
    safety_threshold: float = 0.30  # probability 0..1: below it at every allowed tier, go top
    downgrade_threshold: float = 0.90  # share 0..1 of the best tier's success a cheaper tier keeps
    max_retries: int = 3  # escalations allowed per request in a cascade
    max_cost_per_task: float = 5.0  # USD a run may spend before it is stopped as budget_exceeded
    tiers: tuple[TierSpec, ...] = DEFAULT_TIERS
    task_floors: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TASK_FLOORS))
    alerts: AlertThresholds = AlertThresholds()
    # Runtime.
    router_model_path: str | None = None  # a router bundle; None = rule-based routing
    trace_dir: str = "traces"  # where end_run appends trace-format-v1 JSONL
    source_path: str | None = None  # the file this config came from, for messages

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ACOConfig:
        """Read a config.yaml in the guide's shape (routing, models, task_floors, alerts)."""
        return load_config(path)

    def tier(self, tier: int) -> TierSpec:
        """The spec of one tier (1..5)."""
        for spec in self.tiers:
            if spec.tier == tier:
                return spec
        raise ConfigError(f"{self._where()}models.tier{tier}: not configured")

    @property
    def top_tier(self) -> int:
        """The highest configured tier."""
        return max(spec.tier for spec in self.tiers)

    def floor_for(self, task_type: str | None) -> int:
        """The lowest tier this task type may use (1 when it has no floor)."""
        return int(self.task_floors.get(task_type, MIN_TIER)) if task_type else MIN_TIER

    def replace(self, **changes: Any) -> ACOConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def _where(self) -> str:
        return f"{self.source_path}: " if self.source_path else ""


def _validate(cfg: ACOConfig) -> None:
    where = cfg._where()
    for key in ("safety_threshold", "downgrade_threshold"):
        _check_number(getattr(cfg, key), f"{where}routing.{key}", upper=1.0)
    _check_int(cfg.max_retries, f"{where}routing.max_retries")
    _check_number(cfg.max_cost_per_task, f"{where}routing.max_cost_per_task")
    if not cfg.tiers:
        raise ConfigError(f"{where}models: expected at least one tier, got none")
    seen = set()
    for spec in cfg.tiers:
        if spec.tier not in TIERS or spec.tier in seen:
            raise ConfigError(f"{where}models.tier{spec.tier}: tiers must be distinct ints 1..5")
        seen.add(spec.tier)
        _check_tier(spec, f"{where}models.tier{spec.tier}")
    for task_type, floor in cfg.task_floors.items():
        if (
            not isinstance(floor, int)
            or isinstance(floor, bool)
            or not MIN_TIER <= floor <= MAX_TIER
        ):
            raise ConfigError(
                f"{where}task_floors.{task_type}: expected an int 1..5, got {floor!r}"
            )
    for alert in dataclasses.fields(AlertThresholds):
        upper = math.inf if alert.name == "max_cost_ratio_vs_frontier" else 1.0
        _check_number(getattr(cfg.alerts, alert.name), f"{where}alerts.{alert.name}", upper)
    _check_path(cfg.trace_dir, f"{where}runtime.trace_dir")
    if cfg.router_model_path is not None:
        _check_path(cfg.router_model_path, f"{where}runtime.router_model_path")


def _check_tier(spec: TierSpec, where: str) -> None:
    for key in ("model_id", "provider"):
        value = getattr(spec, key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    _check_number(spec.cost_per_1k_input, f"{where}.cost_per_1k_input")
    _check_number(spec.cost_per_1k_output, f"{where}.cost_per_1k_output")


def _check_number(value: Any, where: str, upper: float = math.inf) -> None:
    """A finite number in 0..upper: NaN, infinities, booleans and strings are refused."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    try:
        ok = ok and math.isfinite(value) and 0.0 <= value <= upper
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        allowed = "a finite number >= 0" if math.isinf(upper) else f"a number in 0..{upper:g}"
        raise ConfigError(f"{where}: expected {allowed}, got {value!r}")


def _check_int(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: expected an int >= 0, got {value!r}")


def _check_path(value: Any, where: str) -> None:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ConfigError(f"{where}: expected a non-empty path string, got {value!r}")


def load_config(path: str | Path | None = None) -> ACOConfig:
    """Load a config.yaml; None gives the defaults (DEFAULT_TIERS and the rest)."""
    if path is None:
        return ACOConfig()
    import yaml  # only here: the runtime pays for YAML only when it reads a file

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found; pass an existing --config file"
        ) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
            f"save the config as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        why = " ".join(str(getattr(exc, "problem", None) or exc).split())  # one line
        raise ConfigError(f"{path}{line}: not valid YAML ({why})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return config_from_dict(raw, source=str(path))


_ROUTING_KEYS = ("safety_threshold", "downgrade_threshold", "max_retries", "max_cost_per_task")
_TOP_KEYS = ("routing", "models", "task_floors", "alerts", "runtime")


def config_from_dict(raw: Mapping[str, Any], source: str | None = None) -> ACOConfig:
    """Build an ACOConfig from the parsed YAML mapping; unknown keys are errors."""
    where = f"{source}: " if source else ""
    _no_unknown(raw, _TOP_KEYS, where, "")
    kwargs: dict[str, Any] = {"source_path": source}
    routing = _section(raw, "routing", where)
    _no_unknown(routing, _ROUTING_KEYS, where, "routing.")
    kwargs.update({k: routing[k] for k in _ROUTING_KEYS if k in routing})
    if "models" in raw:
        kwargs["tiers"] = _parse_models(_section(raw, "models", where), where)
    # A file that names no floors has none: the guide's floors are for the guide's task types.
    kwargs["task_floors"] = dict(_section(raw, "task_floors", where))
    alerts = _section(raw, "alerts", where)
    _no_unknown(alerts, [f.name for f in dataclasses.fields(AlertThresholds)], where, "alerts.")
    kwargs["alerts"] = AlertThresholds(**alerts)  # ACOConfig checks the values
    runtime = _section(raw, "runtime", where)
    _no_unknown(runtime, ("router_model_path", "trace_dir"), where, "runtime.")
    kwargs.update(runtime)
    return ACOConfig(**kwargs)


def _section(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}{key}: expected a mapping, got {type(value).__name__}")
    return value


def _no_unknown(section: Mapping[str, Any], allowed: Any, where: str, prefix: str) -> None:
    for key in section:
        if key not in allowed:
            raise ConfigError(f"{where}{prefix}{key}: unknown key; allowed: {', '.join(allowed)}")


def _parse_models(models: Mapping[str, Any], where: str) -> tuple[TierSpec, ...]:
    specs = []
    for key, entry in models.items():
        name = str(key)
        if not (name.startswith("tier") and name[4:].isdigit() and int(name[4:]) in TIERS):
            raise ConfigError(f"{where}models.{name}: expected tier1..tier5")
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}models.{name}: expected a mapping with model_id and prices")
        allowed = ("model_id", "provider", "cost_per_1k_input", "cost_per_1k_output")
        _no_unknown(entry, allowed, where, f"models.{name}.")
        if "model_id" not in entry:
            raise ConfigError(f"{where}models.{name}.model_id: missing; name the tier's model")
        specs.append(TierSpec(tier=int(name[4:]), **dict(entry)))  # ACOConfig checks the values
    return tuple(sorted(specs, key=lambda s: s.tier))
