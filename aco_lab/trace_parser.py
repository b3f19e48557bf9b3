"""Trace format v1 as msgspec Structs, decoded line by line, then turned into column tables.

msgspec decodes a line straight into typed Structs, rejecting bools where ints belong, ints
where bools belong, out-of-range tiers, negative costs and unknown final outcomes, and names
the failing JSON path (worded by aco_lab/validate.py). Unknown extra keys are accepted and
ignored. `build_chunk_tables` then builds the runs, steps and tool-call frames of
aco_lab/schema.py from the Structs, with the derived run columns.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter
from types import SimpleNamespace
from typing import Annotated, Literal

import msgspec
import numpy as np
import polars as pl
from msgspec import Meta, Raw, Struct

from aco import trace_format as tf
from aco_lab import schema as S
from aco_lab.validate import (
    Rejection,
    describe_decode_error,
    describe_value_error,
    find_bad_metadata,
)

Tier = Annotated[int, Meta(ge=tf.MIN_TIER, le=tf.MAX_TIER)]
Difficulty = Annotated[int, Meta(ge=tf.MIN_DIFFICULTY, le=tf.MAX_DIFFICULTY)]
INT64_MAX, INT32_MAX = 2**63 - 1, 2**31 - 1  # the table columns' limits
Tokens = Annotated[int, Meta(ge=0, le=INT64_MAX)]
Usd = Annotated[float, Meta(ge=0.0)]
Logprob = Annotated[float, Meta(le=0.0)]
StepNum = Annotated[int, Meta(ge=1, le=INT32_MAX)]
SchemaVersion = Annotated[int, Meta(ge=tf.SCHEMA_VERSION, le=tf.SCHEMA_VERSION)]
FinalOutcome = Literal[tf.FINAL_OUTCOMES]  # type: ignore[valid-type]
NULL_JSON = b"null"


# gc=False: these hold only scalars and lists, never cycles; skipping the cycle collector's
# bookkeeping matters when a file holds millions of them.
class ToolCall(Struct, gc=False):
    """One tool call of a step."""

    tool_name: str
    success: bool
    cost: Usd
    latency_ms: float | None = None


class ModelCall(Struct, gc=False):
    """The model call of a step."""

    model_id: str
    tier: Tier
    cost: Usd
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    cached_input_tokens: Tokens | None = None
    latency_ms: float | None = None
    escalated_from: Tier | None = None
    mean_logprob: Logprob | None = None
    min_logprob: Logprob | None = None
    output_text: str | None = None


class Step(Struct, gc=False):
    """One step of a run."""

    step_num: StepNum
    action: str | None = None
    model_call: ModelCall | None = None
    tool_calls: list[ToolCall] = []
    verifier_called: bool = False
    verifier_passed: bool | None = None


class Trace(Struct, gc=False):
    """One line: one run of one request."""

    trace_id: Annotated[str, Meta(min_length=1)]
    request: str
    steps: list[Step]
    final_outcome: FinalOutcome
    task_success: bool | None  # required, though it may be null (outcome unknown)
    total_cost: Usd
    schema_version: SchemaVersion = tf.SCHEMA_VERSION
    request_id: str | None = None
    task_type: str | None = None
    difficulty: Difficulty | None = None
    predicted_tier: Tier | None = None
    timestamp: str | None = None  # checked and parsed column-wise (RFC 3339) by the loader
    source: str | None = None
    metadata: Raw = Raw(NULL_JSON)  # kept as JSON text; must be an object or null


TRACE_DECODER = msgspec.json.Decoder(Trace)

_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)


@dataclass(frozen=True, slots=True)
class LineProblem:
    """Why one line of a chunk was rejected (line is 1-based within the chunk)."""

    line: int
    message: str  # `field.path: what was wrong, what is allowed`, without FILE:LINE
    raw: str


def decode_lines(lines: list[bytes]) -> tuple[list[int], list[Trace], list[LineProblem]]:
    """Decode JSONL lines: (1-based line numbers, Traces) of good lines, a problem per bad one.

    Blank (empty or whitespace-only) lines are skipped: neither a trace nor a problem.
    """
    decode = TRACE_DECODER.decode
    numbers: list[int] = []
    traces: list[Trace] = []
    problems: list[LineProblem] = []
    for number, line in enumerate(lines, 1):
        try:
            traces.append(decode(line))
        except _DECODE_ERRORS as exc:
            if line.strip():
                problems.append(
                    LineProblem(number, describe_decode_error(line, exc), raw_text(line))
                )
            continue
        numbers.append(number)
    return numbers, traces, problems


def raw_text(line: bytes) -> str:
    """A line's text for a rejection: undecodable bytes replaced, line end dropped."""
    return line.decode("utf-8", "replace").rstrip("\r\n")


