"""The rules of trace format v1 that a type check alone does not cover, and their messages.

Types and ranges are checked while decoding (aco_lab/traces/parser.py); this module words
those failures as `FILE:LINE: field.path: what was wrong, what is allowed`, and adds the
rules that need columns or several lines: timestamps, metadata, unique trace_id across all
inputs (the second occurrence is rejected) and the total_cost == sum of call costs warning.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass

import msgspec
import polars as pl

from aco import trace_format as tf
from aco_lab.traces import schema as S


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that was not loaded: where it was, why, and its text."""

    file: str
    line: int  # 1-based physical line number
    error: str  # the full message, `FILE:LINE: field.path: what was wrong, what is allowed`
    raw: str  # the line as read (undecodable bytes replaced)


# What each field allows, by path with list indices removed: the end of every message.
_INT_TIER = f"an int {tf.MIN_TIER}..{tf.MAX_TIER}"
_USD = "a number >= 0"
_OPT_TOKENS = "an int >= 0 or null"
_OPT_LOGPROB = "a number <= 0 or null"
EXPECTED: dict[str, str] = {
    "": "a JSON object (one trace per line)",
    tf.SCHEMA_VERSION_FIELD: f"{tf.SCHEMA_VERSION} (this loader reads trace format v1)",
    tf.TRACE_ID: "a non-empty string",
    tf.REQUEST_ID: "a string or null",
    tf.REQUEST: "a string",
    tf.TASK_TYPE: "a string or null",
    tf.DIFFICULTY: f"an int {tf.MIN_DIFFICULTY}..{tf.MAX_DIFFICULTY} or null",
    tf.PREDICTED_TIER: _INT_TIER + " or null",
    tf.TIMESTAMP: "an RFC 3339 date-time string (e.g. 2025-01-31T12:00:00Z) or null",
    tf.SOURCE: "a string or null",
    tf.STEPS: "a list of step objects",
    "steps[]": "a step object",
    tf.FINAL_OUTCOME: "one of " + ", ".join(tf.FINAL_OUTCOMES),
    tf.TASK_SUCCESS: "true, false or null",
    tf.TOTAL_COST: _USD,
    tf.METADATA: "an object or null",
    "steps[].step_num": "an int >= 1",
    "steps[].action": "a string or null",
    "steps[].model_call": "an object or null",
    "steps[].tool_calls": "a list of tool-call objects",
    "steps[].tool_calls[]": "a tool-call object",
    "steps[].verifier_called": "true or false",
    "steps[].verifier_passed": "true, false or null",
    "steps[].model_call.model_id": "a string",
    "steps[].model_call.tier": _INT_TIER,
    "steps[].model_call.cost": _USD,
    "steps[].model_call.input_tokens": _OPT_TOKENS,
    "steps[].model_call.output_tokens": _OPT_TOKENS,
    "steps[].model_call.cached_input_tokens": _OPT_TOKENS,
    "steps[].model_call.latency_ms": "a number or null",
    "steps[].model_call.escalated_from": _INT_TIER + " or null",
    "steps[].model_call.mean_logprob": _OPT_LOGPROB,
    "steps[].model_call.min_logprob": _OPT_LOGPROB,
    "steps[].model_call.output_text": "a string or null",
    "steps[].tool_calls[].tool_name": "a string",
    "steps[].tool_calls[].success": "true or false",
    "steps[].tool_calls[].cost": _USD,
    "steps[].tool_calls[].latency_ms": "a number or null",
}

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
_MALFORMED = re.compile(r"^JSON is malformed: (?P<why>.*?) \(byte (?P<byte>\d+)\)$")
_INDEX = re.compile(r"\[\d+\]")
_PATH_PART = re.compile(r"[^.\[\]]+|\[\d+\]")
_MAX_SHOWN = 60  # characters of an offending value quoted in a message
_UNREADABLE = object()


def describe_decode_error(line: bytes, exc: Exception) -> str:
    """`field.path: expected X, got Y` (without FILE:LINE) for a line msgspec refused."""
    text = str(exc)
    # msgspec < 0.23 raises UnicodeDecodeError, later versions a DecodeError with this text
    if isinstance(exc, UnicodeDecodeError) or text.startswith("Invalid UTF-8"):
        return f"not valid UTF-8 at column {_first_bad_utf8(line)}; re-encode the file as UTF-8"
    malformed = _MALFORMED.match(text)
    if malformed:
        # msgspec's byte offset points at the bad character, or just past it for some errors
        offset = int(malformed["byte"]) - (malformed["why"] == "trailing characters")
        column = len(line[:offset].decode("utf-8", "replace")) + 1
        return f"invalid JSON: {malformed['why']} near column {column}"
    if text == "Input data was truncated":
        return "invalid JSON: the line ends before the JSON value is complete"
    at = _AT.search(text)
    path = at["path"].lstrip(".") if at else ""
    missing = _MISSING.match(text)
    if missing:
        path = f"{path}.{missing['field']}".lstrip(".")
        return f"{path}: required field is missing; expected {expected(path)}"
    if text.startswith("Number out of range"):
        return f"{path}: number out of range; expected {expected(path)}"
    return describe_value_error(path, _value_at(line, path))


