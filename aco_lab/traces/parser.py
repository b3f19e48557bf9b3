"""Trace format v1 decoded line by line into msgspec Structs, then turned into column tables.

msgspec decodes a line straight into the typed Structs of aco/trace_decode.py (built from the
field table of aco/trace_format.py), rejecting bools where ints belong, ints
where bools belong, out-of-range tiers, negative costs and unknown final outcomes, and names
the failing JSON path (worded by aco/trace_decode.py). Unknown extra keys are accepted and
ignored. `decode_chunk` decodes BATCH_LINES lines at a time and turns each batch's Structs into
column frames at once (msgspec's astuple + zip in C), while they are still in the CPU cache;
`build_chunk_tables` then adds provenance, checks timestamps and metadata column-wise and
derives the run columns, giving the runs, steps and tool-call tables of aco_lab/traces/schema.py.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import polars as pl
from msgspec import Struct

from aco import trace_format as tf
from aco.trace_decode import (
    DECODE_ERRORS,
    NULL_JSON,
    TRACE_DECODER,
    ModelCall,
    Step,
    ToolCall,
    Trace,
    describe_bad_utf8,
    describe_decode_error,
    describe_value_error,
)
from aco_lab.traces import schema as S
from aco_lab.traces.validate import find_bad_metadata


@dataclass(frozen=True, slots=True)
class LineProblem:
    """Why one line of a chunk was rejected."""

    line: int  # 1-based, in the file
    message: str  # `field.path: what was wrong, what is allowed`, without FILE:LINE
    raw: str


def split_lines(data: bytes) -> list[memoryview]:
    """The lines of a block of JSONL, as views into it (no copies); line ends dropped."""
    view = memoryview(data)
    lines = []
    find = data.find
    start = 0
    while (end := find(b"\n", start)) >= 0:
        lines.append(view[start:end])
        start = end + 1
    if start < len(data):
        lines.append(view[start:])  # a last line without a line end
    return lines


def decode_lines(
    lines: Sequence[bytes | memoryview], first_line: int = 1
) -> tuple[list[int], list[Trace], list[LineProblem]]:
    """Decode JSONL lines: (line numbers, Traces) of good lines, a problem per bad one.

    Line numbers count from first_line (the number of lines[0] in its file). Blank (empty or
    whitespace-only) lines are skipped: neither a trace nor a problem.
    """
    decode = TRACE_DECODER.decode
    numbers: list[int] = []
    traces: list[Trace] = []
    problems: list[LineProblem] = []
    for number, line in enumerate(lines, first_line):
        try:
            traces.append(decode(line))
        except DECODE_ERRORS as exc:
            text = bytes(line)
            if text.strip():
                problems.append(
                    LineProblem(number, describe_decode_error(text, exc), raw_text(text))
                )
            continue
        numbers.append(number)
    return numbers, traces, problems


def raw_text(line: bytes | memoryview) -> str:
    """A line's text for a rejection: undecodable bytes replaced, line end dropped."""
    return bytes(line).decode("utf-8", "replace").rstrip("\r\n")


_TIMESTAMP_DTYPE = S.RUNS_SCHEMA[S.TIMESTAMP]
_flatten = itertools.chain.from_iterable
BATCH_LINES = 512  # lines decoded and turned into columns at a time (their objects stay cached)
_BLOCK = 64  # Structs transposed at a time: few enough that their fields stay in the CPU cache
_RENAMED = {f.name: f.column for f in tf.FIELDS if f.column}  # keys whose column is renamed


@dataclass(frozen=True, slots=True)
class DecodedChunk:
    """The good lines of a chunk as column frames, before provenance and derived columns.

    runs holds the top-level fields (timestamp as text, metadata as JSON bytes) and n_steps;
    steps the step and model-call fields and n_tool_calls, one row per step in run order;
    tool_calls the tool-call fields, one row per call in step order.
    """

    numbers: list[int]  # line number of each run, in the file
    runs: pl.DataFrame
    steps: pl.DataFrame
    tool_calls: pl.DataFrame
    problems: list[LineProblem]
    late: list[tuple[int, str]]  # (line, message) of decoded lines to reject (their rows stay)