_TIMESTAMP_DTYPE = S.RUNS_SCHEMA[S.TIMESTAMP]
_DIFFICULTY_DTYPE = S.RUNS_SCHEMA[S.DIFFICULTY]

# Stands in for a missing model_call so that column building reads every field as null.
_NO_CALL = SimpleNamespace(**{name: None for name in ModelCall.__struct_fields__})
_flatten = itertools.chain.from_iterable


def build_chunk_tables(
    file: str, numbers: list[int], traces: list[Trace]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, list[tuple[int, str]]]:
    """Runs, steps and tool-call frames of decoded traces, and (line, message) of late rejects.

    Late rejects are values only a column check catches (timestamps, metadata); their rows are
    already removed from the three frames.
    """
    runs, late = _build_runs(file, numbers, traces)
    n_steps = runs.get_column(S.N_STEPS).to_numpy()
    step_structs = list(_flatten(map(attrgetter(tf.STEPS), traces)))
    steps = _build_steps(runs, n_steps, step_structs)
    tool_calls = _build_tool_calls(steps, step_structs)
    steps = _add_step_tool_totals(steps, tool_calls)
    runs = add_run_aggregates(runs, steps)
    if late:
        bad_lines = pl.Series([line for line, _ in late], dtype=pl.Int64).implode()
        keep = ~pl.col(S.LINE).is_in(bad_lines)
        runs, steps, tool_calls = runs.filter(keep), steps.filter(keep), tool_calls.filter(keep)
    return (
        runs.select(S.RUNS_SCHEMA.names()),
        steps.select(S.STEPS_SCHEMA.names()),
        tool_calls.select(S.TOOL_CALLS_SCHEMA.names()),
        late,
    )


def _owner_index(counts: np.ndarray) -> tuple[pl.Series, pl.Series]:
    """For children counted per parent: each child's parent row and its position under it."""
    owner = np.repeat(np.arange(len(counts), dtype=np.uint32), counts)
    starts = np.cumsum(counts) - counts
    position = np.arange(len(owner), dtype=np.int32) - np.repeat(starts, counts).astype(np.int32)
    return pl.Series(owner), pl.Series(position)


def _build_runs(
    file: str, numbers: list[int], traces: list[Trace]
) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """The runs frame of the format's top-level fields (no derived columns yet)."""
    derive = tf.derive_request_id
    metadata = pl.Series([bytes(t.metadata) for t in traces], dtype=pl.Binary).cast(pl.String)
    metadata = pl.select(pl.when(metadata != "null").then(metadata)).to_series()
    timestamps, late = _parse_timestamps([t.timestamp for t in traces], numbers)
    late += [(numbers[row], message) for row, message in find_bad_metadata(metadata)]
    runs = pl.DataFrame(
        {
            S.SOURCE_FILE: pl.repeat(file, len(traces), dtype=pl.String, eager=True),
            S.LINE: pl.Series(numbers, dtype=pl.Int64),
            S.SCHEMA_VERSION: pl.Series([t.schema_version for t in traces], dtype=pl.Int64),
            S.TRACE_ID: pl.Series([t.trace_id for t in traces], dtype=pl.String),
            S.REQUEST_ID: pl.Series(
                [t.request_id if t.request_id is not None else derive(t.request) for t in traces],
                dtype=pl.String,
            ),
            S.REQUEST: pl.Series([t.request for t in traces], dtype=pl.String),
            S.TASK_TYPE: pl.Series([t.task_type for t in traces], dtype=pl.String),
            S.DIFFICULTY: pl.Series([t.difficulty for t in traces], dtype=_DIFFICULTY_DTYPE),
            S.PREDICTED_TIER: pl.Series([t.predicted_tier for t in traces], dtype=S.TIER_DTYPE),
            S.TIMESTAMP: timestamps,
            S.SOURCE: pl.Series([t.source for t in traces], dtype=pl.String),
            S.FINAL_OUTCOME: pl.Series([t.final_outcome for t in traces], dtype=pl.String),
            S.TASK_SUCCESS: pl.Series([t.task_success for t in traces], dtype=pl.Boolean),
            S.TOTAL_COST: pl.Series([t.total_cost for t in traces], dtype=S.USD_DTYPE),
            S.METADATA: metadata,
            S.N_STEPS: pl.Series([len(t.steps) for t in traces], dtype=pl.Int32),
        }
    )
    return runs, late