def _first_bad_utf8(line: bytes) -> int:
    """1-based character column of the first byte that is not UTF-8."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return len(line[: exc.start].decode("utf-8")) + 1
    return 1


def describe_value_error(path: str, value: object) -> str:
    """`path: expected X, got Y` for a value that broke the rule at `path`."""
    where = f"{path}: " if path else ""
    return f"{where}expected {expected(path)}, got {_show(value)}"


def expected(path: str) -> str:
    """What trace format v1 allows at a field path such as `steps[2].model_call.tier`."""
    return EXPECTED.get(_INDEX.sub("[]", path), "a value allowed by trace format v1")


def _value_at(line: bytes, path: str) -> object:
    """The JSON value at a path of a line (only on the error path, so plain json is fine)."""
    try:
        value = json.loads(line)
    except ValueError:
        return _UNREADABLE
    for part in _PATH_PART.findall(path):
        try:
            value = value[int(part[1:-1])] if part.startswith("[") else value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return _UNREADABLE
    return value


def _show(value: object) -> str:
    """A value as JSON, shortened; arrays and objects named by kind."""
    if value is _UNREADABLE:
        return "an unreadable value"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 4] + '..."'


def find_bad_metadata(metadata: pl.Series) -> list[tuple[int, str]]:
    """(row, message) for metadata JSON texts that are not an object (nulls are fine)."""
    bad = metadata.is_not_null() & ~metadata.str.starts_with("{")
    return [
        (row, describe_value_error(tf.METADATA, msgspec.json.decode(metadata[row])))
        for row in bad.arg_true().to_list()
    ]


class TraceIdIndex:
    """Where each trace_id was first seen, over runs read chunk by chunk in input order."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}  # trace_id -> run number (0-based, all chunks)
        self._chunk_starts: list[int] = []
        self._chunk_places: list[pl.DataFrame] = []  # SOURCE_FILE and LINE of each chunk's runs
        self._count = 0

    def find_duplicates(self, runs: pl.DataFrame) -> list[tuple[str, int, str]]:
        """(file, line, message) for runs whose trace_id was seen on an earlier row."""
        ids = runs.get_column(S.TRACE_ID).to_list()
        base = self._count
        self._chunk_starts.append(base)
        self._chunk_places.append(runs.select(S.SOURCE_FILE, S.LINE))
        self._count += len(ids)
        # The common case, all new and distinct, stays in C: no Python loop per run.
        if len(set(ids)) == len(ids) and self._first.keys().isdisjoint(ids):
            self._first.update(zip(ids, range(base, base + len(ids)), strict=True))
            return []
        found = []
        for row, trace_id in enumerate(ids):
            first = self._first.setdefault(trace_id, base + row)
            if first != base + row:
                file, line = self._place(base + row)
                found.append((file, line, _duplicate_message(trace_id, self._place(first))))
        return found

    def _place(self, number: int) -> tuple[str, int]:
        """(source_file, line) of run `number`."""
        chunk = bisect.bisect_right(self._chunk_starts, number) - 1
        return self._chunk_places[chunk].row(number - self._chunk_starts[chunk])


def _duplicate_message(trace_id: str, first: tuple[str, int]) -> str:
    return (f"trace_id: {_show(trace_id)} already used at {first[0]}:{first[1]};"
            " trace_id must be unique across all inputs")


def build_cost_warnings(runs: pl.DataFrame) -> tuple[str, ...]:
    """`FILE:LINE: total_cost: ...` for runs whose total_cost is not the sum of their call costs."""
    calls = pl.col(S.MODEL_COST) + pl.col(S.TOOL_COST)
    gap = (pl.col(S.TOTAL_COST) - calls).abs()
    allowed = tf.COST_SUM_ABS_TOLERANCE + tf.COST_SUM_REL_TOLERANCE * pl.max_horizontal(
        pl.col(S.TOTAL_COST).abs(), calls.abs()
    )
    off = runs.filter(gap > allowed).select(
        pl.format(
            "{}:{}: total_cost: {} differs from the sum of call costs {} (model {} + tools {});"
            " the run is kept",
            S.SOURCE_FILE, S.LINE, S.TOTAL_COST, calls, S.MODEL_COST, S.TOOL_COST,
        )
    )
    return tuple(off.to_series().to_list())
