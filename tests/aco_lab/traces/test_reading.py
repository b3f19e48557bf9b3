"""read_traces / expand_paths: schema edges, derived run columns, provenance, nothing lost."""

import datetime as dt
import gzip
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from aco.errors import DataError, TraceFormatError
from aco.trace_format import derive_request_id
from aco_lab.traces import schema as S
from aco_lab.traces.parser import split_lines
from aco_lab.traces.reading import TraceTables, expand_paths, read_traces


def make_trace(trace_id: str = "t1", **fields) -> dict:
    """A valid trace with one tier-2 call; keyword arguments replace or add fields."""
    trace = {
        "trace_id": trace_id,
        "request": "Summarise this contract.",
        "steps": [
            {"step_num": 1, "model_call": {"model_id": "m2", "tier": 2, "cost": 0.01}},
        ],
        "final_outcome": "completed",
        "task_success": True,
        "total_cost": 0.01,
    }
    trace.update(fields)
    return trace


def write_jsonl(path: Path, lines: list, gz: bool = False) -> Path:
    """Write dicts (as JSON) and strings (verbatim) one per line."""
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_tables_have_the_explicit_schemas(tmp_path: Path) -> None:
    tables = read_traces(write_jsonl(tmp_path / "a.jsonl", [make_trace()]))
    assert tables.runs.schema == S.RUNS_SCHEMA
    assert tables.steps.schema == S.STEPS_SCHEMA
    assert tables.tool_calls.schema == S.TOOL_CALLS_SCHEMA


def test_empty_inputs_give_empty_tables_with_schemas(tmp_path: Path) -> None:
    tables = read_traces(write_jsonl(tmp_path / "a.jsonl", ["", "   "]))
    assert (tables.runs.height, tables.lines_read, tables.rejected) == (0, 0, ())
    assert tables.runs.schema == S.RUNS_SCHEMA


CASCADE = make_trace(
    "cascade",
    total_cost=0.2135,
    steps=[
        {
            "step_num": 1,
            "model_call": {
                "model_id": "small",
                "tier": 1,
                "input_tokens": 100,
                "output_tokens": 10,
                "cost": 0.01,
            },
            "tool_calls": [
                {"tool_name": "search", "success": False, "cost": 0.002},
                {"tool_name": "search", "success": True, "cost": 0.0015},
            ],
        },
        {"step_num": 2, "action": "check", "verifier_called": True, "verifier_passed": False},
        {
            "step_num": 3,
            "model_call": {
                "model_id": "big-a",
                "tier": 3,
                "input_tokens": 200,
                "cached_input_tokens": 50,
                "cost": 0.1,
                "escalated_from": 1,
            },
        },
        {"step_num": 4, "model_call": {"model_id": "big-b", "tier": 3, "cost": 0.1}},
    ],
)


def test_derived_run_columns_of_a_cascade(tmp_path: Path) -> None:
    run = read_traces(write_jsonl(tmp_path / "a.jsonl", [CASCADE])).runs.row(0, named=True)
    assert run[S.N_STEPS] == 4
    assert run[S.TIER] == 3  # no predicted_tier: the highest tier called
    assert run[S.MODEL_ID] == "big-b"  # the last call at the highest tier
    assert (run[S.FIRST_TIER], run[S.MAX_TIER_CALLED], run[S.N_TIERS_CALLED]) == (1, 3, 2)
    assert run[S.FIRST_INPUT_TOKENS] == 100
    assert (run[S.INPUT_TOKENS], run[S.OUTPUT_TOKENS], run[S.CACHED_INPUT_TOKENS]) == (300, 10, 50)
    assert run[S.MODEL_COST] == pytest.approx(0.21)
    assert run[S.TOOL_COST] == pytest.approx(0.0035)
    assert (run[S.N_TOOL_CALLS], run[S.N_VERIFIER_CALLS], run[S.ESCALATED]) == (2, 1, True)


