"""Outcomes known after the run: appended beside the traces, joined when the traces are read."""

import json
from pathlib import Path

import pytest

from aco.config import ACOConfig
from aco.errors import TraceFormatError
from aco.optimizer import ACOOptimizer
from aco.outcomes import apply_outcomes, is_outcomes_file, read_outcomes


@pytest.fixture
def opt(tmp_path: Path) -> ACOOptimizer:
    return ACOOptimizer(ACOConfig(trace_dir=str(tmp_path / "traces")))


def _runs(opt: ACOOptimizer, n: int) -> list[str]:
    ids = []
    for i in range(n):
        with opt.begin(f"Close ticket {i}") as run:
            run.record_call(1, 0.5)
        ids.append(run.trace_id)
    return ids


def test_record_outcome_appends_and_never_rewrites_the_trace(opt: ACOOptimizer) -> None:
    ids = _runs(opt, 2)
    before = opt.trace_log.path.read_bytes()
    line = opt.record_outcome(ids[0], True)
    assert opt.trace_log.path.read_bytes() == before
    outcomes_file = opt.trace_log.directory / "outcomes.jsonl"
    assert [json.loads(t) for t in outcomes_file.read_text().splitlines()] == [line]
    assert set(line) == {"trace_id", "task_success", "recorded_at"}


def test_the_latest_outcome_wins(opt: ACOOptimizer) -> None:
    ids = _runs(opt, 1)
    opt.record_outcome(ids[0], True)
    opt.record_outcome(ids[0], False)  # a correction
    latest, problems = read_outcomes([opt.trace_log.directory / "outcomes.jsonl"])
    assert latest[ids[0]].task_success is False and latest[ids[0]].line == 2 and not problems


def test_stats_count_labelled_runs_only(opt: ACOOptimizer) -> None:
    ids = _runs(opt, 5)
    opt.record_outcome(ids[0], True)
    stats = opt.stats()
    assert (stats["runs"], stats["successes"], stats["success_rate"]) == (5, 1, 1.0)
    assert stats["labelled_share"] == pytest.approx(0.2)
    assert stats["cost_per_success"] == pytest.approx(0.5)  # the labelled run's cost, not 5 x


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"trace_id": "t1", "task_success": "yes"}', "task_success: expected true or false"),
        ('{"task_success": true}', "trace_id: expected a non-empty string"),
        ("{not json", "invalid JSON"),
    ],
)
def test_bad_outcome_lines_are_named_by_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text('{"trace_id": "t0", "task_success": true}\n\n' + line + "\n")
    latest, problems = read_outcomes([path])
    assert list(latest) == ["t0"]
    assert problems == [pytest.approx(problems[0])] and problems[0].startswith(f"{path}:3: ")
    assert message in problems[0]


def test_record_outcome_refuses_a_non_bool(opt: ACOOptimizer) -> None:
    with pytest.raises(TraceFormatError, match="success: expected true or false"):
        opt.record_outcome("t1", 1)


def test_apply_and_file_names() -> None:
    traces = [{"trace_id": "a", "task_success": None}, {"trace_id": "b", "task_success": True}]
    latest, _ = ({}, [])
    assert list(apply_outcomes(traces, latest)) == traces
    assert is_outcomes_file("x/outcomes.jsonl") and is_outcomes_file("x/june.outcomes.jsonl")
    assert not is_outcomes_file("x/traces.jsonl")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"trace_id": "t", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested too deeply"),
        (b'{"trace_id": "t\xff", "task_success": true}', "not valid UTF-8 at column 16"),
    ],
)
def test_a_hostile_outcome_line_is_one_problem(tmp_path: Path, raw: bytes, problem: str) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"trace_id": "a", "task_success": true}\n' + raw + b"\n")
    latest, problems = read_outcomes([path])
    assert list(latest) == ["a"]  # a leading byte order mark is dropped
    assert len(problems) == 1 and problems[0].startswith(f"{path}:2: ")
    assert problem in problems[0]
