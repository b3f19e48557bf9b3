"""Trace format v1: field names and allowed values, shared by the runtime and the lab.

The full contract is docs/trace_format.md. The runtime writes these names; the lab reads them.
"""

SCHEMA_VERSION = 1

# Allowed values.
TIERS = (1, 2, 3, 4, 5)
MIN_TIER, MAX_TIER = 1, 5
MIN_DIFFICULTY, MAX_DIFFICULTY = 1, 5
FINAL_OUTCOMES = ("completed", "failed", "aborted", "budget_exceeded")
OUTCOME_COMPLETED = "completed"

# Top-level fields.
SCHEMA_VERSION_FIELD = "schema_version"
TRACE_ID = "trace_id"
REQUEST_ID = "request_id"
REQUEST = "request"
TASK_TYPE = "task_type"
DIFFICULTY = "difficulty"
PREDICTED_TIER = "predicted_tier"
TIMESTAMP = "timestamp"
SOURCE = "source"
STEPS = "steps"
FINAL_OUTCOME = "final_outcome"
TASK_SUCCESS = "task_success"
TOTAL_COST = "total_cost"
METADATA = "metadata"

# Step fields.
STEP_NUM = "step_num"
ACTION = "action"
MODEL_CALL = "model_call"
TOOL_CALLS = "tool_calls"
VERIFIER_CALLED = "verifier_called"
VERIFIER_PASSED = "verifier_passed"

# model_call fields.
MODEL_ID = "model_id"
TIER = "tier"
INPUT_TOKENS = "input_tokens"
OUTPUT_TOKENS = "output_tokens"
CACHED_INPUT_TOKENS = "cached_input_tokens"
COST = "cost"
LATENCY_MS = "latency_ms"
ESCALATED_FROM = "escalated_from"
MEAN_LOGPROB = "mean_logprob"
MIN_LOGPROB = "min_logprob"
OUTPUT_TEXT = "output_text"

# tool_call fields.
TOOL_NAME = "tool_name"
TOOL_SUCCESS = "success"

# Relative tolerance for the "total_cost equals the sum of call costs" warning.
COST_SUM_REL_TOLERANCE = 1e-6
COST_SUM_ABS_TOLERANCE = 1e-9


def derive_request_id(request: str) -> str:
    """The request_id of a trace that has none: a stable hash of its request text."""
    import hashlib

    return "sha256:" + hashlib.sha256(request.encode("utf-8")).hexdigest()[:16]