def test_steps_and_tool_calls_of_a_cascade(tmp_path: Path) -> None:
    tables = read_traces(write_jsonl(tmp_path / "a.jsonl", [CASCADE]))
    steps = tables.steps
    assert steps[S.STEP_INDEX].to_list() == [0, 1, 2, 3]
    assert steps[S.TIER].to_list() == [1, None, 3, 3]
    assert steps[S.COST].to_list() == [0.01, None, 0.1, 0.1]
    assert steps[S.N_TOOL_CALLS].to_list() == [2, 0, 0, 0]
    assert steps[S.N_TOOL_FAILURES].to_list() == [1, 0, 0, 0]
    assert steps[S.TOOL_COST].to_list() == pytest.approx([0.0035, 0.0, 0.0, 0.0])
    assert steps[S.VERIFIER_PASSED].to_list() == [None, False, None, None]
    assert steps[S.ESCALATED_FROM].to_list() == [None, None, 1, None]
    calls = tables.tool_calls
    assert calls[S.STEP_NUM].to_list() == [1, 1]
    assert calls[S.TOOL_SUCCESS].to_list() == [False, True]
    assert set(calls[S.TRACE_ID]) == {"cascade"}


def test_predicted_tier_wins_and_one_tier_is_not_an_escalation(tmp_path: Path) -> None:
    run = read_traces(write_jsonl(tmp_path / "a.jsonl", [make_trace(predicted_tier=4)])).runs
    assert (run[S.TIER][0], run[S.MAX_TIER_CALLED][0], run[S.ESCALATED][0]) == (4, 2, False)


def test_run_without_steps_stays_in_runs(tmp_path: Path) -> None:
    tables = read_traces(
        write_jsonl(tmp_path / "a.jsonl", [make_trace("empty", steps=[], total_cost=0.0)])
    )
    run = tables.runs.row(0, named=True)
    assert tables.steps.height == 0 and tables.tool_calls.height == 0
    assert (run[S.N_STEPS], run[S.TIER], run[S.MODEL_ID]) == (0, None, None)
    assert run[S.N_TIERS_CALLED] == 0
    assert (run[S.MODEL_COST], run[S.TOOL_COST], run[S.N_TOOL_CALLS]) == (0.0, 0.0, 0)
    assert (run[S.INPUT_TOKENS], run[S.ESCALATED]) == (None, False)


def test_token_sums_are_null_only_when_every_call_left_them_null(tmp_path: Path) -> None:
    steps = [
        {"step_num": 1, "model_call": {"model_id": "a", "tier": 1, "cost": 0.0}},
        {
            "step_num": 2,
            "model_call": {"model_id": "a", "tier": 1, "cost": 0.0, "output_tokens": 7},
        },
    ]
    run = read_traces(
        write_jsonl(tmp_path / "a.jsonl", [make_trace(steps=steps, total_cost=0.0)])
    ).runs.row(0, named=True)
    assert (run[S.INPUT_TOKENS], run[S.OUTPUT_TOKENS], run[S.FIRST_INPUT_TOKENS]) == (None, 7, None)


def test_missing_request_id_is_derived_from_the_request(tmp_path: Path) -> None:
    lines = [make_trace("a"), make_trace("b", request_id="r-9"), make_trace("c", request_id=None)]
    runs = read_traces(write_jsonl(tmp_path / "a.jsonl", lines)).runs
    derived = derive_request_id("Summarise this contract.")
    assert runs[S.REQUEST_ID].to_list() == [derived, "r-9", derived]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-31T12:00:00Z", dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)),
        ("2025-01-31T14:00:00.25+02:00", dt.datetime(2025, 1, 31, 12, 0, 0, 250000, dt.UTC)),
        ("2025-01-31 12:00:00z", dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)),
        ("2025-01-31T12:00:00", dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)),  # no offset: UTC
        (None, None),
    ],
)
def test_timestamps_become_utc_datetimes(tmp_path: Path, text, expected) -> None:
    runs = read_traces(write_jsonl(tmp_path / "a.jsonl", [make_trace(timestamp=text)])).runs
    assert runs[S.TIMESTAMP].to_list() == [expected]


def test_metadata_is_kept_as_json_text(tmp_path: Path) -> None:
    meta = {"estimated": ["input_tokens"], "note": "ünï 🚀"}
    lines = [make_trace("a", metadata=meta), make_trace("b", metadata=None), make_trace("c")]
    runs = read_traces(write_jsonl(tmp_path / "a.jsonl", lines)).runs
    assert json.loads(runs[S.METADATA][0]) == meta
    assert runs[S.METADATA].to_list()[1:] == [None, None]


