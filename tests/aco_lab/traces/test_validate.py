"""Every rule of trace format v1: the bad line is rejected, with its line number and message."""

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from aco.trace_decode import describe_value_error
from aco.trace_format import expected
from aco_lab.traces import schema as S
from aco_lab.traces.reading import read_traces

GOOD = {
    "trace_id": "good",
    "request": "Book a flight.",
    "steps": [
        {
            "step_num": 1,
            "model_call": {"model_id": "m", "tier": 2, "cost": 0.1, "input_tokens": 10},
            "tool_calls": [{"tool_name": "search", "success": True, "cost": 0.0}],
        }
    ],
    "final_outcome": "completed",
    "task_success": True,
    "total_cost": 0.1,
}


def mutate(change: Callable[[dict], object]) -> str:
    """GOOD with one change applied (a function of the trace dict), as a JSON line."""
    trace = copy.deepcopy(GOOD)
    trace["trace_id"] = "bad"
    change(trace)
    return json.dumps(trace, ensure_ascii=False)


def call(**fields) -> Callable[[dict], object]:
    return lambda t: t["steps"][0]["model_call"].update(fields)


def tool(**fields) -> Callable[[dict], object]:
    return lambda t: t["steps"][0]["tool_calls"][0].update(fields)


def top(**fields) -> Callable[[dict], object]:
    return lambda t: t.update(fields)


def drop(*path: str | int) -> Callable[[dict], object]:
    def change(trace: dict) -> None:
        node = trace
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