def decode_chunk(lines: Sequence[bytes | memoryview], first_line: int = 1) -> DecodedChunk:
    """Decode JSONL lines into column frames, BATCH_LINES lines at a time.

    Each batch's Structs are turned into columns and freed before the next batch is decoded,
    so the values are read while still in the CPU cache and their memory is reused.
    """
    numbers: list[int] = []
    problems: list[LineProblem] = []
    late: list[tuple[int, str]] = []
    parts: list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]] = []
    for start in range(0, len(lines), BATCH_LINES):
        batch_numbers, traces, batch_problems = decode_lines(
            lines[start : start + BATCH_LINES], first_line + start
        )
        numbers += batch_numbers
        problems += batch_problems
        *frames, bad_metadata = batch_frames(traces)
        parts.append(tuple(frames))
        for row in bad_metadata:
            number = batch_numbers[row]
            line = bytes(lines[number - first_line])
            late.append((number, describe_bad_utf8(line, tf.METADATA)))
        del traces
    if not parts:
        parts.append(batch_frames([])[:3])
    runs, steps, tool_calls = (
        pl.concat(frames, rechunk=False) for frames in zip(*parts, strict=True)
    )
    return DecodedChunk(numbers, runs, steps, tool_calls, problems, late)


def batch_frames(
    traces: list[Trace],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, list[int]]:
    """The top-level, step (with model call) and tool-call fields of Traces as frames.

    Also the rows whose metadata is not UTF-8: msgspec keeps metadata as raw JSON without
    decoding its strings, so this is where a bad byte in it is found (its row's metadata
    becomes null here; the caller rejects the line).
    """
    run = struct_columns(traces, Trace.__struct_fields__)
    steps_of_run = run.pop(tf.STEPS)
    step_structs = list(_flatten(steps_of_run))
    step = struct_columns(step_structs, Step.__struct_fields__)
    calls_of_step = step.pop(tf.TOOL_CALLS)
    tool_structs = list(_flatten(calls_of_step))
    n_steps = pl.Series(S.N_STEPS, list(map(len, steps_of_run)), dtype=pl.Int32)
    n_tool_calls = pl.Series(S.N_TOOL_CALLS, list(map(len, calls_of_step)), dtype=pl.Int32)
    if None in run[tf.REQUEST_ID]:
        derive = tf.derive_request_id
        run[tf.REQUEST_ID] = [
            given if given is not None else derive(request)
            for given, request in zip(run[tf.REQUEST_ID], run[tf.REQUEST], strict=True)
        ]
    metadata = list(map(bytes, run[tf.METADATA]))
    bad_metadata = [] if all(map(bytes.isascii, metadata)) else _not_utf8(metadata)
    for row in bad_metadata:
        metadata[row] = NULL_JSON
    runs = pl.DataFrame(
        [
            *_series(run, S.RUNS_SCHEMA, skip=(tf.TIMESTAMP, tf.METADATA)),
            pl.Series(S.TIMESTAMP, run[tf.TIMESTAMP], dtype=pl.String),
            pl.Series(S.METADATA, metadata, dtype=pl.Binary),
            n_steps,
        ]
    )
    steps = pl.DataFrame([*_series(step, S.STEPS_SCHEMA), n_tool_calls])
    steps = pl.concat([steps, _model_call_frame(step[tf.MODEL_CALL])], how="horizontal")
    tool_calls = pl.DataFrame(
        _series(struct_columns(tool_structs, ToolCall.__struct_fields__), S.TOOL_CALLS_SCHEMA)
    )
    return runs, steps, tool_calls, bad_metadata


def _not_utf8(texts: list[bytes]) -> list[int]:
    """Positions of the texts that are not valid UTF-8."""
    bad = []
    for row, text in enumerate(texts):
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(row)
    return bad


def struct_columns(structs: list[Struct], fields: tuple[str, ...]) -> dict[str, list]:
    """Same-typed Structs as columns, {field: [its value in each Struct]}, fields in order.

    msgspec's astuple and zip read and transpose the values in C, a block of Structs at a time;
    a list comprehension per field would cost a Python step per value and walk every Struct
    once per field.
    """
    columns: list[list] = [[] for _ in fields]
    astuple = msgspec.structs.astuple
    for start in range(0, len(structs), _BLOCK):
        rows = map(astuple, structs[start : start + _BLOCK])
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            column += values
    return dict(zip(fields, columns, strict=True))


