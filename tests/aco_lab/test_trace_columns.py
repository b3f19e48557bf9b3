"""aco_lab._trace_columns (the C fast path) against msgspec's decoding of the same lines.

The rule under test: for any chunk, the fast path either declines it (None) or gives exactly
what `trace_parser.decode_chunk` gives: the same frames bit for bit, line numbers and problems
(and it flags the lines with unknown keys that strict reading rejects).
"""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from aco_lab.strict_keys import unknown_keys
from aco_lab.trace_columns import available, decode_columns
from aco_lab.trace_parser import DecodedChunk, decode_chunk, split_lines

if not available():
    if os.environ.get("ACO_REQUIRE_NATIVE"):
        pytest.fail("aco_lab._trace_columns is not built; `pip install -e .` needs a C compiler",
                    pytrace=False)
    pytest.skip("aco_lab._trace_columns is not in use (not built, or ACO_PURE_PYTHON=1)",
                allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
TABLES = ("runs", "steps", "tool_calls")


def assert_same_decoding(data: bytes, first_line: int = 1) -> DecodedChunk | None:
    """Decode with both paths; when the fast one takes the chunk, the results must be equal."""
    fast = decode_columns(data, first_line)
    if fast is None:
        return None
    lines = split_lines(data)
    slow = decode_chunk(lines, first_line)
    assert fast.numbers == slow.numbers
    assert fast.problems == slow.problems
    assert fast.unknown_key_lines == [  # what strict reading would look at, flagged in C
        number for number in slow.numbers
        if unknown_keys(msgspec.json.decode(lines[number - first_line]))]
    for table in TABLES:
        got, want = getattr(fast, table), getattr(slow, table)
        assert_frame_equal(got, want, check_exact=True)
        for name, dtype in got.schema.items():  # -0.0 and 0.0 compare equal: check the bits
            if dtype == pl.Float64:
                bits = [frame.get_column(name).fill_null(0.5).to_numpy().view(np.uint64)
                        for frame in (got, want)]
                np.testing.assert_array_equal(*bits, err_msg=f"{table}.{name}")
    return fast


def trace(**fields) -> dict:
    """A valid trace with two steps (a model call each, a tool call); fields replace keys."""
    base = {
        "schema_version": 1, "trace_id": "t1", "request_id": "r1",
        "request": "Fix the failing test in parser.py", "task_type": "coding",
        "difficulty": 3, "predicted_tier": 2, "timestamp": "2026-01-06T15:10:26.905Z",
        "source": "unit", "metadata": {"team": "a", "n": [1, 2]},
        "steps": [
            {"step_num": 1, "action": "read", "model_call": {
                "model_id": "m2", "tier": 2, "cost": 0.002, "input_tokens": 100,
                "output_tokens": 20, "cached_input_tokens": 0, "latency_ms": 412.5,
                "escalated_from": None, "mean_logprob": -0.25, "min_logprob": -2.5,
                "output_text": "looking"},
             "tool_calls": [{"tool_name": "grep", "success": True, "cost": 0.0,
                             "latency_ms": 3.5}],
             "verifier_called": False},
            {"step_num": 2, "model_call": {"model_id": "m4", "tier": 4, "cost": 0.03,
                                           "escalated_from": 2},
             "verifier_called": True, "verifier_passed": True},
        ],
        "final_outcome": "completed", "task_success": True, "total_cost": 0.032,
    }
    base.update(fields)
    return base


def line(value: dict | str) -> bytes:
    return (value if isinstance(value, str) else json.dumps(value)).encode()


def chunk(*middle: bytes) -> bytes:
    """Lines between two good traces, so rows before and after a left line are checked."""
    return b"\n".join([line(trace(trace_id="first")), *middle, line(trace(trace_id="last"))])


GOOD = json.dumps(trace())
MODEL_CALL = '"model_id": "m2", "tier": 2, "cost": 0.002'

# Valid lines the fast path takes: its result must be msgspec's.
TAKEN = {
    "escapes": GOOD.replace("Fix the", r"Fix \"the\" \\ \/ \b\f\n\r\t end \u00e9 \ud83d\ude00"),
    "nul escape": GOOD.replace("read", r"re\u0000ad"),
    "escaped outcome and ids": GOOD.replace('"completed"', r'"complete\u0064"')
    .replace('"t1"', r'"t\u0031\n"').replace('"m4"', r'"m\u0034"'),
    "raw unicode": GOOD.replace("Fix the", "Répare le 修复 😀"),
    "nulls everywhere": json.dumps(trace(request_id=None, task_type=None, difficulty=None,
                                         predicted_tier=None, timestamp=None, source=None,
                                         metadata=None, task_success=None)),
    "optional fields missing": json.dumps({k: v for k, v in trace().items() if k in (
        "trace_id", "request", "steps", "final_outcome", "task_success", "total_cost")}),
    "no steps": json.dumps(trace(steps=[])),
    "model_call null and missing": json.dumps(trace(steps=[
        {"step_num": 1, "model_call": None}, {"step_num": 2, "tool_calls": []}])),
    "metadata shapes": json.dumps(trace(metadata={"a": {"b": [None, True, 1.5e3, "x"]}})),
    "metadata not an object": json.dumps(trace(metadata=[1, 2])),  # rejected late, the same
    "unknown keys at every level": GOOD
    .replace('"step_num": 1', '"x": [{"y": null}], "step_num": 1')
    .replace('"tier": 2', '"extra": {"deep": [1, -2.5e-3, "s"]}, "tier": 2')
    .replace('"tool_name"', '"z": false, "tool_name"')
    .replace('"trace_id"', '"u": "v", "trace_id"'),
    "whitespace between tokens": GOOD.replace(": ", " :\t").replace(", ", " ,  ") + " \r",
    "minus zero int in a float field": GOOD.replace('"cost": 0.002', '"cost": -0'),
    "minus zero float": GOOD.replace('"cost": 0.002', '"cost": -0.0')
    .replace('"mean_logprob": -0.25', '"mean_logprob": -0.0'),
    "float shapes": GOOD.replace('"latency_ms": 412.5', '"latency_ms": -1.5E+300')
    .replace('"latency_ms": 3.5', '"latency_ms": 5e-324').replace('"cost": 0.03', '"cost": 1e-400')
    .replace('"total_cost": 0.032', '"total_cost": 123456789012345678901234567890'),
    "long float": GOOD.replace('"cost": 0.002', '"cost": 0.1000000000000000055511151231257827'),
    "int limits": GOOD.replace('"input_tokens": 100', '"input_tokens": 9223372036854775807')
    .replace('"output_tokens": 20', '"output_tokens": -0')
    .replace('"step_num": 2', '"step_num": 2147483647'),
    "schema_version missing": json.dumps(
        {k: v for k, v in trace().items() if k != "schema_version"}),
}

# Lines msgspec rejects: the fast path leaves them, and their problems are msgspec's.
REJECTED = {
    "tier 0": GOOD.replace('"tier": 2', '"tier": 0'),
    "tier 6": GOOD.replace('"tier": 2', '"tier": 6'),
    "tier as text": GOOD.replace('"tier": 2', '"tier": "2"'),
    "tier as float": GOOD.replace('"tier": 2', '"tier": 2.0'),
    "tier as bool": GOOD.replace('"tier": 2', '"tier": true'),
    "negative cost": GOOD.replace('"cost": 0.002', '"cost": -0.5'),
    "positive logprob": GOOD.replace('"mean_logprob": -0.25', '"mean_logprob": 0.5'),
    "unknown outcome": GOOD.replace('"completed"', '"done"'),
    "outcome with an escape": GOOD.replace('"completed"', r'"complete\u0064x"'),
    "required key missing": json.dumps({k: v for k, v in trace().items() if k != "task_success"}),
    "required model_call key missing": GOOD.replace('"model_id": "m4", ', ""),
    "empty trace_id": json.dumps(trace(trace_id="")),
    "null trace_id": json.dumps(trace(trace_id=None)),
    "null tool_calls": json.dumps(trace(steps=[{"step_num": 1, "tool_calls": None}])),
    "null steps": json.dumps(trace(steps=None)),
    "null verifier_called": json.dumps(trace(steps=[{"step_num": 1, "verifier_called": None}])),
    "tokens above int64": GOOD.replace('"input_tokens": 100',
                                       '"input_tokens": 9223372036854775808'),
    "negative tokens": GOOD.replace('"input_tokens": 100', '"input_tokens": -1'),
    "step_num 0": GOOD.replace('"step_num": 1', '"step_num": 0'),
    "step_num above int32": GOOD.replace('"step_num": 1', '"step_num": 2147483648'),
    "difficulty 6": json.dumps(trace(difficulty=6)),
    "schema_version 2": json.dumps(trace(schema_version=2)),
    "float overflow": GOOD.replace('"latency_ms": 412.5', '"latency_ms": 1e400'),
    "truncated": GOOD[:-7],
    "trailing comma": GOOD[:-1] + ",}",
    "trailing characters": GOOD + " x",
    "two objects": GOOD + GOOD,
    "single quotes": GOOD.replace('"source": "unit"', "'source': 'unit'"),
    "NaN": GOOD.replace('"latency_ms": 412.5', '"latency_ms": NaN'),
    "Infinity": GOOD.replace('"latency_ms": 412.5', '"latency_ms": Infinity'),
    "leading zero": GOOD.replace('"latency_ms": 412.5', '"latency_ms": 0412.5'),
    "plus sign": GOOD.replace('"latency_ms": 412.5', '"latency_ms": +412.5'),
    "bare fraction": GOOD.replace('"latency_ms": 412.5', '"latency_ms": .5'),
    "dangling point": GOOD.replace('"latency_ms": 412.5', '"latency_ms": 412.'),
    "dangling exponent": GOOD.replace('"latency_ms": 412.5', '"latency_ms": 4e'),
    "raw tab in a string": GOOD.replace("Fix the", "Fix\tthe"),
    "invalid escape": GOOD.replace("Fix the", r"Fix \x the"),
    "lone high surrogate": GOOD.replace("Fix the", r"Fix \ud800 the"),
    "lone low surrogate": GOOD.replace("Fix the", r"Fix \udc00 the"),
    "short unicode escape": GOOD.replace("Fix the", r"Fix \u12"),
    "top-level array": "[1, 2]",
    "top-level null": "null",
    "top-level string": '"trace"',
    "empty object": "{}",
    "vertical tab after the object": GOOD + "\x0b",
}

# Valid lines the fast path declines (msgspec then decodes the whole chunk).
DECLINED = {
    "duplicate top-level key": GOOD[:-1] + ', "source": "again"}',
    "duplicate nested key": GOOD.replace('"tier": 2', '"tier": 3, "tier": 2'),
    "escaped key": GOOD.replace('"source"', r'"sour\u0063e"'),
    "deeply nested unknown value": GOOD[:-1] + ', "deep": ' + "[" * 100 + "]" * 100 + "}",
}


@pytest.mark.parametrize("name", TAKEN)
def test_valid_lines_are_taken_with_msgspec_values(name: str) -> None:
    decoded = assert_same_decoding(chunk(TAKEN[name].encode()))
    assert decoded is not None and decoded.runs.height == 3 and not decoded.problems


@pytest.mark.parametrize("name", REJECTED)
def test_bad_lines_get_msgspec_problems(name: str) -> None:
    decoded = assert_same_decoding(chunk(REJECTED[name].encode()), first_line=41)
    assert decoded is not None, "the fast path declined a chunk whose bad line msgspec rejects"
    assert decoded.numbers == [41, 43] and [p.line for p in decoded.problems] == [42]


def test_invalid_utf8_is_a_problem_in_a_string_field() -> None:
    data = chunk(GOOD.replace("Fix the", "Fix \udcff").encode("utf-8", "surrogateescape"))
    decoded = assert_same_decoding(data)
    assert decoded is not None and [p.line for p in decoded.problems] == [2]


@pytest.mark.parametrize("name", DECLINED)
def test_lines_only_msgspec_decodes_send_the_chunk_to_msgspec(name: str) -> None:
    data = chunk(DECLINED[name].encode())
    assert decode_columns(data) is None
    assert decode_chunk(split_lines(data)).runs.height == 3  # they are valid lines


def test_invalid_utf8_msgspec_skips_sends_the_chunk_to_msgspec() -> None:
    # msgspec does not look inside an unknown key's string; the fast path declines the line
    bad = (GOOD[:-1] + ', "note": "\udcff"}').encode("utf-8", "surrogateescape")
    assert decode_columns(chunk(bad)) is None


def test_blank_lines_and_line_numbers() -> None:
    data = b"\n".join([b"", line(trace(trace_id="a")), b"  \t", b"\x0c", line(trace(trace_id="b")),
                       b"{bad", b"\r", line(trace(trace_id="c"))])
    decoded = assert_same_decoding(data, first_line=1000)
    assert decoded is not None
    assert decoded.numbers == [1001, 1004, 1007] and [p.line for p in decoded.problems] == [1005]


def test_empty_chunk() -> None:
    decoded = assert_same_decoding(b"")
    assert decoded is not None and decoded.runs.height == 0 and decoded.numbers == []


def test_request_id_is_derived_when_missing_or_null() -> None:
    data = b"\n".join([line(trace(trace_id="a", request_id=None)),
                       line({k: v for k, v in trace(trace_id="b").items() if k != "request_id"}),
                       line(trace(trace_id="c"))])
    decoded = assert_same_decoding(data)
    assert decoded is not None and decoded.runs.get_column("request_id").null_count() == 0


FLOATS = st.floats(allow_nan=False, allow_infinity=False)
FLOAT_TEXT = st.one_of(
    FLOATS.map(repr), FLOATS.map(lambda x: f"{x:.17g}"), FLOATS.map(lambda x: f"{x:.3e}"),
    FLOATS.map(lambda x: f"{x:.25f}"), st.integers(-(10**30), 10**30).map(str),
    st.tuples(st.integers(0, 10**20), st.integers(-350, 350)).map(lambda m: f"{m[0]}e{m[1]}"),
)


@settings(max_examples=300, deadline=None)
@given(latency=FLOAT_TEXT, cost=FLOAT_TEXT.map(lambda t: t.lstrip("-")), logprob=FLOAT_TEXT)
def test_numbers_read_as_msgspec_reads_them(latency: str, cost: str, logprob: str) -> None:
    text = (GOOD.replace('"latency_ms": 412.5', f'"latency_ms": {latency}')
            .replace('"cost": 0.002', f'"cost": {cost}')
            .replace('"min_logprob": -2.5', f'"min_logprob": {logprob}'))
    assert_same_decoding(chunk(text.encode()))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | FLOATS | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6,
)
FIELDS = ["trace_id", "request", "steps", "final_outcome", "task_success", "total_cost",
          "schema_version", "request_id", "task_type", "difficulty", "predicted_tier",
          "timestamp", "source", "metadata", "step_num", "action", "model_call", "tool_calls",
          "verifier_called", "verifier_passed", "model_id", "tier", "cost", "input_tokens",
          "latency_ms", "escalated_from", "mean_logprob", "output_text", "tool_name", "success"]


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES, which=st.integers(0, 3))
def test_any_value_in_any_field_decodes_as_msgspec_decodes_it(field: str, value, which: int
                                                               ) -> None:
    """Replace one occurrence of a field's value by an arbitrary JSON value."""
    text, key = GOOD, f'"{field}": '
    starts = [i for i in range(len(text)) if text.startswith(key, i)]
    if starts:
        start = starts[which % len(starts)] + len(key)
        end = _value_end(text, start)
        text = text[:start] + json.dumps(value) + text[end:]
    assert_same_decoding(chunk(text.encode()))