def test_unicode_empty_strings_and_explicit_nulls(tmp_path: Path) -> None:
    steps = [
        {
            "step_num": 1,
            "action": "",
            "model_call": {
                "model_id": "m",
                "tier": 1,
                "cost": 0.0,
                "output_text": "答案是 42 🎉",
                "latency_ms": None,
                "input_tokens": None,
                "mean_logprob": None,
            },
            "verifier_passed": None,
        }
    ]
    line = make_trace(
        "ids-🚀-中文",
        request="",
        task_type=None,
        difficulty=None,
        source=None,
        steps=steps,
        task_success=None,
        total_cost=0,
    )
    tables = read_traces(write_jsonl(tmp_path / "a.jsonl", [line]))
    run = tables.runs.row(0, named=True)
    assert (run[S.TRACE_ID], run[S.REQUEST], run[S.TASK_SUCCESS]) == ("ids-🚀-中文", "", None)
    assert tables.steps[S.OUTPUT_TEXT].to_list() == ["答案是 42 🎉"]
    assert tables.steps[S.ACTION].to_list() == [""]


def test_unknown_extra_keys_are_ignored(tmp_path: Path) -> None:
    line = make_trace(extra_top={"x": 1})
    line["steps"][0]["model_call"]["vendor_field"] = [1, 2]
    tables = read_traces(write_jsonl(tmp_path / "a.jsonl", [line]))
    assert tables.runs.height == 1 and not tables.rejected


def test_a_key_first_appearing_late_is_kept(tmp_path: Path) -> None:
    late_step = [
        {
            "step_num": 1,
            "model_call": {"model_id": "m", "tier": 2, "cost": 0.01, "cached_input_tokens": 33},
        }
    ]
    write_jsonl(
        tmp_path / "a.jsonl",
        [make_trace(f"a{i}") for i in range(2000)]
        + [make_trace("late", task_type="coding", steps=late_step)],
    )
    write_jsonl(
        tmp_path / "b.jsonl", [make_trace("b", difficulty=5, timestamp="2025-01-01T00:00:00Z")]
    )
    tables = read_traces(tmp_path)
    runs = tables.runs
    assert runs.filter(pl.col(S.TRACE_ID) == "late")[S.TASK_TYPE].to_list() == ["coding"]
    assert runs.filter(pl.col(S.TRACE_ID) == "late")[S.CACHED_INPUT_TOKENS].to_list() == [33]
    assert runs.filter(pl.col(S.TRACE_ID) == "b")[S.DIFFICULTY].to_list() == [5]
    assert runs[S.TIMESTAMP].drop_nulls().len() == 1


def test_gzip_and_plain_files_read_the_same(tmp_path: Path) -> None:
    lines = [CASCADE, make_trace("x")]
    plain = read_traces(write_jsonl(tmp_path / "p" / "t.jsonl", lines))
    packed = read_traces(write_jsonl(tmp_path / "g" / "t.jsonl.gz", lines, gz=True))
    drop = [S.SOURCE_FILE]
    assert plain.runs.drop(drop).equals(packed.runs.drop(drop))
    assert plain.steps.drop(drop).equals(packed.steps.drop(drop))


def test_rows_carry_their_file_and_physical_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", ["", make_trace("a"), "  ", "", CASCADE])
    tables = read_traces(path)
    assert tables.runs[S.LINE].to_list() == [2, 5]
    assert set(tables.steps[S.SOURCE_FILE]) == {str(path)}
    assert tables.tool_calls[S.LINE].to_list() == [5, 5]
    assert tables.lines_read == 2  # blank lines are skipped and not counted


def test_line_numbers_continue_across_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("aco_lab.traces.chunk_plan.CHUNK_BYTES", 300)  # many small chunks
    lines = [make_trace(f"t{i}") if i % 7 else "" for i in range(1, 60)]
    lines.append('{"broken": ')
    tables = read_traces(write_jsonl(tmp_path / "a.jsonl", lines), on_error="skip")
    expected = [i for i in range(1, 60) if i % 7]
    assert tables.runs[S.LINE].to_list() == expected
    assert tables.runs[S.TRACE_ID].to_list() == [f"t{i}" for i in expected]
    assert [r.line for r in tables.rejected] == [60]


def test_last_line_without_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(make_trace("a")) + "\n" + json.dumps(make_trace("b")))
    assert read_traces(path).runs[S.TRACE_ID].to_list() == ["a", "b"]