def _series(
    columns: dict[str, list], schema: pl.Schema, skip: tuple[str, ...] = ()
) -> list[pl.Series]:
    """Series of the columns that the table schema holds (under its names and dtypes)."""
    named = (
        (_RENAMED.get(field, field), values)
        for field, values in columns.items()
        if field not in skip
    )
    return [
        pl.Series(name, values, dtype=_dtype_class(schema[name]))
        for name, values in named
        if name in schema
    ]


@functools.cache
def _dtype_class(dtype: pl.DataType) -> pl.DataType | type[pl.DataType]:
    """A dtype without parameters as its class: Series(values, dtype) is quicker given one."""
    plain = type(dtype)
    return plain if dtype == plain() else dtype


def _model_call_frame(calls: list[ModelCall | None]) -> pl.DataFrame:
    """The model-call fields of each step: a row per step, all null where it made no call."""
    made = list(filter(None, calls))  # a ModelCall is always true, None false
    frame = pl.DataFrame(_series(struct_columns(made, ModelCall.__struct_fields__), S.STEPS_SCHEMA))
    if len(made) == len(calls):
        return frame  # every step made a call (the usual case)
    has_call = pl.Series([call is not None for call in calls], dtype=pl.Boolean)
    call_row = pl.select(pl.when(has_call).then(has_call.cum_sum() - 1)).to_series()
    return frame[call_row.cast(pl.UInt32)]


def build_chunk_tables(
    file: str, decoded: DecodedChunk
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, list[tuple[int, str]]]:
    """Runs, steps and tool-call tables of a decoded chunk, and (line, message) of late rejects.

    Adds provenance and the derived columns. Late rejects are values only a column check
    catches (timestamps, metadata); their rows are already removed from the three tables.
    """
    runs, late = _build_runs(file, decoded.numbers, decoded.runs)
    first_problem: dict[int, str] = {}  # a line is rejected once, for its first problem
    for line, message in late + decoded.late:
        first_problem.setdefault(line, message)
    late = sorted(first_problem.items())
    n_steps = runs.get_column(S.N_STEPS).to_numpy()
    steps = _build_steps(runs, n_steps, decoded.steps)
    tool_calls = _build_tool_calls(steps, decoded.tool_calls)
    steps = _add_step_tool_totals(steps, tool_calls)
    runs = add_run_aggregates(runs, steps)
    if late:
        runs, steps, tool_calls = without_lines(
            (runs, steps, tool_calls), [line for line, _ in late]
        )
    return (
        runs.select(S.RUNS_SCHEMA.names()),
        steps.select(S.STEPS_SCHEMA.names()),
        tool_calls.select(S.TOOL_CALLS_SCHEMA.names()),
        late,
    )


def without_lines(frames: Sequence[pl.DataFrame], lines: Sequence[int]) -> tuple[pl.DataFrame, ...]:
    """Tables of one chunk without the rows that came from some of its lines."""
    keep = ~pl.col(S.LINE).is_in(pl.Series(lines, dtype=pl.Int64).implode())
    return tuple(frame.filter(keep) for frame in frames)


def _owner_index(counts: np.ndarray) -> tuple[pl.Series, pl.Series]:
    """For children counted per parent: each child's parent row and its position under it."""
    owner = np.repeat(np.arange(len(counts), dtype=np.uint32), counts)
    starts = np.cumsum(counts) - counts
    position = np.arange(len(owner), dtype=np.int32) - np.repeat(starts, counts).astype(np.int32)
    return pl.Series(owner), pl.Series(position)


def _build_runs(
    file: str, numbers: list[int], runs: pl.DataFrame
) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """The runs table's format fields with provenance; timestamps and metadata checked."""
    metadata = runs.get_column(S.METADATA).cast(pl.String)
    metadata = pl.select(pl.when(metadata != "null").then(metadata)).to_series()
    texts = runs.get_column(S.TIMESTAMP)
    timestamps, late = _parse_timestamps(texts, numbers)
    late += [(numbers[row], message) for row, message in find_bad_metadata(metadata)]
    runs = runs.with_columns(
        pl.repeat(file, len(numbers), dtype=pl.String, eager=True).alias(S.SOURCE_FILE),
        pl.Series(S.LINE, numbers, dtype=pl.Int64),
        timestamps.alias(S.TIMESTAMP),
        metadata.alias(S.METADATA),
    )
    return runs, late