BAD_LINES = [
    # (bad line, expected message after FILE:LINE:)
    (mutate(call(tier="high")), 'steps[0].model_call.tier: expected an int 1..5, got "high"'),
    (mutate(call(tier=0)), "steps[0].model_call.tier: expected an int 1..5, got 0"),
    (mutate(call(tier=6)), "steps[0].model_call.tier: expected an int 1..5, got 6"),
    (mutate(call(tier=True)), "steps[0].model_call.tier: expected an int 1..5, got true"),
    (mutate(call(tier=2.0)), "steps[0].model_call.tier: expected an int 1..5, got 2.0"),
    (mutate(call(cost=-0.5)), "steps[0].model_call.cost: expected a number >= 0, got -0.5"),
    (mutate(call(cost=False)), "steps[0].model_call.cost: expected a number >= 0, got false"),
    (
        mutate(call(input_tokens=-1)),
        "steps[0].model_call.input_tokens: expected an int >= 0 or null, got -1",
    ),
    (
        mutate(call(output_tokens=1.5)),
        "steps[0].model_call.output_tokens: expected an int >= 0 or null, got 1.5",
    ),
    (
        mutate(call(cached_input_tokens="3")),
        'steps[0].model_call.cached_input_tokens: expected an int >= 0 or null, got "3"',
    ),
    (
        mutate(call(escalated_from=9)),
        "steps[0].model_call.escalated_from: expected an int 1..5 or null, got 9",
    ),
    (
        mutate(call(mean_logprob=0.1)),
        "steps[0].model_call.mean_logprob: expected a number <= 0 or null, got 0.1",
    ),
    (
        mutate(call(min_logprob=2)),
        "steps[0].model_call.min_logprob: expected a number <= 0 or null, got 2",
    ),
    (
        mutate(call(latency_ms="fast")),
        'steps[0].model_call.latency_ms: expected a number or null, got "fast"',
    ),
    (mutate(call(model_id=7)), "steps[0].model_call.model_id: expected a string, got 7"),
    (
        mutate(drop("steps", 0, "model_call", "model_id")),
        "steps[0].model_call.model_id: required field is missing; expected a string",
    ),
    (
        mutate(drop("steps", 0, "model_call", "cost")),
        "steps[0].model_call.cost: required field is missing; expected a number >= 0",
    ),
    (
        mutate(drop("steps", 0, "model_call", "tier")),
        "steps[0].model_call.tier: required field is missing; expected an int 1..5",
    ),
    (
        mutate(call(input_tokens=2**63)),  # past the Int64 column
        f"steps[0].model_call.input_tokens: expected an int >= 0 or null, got {2**63}",
    ),
    (
        mutate(lambda t: t["steps"][0].update(step_num=2**31)),
        f"steps[0].step_num: expected an int >= 1, got {2**31}",
    ),
    (mutate(tool(success=1)), "steps[0].tool_calls[0].success: expected true or false, got 1"),
    (mutate(tool(cost=-1)), "steps[0].tool_calls[0].cost: expected a number >= 0, got -1"),
    (
        mutate(drop("steps", 0, "tool_calls", 0, "tool_name")),
        "steps[0].tool_calls[0].tool_name: required field is missing; expected a string",
    ),
    (
        mutate(lambda t: t["steps"][0].update(step_num=0)),
        "steps[0].step_num: expected an int >= 1, got 0",
    ),
    (
        mutate(lambda t: t["steps"][0].update(verifier_called=0)),
        "steps[0].verifier_called: expected true or false, got 0",
    ),
    (
        mutate(lambda t: t["steps"][0].update(verifier_passed="yes")),
        'steps[0].verifier_passed: expected true, false or null, got "yes"',
    ),
    (
        mutate(lambda t: t["steps"][0].update(tool_calls=None)),
        "steps[0].tool_calls: expected a list of tool-call objects, got null",
    ),
    (
        mutate(lambda t: t["steps"][0].update(model_call=[])),
        "steps[0].model_call: expected an object or null, got an array",
    ),
    (mutate(lambda t: t["steps"].append(3)), "steps[1]: expected a step object, got 3"),
    (mutate(top(steps={})), "steps: expected a list of step objects, got an object"),
    (mutate(drop("steps")), "steps: required field is missing; expected a list of step objects"),
    (mutate(top(difficulty=6)), "difficulty: expected an int 1..5 or null, got 6"),
    (mutate(top(difficulty=0)), "difficulty: expected an int 1..5 or null, got 0"),
    (mutate(top(predicted_tier="4")), 'predicted_tier: expected an int 1..5 or null, got "4"'),
    (
        mutate(top(final_outcome="done")),
        'final_outcome: expected one of completed, failed, aborted, budget_exceeded, got "done"',
    ),
    (mutate(top(task_success=1)), "task_success: expected true, false or null, got 1"),
    (mutate(top(task_success="true")), 'task_success: expected true, false or null, got "true"'),
    (
        mutate(drop("task_success")),
        "task_success: required field is missing; expected true, false or null",
    ),
    (mutate(top(total_cost="0.1")), 'total_cost: expected a number >= 0, got "0.1"'),
    (mutate(top(total_cost=-0.01)), "total_cost: expected a number >= 0, got -0.01"),
    (mutate(drop("total_cost")), "total_cost: required field is missing; expected a number >= 0"),
    (mutate(top(trace_id="")), 'trace_id: expected a non-empty string, got ""'),
    (mutate(top(trace_id=12)), "trace_id: expected a non-empty string, got 12"),
    (mutate(drop("trace_id")), "trace_id: required field is missing; expected a non-empty string"),
    (mutate(drop("request")), "request: required field is missing; expected a string"),
    (mutate(top(request_id=5)), "request_id: expected a string or null, got 5"),
    (mutate(top(task_type=["coding"])), "task_type: expected a string or null, got an array"),
    (mutate(top(source=False)), "source: expected a string or null, got false"),
    (
        mutate(top(schema_version=2)),
        "schema_version: expected 1 (this loader reads trace format v1), got 2",
    ),
    (mutate(top(metadata=[1])), "metadata: expected an object or null, got an array"),
    (mutate(top(metadata="note")), 'metadata: expected an object or null, got "note"'),
    (
        mutate(top(timestamp="yesterday")),
        "timestamp: expected an RFC 3339 date-time string (e.g. 2025-01-31T12:00:00Z) or null,"
        ' got "yesterday"',
    ),
    (mutate(top(timestamp="2025-02-30T00:00:00Z")), 'got "2025-02-30T00:00:00Z"'),
    (mutate(top(timestamp=1735689600)), "timestamp: expected an RFC 3339"),
    ("[1, 2]", "expected a JSON object (one trace per line), got an array"),
    ('"just a string"', 'expected a JSON object (one trace per line), got "just a string"'),
    ('{"trace_id": "x", oops}', "invalid JSON: object keys must be strings near column 19"),
    ('{"trace_id": "x"', "invalid JSON: the line ends before the JSON value is complete"),
    (
        mutate(top()) + " x",
        f"invalid JSON: trailing characters near column {len(mutate(top())) + 2}",
    ),
    ('{"request": "été", "x": tru}', "invalid JSON: invalid character near column 26"),
    (
        mutate(top(total_cost=1)).replace('"total_cost": 1', '"total_cost": 1e999'),
        "total_cost: number out of range; expected a number >= 0",
    ),
]