def test_fail_mode_names_the_first_problems_and_the_count(tmp_path: Path) -> None:
    bad = make_trace("b", total_cost=-1)
    path = write_jsonl(tmp_path / "a.jsonl", [make_trace("a"), bad, "{oops"])
    with pytest.raises(TraceFormatError) as info:
        read_traces(path)
    message = str(info.value)
    assert message.startswith("2 of 3 lines break trace format v1")
    assert f"{path}:2: total_cost: expected a number >= 0, got -1" in message
    assert f"{path}:3: invalid JSON" in message
    assert "\n" not in message


def test_skip_mode_returns_the_rejected_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [make_trace("a"), "{oops", make_trace("b")])
    tables = read_traces(path, on_error="skip")
    assert tables.runs[S.TRACE_ID].to_list() == ["a", "b"]
    (rejection,) = tables.rejected
    assert (rejection.file, rejection.line, rejection.raw) == (str(path), 2, "{oops")


def test_on_error_must_be_fail_or_skip(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_error"):
        read_traces(write_jsonl(tmp_path / "a.jsonl", [make_trace()]), on_error="ignore")


# A line of each kind: good, bad JSON, bad type, blank.
LINE_KINDS = st.sampled_from(["good", "json", "type", "blank"])


@settings(max_examples=30, deadline=None)
@given(kinds=st.lists(LINE_KINDS, max_size=25))
def test_the_loader_never_loses_a_line(tmp_path_factory, kinds: list[str]) -> None:
    texts = {
        "json": '{"trace_id": ',
        "type": json.dumps(make_trace("x", total_cost="1")),
        "blank": "   ",
    }
    lines = [
        json.dumps(make_trace(f"t{i}")) if k == "good" else texts[k] for i, k in enumerate(kinds)
    ]
    path = write_jsonl(tmp_path_factory.mktemp("h") / "a.jsonl", lines)
    tables = read_traces(path, on_error="skip")
    assert tables.lines_read == tables.runs.height + len(tables.rejected)
    assert tables.lines_read == sum(k != "blank" for k in kinds)
    assert tables.runs.height == kinds.count("good")


def test_expand_paths_files_globs_dirs_sorted_and_deduplicated(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "d" / "a.jsonl", [make_trace()])
    b = write_jsonl(tmp_path / "d" / "sub" / "b.jsonl.gz", [make_trace()], gz=True)
    (tmp_path / "d" / "notes.txt").write_text("not a trace file")
    found = expand_paths([tmp_path / "d", str(tmp_path / "d" / "*.jsonl"), a])
    assert found == [a, b]


@pytest.mark.parametrize("given_path", ["missing.jsonl", "nothing-*.jsonl", "empty_dir"])
def test_expand_paths_names_what_matched_nothing(tmp_path: Path, given_path: str) -> None:
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match=str(tmp_path / given_path).replace("*", r"\*")):
        expand_paths([tmp_path / given_path])


def test_trace_tables_is_frozen(tmp_path: Path) -> None:
    tables = read_traces(write_jsonl(tmp_path / "a.jsonl", [make_trace()]))
    assert isinstance(tables, TraceTables)
    with pytest.raises(AttributeError):
        tables.lines_read = 3  # type: ignore[misc]


@pytest.mark.shared_data
def test_real_routerbench_traces_load_without_rejections(routerbench_dir: Path) -> None:
    tables = read_traces(routerbench_dir / "traces.jsonl.gz")
    assert (tables.runs.height, len(tables.rejected), tables.lines_read) == (17_578, 0, 17_578)
    assert tables.steps.height == 17_578  # one answer per run
    assert tables.runs[S.TIER].null_count() == 0
    # counterfactual data: the runs of one prompt share its request_id (11 models each)
    assert tables.runs.group_by(S.REQUEST_ID).len()["len"].max() == 11


@pytest.mark.shared_data
def test_real_tau_bench_traces_load_without_rejections(tau_bench_dir: Path) -> None:
    tables = read_traces(tau_bench_dir / "traces.jsonl.gz")
    assert (tables.runs.height, len(tables.rejected)) == (200, 0)
    assert tables.steps.height == tables.runs[S.N_STEPS].sum()
    assert tables.tool_calls.height == tables.runs[S.N_TOOL_CALLS].sum() > 0
    assert set(tables.runs[S.MODEL_ID]) == {"gpt-4o"}


