"""Trace format v1 as msgspec types, built from `aco.trace_format.FIELDS`, and decode messages.

One msgspec decode checks a whole line: types (no bools where ints belong, no ints where bools
belong), required fields, ranges and allowed values; unknown keys are skipped. The types are
derived from the field table, so the runtime's `aco stats` and the lab's loader
(aco_lab/traces/parser.py) accept and refuse the same lines, with the same words:
`field.path: what was wrong, what is allowed` (the caller adds FILE:LINE).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Raw, Struct

from aco import trace_format as tf

NULL_JSON = b"null"
UTF8_BOM = b"\xef\xbb\xbf"  # accepted (and dropped) at the start of a file


def _annotation(field: tf.Field, nested: dict[str, Any]) -> Any:
    """The msgspec type of one field: its Python type, range and nullability."""
    if field.type in nested:
        kind = nested[field.type]
    elif field.type == tf.OBJECT:
        return Raw  # kept as JSON text; checked to be an object (or null) by its reader
    elif field.choices:
        kind = Literal[field.choices]  # type: ignore[valid-type]
    else:
        kind = {tf.INT: int, tf.NUMBER: float, tf.STRING: str, tf.BOOL: bool, tf.TIMESTAMP: str}[
            field.type
        ]
        limits = {
            "ge": field.ge,
            "le": field.max_value,
            "min_length": 1 if field.non_empty else None,
        }
        limits = {key: value for key, value in limits.items() if value is not None}
        if limits:
            kind = Annotated[kind, Meta(**limits)]
    return kind | None if field.nullable else kind


def _struct(name: str, level: str, nested: dict[str, Any]) -> type[Struct]:
    """A Struct of one level's fields (keyword-only, so the table's order is kept)."""
    fields: list[tuple] = []
    for field in tf.fields_of(level):
        kind = _annotation(field, nested)
        if field.required:
            fields.append((field.name, kind))
        elif field.type == tf.OBJECT:
            fields.append((field.name, kind, Raw(NULL_JSON)))
        else:
            fields.append((field.name, kind, [] if field.default == () else field.default))
    # gc=False: these hold only scalars and lists, never cycles; skipping the cycle collector's
    # bookkeeping matters when a file holds millions of them.
    return msgspec.defstruct(name, fields, kw_only=True, gc=False, module=__name__)


ToolCall = _struct("ToolCall", tf.TOOL_CALL_LEVEL, {})
ModelCall = _struct("ModelCall", tf.MODEL_CALL_LEVEL, {})
Step = _struct(
    "Step", tf.STEP_LEVEL, {tf.MODEL_CALL_OBJECT: ModelCall, tf.TOOL_CALL_LIST: list[ToolCall]}
)
Trace = _struct("Trace", tf.TRACE_LEVEL, {tf.STEP_LIST: list[Step]})
STRUCTS = {
    tf.TRACE_LEVEL: Trace,
    tf.STEP_LEVEL: Step,
    tf.MODEL_CALL_LEVEL: ModelCall,
    tf.TOOL_CALL_LEVEL: ToolCall,
}

TRACE_DECODER = msgspec.json.Decoder(Trace)
# What a decode of one line may raise: RecursionError for JSON nested deeper than the
# interpreter's recursion limit (msgspec recurses per level, even into skipped values).
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


# -- the words of a refused line -------------------------------------------------------------
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
_MALFORMED = re.compile(r"^JSON is malformed: (?P<why>.*?) \(byte (?P<byte>\d+)\)$")
_PATH_PART = re.compile(r"[^.\[\]]+|\[\d+\]")
_MAX_SHOWN = 60  # characters of an offending value quoted in a message
_UNREADABLE = object()
_TOO_DEEP = object()


class _Pairs(list):
    """A JSON object as its (key, value) pairs, keys given twice kept (for messages only)."""


def describe_decode_error(line: bytes, exc: Exception) -> str:
    """`field.path: expected X, got Y` (without FILE:LINE) for a line msgspec refused."""
    text = str(exc)
    if isinstance(exc, RecursionError):
        return (
            f"invalid JSON: arrays or objects nested too deeply (the reader allows fewer "
            f"than {sys.getrecursionlimit()} levels); flatten the value"
        )
    # msgspec < 0.23 raises UnicodeDecodeError, later versions a DecodeError with this text
    if isinstance(exc, UnicodeDecodeError) or text.startswith("Invalid UTF-8"):
        return describe_bad_utf8(line)
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
        return f"{path}: required field is missing; expected {tf.expected(path)}"
    values = _values_at(line, path)
    if len(values) > 1:
        shown = ", then ".join(show_value(v) for v in values)
        return (
            f"{path}: key given {len(values)} times in one object ({shown}); every value "
            f"must be {tf.expected(path)} (the last one is kept); give the key once"
        )
    if text.startswith("Number out of range"):
        return f"{path}: number out of range; expected {tf.expected(path)}"
    return describe_value_error(path, values[0] if values else _UNREADABLE)


def describe_bad_utf8(line: bytes, field: str = "") -> str:
    """`[field: ]not valid UTF-8 at column N; ...` for bytes that are not UTF-8."""
    where = f"{field}: " if field else ""
    return f"{where}not valid UTF-8 at column {_first_bad_utf8(line)}; re-encode the file as UTF-8"


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
    return f"{where}expected {tf.expected(path)}, got {show_value(value)}"


def _values_at(line: bytes, path: str) -> list[object]:
    """Every JSON value at a path of a line, in order: more than one if a key is repeated.

    Only on the error path, so plain json is fine.
    """
    try:
        values = [json.loads(line, object_pairs_hook=_Pairs)]
    except ValueError:
        return []
    except RecursionError:
        return [_TOO_DEEP]
    for part in _PATH_PART.findall(path):
        if part.startswith("["):
            index = int(part[1:-1])
            values = [v[index] for v in values if type(v) is list and index < len(v)]  # noqa: E721 (not _Pairs)
        else:
            values = [
                value for v in values if isinstance(v, _Pairs) for key, value in v if key == part
            ]
    return values


def show_value(value: object) -> str:
    """A value as JSON, shortened; arrays and objects named by kind."""
    if value is _UNREADABLE:
        return "an unreadable value"
    if value is _TOO_DEEP:
        return "a value not shown (the line nests too deeply to read)"
    if isinstance(value, _Pairs | dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 4] + '..."'
