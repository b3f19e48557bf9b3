"""decode_chunk (msgspec): which lines of a chunk are taken, which rejected, and their numbers.

Valid lines of every shape are taken; a bad line becomes a problem at its own line number and
the lines around it are still read.
"""

import json

import pytest

from aco_lab.traces.parser import decode_chunk, split_lines


def trace(**fields) -> dict:
    """A valid trace with two steps (a model call each, a tool call); fields replace keys."""
    base = {
        "schema_version": 1,
        "trace_id": "t1",
        "request_id": "r1",
        "request": "Fix the failing test in parser.py",
        "task_type": "coding",
        "difficulty": 3,
        "predicted_tier": 2,
        "timestamp": "2026-01-06T15:10:26.905Z",
        "source": "unit",
        "metadata": {"team": "a", "n": [1, 2]},
        "steps": [
            {
                "step_num": 1,
                "action": "read",
                "model_call": {
                    "model_id": "m2",
                    "tier": 2,
                    "cost": 0.002,
                    "input_tokens": 100,
                    "output_tokens": 20,
                    "cached_input_tokens": 0,
                    "latency_ms": 412.5,
                    "escalated_from": None,
                    "mean_logprob": -0.25,
                    "min_logprob": -2.5,
                    "output_text": "looking",
                },
                "tool_calls": [
                    {"tool_name": "grep", "success": True, "cost": 0.0, "latency_ms": 3.5}
                ],
                "verifier_called": False,
            },
            {
                "step_num": 2,
                "model_call": {"model_id": "m4", "tier": 4, "cost": 0.03, "escalated_from": 2},
                "verifier_called": True,
                "verifier_passed": True,
            },
        ],
        "final_outcome": "completed",
        "task_success": True,
        "total_cost": 0.032,
    }
    base.update(fields)
    return base


def line(value: dict | str) -> bytes:
    return (value if isinstance(value, str) else json.dumps(value)).encode()


def chunk(*middle: bytes) -> bytes:
    """Lines between two good traces, so rows before and after a bad line are checked."""
    return b"\n".join([line(trace(trace_id="first")), *middle, line(trace(trace_id="last"))])


GOOD = json.dumps(trace())

VALID = {
    "escapes": GOOD.replace("Fix the", r"Fix \"the\" \\ \/ \b\f\n\r\t end \u00e9 \ud83d\ude00"),
    "nul escape": GOOD.replace("read", r"re\u0000ad"),
    "escaped outcome and ids": GOOD.replace('"completed"', r'"complete\u0064"')
    .replace('"t1"', r'"t\u0031\n"')
    .replace('"m4"', r'"m\u0034"'),
    "raw unicode": GOOD.replace("Fix the", "Répare le 修复 😀"),
    "nulls everywhere": json.dumps(
        trace(
            request_id=None,
            task_type=None,
            difficulty=None,
            predicted_tier=None,
            timestamp=None,
            source=None,
            metadata=None,
            task_success=None,
        )
    ),
    "optional fields missing": json.dumps(
        {
            k: v
            for k, v in trace().items()
            if k in ("trace_id", "request", "steps", "final_outcome", "task_success", "total_cost")
        }
    ),
    "no steps": json.dumps(trace(steps=[])),
    "model_call null and missing": json.dumps(
        trace(steps=[{"step_num": 1, "model_call": None}, {"step_num": 2, "tool_calls": []}])
    ),
    "metadata shapes": json.dumps(trace(metadata={"a": {"b": [None, True, 1.5e3, "x"]}})),
    "unknown keys at every level": GOOD.replace(
        '"step_num": 1', '"x": [{"y": null}], "step_num": 1'
    )
    .replace('"tier": 2', '"extra": {"deep": [1, -2.5e-3, "s"]}, "tier": 2')
    .replace('"tool_name"', '"z": false, "tool_name"')
    .replace('"trace_id"', '"u": "v", "trace_id"'),
    "whitespace between tokens": GOOD.replace(": ", " :\t").replace(", ", " ,  ") + " \r",
    "minus zero int in a float field": GOOD.replace('"cost": 0.002', '"cost": -0'),
    "float shapes": GOOD.replace('"latency_ms": 412.5', '"latency_ms": -1.5E+300')
    .replace('"latency_ms": 3.5', '"latency_ms": 5e-324')
    .replace('"cost": 0.03', '"cost": 1e-400')
    .replace('"total_cost": 0.032', '"total_cost": 123456789012345678901234567890'),
    "int limits": GOOD.replace('"input_tokens": 100', '"input_tokens": 9223372036854775807')
    .replace('"output_tokens": 20', '"output_tokens": -0')
    .replace('"step_num": 2', '"step_num": 2147483647'),
    "schema_version missing": json.dumps(
        {k: v for k, v in trace().items() if k != "schema_version"}
    ),
    "duplicate top-level key": GOOD[:-1] + ', "source": "again"}',
    "duplicate nested key": GOOD.replace('"tier": 2', '"tier": 3, "tier": 2'),
    "escaped key": GOOD.replace('"source"', r'"sour\u0063e"'),
    "deeply nested unknown value": GOOD[:-1] + ', "deep": ' + "[" * 100 + "]" * 100 + "}",
}

