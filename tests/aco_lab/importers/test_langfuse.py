"""`aco-lab import --from langfuse`: Langfuse traces and observations round-trip to v1."""

import json
from pathlib import Path

import pytest

from aco.prices import load_price_snapshot
from aco_lab.importers import import_traces, read_langfuse
from aco_lab.traces.reading import read_traces
from tests.aco_lab.importers.roundtrip import RUNS, TIERS, comparable, events, iso

FIXTURE = Path(__file__).parent / "fixtures" / "langfuse_traces.json"


def to_langfuse(run: dict) -> dict:
    """A run as the Langfuse public API returns a trace (GET /api/public/traces/{id})."""
    root = f"{run['trace_id']}-agent"
    observations = [
        {
            "id": root,
            "traceId": run["trace_id"],
            "type": "AGENT",
            "name": "agent",
            "startTime": iso(0),
            "endTime": iso(30),
            "parentObservationId": None,
            "level": "ERROR" if run["final_outcome"] == "failed" else "DEFAULT",
            "statusMessage": "agent raised" if run["final_outcome"] == "failed" else None,
        }
    ]
    for t, kind, _, item in events(run):
        base = {
            "id": f"{run['trace_id']}-{t}",
            "traceId": run["trace_id"],
            "parentObservationId": root,
            "startTime": iso(t),
            "endTime": iso(t + 0.5),
        }
        if kind == "tool":
            observations.append(
                {
                    **base,
                    "type": "TOOL",
                    "name": item["tool_name"],
                    "level": "DEFAULT" if item["success"] else "ERROR",
                }
            )
            continue
        usage = {
            "input": item["input_tokens"],
            "output": item["output_tokens"],
            "total": item["input_tokens"] + item["output_tokens"],
        }
        if item["cached_input_tokens"] is not None:
            usage["input_cached_tokens"] = item["cached_input_tokens"]
        generation = {
            **base,
            "type": "GENERATION",
            "name": "chat",
            "model": item["model_id"],
            "modelParameters": {"temperature": 0},
            "level": "DEFAULT",
            "input": [{"role": "user", "content": run["request"]}],
            "usageDetails": usage,
            "costDetails": {},
        }
        if item["cost"] is not None:
            generation["costDetails"] = {
                "input": item["cost"] * 0.4,
                "output": item["cost"] * 0.6,
                "total": item["cost"],
            }
        observations.append(generation)
    scores = (
        []
        if run["task_success"] is None
        else [{"name": "task_success", "value": int(run["task_success"]), "dataType": "BOOLEAN"}]
    )
    return {
        "id": run["trace_id"],
        "timestamp": iso(0),
        "name": "support-agent",
        "input": {"input": run["request"]},
        "output": None,
        "environment": "default",
        "htmlPath": f"/project/demo/traces/{run['trace_id']}",
        "scores": scores,
        "observations": observations,
    }


@pytest.mark.parametrize("layout", ["traces", "page", "observations-jsonl"])
def test_round_trip(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "export.json"
    traces = [to_langfuse(run) for run in RUNS]
    if layout == "traces":
        path.write_text(json.dumps(traces))
    elif layout == "page":  # a list endpoint's page
        path.write_text(json.dumps({"data": traces, "meta": {"page": 1, "totalItems": 3}}))
    else:  # traces without their observations, and the observations on lines of their own
        path = tmp_path / "export.jsonl"
        lines = [{**t, "observations": [o["id"] for o in t["observations"]]} for t in traces]
        lines += [o for t in traces for o in t["observations"]]
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "traces.jsonl"
    result = import_traces(read_langfuse, [path], out, tiers=TIERS)
    imported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [comparable(t) for t in imported] == [comparable(run) for run in RUNS]
    # Counts reconcile: 3 traces + 11 observations; the 3 AGENT observations are skipped.
    assert (result.records, result.skipped, result.runs, result.written) == (14, 3, 3, 3)
    costs = [s["model_call"]["cost"] for t in imported for s in t["steps"]]
    sonnet = load_price_snapshot().find("claude-sonnet-4-5").cost(3000, 400)
    assert costs == [0.00025, 0.0069, pytest.approx(sonnet), 0.00285]
    assert imported[1]["metadata"]["cost_sources"] == {"steps[0].model_call.cost": "price_snapshot"}
    assert not read_traces(out, strict=True).rejected


def test_the_committed_fixture(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    result = import_traces(read_langfuse, [FIXTURE], out, tiers=TIERS)
    assert (result.runs, result.written, result.problems) == (3, 3, ())
    assert [comparable(json.loads(t)) for t in out.read_text().splitlines()] == [
        comparable(run) for run in RUNS
    ]


def test_a_generation_without_a_model_is_reported_where_it_is(tmp_path: Path) -> None:
    trace = to_langfuse(RUNS[0])
    del trace["observations"][1]["model"]
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"data": [trace, to_langfuse(RUNS[2])]}))
    result = import_traces(
        read_langfuse, [path], tmp_path / "t.jsonl", tiers=TIERS, on_error="skip"
    )
    assert result.problems == (
        f"{path}:data[0].observations[1]: model: a generation names no model",
    )
    assert (result.runs, result.written, result.rejected) == (2, 1, 1)