def _parse_timestamps(
    texts: list[str | None], numbers: list[int]
) -> tuple[pl.Series, list[tuple[int, str]]]:
    """RFC 3339 texts -> Datetime(us, UTC); (line, message) for texts that are not dates.

    Polars parses the common shapes column-wise; the few it refuses are retried one by one
    with msgspec's RFC 3339 parser, which also reads timestamps without an offset (as UTC).
    """
    column = pl.Series(texts, dtype=pl.String)
    parsed = column.str.to_datetime("%+", time_unit="us", time_zone="UTC", strict=False)
    retry = (column.is_not_null() & parsed.is_null()).arg_true().to_list()
    late: list[tuple[int, str]] = []
    for row in retry:
        try:
            value = msgspec.convert(texts[row], dt.datetime)
        except msgspec.ValidationError:
            late.append((numbers[row], describe_value_error(tf.TIMESTAMP, texts[row])))
            continue
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        parsed = parsed.scatter(row, value.astimezone(dt.UTC))
    return parsed.cast(_TIMESTAMP_DTYPE), late


def _build_steps(runs: pl.DataFrame, n_steps: np.ndarray, steps: list[Step]) -> pl.DataFrame:
    """One row per step, with its model call's fields (null when it made none)."""
    run_of_step, step_index = _owner_index(n_steps)
    calls = [step.model_call or _NO_CALL for step in steps]
    owner = runs.select(S.SOURCE_FILE, S.LINE, S.TRACE_ID)[run_of_step]
    return owner.with_columns(
        run_of_step.alias("_run"),
        step_index.alias(S.STEP_INDEX),
        pl.Series(S.STEP_NUM, [s.step_num for s in steps], dtype=pl.Int32),
        pl.Series(S.ACTION, [s.action for s in steps], dtype=pl.String),
        pl.Series(S.MODEL_ID, [c.model_id for c in calls], dtype=pl.String),
        pl.Series(S.TIER, [c.tier for c in calls], dtype=S.TIER_DTYPE),
        pl.Series(S.INPUT_TOKENS, [c.input_tokens for c in calls], dtype=S.TOKENS_DTYPE),
        pl.Series(S.OUTPUT_TOKENS, [c.output_tokens for c in calls], dtype=S.TOKENS_DTYPE),
        pl.Series(
            S.CACHED_INPUT_TOKENS, [c.cached_input_tokens for c in calls], dtype=S.TOKENS_DTYPE
        ),
        pl.Series(S.COST, [c.cost for c in calls], dtype=S.USD_DTYPE),
        pl.Series(S.LATENCY_MS, [c.latency_ms for c in calls], dtype=pl.Float64),
        pl.Series(S.ESCALATED_FROM, [c.escalated_from for c in calls], dtype=S.TIER_DTYPE),
        pl.Series(S.MEAN_LOGPROB, [c.mean_logprob for c in calls], dtype=pl.Float64),
        pl.Series(S.MIN_LOGPROB, [c.min_logprob for c in calls], dtype=pl.Float64),
        pl.Series(S.OUTPUT_TEXT, [c.output_text for c in calls], dtype=pl.String),
        pl.Series(S.N_TOOL_CALLS, [len(s.tool_calls) for s in steps], dtype=pl.Int32),
        pl.Series(S.VERIFIER_CALLED, [s.verifier_called for s in steps], dtype=pl.Boolean),
        pl.Series(S.VERIFIER_PASSED, [s.verifier_passed for s in steps], dtype=pl.Boolean),
    )


