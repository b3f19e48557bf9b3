"""`aco-lab import --from langsmith`: LangSmith run exports round-trip to v1."""

import json
from pathlib import Path

import pytest

from aco.prices import load_price_snapshot
from aco_lab.importers import import_traces, read_langsmith
from aco_lab.traces.reading import read_traces
from tests.aco_lab.importers.roundtrip import RUNS, TIERS, comparable, events, iso

FIXTURE = Path(__file__).parent / "fixtures" / "langsmith_runs.jsonl"


def to_langsmith(run: dict) -> list[dict]:
    """A run as LangSmith's list_runs returns its runs: the root chain, llm and tool runs."""
    trace_id = run["trace_id"]
    failed = run["final_outcome"] == "failed"
    feedback = (
        {}
        if run["task_success"] is None
        else {"task_success": {"n": 1, "avg": float(run["task_success"])}}
    )
    runs = [
        {
            "id": trace_id,
            "trace_id": trace_id,
            "parent_run_id": None,
            "run_type": "chain",
            "name": "AgentExecutor",
            "start_time": iso(0)[:-1],
            "end_time": iso(30)[:-1],
            "inputs": {"input": run["request"]},
            "outputs": None if failed else {"output": "ok"},
            "error": "ToolException: refund failed" if failed else None,
            "status": "error" if failed else "success",
            "feedback_stats": feedback,
            "dotted_order": f"20251204T090000000000Z{trace_id}",
            "tags": ["prod"],
        }
    ]
    for t, kind, _, item in events(run):
        base = {
            "id": f"{trace_id}-{t}",
            "trace_id": trace_id,
            "parent_run_id": trace_id,
            "start_time": iso(t)[:-1],
            "end_time": iso(t + 0.5)[:-1],
            "status": "success",
        }
        if kind == "tool":
            runs.append(
                {
                    **base,
                    "run_type": "tool",
                    "name": item["tool_name"],
                    "inputs": {"input": "..."},
                    "error": None if item["success"] else "ToolException: failed",
                    "status": "success" if item["success"] else "error",
                }
            )
            continue
        model = item["model_id"]
        llm = {
            **base,
            "run_type": "llm",
            "name": "ChatOpenAI",
            "extra": {
                "metadata": {"ls_model_name": model, "ls_provider": "openai"},
                "invocation_params": {"model": model, "temperature": 0},
            },
            "inputs": {"messages": [[{"role": "user", "content": run["request"]}]]},
            "prompt_tokens": item["input_tokens"],
            "completion_tokens": item["output_tokens"],
            "total_tokens": item["input_tokens"] + item["output_tokens"],
            "total_cost": None,
            "prompt_cost": None,
            "completion_cost": None,
        }
        if item["cached_input_tokens"] is not None:
            llm["prompt_token_details"] = {"cache_read": item["cached_input_tokens"]}
        if item["cost"] is not None:  # LangSmith writes costs as decimal strings
            llm["total_cost"] = f"{item['cost']:.8f}"
        runs.append(llm)
    return runs


@pytest.mark.parametrize("layout", ["jsonl", "array", "nested"])
def test_round_trip(tmp_path: Path, layout: str) -> None:
    exported = [to_langsmith(run) for run in RUNS]
    path = tmp_path / "runs.json"
    if layout == "jsonl":
        path = tmp_path / "runs.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for runs in exported for r in runs))
    elif layout == "array":
        path.write_text(json.dumps([r for runs in exported for r in runs]))
    else:  # one root run per record with its child runs nested
        path.write_text(json.dumps([{**runs[0], "child_runs": runs[1:]} for runs in exported]))
    out = tmp_path / "traces.jsonl"
    result = import_traces(read_langsmith, [path], out, tiers=TIERS)
    imported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [comparable(t) for t in imported] == [comparable(run) for run in RUNS]
    # 11 LangSmith runs: 3 roots (request, outcome), 4 llm and 4 tool runs; none skipped.
    assert (result.records, result.skipped, result.runs, result.written) == (11, 0, 3, 3)
    costs = [s["model_call"]["cost"] for t in imported for s in t["steps"]]
    sonnet = load_price_snapshot().find("claude-sonnet-4-5").cost(3000, 400)
    assert costs == [0.00025, 0.0069, pytest.approx(sonnet), 0.00285]
    assert not read_traces(out, strict=True).rejected


def test_the_committed_fixture(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    result = import_traces(read_langsmith, [FIXTURE], out, tiers=TIERS)
    assert (result.runs, result.written, result.problems) == (3, 3, ())
    assert [comparable(json.loads(t)) for t in out.read_text().splitlines()] == [
        comparable(run) for run in RUNS
    ]


def test_bad_token_counts_are_reported_where_they_are(tmp_path: Path) -> None:
    runs = to_langsmith(RUNS[2])
    runs[1]["prompt_tokens"] = -3
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in runs))
    result = import_traces(
        read_langsmith, [path], tmp_path / "t.jsonl", tiers=TIERS, on_error="skip"
    )
    assert result.problems == (f"{path}:2: prompt_tokens: expected a token count >= 0, got -3",)
    assert (result.records, result.runs, result.written) == (3, 1, 0)