def _parse_timestamps(
    column: pl.Series, numbers: list[int]
) -> tuple[pl.Series, list[tuple[int, str]]]:
    """RFC 3339 texts -> Datetime(us, UTC); (line, message) for texts that are not dates.

    Polars parses the common shapes column-wise; the few it refuses are retried one by one
    with msgspec's RFC 3339 parser, which also reads timestamps without an offset (as UTC).
    """
    parsed = column.str.to_datetime("%+", time_unit="us", time_zone="UTC", strict=False)
    retry = (column.is_not_null() & parsed.is_null()).arg_true().to_list()
    late: list[tuple[int, str]] = []
    for row in retry:
        text = column[row]
        try:
            value = msgspec.convert(text, dt.datetime)
        except msgspec.ValidationError:
            late.append((numbers[row], describe_value_error(tf.TIMESTAMP, text)))
            continue
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        parsed = parsed.scatter(row, value.astimezone(dt.UTC))
    return parsed.cast(_TIMESTAMP_DTYPE), late


def _build_steps(runs: pl.DataFrame, n_steps: np.ndarray, steps: pl.DataFrame) -> pl.DataFrame:
    """Steps with their run's provenance and trace_id, and their index in the run."""
    run_of_step, step_index = _owner_index(n_steps)
    owner = runs.select(S.SOURCE_FILE, S.LINE, S.TRACE_ID)[run_of_step]
    return pl.concat(
        [owner.with_columns(run_of_step.alias("_run"), step_index.alias(S.STEP_INDEX)), steps],
        how="horizontal",
    )


def _build_tool_calls(steps: pl.DataFrame, tool_calls: pl.DataFrame) -> pl.DataFrame:
    """Tool calls with the step and run they belong to."""
    step_of_call, _ = _owner_index(steps.get_column(S.N_TOOL_CALLS).to_numpy())
    owner = steps.select("_run", S.SOURCE_FILE, S.LINE, S.TRACE_ID, S.STEP_NUM)[step_of_call]
    return pl.concat(
        [owner.with_columns(step_of_call.alias("_step")), tool_calls], how="horizontal"
    )


def _add_step_tool_totals(steps: pl.DataFrame, tool_calls: pl.DataFrame) -> pl.DataFrame:
    """Each step's tool cost (0 without tool calls) and number of failed tool calls."""
    totals = tool_calls.group_by("_step").agg(
        pl.col(S.COST).sum().alias(S.TOOL_COST),
        (~pl.col(S.TOOL_SUCCESS)).sum().cast(pl.Int32).alias(S.N_TOOL_FAILURES),
    )
    index = totals.get_column("_step")
    tool_cost = pl.zeros(steps.height, S.USD_DTYPE, eager=True)
    failures = pl.zeros(steps.height, pl.Int32, eager=True)
    if index.len():
        tool_cost = tool_cost.scatter(index, totals.get_column(S.TOOL_COST))
        failures = failures.scatter(index, totals.get_column(S.N_TOOL_FAILURES))
    return steps.with_columns(tool_cost.alias(S.TOOL_COST), failures.alias(S.N_TOOL_FAILURES))


_POPCOUNT = np.array([bin(bits).count("1") for bits in range(2 << tf.MAX_TIER)], np.int8)


