"""The learned doom check, tool gate, verifier budget and context budget, applied from plain data.

Each control is a spec learned from traces by `aco_lab.controls` and stored in the bundle's
``controls`` section; this module evaluates it with plain Python (a dot product, a lookup).
The cascade lives in `aco.cascade`. Each `apply_*` returns the runtime's decision type with
``mode="bundle"`` and a reason that quotes the learned figures.

Specs (plain data):

    doom:    {"kind": "doom_logistic", "version": 1, "model": {features, weights, bias},
              "threshold": p, "min_steps": n, "typical": {"<task>/<tier>": {cost, steps}}}
    gate:    {"kind": "tool_values", "version": 1, "tools": {"<task>/<tool>" | "*/<tool>":
              {"allow": bool, "enforcement": "advisory" | "enforced", "runs": n, "lift": x,
               "shrunk_lift": x, "cost": usd, "failure_rate": x, "net_value": usd}},
              "value_per_success": usd}
             A deny is applied only when its entry says "enforced" (strong evidence); an
             "advisory" deny (the default: bundles written before the field) allows the call
             and records the advice.
    verify:  {"kind": "false_done_logistic", "version": 1, "model": {...},
              "threshold": {"<task>" | "*": p}, "false_done_cost": {...}, "verifier_cost": usd}
    context_budget: {"kind": "token_quantiles", "version": 1,
              "total_tokens": {"<task>/<tier>" | "*/<tier>" | "*/*": n},
              "keep_exact": {"<task>" | "*": [...]}, "omit": {"<task>" | "*": [...]}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from aco.cascade import Answer, answer_features, score
from aco.decisions import (
    ADVISORY,
    ENFORCED,
    ENFORCEMENTS,
    MODE_BUNDLE,
    ContextBudget,
    DoomDecision,
    GateDecision,
    VerifyDecision,
)
from aco.errors import ACOError, BundleError
from aco.formatting import format_money, format_share
from aco.payload_fields import Fields, as_float, as_int, as_str, as_strings, check

ANY = "*"
SPEC_VERSION = 1
KINDS = {
    "doom": "doom_logistic",
    "gate": "tool_values",
    "verify": "false_done_logistic",
    "context_budget": "token_quantiles",
}
MAX_RATIO = 20.0  # spend or steps beyond 20x a typical successful run carry no more information


def group_key(task_type: str | None, tier: int | None) -> str:
    """The key of a (task type, tier) cell in a spec's tables ("coding/3", "*/3", "*/*")."""
    return f"{task_type or ANY}/{tier if tier is not None else ANY}"


def lookup(table: Mapping[str, Any], task_type: str | None, tier: int | None = None) -> Any:
    """The most specific entry of a table keyed by task type and tier, falling back to "*"."""
    if tier is None:
        for key in (task_type or ANY, ANY):
            if key in table:
                return table[key]
        return None
    for key in (
        group_key(task_type, tier),
        group_key(None, tier),
        group_key(task_type, None),
        group_key(None, None),
    ):
        if key in table:
            return table[key]
    return None


# -- doom -------------------------------------------------------------------------------------
def doom_features(
    typical: Mapping[str, Any],
    task_type: str | None,
    tier: int | None,
    n_steps: int,
    spend: float,
    failures: int,
    stalled: int,
) -> dict[str, float]:
    """The named features of a run's state for the doom model (the lab computes the same)."""
    ref = lookup(typical, task_type, tier) or {"cost": 0.0, "steps": 1.0}
    spend_ratio = min(spend / ref["cost"], MAX_RATIO) if ref["cost"] > 0 else 0.0
    steps_ratio = min(n_steps / max(ref["steps"], 1.0), MAX_RATIO)
    features = {
        "log_steps": math.log1p(n_steps),
        "steps_ratio": steps_ratio,
        "log_spend_ratio": math.log1p(spend_ratio),
        "failures": float(failures),
        "failure_share": failures / n_steps if n_steps else 0.0,
        "stalled": float(stalled),
        f"task:{task_type or ANY}": 1.0,
    }
    if tier is not None:
        features[f"tier:{tier}"] = 1.0
    return features


def apply_doom(
    spec: Mapping[str, Any],
    task_type: str | None,
    tier: int | None,
    n_steps: int,
    spend: float,
    failures: int,
    stalled: int,
) -> DoomDecision:
    """Stop the run when its learned P(eventual success) fell below the learned threshold."""
    features = doom_features(spec["typical"], task_type, tier, n_steps, spend, failures, stalled)
    p = score(spec["model"], features)
    state = (
        f"{n_steps} steps, {format_money(spend)} spent, {failures} failed steps, {stalled} in a row"
    )
    if n_steps < spec["min_steps"]:
        return DoomDecision(
            False,
            f"learned: {state}; too early to judge (< {spec['min_steps']} steps)",
            round(p, 4),
            MODE_BUNDLE,
        )
    doomed = p < spec["threshold"]
    verdict = "stop" if doomed else "continue"
    return DoomDecision(
        doomed,
        f"learned: P(success) {p:.2f} vs threshold "
        f"{spec['threshold']:.2f} after {state}: {verdict}",
        round(p, 4),
        MODE_BUNDLE,
    )