@pytest.mark.parametrize(("bad_line", "message"), BAD_LINES)
def test_each_rule_rejects_the_bad_line_with_its_line_number(
    tmp_path: Path, bad_line: str, message: str
) -> None:
    path = tmp_path / "a.jsonl"
    good = [json.dumps({**GOOD, "trace_id": f"g{i}"}) for i in range(3)]
    path.write_text("\n".join([good[0], "", good[1], bad_line, good[2]]) + "\n", encoding="utf-8")
    tables = read_traces(path, on_error="skip")
    (rejection,) = tables.rejected
    assert rejection.line == 4
    assert rejection.error.startswith(f"{path}:4: ")
    assert message in rejection.error
    assert rejection.raw == bad_line
    assert tables.runs[S.TRACE_ID].to_list() == ["g0", "g1", "g2"]
    assert tables.lines_read == 4


def test_messages_follow_file_line_path_what_allowed(tmp_path: Path) -> None:
    steps = [GOOD["steps"][0]] * 2 + [
        {"step_num": 3, "model_call": {"model_id": "m", "tier": "high", "cost": 0.1}}
    ]
    path = tmp_path / "traces" / "a.jsonl"
    path.parent.mkdir()
    path.write_text("\n" * 1041 + mutate(top(steps=steps)) + "\n")
    (rejection,) = read_traces(path, on_error="skip").rejected
    assert rejection.error == (
        f'{path}:1042: steps[2].model_call.tier: expected an int 1..5, got "high"'
    )


def test_invalid_utf8_is_rejected_with_its_column(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"trace_id": "ab\xff"}\n')
    (rejection,) = read_traces(path, on_error="skip").rejected
    assert (rejection.line, rejection.raw) == (2, '{"trace_id": "ab\ufffd"}')
    assert "not valid UTF-8 at column 17" in rejection.error


def test_duplicate_trace_id_rejects_the_later_line_naming_the_first(tmp_path: Path) -> None:
    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    first.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "trace_id": "other"}) + "\n")
    dup = json.dumps({**GOOD, "request": "a different run, same id"})
    second.write_text("\n" + dup + "\n" + dup + "\n")
    tables = read_traces([second, first], on_error="skip")
    assert [(r.file, r.line) for r in tables.rejected] == [(str(second), 2), (str(second), 3)]
    assert tables.rejected[0].error == (
        f'{second}:2: trace_id: "good" already used at {first}:1;'
        " trace_id must be unique across all inputs"
    )
    assert tables.rejected[0].raw == dup
    assert tables.runs[S.TRACE_ID].to_list() == ["good", "other"]
    assert tables.steps.height == 2 and tables.tool_calls.height == 2  # the duplicates' rows left
    assert tables.lines_read == 4


@pytest.mark.parametrize(
    ("total_cost", "warned"),
    [(0.1, False), (0.1 + 1e-12, False), (0.100001, True), (0.2, True), (0.0, True)],
)
def test_total_cost_off_the_sum_of_call_costs_warns_and_keeps_the_run(
    tmp_path: Path, total_cost: float, warned: bool
) -> None:
    trace = copy.deepcopy(GOOD)
    trace["total_cost"] = total_cost
    trace["steps"][0]["tool_calls"][0]["cost"] = 0.02
    trace["steps"][0]["model_call"]["cost"] = 0.08
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(trace) + "\n")
    tables = read_traces(path)
    assert tables.runs.height == 1
    if warned:
        (warning,) = tables.warnings
        assert warning.startswith(f"{path}:1: total_cost: {total_cost} differs from the sum")
        assert "(model 0.08 + tools 0.02)" in warning
    else:
        assert tables.warnings == ()


def test_expected_covers_every_field_path_of_the_format() -> None:
    assert expected("steps[12].tool_calls[3].cost") == "a number >= 0"
    assert expected("steps[0].model_call.tier") == "an int 1..5"
    assert describe_value_error("difficulty", "x" * 100).endswith('..."')
