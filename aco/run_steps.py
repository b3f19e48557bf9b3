"""The steps of a run's trace (format v1): model and tool calls built and checked field by field.

`aco.run.Run` records through these: every value a caller passes is checked here, so a bad
one fails at the call that passed it (an `ACOError` naming the field), never when the trace
is read back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aco import trace_format as tf
from aco.controls import check_number, read_answer_signals
from aco.errors import ACOError
from aco.trace_format import MAX_TIER, MIN_TIER


def build_model_call(
    tier: int,
    cost: float,
    model_id: str,
    *,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cached: int | None = None,
    latency_ms: float | None = None,
    escalated_from: int | None = None,
    logprobs: Sequence[float] | None = None,
) -> dict[str, Any]:
    """A validated model_call object (trace format v1)."""
    check_tier(tier, "model_call.tier")
    call: dict[str, Any] = {
        tf.MODEL_ID: model_id,
        tf.TIER: tier,
        tf.COST: check_number(cost, "model_call.cost"),
        tf.INPUT_TOKENS: check_count(input_tokens, "model_call.input_tokens"),
        tf.OUTPUT_TOKENS: check_count(output_tokens, "model_call.output_tokens"),
        tf.CACHED_INPUT_TOKENS: check_count(cached, "model_call.cached_input_tokens"),
    }
    if latency_ms is not None:
        call[tf.LATENCY_MS] = check_number(latency_ms, "model_call.latency_ms")
    if escalated_from is not None:
        call[tf.ESCALATED_FROM] = check_tier(escalated_from, "model_call.escalated_from")
    if logprobs:
        signals = read_answer_signals(logprobs, None)
        call[tf.MEAN_LOGPROB], call[tf.MIN_LOGPROB] = signals.mean_logprob, signals.min_logprob
    return call


def build_tool_call(
    tool_name: str, success: bool, cost: float, latency_ms: float | None = None
) -> dict[str, Any]:
    """A validated tool call object (trace format v1)."""
    tool = {
        tf.TOOL_NAME: check_text(tool_name, "tool_calls[].tool_name"),
        tf.TOOL_SUCCESS: check_flag(success, "tool_calls[].success"),
        tf.COST: check_number(cost, "tool_calls[].cost"),
    }
    if latency_ms is not None:
        tool[tf.LATENCY_MS] = check_number(latency_ms, "tool_calls[].latency_ms")
    return tool


def check_tool_call(tool: dict[str, Any]) -> None:
    """Check a caller's tool call object in place (a missing cost made 0.0)."""
    check_text(tool.get(tf.TOOL_NAME), "tool_calls[].tool_name")
    check_flag(tool.get(tf.TOOL_SUCCESS), "tool_calls[].success")
    tool[tf.COST] = check_number(tool.get(tf.COST, 0.0), "tool_calls[].cost")


def progressed(step: Mapping[str, Any]) -> bool:
    """A step makes no progress when all its tool calls failed or its verifier failed."""
    tools = step[tf.TOOL_CALLS]
    if tools and not any(t[tf.TOOL_SUCCESS] for t in tools):
        return False
    return not (step[tf.VERIFIER_CALLED] and step[tf.VERIFIER_PASSED] is False)


def copy_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """A step with its own model call and tool calls (the run may go on appending to its)."""
    out = dict(step)
    out[tf.TOOL_CALLS] = [dict(t) for t in step[tf.TOOL_CALLS]]
    if step[tf.MODEL_CALL] is not None:
        out[tf.MODEL_CALL] = dict(step[tf.MODEL_CALL])
    return out


def check_model_call(call: dict[str, Any]) -> None:
    """Check a caller's model_call object in place (its cost made a float)."""
    check_text(call.get(tf.MODEL_ID), "model_call.model_id")
    check_tier(call.get(tf.TIER), "model_call.tier")
    call[tf.COST] = check_number(call.get(tf.COST), "model_call.cost")
    for key in (tf.INPUT_TOKENS, tf.OUTPUT_TOKENS, tf.CACHED_INPUT_TOKENS):
        check_count(call.get(key), f"model_call.{key}")


def check_tier(value: Any, field: str) -> int:
    """A tier: an int MIN_TIER..MAX_TIER."""
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_TIER <= value <= MAX_TIER:
        raise ACOError(f"{field}: expected an int {MIN_TIER}..{MAX_TIER}, got {value!r}")
    return value


def check_count(value: Any, field: str) -> int | None:
    """A token count: an int >= 0, or None (unknown)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ACOError(f"{field}: expected an int >= 0 or None, got {value!r}")
    return value


def check_flag(value: Any, field: str) -> bool:
    """A bool (not a truthy value)."""
    if not isinstance(value, bool):
        raise ACOError(f"{field}: expected true or false, got {value!r}")
    return value


def check_text(value: Any, field: str, allow_empty: bool = False) -> str:
    """A string, non-empty unless allow_empty."""
    if not isinstance(value, str) or not (value or allow_empty):
        raise ACOError(f"{field}: expected a non-empty string, got {value!r}")
    return value
