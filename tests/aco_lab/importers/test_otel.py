"""`aco-lab import --from otel`: OTLP/JSON GenAI spans -> trace format v1, checked strictly."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.config import ACOConfig, TierSpec
from aco.errors import DataError
from aco.prices import load_price_snapshot
from aco_lab.cli import main
from aco_lab.importers import import_traces, read_otel
from aco_lab.traces.reading import read_traces

FIXTURES = Path(__file__).parent / "fixtures"
OTEL = FIXTURES / "otel_genai.json"
TIERS = {"gpt-4o-mini": 1, "gpt-4o": 4, "claude-sonnet-4-5": 4}


def _import(tmp_path: Path, *paths: Path, **options) -> tuple[object, list[dict]]:
    out = tmp_path / "traces.jsonl"
    result = import_traces(read_otel, list(paths or [OTEL]), out, tiers=TIERS, **options)
    return result, [json.loads(line) for line in out.read_text().splitlines()]


def test_both_generations_of_attributes_tools_and_errors(tmp_path: Path) -> None:
    result, (agent, old) = _import(tmp_path)
    # 9 spans: 2 runs' GenAI spans and their roots; an HTTP span and a plain root are skipped.
    assert (result.records, result.skipped, result.invalid, result.runs, result.written) == (
        9,
        2,
        0,
        2,
        2,
    )
    calls = [s["model_call"] for s in agent["steps"]]
    assert [
        (c["model_id"], c["tier"], c["input_tokens"], c["output_tokens"], c["cached_input_tokens"])
        for c in calls
    ] == [("gpt-4o-mini-2024-07-18", 1, 1200, 85, 1024), ("gpt-4o-2024-08-06", 4, 1800, 240, None)]
    mini = load_price_snapshot().find("gpt-4o-mini-2024-07-18")
    assert calls[0]["cost"] == pytest.approx(mini.cost(1200, 85, 1024))
    assert calls[1]["cost"] == 0.0069  # the span's gen_ai.usage.cost
    assert agent["metadata"]["cost_sources"] == {
        "steps[0].model_call.cost": "price_snapshot",
        "steps[1].model_call.cost": "reported",
    }
    assert [(t["tool_name"], t["success"]) for t in agent["steps"][0]["tool_calls"]] == [
        ("search_docs", True),
        ("status_page", False),
    ]
    assert (agent["request"], agent["final_outcome"], agent["task_success"]) == (
        "Why do users see login errors?",
        "completed",
        None,
    )
    assert agent["timestamp"] == "2025-12-04T09:20:00.000000+00:00"
    # The older generation: gen_ai.system, prompt/completion tokens, indexed prompts.
    call = old["steps"][0]["model_call"]
    assert (call["input_tokens"], call["output_tokens"]) == (3000, 400)
    assert call["cost"] == pytest.approx(
        load_price_snapshot().find("claude-sonnet-4-5").cost(3000, 400)
    )
    assert (old["request"], old["final_outcome"], old["task_success"]) == (
        "Summarize the incident report",
        "failed",
        False,
    )
    assert old["steps"][0]["tool_calls"] == [
        {
            "tool_name": "fetch_report",
            "success": True,
            "cost": 0.0,
            "latency_ms": pytest.approx(300.0),
        }
    ]


def test_the_result_passes_strict_validation(tmp_path: Path) -> None:
    _import(tmp_path)
    tables = read_traces(tmp_path / "traces.jsonl", strict=True)
    assert tables.runs.height == 2 and not tables.rejected and not tables.warnings
    assert tables.runs["input_tokens"].to_list() == [3000, 3000]  # sums: 1200+1800, 3000


def test_jsonl_exports_from_several_files_join_by_trace_id(tmp_path: Path) -> None:
    doc = json.loads(OTEL.read_text())
    first, second = doc["resourceSpans"][0], doc["resourceSpans"][1]
    spans = first["scopeSpans"][0]["spans"]
    a = tmp_path / "a.jsonl"  # the collector's file exporter: one request per line
    a.write_text(
        json.dumps({"resourceSpans": [{**first, "scopeSpans": [{"spans": spans[:3]}]}]})
        + "\n"
        + json.dumps({"resourceSpans": [second]})
        + "\n"
    )
    b = tmp_path / "b.json"
    b.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans[3:]}]}]}))
    result, traces = _import(tmp_path, a, b)
    assert (result.records, result.runs) == (9, 2)
    assert sorted(len(t["steps"]) for t in traces) == [1, 2]


def _with_bad_tokens(tmp_path: Path) -> Path:
    doc = json.loads(OTEL.read_text())
    span = doc["resourceSpans"][1]["scopeSpans"][0]["spans"][1]
    span["attributes"] = [a for a in span["attributes"] if a["key"] != "gen_ai.usage.prompt_tokens"]
    span["attributes"].append(
        {"key": "gen_ai.usage.prompt_tokens", "value": {"stringValue": "lots"}}
    )
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_bad_span_names_its_file_and_position(tmp_path: Path) -> None:
    bad = _with_bad_tokens(tmp_path)
    with pytest.raises(
        DataError,
        match=r"bad\.json:resourceSpans\[1\]\.scopeSpans\[0\]"
        r"\.spans\[1\]: gen_ai\.usage\.input_tokens: expected",
    ):
        _import(tmp_path, bad)
    assert not (tmp_path / "traces.jsonl").exists()  # nothing written
    result, traces = _import(tmp_path, bad, on_error="skip")
    assert (result.runs, result.written, result.rejected, len(result.problems)) == (2, 1, 1, 1)
    assert [t["trace_id"] for t in traces] == ["5b8efff798038103d269b633813fc60c"]


OTHER_MODELS = ACOConfig(tiers=(TierSpec(1, "small-model"), TierSpec(5, "large-model")))


def test_a_model_without_a_tier_is_a_problem_that_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"model 'claude-sonnet-4-5' has no tier; pass "
        r"--tier claude-sonnet-4-5=N",
    ):
        import_traces(
            read_otel,
            [OTEL],
            tmp_path / "t.jsonl",
            config=OTHER_MODELS,
            tiers={"gpt-4o-mini": 1, "gpt-4o": 4},
        )


def test_the_command(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    args = ["import", "--from", "otel", str(OTEL), "--out", str(out)]
    tiers = [x for m, t in TIERS.items() for x in ("--tier", f"{m}={t}")]
    done = CliRunner().invoke(main, [*args, *tiers])
    assert done.exit_code == 0, done.output
    assert "records=9 skipped=2 invalid=0 runs=2 written=2 rejected=0" in done.output
    failed = CliRunner().invoke(main, args)
    assert failed.exit_code == 1 and "has no tier" in failed.output


def test_spans_from_the_opentelemetry_sdk_round_trip(tmp_path: Path) -> None:
    """Spans made with the real SDK and encoded by the real OTLP encoder import exactly."""
    pytest.importorskip("opentelemetry.sdk")
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "invoke_agent",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Plan the trip"}]}]
            ),
        },
    ):
        with tracer.start_as_current_span(
            "chat",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 321,
                "gen_ai.usage.output_tokens": 54,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "book"},
        ) as tool:
            tool.set_status(Status(StatusCode.ERROR, "sold out"))
    path = tmp_path / "sdk.json"
    path.write_text(MessageToJson(encode_spans(exporter.get_finished_spans())))
    result, [trace] = _import(tmp_path, path)
    assert result.records == 3 and trace["request"] == "Plan the trip"
    call = trace["steps"][0]["model_call"]
    assert (call["input_tokens"], call["output_tokens"], call["tier"]) == (321, 54, 1)
    assert trace["steps"][0]["tool_calls"][0]["success"] is False
    assert len(trace["trace_id"]) == 32  # base64 ids of protobuf's JSON mapping, as hex