def _value_end(text: str, start: int) -> int:
    """Where the JSON value starting at text[start] ends."""
    _, end = json.JSONDecoder().raw_decode(text, start)
    return end


@settings(max_examples=400, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, len(GOOD)), st.integers(0, 3),
                                st.sampled_from(list('{}[]":,.-+0123456789eEntfalsu\\ \x00é'))),
                      min_size=1, max_size=4))
def test_damaged_lines_decode_as_msgspec_decodes_them(edits) -> None:
    """Delete, insert or replace characters anywhere in a good line."""
    text = GOOD
    for position, kind, char in edits:
        position = min(position, len(text))
        if kind == 0:
            text = text[:position] + text[position + 1:]
        elif kind == 1:
            text = text[:position] + char + text[position:]
        else:
            text = text[:position] + char + text[position + 1:]
    assert_same_decoding(chunk(text.encode()))


def test_the_shipped_sample_is_taken_whole() -> None:
    data = gzip.decompress((REPO / "data" / "sample_traces.jsonl.gz").read_bytes())
    decoded = assert_same_decoding(data)
    assert decoded is not None and not decoded.problems and decoded.runs.height > 1000


@pytest.mark.shared_data
def test_real_routerbench_and_tau_bench_traces_are_taken_whole(routerbench_dir: Path,
                                                                 tau_bench_dir: Path) -> None:
    for directory in (routerbench_dir, tau_bench_dir):
        data = gzip.decompress((directory / "traces.jsonl.gz").read_bytes())
        decoded = assert_same_decoding(data)
        assert decoded is not None and not decoded.problems