def test_worker_processes_read_the_same_tables(tmp_path: Path, monkeypatch) -> None:
    # many chunks, several per worker
    monkeypatch.setattr("aco_lab.traces.chunk_plan.CHUNK_BYTES", 2000)
    lines = [CASCADE if i % 5 == 0 else make_trace(f"t{i}") for i in range(1, 40)]
    lines[7] = make_trace("t2")  # a duplicate, chunks after its first occurrence
    lines[11], lines[12] = "", '{"bad": '
    write_jsonl(tmp_path / "a.jsonl", lines)
    write_jsonl(tmp_path / "b.jsonl.gz", [make_trace(f"g{i}") for i in range(30)], gz=True)
    serial = read_traces(tmp_path, on_error="skip", workers=1)
    parallel = read_traces(tmp_path, on_error="skip", workers=2)
    assert parallel.runs.equals(serial.runs)
    assert parallel.steps.equals(serial.steps)
    assert parallel.tool_calls.equals(serial.tool_calls)
    assert parallel.rejected == serial.rejected
    # t2 again at line 8, the bad line 13, and CASCADE (first at line 5) every 5th line
    assert [(r.line, r.error.split(": ")[1]) for r in serial.rejected] == [
        (8, "trace_id"),
        (10, "trace_id"),
        (13, "invalid JSON"),
    ] + [(n, "trace_id") for n in (15, 20, 25, 30, 35)]
    assert serial.rejected[-1].error.endswith(
        f"already used at {tmp_path / 'a.jsonl'}:5; trace_id must be unique across all inputs"
    )
    assert serial.rejected[-1].raw == json.dumps(CASCADE)
    assert serial.lines_read == parallel.lines_read == 38 + 30


