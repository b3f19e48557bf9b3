"""The explicit Polars schemas of the three trace tables: runs, steps and tool calls.

The schema is never inferred from data: NDJSON inference silently drops keys that first
appear late or only in later files. The format's fields and their column types come from the
field table (aco/trace_format.py); the columns the loader derives are added here. Column names
live here, once; code imports them. Field meanings: docs/trace_format.md.
"""

import polars as pl

from aco import trace_format as tf

# Provenance, on every row of every table.
SOURCE_FILE = "source_file"  # the file the line came from, as given
LINE = "line"  # 1-based line number in that file

# Runs: one row per trace, the format's top-level fields ...
TRACE_ID = tf.TRACE_ID
REQUEST_ID = tf.REQUEST_ID  # derived from a hash of `request` when the trace has none
REQUEST = tf.REQUEST
TASK_TYPE = tf.TASK_TYPE
DIFFICULTY = tf.DIFFICULTY
PREDICTED_TIER = tf.PREDICTED_TIER
TIMESTAMP = tf.TIMESTAMP
SOURCE = tf.SOURCE
FINAL_OUTCOME = tf.FINAL_OUTCOME
TASK_SUCCESS = tf.TASK_SUCCESS
TOTAL_COST = tf.TOTAL_COST
METADATA = tf.METADATA  # JSON text of the free-form object
SCHEMA_VERSION = tf.SCHEMA_VERSION_FIELD
# ... and aggregates the loader derives from the run's steps (never from outcomes).
N_STEPS = "n_steps"
TIER = "tier"  # predicted_tier, else the highest tier called; null when no model was called
MODEL_ID = tf.MODEL_ID  # model of the last call at the highest tier called
FIRST_TIER = "first_tier"  # tier of the first model call (a cascade's starting tier)
MAX_TIER_CALLED = "max_tier_called"
N_TIERS_CALLED = "n_tiers_called"  # distinct tiers called
FIRST_INPUT_TOKENS = "first_input_tokens"  # prompt size of the first call: known before the run
INPUT_TOKENS = tf.INPUT_TOKENS  # summed over calls; null when every call left it null
OUTPUT_TOKENS = tf.OUTPUT_TOKENS
CACHED_INPUT_TOKENS = tf.CACHED_INPUT_TOKENS
MODEL_COST = "model_cost"  # USD, sum of model_call.cost
TOOL_COST = "tool_cost"  # USD, sum of tool_calls[].cost
N_TOOL_CALLS = "n_tool_calls"
N_VERIFIER_CALLS = "n_verifier_calls"
ESCALATED = "escalated"  # any escalated_from, or calls at more than one tier

# Steps: one row per step (runs without steps have no rows here and stay in runs).
STEP_INDEX = "step_index"  # 0-based position in the run's `steps` list (for messages)
STEP_NUM = tf.STEP_NUM
ACTION = tf.ACTION
COST = tf.COST  # USD of the step's model call; null when the step made none
LATENCY_MS = tf.LATENCY_MS
ESCALATED_FROM = tf.ESCALATED_FROM
MEAN_LOGPROB = tf.MEAN_LOGPROB
MIN_LOGPROB = tf.MIN_LOGPROB
OUTPUT_TEXT = tf.OUTPUT_TEXT
N_TOOL_FAILURES = "n_tool_failures"
VERIFIER_CALLED = tf.VERIFIER_CALLED
VERIFIER_PASSED = tf.VERIFIER_PASSED

# Tool calls: one row per tool call.
TOOL_NAME = tf.TOOL_NAME
TOOL_SUCCESS = next(
    f.column_name for f in tf.fields_of(tf.TOOL_CALL_LEVEL) if f.name == tf.TOOL_SUCCESS
)

TIER_DTYPE = pl.Int8
TOKENS_DTYPE = pl.Int64
USD_DTYPE = pl.Float64

# The column type of each storage type of the format's fields (aco/trace_format.py).
DTYPES: dict[str, pl.DataType] = {
    tf.INT8: pl.Int8(),
    tf.INT32: pl.Int32(),
    tf.INT64: pl.Int64(),
    tf.FLOAT64: pl.Float64(),
    tf.TEXT: pl.String(),
    tf.BOOLEAN: pl.Boolean(),
    tf.DATETIME_UTC: pl.Datetime("us", "UTC"),
    tf.JSON_TEXT: pl.String(),
}
PROVENANCE = {SOURCE_FILE: pl.String(), LINE: pl.Int64()}


def _columns(
    level: str, expand: dict[str, dict[str, pl.DataType]] | None = None
) -> dict[str, pl.DataType]:
    """The columns of one level's fields, in the table's order; a field without a column of
    its own is replaced by `expand[field]` (or left out)."""
    columns: dict[str, pl.DataType] = {}
    for field in tf.fields_of(level):
        if field.storage is not None:
            columns[field.column_name] = DTYPES[field.storage]
        else:
            columns.update((expand or {}).get(field.name, {}))
    return columns


RUNS_SCHEMA = pl.Schema(
    {
        **PROVENANCE,
        **_columns(tf.TRACE_LEVEL),
        # derived from the run's steps
        N_STEPS: pl.Int32,
        TIER: TIER_DTYPE,
        MODEL_ID: pl.String,
        FIRST_TIER: TIER_DTYPE,
        MAX_TIER_CALLED: TIER_DTYPE,
        N_TIERS_CALLED: pl.Int8,
        FIRST_INPUT_TOKENS: TOKENS_DTYPE,
        INPUT_TOKENS: TOKENS_DTYPE,
        OUTPUT_TOKENS: TOKENS_DTYPE,
        CACHED_INPUT_TOKENS: TOKENS_DTYPE,
        MODEL_COST: USD_DTYPE,
        TOOL_COST: USD_DTYPE,
        N_TOOL_CALLS: pl.Int32,
        N_VERIFIER_CALLS: pl.Int32,
        ESCALATED: pl.Boolean,
    }
)

# A step's model call is flattened into the step's row; its tool calls become per-step totals.
STEPS_SCHEMA = pl.Schema(
    {
        **PROVENANCE,
        TRACE_ID: pl.String,
        STEP_INDEX: pl.Int32,
        **_columns(
            tf.STEP_LEVEL,
            {
                tf.MODEL_CALL: _columns(tf.MODEL_CALL_LEVEL),
                tf.TOOL_CALLS: {
                    N_TOOL_CALLS: pl.Int32,
                    TOOL_COST: USD_DTYPE,
                    N_TOOL_FAILURES: pl.Int32,
                },
            },
        ),
    }
)

TOOL_CALLS_SCHEMA = pl.Schema(
    {
        **PROVENANCE,
        TRACE_ID: pl.String,
        STEP_NUM: pl.Int32,
        **_columns(tf.TOOL_CALL_LEVEL),
    }
)