READ_TABLES = """
import io, sys
from aco_lab.traces import read_traces
tables = read_traces(sys.argv[2:], on_error="skip", strict=sys.argv[1] == "strict")
for frame in (tables.runs, tables.steps, tables.tool_calls):
    buffer = io.BytesIO(); frame.write_ipc(buffer); sys.stdout.buffer.write(buffer.getvalue())
print(len(tables.rejected), [r.error for r in tables.rejected], file=sys.stderr)
"""


@pytest.mark.parametrize("strict", [False, True])
def test_read_traces_gives_the_same_tables_without_the_fast_path(tmp_path: Path, strict: bool
                                                                  ) -> None:
    taken = [line(trace(trace_id=f"t{i}")) for i in range(50)]
    taken[30] = line(trace(trace_id="t30", difficuly=2))
    taken[10] = REJECTED["tier 6"].encode()
    taken[20] = TAKEN["escapes"].replace('"t1"', '"t20"').encode()
    declined = [line(trace(trace_id=f"d{i}")) for i in range(5)]
    declined[3] = DECLINED["duplicate nested key"].encode().replace(b'"t1"', b'"d3"')
    paths = [tmp_path / "taken.jsonl", tmp_path / "declined.jsonl"]
    for path, lines in zip(paths, (taken, declined), strict=True):
        path.write_bytes(b"\n".join(lines) + b"\n")
    outputs = [
        subprocess.run([sys.executable, "-c", READ_TABLES, "strict" if strict else "-",
                        *map(str, paths)],
                       capture_output=True, check=True, env={**os.environ, "ACO_PURE_PYTHON": flag})
        for flag in ("", "1")
    ]
    assert outputs[0].stdout == outputs[1].stdout and outputs[0].stderr == outputs[1].stderr
    assert outputs[0].stderr.startswith(b"2 " if strict else b"1 ")