def test_a_script_without_main_guard_can_use_workers(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [make_trace(f"t{i}") for i in range(50)])
    script = tmp_path / "no_guard.py"  # reads at top level: spawned workers must not re-run it
    script.write_text(
        "from aco_lab.traces.reading import read_traces\n"
        f"print(read_traces({str(tmp_path / 'a.jsonl')!r}, workers=2).runs.height)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert (done.returncode, done.stdout) == (0, "50\n"), done.stderr


def reference_run_aggregates(runs: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    """The derived run columns as a plain Polars group_by over the steps table."""
    tier, called = pl.col(S.TIER), pl.col(S.TIER).is_not_null()

    def total_or_null(column: str) -> pl.Expr:
        return pl.when(pl.col(column).count() > 0).then(pl.col(column).sum()).alias(column)

    per_run = steps.group_by(S.SOURCE_FILE, S.LINE).agg(
        tier.filter(called).first().alias(S.FIRST_TIER),
        tier.max().alias(S.MAX_TIER_CALLED),
        tier.filter(called).n_unique().cast(pl.Int8).alias(S.N_TIERS_CALLED),
        pl.col(S.MODEL_ID).filter(tier == tier.max()).last(),
        pl.col(S.INPUT_TOKENS).filter(called).first().alias(S.FIRST_INPUT_TOKENS),
        total_or_null(S.INPUT_TOKENS),
        total_or_null(S.OUTPUT_TOKENS),
        total_or_null(S.CACHED_INPUT_TOKENS),
        pl.col(S.COST).sum().alias(S.MODEL_COST),
        pl.col(S.TOOL_COST).sum(),
        pl.col(S.N_TOOL_CALLS).sum().cast(pl.Int32),
        pl.col(S.VERIFIER_CALLED).sum().cast(pl.Int32).alias(S.N_VERIFIER_CALLS),
        pl.col(S.ESCALATED_FROM).is_not_null().any().alias("_escalated_from"),
    )
    derived = [
        S.FIRST_TIER,
        S.MAX_TIER_CALLED,
        S.N_TIERS_CALLED,
        S.MODEL_ID,
        S.FIRST_INPUT_TOKENS,
        S.INPUT_TOKENS,
        S.OUTPUT_TOKENS,
        S.CACHED_INPUT_TOKENS,
        S.MODEL_COST,
        S.TOOL_COST,
        S.N_TOOL_CALLS,
        S.N_VERIFIER_CALLS,
    ]
    joined = runs.drop(*derived, S.TIER, S.ESCALATED).join(
        per_run, on=[S.SOURCE_FILE, S.LINE], how="left", maintain_order="left"
    )
    return joined.with_columns(
        pl.coalesce(S.PREDICTED_TIER, S.MAX_TIER_CALLED).alias(S.TIER),
        pl.col(S.N_TIERS_CALLED).fill_null(0),
        pl.col(S.MODEL_COST, S.TOOL_COST).fill_null(0.0),
        pl.col(S.N_TOOL_CALLS, S.N_VERIFIER_CALLS).fill_null(0),
        (pl.col("_escalated_from").fill_null(False) | (pl.col(S.N_TIERS_CALLED) > 1))
        .fill_null(False)
        .alias(S.ESCALATED),
    ).select(S.RUNS_SCHEMA.names())


OPTIONAL_INT = st.one_of(st.none(), st.integers(0, 10**6), st.just(2**62))
MODEL_CALLS = st.fixed_dictionaries(
    {
        "model_id": st.sampled_from(["a", "b", "c"]),
        "tier": st.integers(1, 5),
        "cost": st.sampled_from([0, 0.1, 0.25, 1e-9, 3.0]),
    },
    optional={
        "input_tokens": OPTIONAL_INT,
        "output_tokens": OPTIONAL_INT,
        "cached_input_tokens": OPTIONAL_INT,
        "escalated_from": st.one_of(st.none(), st.integers(1, 5)),
    },
)
STEPS = st.lists(
    st.fixed_dictionaries(
        {"step_num": st.integers(1, 9)},
        optional={
            "model_call": st.one_of(st.none(), MODEL_CALLS),
            "tool_calls": st.lists(
                st.fixed_dictionaries(
                    {
                        "tool_name": st.just("t"),
                        "success": st.booleans(),
                        "cost": st.sampled_from([0, 0.01, 0.3]),
                    }
                ),
                max_size=3,
            ),
            "verifier_called": st.booleans(),
        },
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(runs=st.lists(st.tuples(STEPS, st.one_of(st.none(), st.integers(1, 5))), max_size=12))
def test_derived_run_columns_match_a_group_by_over_the_steps(tmp_path_factory, runs) -> None:
    lines = [
        make_trace(f"t{i}", steps=steps, predicted_tier=tier)
        for i, (steps, tier) in enumerate(runs)
    ]
    path = write_jsonl(tmp_path_factory.mktemp("agg") / "a.jsonl", lines)
    tables = read_traces(path)
    assert_frame_equal(tables.runs, reference_run_aggregates(tables.runs, tables.steps))


def test_decoding_in_batches_keeps_every_line_in_place(tmp_path: Path, monkeypatch) -> None:
    # line i: a trace when i % 4, else blank (4, 12, ...) or bad JSON (8, 16, ...)
    lines = [make_trace(f"t{i}") if i % 4 else ("" if i % 8 else '{"bad": ') for i in range(1, 40)]
    lines[9] = make_trace("t10", timestamp="yesterday")  # line 10: rejected after decoding
    path = write_jsonl(tmp_path / "a.jsonl", [*lines, CASCADE])
    whole = read_traces(path, on_error="skip")
    monkeypatch.setattr("aco_lab.traces.parser.BATCH_LINES", 3)  # many batches per chunk
    batched = read_traces(path, on_error="skip")
    for name in ("runs", "steps", "tool_calls"):
        assert_frame_equal(getattr(batched, name), getattr(whole, name))
    assert batched.rejected == whole.rejected
    assert [r.line for r in whole.rejected] == [8, 10, 16, 24, 32]
    assert whole.runs[S.LINE].to_list() == [i for i in range(1, 40) if i % 4 and i != 10] + [40]
    assert whole.steps.filter(pl.col(S.LINE) == 40)[S.STEP_INDEX].to_list() == [0, 1, 2, 3]


def test_split_lines_keeps_every_line_and_drops_the_line_ends() -> None:
    data = b'{"a": 1}\r\n\n  \n{"b": 2}'
    assert [bytes(line) for line in split_lines(data)] == [b'{"a": 1}\r', b"", b"  ", b'{"b": 2}']
    assert [bytes(line) for line in split_lines(b"x\n")] == [b"x"]
    assert split_lines(b"") == []