REJECTED = {
    "tier 0": GOOD.replace('"tier": 2', '"tier": 0'),
    "tier 6": GOOD.replace('"tier": 2', '"tier": 6'),
    "tier as text": GOOD.replace('"tier": 2', '"tier": "2"'),
    "tier as float": GOOD.replace('"tier": 2', '"tier": 2.0'),
    "tier as bool": GOOD.replace('"tier": 2', '"tier": true'),
    "negative cost": GOOD.replace('"cost": 0.002', '"cost": -0.5'),
    "positive logprob": GOOD.replace('"mean_logprob": -0.25', '"mean_logprob": 0.5'),
    "unknown outcome": GOOD.replace('"completed"', '"done"'),
    "required key missing": json.dumps({k: v for k, v in trace().items() if k != "task_success"}),
    "required model_call key missing": GOOD.replace('"model_id": "m4", ', ""),
    "empty trace_id": json.dumps(trace(trace_id="")),
    "null trace_id": json.dumps(trace(trace_id=None)),
    "null tool_calls": json.dumps(trace(steps=[{"step_num": 1, "tool_calls": None}])),
    "null steps": json.dumps(trace(steps=None)),
    "tokens above int64": GOOD.replace(
        '"input_tokens": 100', '"input_tokens": 9223372036854775808'
    ),
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
    "NaN": GOOD.replace('"latency_ms": 412.5', '"latency_ms": NaN'),
    "leading zero": GOOD.replace('"latency_ms": 412.5', '"latency_ms": 0412.5'),
    "raw tab in a string": GOOD.replace("Fix the", "Fix\tthe"),
    "invalid escape": GOOD.replace("Fix the", r"Fix \x the"),
    "lone high surrogate": GOOD.replace("Fix the", r"Fix \ud800 the"),
    "top-level array": "[1, 2]",
    "top-level null": "null",
    "empty object": "{}",
    "invalid UTF-8 in a string field": GOOD.replace("Fix the", "Fix \udcff"),
}


@pytest.mark.parametrize("name", VALID)
def test_valid_lines_are_taken(name: str) -> None:
    decoded = decode_chunk(split_lines(chunk(VALID[name].encode())))
    assert decoded.runs.height == 3 and not decoded.problems
    assert decoded.numbers == [1, 2, 3]


@pytest.mark.parametrize("name", REJECTED)
def test_bad_lines_become_problems_at_their_line(name: str) -> None:
    data = chunk(REJECTED[name].encode("utf-8", "surrogateescape"))
    decoded = decode_chunk(split_lines(data), first_line=41)
    assert decoded.numbers == [41, 43] and [p.line for p in decoded.problems] == [42]
    assert decoded.problems[0].message


def test_blank_lines_and_line_numbers() -> None:
    data = b"\n".join(
        [
            b"",
            line(trace(trace_id="a")),
            b"  \t",
            b"\x0c",
            line(trace(trace_id="b")),
            b"{bad",
            b"\r",
            line(trace(trace_id="c")),
        ]
    )
    decoded = decode_chunk(split_lines(data), first_line=1000)
    assert decoded.numbers == [1001, 1004, 1007] and [p.line for p in decoded.problems] == [1005]


def test_empty_chunk() -> None:
    decoded = decode_chunk(split_lines(b""))
    assert decoded.runs.height == 0 and decoded.numbers == [] and not decoded.problems