def _build_tool_calls(steps: pl.DataFrame, step_structs: list[Step]) -> pl.DataFrame:
    """One row per tool call, with the step and run it belongs to."""
    step_of_call, _ = _owner_index(steps.get_column(S.N_TOOL_CALLS).to_numpy())
    calls = list(_flatten(map(attrgetter(tf.TOOL_CALLS), step_structs)))
    owner = steps.select("_run", S.SOURCE_FILE, S.LINE, S.TRACE_ID, S.STEP_NUM)[step_of_call]
    return owner.with_columns(
        step_of_call.alias("_step"),
        pl.Series(S.TOOL_NAME, [c.tool_name for c in calls], dtype=pl.String),
        pl.Series(S.TOOL_SUCCESS, [c.success for c in calls], dtype=pl.Boolean),
        pl.Series(S.COST, [c.cost for c in calls], dtype=S.USD_DTYPE),
        pl.Series(S.LATENCY_MS, [c.latency_ms for c in calls], dtype=pl.Float64),
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


def add_run_aggregates(runs: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    """Add the derived run columns of RUNS_SCHEMA, aggregated from each run's steps."""
    tier = pl.col(S.TIER)
    called = tier.is_not_null()
    top = tier.max()

    def total_or_null(column: str) -> pl.Expr:
        # null when every call left the field null (or there was no call), else the sum
        return pl.when(pl.col(column).count() > 0).then(pl.col(column).sum()).alias(column)

    per_run = steps.group_by("_run").agg(
        tier.filter(called).first().alias(S.FIRST_TIER),
        top.alias(S.MAX_TIER_CALLED),
        tier.filter(called).n_unique().cast(pl.Int8).alias(S.N_TIERS_CALLED),
        pl.col(S.MODEL_ID).filter(tier == top).last().alias(S.MODEL_ID),
        pl.col(S.INPUT_TOKENS).filter(called).first().alias(S.FIRST_INPUT_TOKENS),
        total_or_null(S.INPUT_TOKENS),
        total_or_null(S.OUTPUT_TOKENS),
        total_or_null(S.CACHED_INPUT_TOKENS),
        pl.col(S.COST).sum().alias(S.MODEL_COST),
        pl.col(S.TOOL_COST).sum(),
        pl.col(S.N_TOOL_CALLS).sum().cast(pl.Int32),
        pl.col(S.VERIFIER_CALLED).sum().cast(pl.Int32).alias(S.N_VERIFIER_CALLS),
        pl.col(S.ESCALATED_FROM).is_not_null().any().alias("_any_escalated_from"),
    )
    runs = runs.with_row_index("_run").join(per_run, on="_run", how="left", maintain_order="left")
    return runs.with_columns(
        pl.coalesce(S.PREDICTED_TIER, S.MAX_TIER_CALLED).alias(S.TIER),
        pl.col(S.N_TIERS_CALLED).fill_null(0),
        pl.col(S.MODEL_COST, S.TOOL_COST).fill_null(0.0),
        pl.col(S.N_TOOL_CALLS, S.N_VERIFIER_CALLS).fill_null(0),
        (pl.col("_any_escalated_from").fill_null(False) | (pl.col(S.N_TIERS_CALLED) > 1))
        .fill_null(False)
        .alias(S.ESCALATED),
    )


@dataclass(frozen=True, slots=True)
class ChunkTask:
    """Lines of one input file to decode: a byte range of the file, or bytes already read."""

    file: str  # the file's name as given: the source_file of every row
    first_line: int  # line number (1-based, in the file) of the chunk's first line
    start: int = 0
    end: int = 0
    data: bytes | None = None  # decompressed lines (gzip inputs); None: read start..end of file

    def read(self) -> bytes:
        """The chunk's bytes: whole lines, the last one ending the chunk."""
        if self.data is not None:
            return self.data
        with open(self.file, "rb") as stream:
            stream.seek(self.start)
            return stream.read(self.end - self.start)

    def line_texts(self, lines: Iterable[int]) -> dict[int, str]:
        """The text of some lines of the chunk, by line number in the file."""
        chunk_lines = self.read().split(b"\n")
        return {line: raw_text(chunk_lines[line - self.first_line]) for line in lines}


@dataclass(frozen=True, slots=True)
class ChunkTables:
    """A decoded, checked chunk of one file (line numbers are the file's)."""

    runs: pl.DataFrame
    steps: pl.DataFrame
    tool_calls: pl.DataFrame
    rejected: tuple[Rejection, ...]  # sorted by line
    lines_read: int  # non-blank lines == runs.height + len(rejected)

    def __reduce__(self) -> tuple:
        # Arrow IPC crosses the process boundary ~4x cheaper than the frames' default pickling.
        frames = tuple(_to_ipc(f) for f in (self.runs, self.steps, self.tool_calls))
        return (_chunk_from_ipc, (frames, self.rejected, self.lines_read))


def _to_ipc(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    return buffer.getvalue()


def _chunk_from_ipc(
    frames: tuple[bytes, ...], rejected: tuple[Rejection, ...], lines_read: int
) -> ChunkTables:
    runs, steps, tool_calls = (pl.read_ipc(io.BytesIO(data)) for data in frames)
    return ChunkTables(runs, steps, tool_calls, rejected, lines_read)


def read_chunk(task: ChunkTask) -> ChunkTables:
    """Decode and check one chunk into tables (runs in a worker process for big inputs)."""
    lines = task.read().split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the chunk's last line end, not an extra line
    with _cycle_collector_paused():
        numbers, traces, problems = decode_lines(lines)
        runs, steps, tool_calls, late = build_chunk_tables(task.file, numbers, traces)
    read = len(traces) + len(problems)
    problems += [LineProblem(line, message, raw_text(lines[line - 1])) for line, message in late]
    shift = task.first_line - 1
    rejected = [
        Rejection(task.file, p.line + shift, f"{task.file}:{p.line + shift}: {p.message}", p.raw)
        for p in sorted(problems, key=attrgetter("line"))
    ]
    if shift:
        runs, steps, tool_calls = (
            frame.with_columns(pl.col(S.LINE) + shift) for frame in (runs, steps, tool_calls)
        )
    return ChunkTables(runs, steps, tool_calls, tuple(rejected), read)


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while building millions of acyclic objects.

    Each trace holds lists (steps, tool calls) that the collector would traverse again and
    again as they pile up; none of them can form a cycle, so the pause frees nothing late.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