# -- tool gate --------------------------------------------------------------------------------
def apply_gate(spec: Mapping[str, Any], tool_name: str, task_type: str | None) -> GateDecision:
    """Allow or deny a tool by its learned value for the task type; the reason cites it. A deny
    whose evidence was not strong enough to enforce allows the call, with the advice."""
    tools = spec["tools"]
    entry = tools.get(f"{task_type or ANY}/{tool_name}") or tools.get(f"{ANY}/{tool_name}")
    if entry is None:
        return GateDecision(True, tool_name, "learned: no traces of this tool; allow", MODE_BUNDLE)
    where = (
        "for " + (task_type or "any task")
        if f"{task_type}/{tool_name}" in tools
        else "across task types"
    )
    figures = (
        f"{tool_name} {where}: {entry['runs']} runs used it, success "
        f"{entry['lift'] * 100:+.1f} pts vs runs without (shrunk "
        f"{entry['shrunk_lift'] * 100:+.1f}), {format_money(entry['cost'])}/call, "
        f"{format_share(entry['failure_rate'])} of calls fail, net "
        f"{'+' if entry['net_value'] >= 0 else ''}{format_money(entry['net_value'])}/call"
    )
    if entry["allow"]:
        return GateDecision(True, tool_name, f"learned: {figures}: allow", MODE_BUNDLE)
    if entry.get("enforcement", ADVISORY) == ENFORCED:
        return GateDecision(
            False,
            tool_name,
            f"learned: {figures}: deny (enforced: strong evidence)",
            MODE_BUNDLE,
            ENFORCED,
        )
    return GateDecision(
        True,
        tool_name,
        f"learned: {figures}: deny recommended, allowed "
        "(advisory: the evidence is too weak to enforce)",
        MODE_BUNDLE,
        ADVISORY,
        "deny",
    )


# -- verifier budget --------------------------------------------------------------------------
def verify_features(
    answer: Answer | None, task_type: str | None, tier: int | None, n_steps: int, failures: int
) -> dict[str, float]:
    """The named features of a run at DONE for the false-DONE model."""
    features = {
        f"task:{task_type or ANY}": 1.0,
        "log_steps": math.log1p(n_steps),
        "failures": float(failures),
        "failure_share": failures / n_steps if n_steps else 0.0,
    }
    if tier is not None:
        features[f"tier:{tier}"] = 1.0
    if answer is not None:
        features.update({f"answer:{k}": v for k, v in answer_features(answer).items()})
    else:
        features["answer:unknown"] = 1.0
    return features


def apply_verify(
    spec: Mapping[str, Any],
    task_type: str | None,
    tier: int | None,
    answer: Answer | None = None,
    n_steps: int = 1,
    failures: int = 0,
    confidence: float | None = None,
) -> VerifyDecision:
    """Verify when P(false DONE) is at least the task type's learned threshold."""
    if confidence is not None:
        p = 1.0 - confidence  # the caller's own P(answer right) stands in for the model
        source = "1 - given confidence"
    else:
        p = score(spec["model"], verify_features(answer, task_type, tier, n_steps, failures))
        source = "learned"
    threshold = lookup(spec["threshold"], task_type)
    cost = lookup(spec["false_done_cost"], task_type)
    verify = p >= threshold
    why = (
        f"learned: P(false DONE) {p:.2f} ({source}) vs threshold {threshold:.2f} "
        f"(false DONE {format_money(cost)} vs verifier {format_money(spec['verifier_cost'])}, "
        f"call-rate cap "
        f"{spec['max_call_rate']:.0%})"
    )
    return VerifyDecision(verify, f"{why}: {'verify' if verify else 'skip'}", MODE_BUNDLE)


# -- context budget ---------------------------------------------------------------------------
def apply_context_budget(
    spec: Mapping[str, Any],
    task_type: str | None,
    tier: int,
    request_tokens: int = 0,
    margin: int = 0,
) -> ContextBudget:
    """The learned token budget of a run at `tier`, what to keep verbatim, what to drop."""
    learned = int(lookup(spec["total_tokens"], task_type, tier))
    total = max(learned, request_tokens + margin)
    keep = tuple(lookup(spec["keep_exact"], task_type) or ())
    omit = tuple(lookup(spec["omit"], task_type) or ())
    why = (
        f"learned: {spec['quantile']:.0%} of successful {task_type or 'any'} runs at tier "
        f"{tier} used <= {learned} input tokens per call"
    )
    if total > learned:
        why += f"; raised to fit the request ({request_tokens} tokens + {margin})"
    return ContextBudget(total_tokens=total, keep_exact=keep, omit=omit, reason=why)


