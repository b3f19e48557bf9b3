"""Strict reading: unknown keys named by field path, with the field probably meant."""

import json
from pathlib import Path

import pytest

from aco_lab.traces.chunks import ChunkTask, read_chunk
from aco_lab.traces.reading import read_traces
from aco_lab.traces.strict_keys import unknown_key_problem, unknown_keys

STEP = {
    "step_num": 1,
    "model_call": {"model_id": "m", "tier": 2, "cost": 0.1},
    "tool_calls": [{"tool_name": "grep", "success": True, "cost": 0.0}],
}


def trace(trace_id: str = "t", step: dict | None = None, **extra) -> dict:
    return {
        "trace_id": trace_id,
        "request": "r",
        "steps": [step or STEP],
        "final_outcome": "completed",
        "task_success": True,
        "total_cost": 0.1,
        "metadata": {"anything": {"goes": 1}},
        **extra,
    }


def test_a_trace_of_known_keys_has_none() -> None:
    assert unknown_keys(trace()) == []
    assert unknown_key_problem(json.dumps(trace()).encode()) is None


def test_every_level_is_searched_in_document_order() -> None:
    step = {
        **STEP,
        "lat": 1,
        "model_call": {**STEP["model_call"], "teir": 3},
        "tool_calls": [STEP["tool_calls"][0], {**STEP["tool_calls"][0], "sucess": True}],
    }
    found = [path for path, _ in unknown_keys(trace(step=step, difficuly=3))]
    assert found == [
        "difficuly",
        "steps[0].lat",
        "steps[0].model_call.teir",
        "steps[0].tool_calls[1].sucess",
    ]


@pytest.mark.parametrize(
    ("extra", "step", "message_start"),
    [
        (
            {"difficuly": 3},
            None,
            'difficuly: not a field of trace format v1 (did you mean "difficulty"?)',
        ),
        (
            {},
            {**STEP, "model_call": {**STEP["model_call"], "teir": 3}},
            'steps[0].model_call.teir: not a field of trace format v1 (did you mean "tier"?)',
        ),
        (
            {},
            {**STEP, "tool_calls": [{**STEP["tool_calls"][0], "sucess": 1}]},
            "steps[0].tool_calls[0].sucess: not a field of trace format v1 "
            '(did you mean "success"?)',
        ),
        ({"zzz": 1}, None, "zzz: not a field of trace format v1 (strict"),
    ],
)
def test_the_message_names_the_path_and_the_likely_field(extra, step, message_start) -> None:
    message = unknown_key_problem(json.dumps(trace(step=step, **extra)).encode())
    assert message is not None and message.startswith(message_start)


def test_the_other_unknown_keys_are_listed_too() -> None:
    message = unknown_key_problem(json.dumps(trace(a=1, b=2)).encode())
    assert message is not None and "; also unknown: b (" in message


def test_model_call_null_and_no_tool_calls_are_fine() -> None:
    assert unknown_keys(trace(step={"step_num": 1, "model_call": None})) == []


def write(path: Path, traces: list[dict]) -> Path:
    path.write_text("".join(json.dumps(t) + "\n" for t in traces))
    return path


def test_read_chunk_rejects_only_under_strict(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [trace("a"), trace("b", difficuly=2), trace("c")])
    task = ChunkTask(str(path), 1, data=path.read_bytes())
    assert read_chunk(task).runs.height == 3
    strict = read_chunk(task, strict=True)
    assert strict.runs.get_column("trace_id").to_list() == ["a", "c"]
    assert strict.steps.get_column("trace_id").unique().sort().to_list() == ["a", "c"]
    assert strict.tool_calls.height == 2
    assert [r.line for r in strict.rejected] == [2] and strict.lines_read == 3
    assert strict.rejected[0].error.startswith(f"{path}:2: difficuly: not a field")
    assert strict.rejected[0].raw == json.dumps(trace("b", difficuly=2))


def test_read_traces_strict_in_worker_processes(tmp_path: Path) -> None:
    traces = [trace(f"t{i}", **({"sorce": "x"} if i % 7 == 0 else {})) for i in range(40)]
    path = write(tmp_path / "a.jsonl", traces)
    tables = read_traces(path, on_error="skip", workers=2, strict=True)
    assert [r.line for r in tables.rejected] == [i + 1 for i in range(0, 40, 7)]
    assert tables.runs.height + len(tables.rejected) == tables.lines_read == 40
    assert read_traces(path, workers=2).runs.height == 40
