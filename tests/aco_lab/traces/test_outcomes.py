"""Outcomes recorded after the runs (`aco-lab label`, record_outcome), joined on reading."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.config import ACOConfig
from aco.optimizer import ACOOptimizer
from aco_lab.cli import main
from aco_lab.report.stats import compute_stats
from aco_lab.traces.reading import read_traces


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Path, list[str]]:
    """Five runs of 1 USD each, outcome unknown when they ended."""
    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path / "traces")))
    ids = []
    for i in range(5):
        with opt.begin(f"Close ticket {i}") as run:
            run.record_call(1, 1.0)
        ids.append(run.trace_id)
    return tmp_path / "traces", ids


def test_label_then_stats_count_labelled_runs_only(logged) -> None:
    trace_dir, ids = logged
    labelled = CliRunner().invoke(main, ["label", ids[0], "--success", "--traces", str(trace_dir)])
    assert labelled.exit_code == 0, labelled.output
    out = CliRunner().invoke(main, ["stats", str(trace_dir), "--json"])
    stats = json.loads(out.output)
    assert (stats["runs"], stats["successes"], stats["success_rate"]) == (5, 1, 1.0)
    assert stats["labelled_share"] == pytest.approx(0.2)
    assert stats["cost_per_success"] == pytest.approx(1.0)  # not 5 runs' cost over 1 success
    text = CliRunner().invoke(main, ["stats", str(trace_dir)]).output
    assert "labelled_share        20.0%" in text


def test_the_latest_label_wins_and_the_trace_file_is_untouched(logged) -> None:
    trace_dir, ids = logged
    before = (trace_dir / "traces.jsonl").read_bytes()
    for flag in ("--success", "--failure"):
        CliRunner().invoke(main, ["label", ids[1], ids[2], flag, "--traces", str(trace_dir)])
    runs = read_traces(trace_dir).runs
    assert (trace_dir / "traces.jsonl").read_bytes() == before
    success = dict(zip(runs["trace_id"].to_list(), runs["task_success"].to_list(), strict=True))
    assert [success[i] for i in ids] == [None, False, False, None, None]
    assert compute_stats(runs).labelled_share == pytest.approx(0.4)


def test_outcome_problems_are_warnings_and_lines_reconcile(logged) -> None:
    trace_dir, ids = logged
    with open(trace_dir / "outcomes.jsonl", "a") as out:
        out.write('{"trace_id": "nope", "task_success": true}\n{"trace_id": 3}\n')
    tables = read_traces(trace_dir)
    assert tables.lines_read == 5 == tables.runs.height  # outcome lines are not trace lines
    assert len(tables.warnings) == 2
    assert tables.warnings[0].endswith(
        ":2: trace_id: expected a non-empty string, got 3; the outcome line is ignored"
    )
    assert "'nope' is in no trace read" in tables.warnings[1]
    checked = CliRunner().invoke(main, ["validate", "--strict", str(trace_dir)])
    assert checked.exit_code == 0 and "read=5 accepted=5 rejected=0" in checked.output


def test_an_outcomes_file_can_be_named_beside_trace_files(logged, tmp_path: Path) -> None:
    trace_dir, ids = logged
    labels = tmp_path / "june.outcomes.jsonl"
    labels.write_text(json.dumps({"trace_id": ids[4], "task_success": True}) + "\n")
    runs = read_traces([trace_dir / "traces.jsonl", labels]).runs
    assert runs.filter(runs["trace_id"] == ids[4])["task_success"].to_list() == [True]