# -- checking specs ---------------------------------------------------------------------------
def check_spec(name: str, spec: Any, where: str | None = None) -> None:
    """Raise BundleError unless `spec` is a learned control this runtime can apply."""
    where = where or f"bundle controls.{name}"
    if name not in KINDS:
        raise BundleError(f"{where}: unknown control; known: cascade, {', '.join(KINDS)}")
    if not isinstance(spec, Mapping) or spec.get("kind") != KINDS[name]:
        raise BundleError(f"{where}.kind: expected {KINDS[name]!r}; rebuild the bundle")
    if spec.get("version") != SPEC_VERSION:
        raise BundleError(
            f"{where}.version: expected {SPEC_VERSION}, got "
            f"{spec.get('version')!r}; rebuild the bundle"
        )
    required = {
        "doom": ("model", "threshold", "min_steps", "typical"),
        "gate": ("tools",),
        "verify": ("model", "threshold", "false_done_cost", "verifier_cost", "max_call_rate"),
        "context_budget": ("total_tokens", "keep_exact", "omit", "quantile"),
    }[name]
    for key in required:
        if key not in spec:
            raise BundleError(f"{where}.{key}: missing; rebuild the bundle")
    if "model" in spec:
        _check_model(spec["model"], f"{where}.model")
    CHECKS[name](spec, where)


def _table(
    spec: Mapping[str, Any], key: str, where: str, read: Any, fallback: str | None = None
) -> None:
    """A table keyed by task type (and tier): str keys, each value read by `read`."""
    table = spec[key]
    check(type(table) is dict, f"{where}.{key}", "a mapping", table)
    for name, value in table.items():
        read(value, f"{where}.{key}.{as_str(name, f'{where}.{key} key')}")
    if fallback is not None and fallback not in table:
        raise BundleError(f"{where}.{key}: expected a {fallback!r} entry (the fallback)")


def _check_doom(spec: Mapping[str, Any], where: str) -> None:
    as_float(spec["threshold"], f"{where}.threshold")
    as_int(spec["min_steps"], f"{where}.min_steps", 0)

    def typical(value: Any, at: str) -> None:
        f = Fields(value, at, ("cost", "steps"))
        f.float("cost", 0.0), f.float("steps", 0.0)

    _table(spec, "typical", where, typical)


def _check_gate(spec: Mapping[str, Any], where: str) -> None:
    def tool(value: Any, at: str) -> None:
        check(type(value) is dict, at, "a mapping", value)
        f = Fields(value, at, value)  # the figures the reason quotes; others are informational
        f.bool("allow"), f.int("runs", 0)
        if f.has("enforcement"):  # absent in older bundles: advisory
            f.str("enforcement", ENFORCEMENTS)
        for key in ("lift", "shrunk_lift", "cost", "failure_rate", "net_value"):
            f.float(key)

    _table(spec, "tools", where, tool)


def _check_verify(spec: Mapping[str, Any], where: str) -> None:
    _table(spec, "threshold", where, as_float, ANY)  # above 1: never verify
    _table(spec, "false_done_cost", where, lambda v, at: as_float(v, at, 0.0), ANY)
    as_float(spec["verifier_cost"], f"{where}.verifier_cost", 0.0)
    as_float(spec["max_call_rate"], f"{where}.max_call_rate", 0.0, 1.0)


def _check_context_budget(spec: Mapping[str, Any], where: str) -> None:
    _table(spec, "total_tokens", where, lambda v, at: as_int(v, at, 0), group_key(None, None))
    for key in ("keep_exact", "omit"):
        _table(spec, key, where, as_strings)
    as_float(spec["quantile"], f"{where}.quantile", 0.0, 1.0)


CHECKS = {
    "doom": _check_doom,
    "gate": _check_gate,
    "verify": _check_verify,
    "context_budget": _check_context_budget,
}


def _check_model(model: Any, where: str) -> None:
    ok = (
        isinstance(model, Mapping)
        and isinstance(model.get("features"), Sequence)
        and isinstance(model.get("weights"), Sequence)
        and len(model["features"]) == len(model["weights"])
        and isinstance(model.get("bias"), int | float)
    )
    if not ok:
        raise BundleError(f"{where}: expected features, weights (same length) and bias")
    as_strings(model["features"], f"{where}.features")
    for i, weight in enumerate(model["weights"]):
        as_float(weight, f"{where}.weights[{i}]")
    as_float(model["bias"], f"{where}.bias")


def check_count(value: Any, name: str) -> int:
    """An int >= 0 or an ACOError naming the argument."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ACOError(f"{name}: expected an int >= 0, got {value!r}")
    return value