def add_run_aggregates(runs: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    """Add the derived run columns of RUNS_SCHEMA, aggregated from each run's steps.

    The loader builds steps run by run, in run order (`_run`: the run's row), so most
    aggregates are numpy reductions over each run's slice of steps. The cost sums stay a
    Polars group_by: float sums depend on the order of additions, and these are Polars'.
    """
    n_steps = runs.get_column(S.N_STEPS).to_numpy()
    has_steps = n_steps > 0
    starts = (np.cumsum(n_steps) - n_steps)[has_steps]

    def run_sum(values: pl.Series) -> np.ndarray:
        """Per run, the int sum of a step column (0 for a run without steps)."""
        total = np.zeros(runs.height, np.int64)
        if len(starts):
            total[has_steps] = np.add.reduceat(values.to_numpy().astype(np.int64), starts)
        return total

    def total_or_null(column: str) -> pl.Expr:
        # null when every call left the field null (or there was no call), else the sum
        values = steps.get_column(column)
        known = pl.Series(run_sum(values.is_not_null()) > 0)
        return pl.when(known).then(pl.Series(run_sum(values.fill_null(0)))).alias(column)

    calls = _call_aggregates(steps, runs.height)
    n_tiers = calls.get_column(S.N_TIERS_CALLED).fill_null(0)
    escalated = run_sum(steps.get_column(S.ESCALATED_FROM).is_not_null()) > 0
    return runs.with_columns(
        calls.get_column(S.FIRST_TIER),
        calls.get_column(S.MAX_TIER_CALLED),
        n_tiers,
        calls.get_column(S.MODEL_ID),
        calls.get_column(S.FIRST_INPUT_TOKENS),
        total_or_null(S.INPUT_TOKENS),
        total_or_null(S.OUTPUT_TOKENS),
        total_or_null(S.CACHED_INPUT_TOKENS),
        *_cost_sums(steps, runs.height),
        pl.Series(S.N_TOOL_CALLS, run_sum(steps.get_column(S.N_TOOL_CALLS)), dtype=pl.Int32),
        pl.Series(S.N_VERIFIER_CALLS, run_sum(steps.get_column(S.VERIFIER_CALLED)), dtype=pl.Int32),
        pl.Series(S.ESCALATED, escalated | (n_tiers.to_numpy() > 1), dtype=pl.Boolean),
    ).with_columns(pl.coalesce(S.PREDICTED_TIER, S.MAX_TIER_CALLED).alias(S.TIER))


def _call_aggregates(steps: pl.DataFrame, n_runs: int) -> pl.DataFrame:
    """Per run, over its model calls: first tier, highest tier, distinct tiers, the model of
    the last call at the highest tier, and the first call's input tokens (null: no call)."""
    schema = {
        S.FIRST_TIER: S.TIER_DTYPE,
        S.MAX_TIER_CALLED: S.TIER_DTYPE,
        S.N_TIERS_CALLED: pl.Int8,
        S.MODEL_ID: pl.String,
        S.FIRST_INPUT_TOKENS: S.TOKENS_DTYPE,
    }
    tier = steps.get_column(S.TIER)
    call_step = np.flatnonzero(tier.is_not_null().to_numpy())
    if not len(call_step):
        return pl.DataFrame(schema=schema).clear(n_runs)
    run_of_step = steps.get_column("_run").to_numpy().astype(np.int64)
    call_run = run_of_step[call_step]
    call_tier = tier.fill_null(0).to_numpy()[call_step].astype(np.int64)
    first = np.flatnonzero(np.diff(call_run, prepend=-1))  # each run's first call
    top = np.maximum.reduceat(call_tier, first)
    at_top = call_step[call_tier == np.repeat(top, np.diff(first, append=len(call_step)))]
    at_top_run = run_of_step[at_top]
    last_at_top = at_top[np.diff(at_top_run, append=-1) != 0]
    per_called_run = pl.DataFrame(
        [
            pl.Series(S.FIRST_TIER, call_tier[first], dtype=S.TIER_DTYPE),
            pl.Series(S.MAX_TIER_CALLED, top, dtype=S.TIER_DTYPE),
            pl.Series(S.N_TIERS_CALLED, _POPCOUNT[np.bitwise_or.reduceat(1 << call_tier, first)]),
            steps.get_column(S.MODEL_ID).gather(last_at_top),
            steps.get_column(S.INPUT_TOKENS).gather(call_step[first]),
        ]
    ).rename({S.INPUT_TOKENS: S.FIRST_INPUT_TOKENS})
    row = np.full(n_runs, -1, np.int64)
    row[call_run[first]] = np.arange(len(first))
    row_series = pl.Series(row)
    return per_called_run[pl.select(pl.when(row_series >= 0).then(row_series)).to_series()]


def _cost_sums(steps: pl.DataFrame, n_runs: int) -> tuple[pl.Series, pl.Series]:
    """Per run, the sums of model-call costs and of tool costs (0.0 without any)."""
    sums = steps.group_by("_run").agg(
        pl.col(S.COST).sum().alias(S.MODEL_COST), pl.col(S.TOOL_COST).sum()
    )
    model_cost = pl.zeros(n_runs, S.USD_DTYPE, eager=True).alias(S.MODEL_COST)
    tool_cost = pl.zeros(n_runs, S.USD_DTYPE, eager=True).alias(S.TOOL_COST)
    if sums.height:
        index = sums.get_column("_run")
        model_cost = model_cost.scatter(index, sums.get_column(S.MODEL_COST))
        tool_cost = tool_cost.scatter(index, sums.get_column(S.TOOL_COST))
    return model_cost, tool_cost
