"""Trace format v1, defined once: every field with its type, range, unit and meaning.

`FIELDS` is the format. Everything else is derived from it: the msgspec types that decode a
line (aco/trace_decode.py), the Polars schemas of the lab's tables (aco_lab/traces/schema.py),
the keys strict reading knows (aco_lab/traces/strict_keys.py), what each error message says is
allowed (`expected`) and the field tables of docs/trace_format.md (`field_table`; regenerate
with `python -m aco.trace_format`). This module stays plain Python: the runtime imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


# -- the fields ---------------------------------------------------------------------------------
# Value types (Field.type).
INT, NUMBER, STRING, BOOL = "int", "number", "string", "bool"  # an int is a number too
TIMESTAMP = "timestamp"  # an RFC 3339 date-time string
OBJECT = "object"  # free-form JSON object, kept as JSON text
STEP_LIST, MODEL_CALL_OBJECT, TOOL_CALL_LIST = "list of step", "model_call", "list of tool call"

# Levels (Field.level), and the field path of each in messages (list indices removed).
TRACE_LEVEL, STEP_LEVEL, MODEL_CALL_LEVEL, TOOL_CALL_LEVEL = (
    "trace",
    "step",
    "model_call",
    "tool_call",
)
LEVEL_PATHS = {
    TRACE_LEVEL: "",
    STEP_LEVEL: "steps[].",
    MODEL_CALL_LEVEL: "steps[].model_call.",
    TOOL_CALL_LEVEL: "steps[].tool_calls[].",
}

# Storage types of the lab's table columns (Field.storage), and the largest int each holds:
# a value that would not fit its column is out of range for the format.
INT8, INT32, INT64, FLOAT64, TEXT, BOOLEAN, DATETIME_UTC, JSON_TEXT = (
    "int8",
    "int32",
    "int64",
    "float64",
    "text",
    "boolean",
    "datetime_us_utc",
    "json_text",
)
INT_STORAGE_MAX = {INT8: 2**7 - 1, INT32: 2**31 - 1, INT64: 2**63 - 1}

_REQUIRED = object()  # Field.default of a required field


@dataclass(frozen=True, slots=True)
class Field:
    """One field of trace format v1: where it is, its type and range, unit and meaning."""

    level: str  # TRACE_LEVEL, STEP_LEVEL, MODEL_CALL_LEVEL or TOOL_CALL_LEVEL
    name: str  # the JSON key
    type: str  # INT, NUMBER, STRING, BOOL, TIMESTAMP, OBJECT or a nested level's type
    default: object = None  # when the key is absent; _REQUIRED: the key must be given
    nullable: bool = True  # whether null is allowed (a required field may still be null)
    ge: float | None = None  # smallest allowed value (numbers)
    le: float | None = None  # largest allowed value (numbers)
    non_empty: bool = False  # strings: "" is refused
    choices: tuple[str, ...] = ()  # strings: the allowed values
    storage: str | None = None  # column type in the lab's tables; None: no column of its own
    column: str | None = None  # the column's name when it is not the key
    unit: str = ""
    meaning: str = ""
    note: str = ""  # more on the allowed values, for the docs
    expects: str = ""  # what messages say is allowed, when the derived wording is not enough

    @property
    def required(self) -> bool:
        """Whether the key must be present."""
        return self.default is _REQUIRED

    @property
    def column_name(self) -> str:
        """The field's column name in the lab's tables."""
        return self.column or self.name

    @property
    def path(self) -> str:
        """The field path in messages, list indices removed (`steps[].model_call.tier`)."""
        return LEVEL_PATHS[self.level] + self.name

    @property
    def max_value(self) -> float | None:
        """Largest allowed value: `le`, or the largest int its column holds."""
        column_max = INT_STORAGE_MAX.get(self.storage or "")
        if self.le is None or column_max is None:
            return self.le if self.le is not None else column_max
        return min(self.le, column_max)


def _trace(name: str, type_: str, **kw: object) -> Field:
    return Field(TRACE_LEVEL, name, type_, **kw)  # type: ignore[arg-type]


def _step(name: str, type_: str, **kw: object) -> Field:
    return Field(STEP_LEVEL, name, type_, **kw)  # type: ignore[arg-type]


def _call(name: str, type_: str, **kw: object) -> Field:
    return Field(MODEL_CALL_LEVEL, name, type_, **kw)  # type: ignore[arg-type]


def _tool(name: str, type_: str, **kw: object) -> Field:
    return Field(TOOL_CALL_LEVEL, name, type_, **kw)  # type: ignore[arg-type]


_TIER = {"ge": MIN_TIER, "le": MAX_TIER, "storage": INT8}
_TOKENS = {"ge": 0, "storage": INT64, "unit": "tokens"}
_USD = {"ge": 0, "storage": FLOAT64, "unit": "USD"}
_LOGPROB = {"le": 0, "storage": FLOAT64}

# In order: the docs' tables and the lab's table columns follow it.
FIELDS: tuple[Field, ...] = (
    _trace(
        SCHEMA_VERSION_FIELD,
        INT,
        default=SCHEMA_VERSION,
        nullable=False,
        ge=SCHEMA_VERSION,
        le=SCHEMA_VERSION,
        storage=INT64,
        meaning="format version; other versions are rejected",
        expects=f"{SCHEMA_VERSION} (this loader reads trace format v{SCHEMA_VERSION})",
    ),
    _trace(
        TRACE_ID,
        STRING,
        default=_REQUIRED,
        nullable=False,
        non_empty=True,
        storage=TEXT,
        note="unique across all inputs read together",
        meaning="one run",
    ),
    _trace(
        REQUEST_ID,
        STRING,
        storage=TEXT,
        note="missing or null: derived (below)",
        meaning="runs of the same request share it (e.g. one request tried on several tiers)",
    ),
    _trace(
        REQUEST,
        STRING,
        default=_REQUIRED,
        nullable=False,
        storage=TEXT,
        note="any length, any unicode, may be empty",
        meaning="the user request / task text",
    ),
    _trace(
        TASK_TYPE,
        STRING,
        storage=TEXT,
        note="free text, e.g. `coding`, `research`, `quick_answer`, `legal_regulated`, "
        "`long_horizon`",
        meaning="the kind of task",
    ),
    _trace(
        DIFFICULTY,
        INT,
        ge=MIN_DIFFICULTY,
        le=MAX_DIFFICULTY,
        storage=INT8,
        meaning="an estimate known *before* the run, never derived from its outcome",
    ),
    _trace(PREDICTED_TIER, INT, **_TIER, meaning="tier the router chose at the start of the run"),
    _trace(
        TIMESTAMP,
        TIMESTAMP,
        storage=DATETIME_UTC,
        note="RFC 3339 date-time (below)",
        meaning="start of the run",
    ),
    _trace(
        SOURCE,
        STRING,
        storage=TEXT,
        note="e.g. `runtime`, `routerbench`, `simulator`",
        meaning="where the trace came from; datasets are partitioned by it",
    ),
    _trace(
        STEPS, STEP_LIST, default=_REQUIRED, nullable=False, note="may be empty", meaning="in order"
    ),
    _trace(
        FINAL_OUTCOME,
        STRING,
        default=_REQUIRED,
        nullable=False,
        choices=FINAL_OUTCOMES,
        storage=TEXT,
        meaning="`completed`: the agent declared done; `aborted`: stopped early (e.g. doomed)",
    ),
    _trace(
        TASK_SUCCESS,
        BOOL,
        default=_REQUIRED,
        storage=BOOLEAN,
        meaning="ground truth: did the run really solve the task; null: unknown",
    ),
    _trace(
        TOTAL_COST, NUMBER, default=_REQUIRED, nullable=False, **_USD, meaning="for the whole run"
    ),
    _trace(
        METADATA,
        OBJECT,
        storage=JSON_TEXT,
        note="any JSON object",
        meaning='free-form, e.g. `{"estimated": ["input_tokens"]}` marks estimated fields',
    ),
    _step(
        STEP_NUM,
        INT,
        default=_REQUIRED,
        nullable=False,
        ge=1,
        storage=INT32,
        meaning="as numbered by the agent (not checked for order or gaps)",
    ),
    _step(ACTION, STRING, storage=TEXT, meaning="what the step does (planner text, tool intent)"),
    _step(
        MODEL_CALL, MODEL_CALL_OBJECT, note="see below", meaning="null: the step called no model"
    ),
    _step(
        TOOL_CALLS,
        TOOL_CALL_LIST,
        default=(),
        nullable=False,
        note="see below",
        meaning="the step's tool calls, in order",
    ),
    _step(
        VERIFIER_CALLED,
        BOOL,
        default=False,
        nullable=False,
        storage=BOOLEAN,
        meaning="whether a verifier checked the step",
    ),
    _step(VERIFIER_PASSED, BOOL, storage=BOOLEAN, meaning="the verifier's verdict"),
    _call(
        MODEL_ID,
        STRING,
        default=_REQUIRED,
        nullable=False,
        storage=TEXT,
        meaning="the model called",
    ),
    _call(TIER, INT, default=_REQUIRED, nullable=False, **_TIER, meaning="the model's tier"),
    _call(INPUT_TOKENS, INT, **_TOKENS, meaning="prompt size; null when unknown"),
    _call(OUTPUT_TOKENS, INT, **_TOKENS, meaning="answer size; null when unknown"),
    _call(
        CACHED_INPUT_TOKENS,
        INT,
        **_TOKENS,
        meaning="part of the input served from the prompt cache",
    ),
    _call(COST, NUMBER, default=_REQUIRED, nullable=False, **_USD, meaning="of this call"),
    _call(LATENCY_MS, NUMBER, storage=FLOAT64, unit="ms", meaning="time the call took"),
    _call(ESCALATED_FROM, INT, **_TIER, meaning="tier this call escalated from (cascade)"),
    _call(MEAN_LOGPROB, NUMBER, **_LOGPROB, meaning="mean log-probability of the output tokens"),
    _call(MIN_LOGPROB, NUMBER, **_LOGPROB, meaning="lowest log-probability of an output token"),
    _call(OUTPUT_TEXT, STRING, storage=TEXT, meaning="the model's answer, where kept"),
    _tool(
        TOOL_NAME,
        STRING,
        default=_REQUIRED,
        nullable=False,
        storage=TEXT,
        meaning="the tool called",
    ),
    _tool(
        TOOL_SUCCESS,
        BOOL,
        default=_REQUIRED,
        nullable=False,
        storage=BOOLEAN,
        column="tool_success",
        meaning="whether the call succeeded",
    ),
    _tool(COST, NUMBER, default=_REQUIRED, nullable=False, **_USD, meaning="of this call"),
    _tool(LATENCY_MS, NUMBER, storage=FLOAT64, unit="ms", meaning="time the call took"),
)
LEVELS = (TRACE_LEVEL, STEP_LEVEL, MODEL_CALL_LEVEL, TOOL_CALL_LEVEL)


def fields_of(level: str) -> tuple[Field, ...]:
    """The fields of one level, in order."""
    return tuple(f for f in FIELDS if f.level == level)


def _expects(field: Field) -> str:
    """What a message says a field allows: `an int 1..5 or null`."""
    if field.expects:
        return field.expects
    if field.type == BOOL:
        return "true, false or null" if field.nullable else "true or false"
    if field.type in (INT, NUMBER):
        kind = "an int" if field.type == INT else "a number"
        if field.ge is not None and field.le is not None:
            text = f"{kind} {field.ge:g}..{field.le:g}"
        elif field.ge is not None or field.le is not None:
            text = f"{kind} >= {field.ge:g}" if field.ge is not None else f"{kind} <= {field.le:g}"
        else:
            text = kind
    elif field.choices:
        text = "one of " + ", ".join(field.choices)
    else:
        text = {
            STRING: "a non-empty string" if field.non_empty else "a string",
            TIMESTAMP: "an RFC 3339 date-time string (e.g. 2025-01-31T12:00:00Z)",
            STEP_LIST: "a list of step objects",
            TOOL_CALL_LIST: "a list of tool-call objects",
        }.get(field.type, "an object")
    return text + (" or null" if field.nullable else "")


# What each field path allows (list indices removed): the end of every message.
EXPECTED: dict[str, str] = {
    "": "a JSON object (one trace per line)",
    "steps[]": "a step object",
    "steps[].tool_calls[]": "a tool-call object",
    **{f.path: _expects(f) for f in FIELDS},
}


def expected(path: str) -> str:
    """What trace format v1 allows at a field path such as `steps[2].model_call.tier`."""
    return EXPECTED.get(_INDEX.sub("[]", path), "a value allowed by trace format v1")


_INDEX = re.compile(r"\[\d+\]")


# -- the docs' tables -----------------------------------------------------------------------------
_DOC_TYPES = {
    INT: "int",
    NUMBER: "number",
    STRING: "string",
    BOOL: "bool",
    TIMESTAMP: "string",
    OBJECT: "object",
    STEP_LIST: "list of step",
    MODEL_CALL_OBJECT: "object",
    TOOL_CALL_LIST: "list of tool call",
}


def _doc_allowed(field: Field) -> str:
    parts = []
    if field.ge is not None and field.le is not None:
        parts.append(f"`{field.ge}`" if field.ge == field.le else f"{field.ge}..{field.le}")
    elif field.ge is not None:
        parts.append(f"≥ {field.ge}")
    elif field.le is not None:
        parts.append(f"≤ {field.le}")
    if field.non_empty:
        parts.append("non-empty")
    if field.choices:
        parts.append(", ".join(f"`{c}`" for c in field.choices))
    if field.note:
        parts.append(field.note)
    if not field.required and not field.nullable:
        shown = "[]" if field.default == () else str(field.default).lower()
        parts.append(f"default `{shown}`; null is rejected")
    return "; ".join(parts)


def field_table(level: str) -> str:
    """The Markdown table of one level's fields, as docs/trace_format.md shows it."""
    rows = [
        "| field | type | required | allowed / default | unit | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in fields_of(level):
        kind = _DOC_TYPES[f.type] + (" or null" if f.nullable else "")
        required = ("**yes** (may be null)" if f.nullable else "**yes**") if f.required else "no"
        rows.append(
            f"| `{f.name}` | {kind} | {required} | {_doc_allowed(f)} | {f.unit} | {f.meaning} |"
        )
    return "\n".join(rows)


def derive_request_id(request: str) -> str:
    """The request_id of a trace that has none: a stable hash of its request text."""
    import hashlib

    return "sha256:" + hashlib.sha256(request.encode("utf-8")).hexdigest()[:16]


def field_table_block(level: str) -> str:
    """A level's table as docs/trace_format.md holds it: a marker line, then the table."""
    return f"<!-- fields: {level} (generated: python -m aco.trace_format) -->\n{field_table(level)}"


if __name__ == "__main__":  # print the docs' field tables: python -m aco.trace_format
    print("\n\n".join(field_table_block(level) for level in LEVELS))
