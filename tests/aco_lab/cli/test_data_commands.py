"""`aco-lab validate` and `aco-lab ingest`: output, exit codes, wiring."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco_lab.cli import main

GOOD = {
    "trace_id": "a",
    "request": "hi",
    "steps": [],
    "final_outcome": "failed",
    "task_success": False,
    "total_cost": 0.0,
}


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "trace_id": "b"}) + "\n")
    return path


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps(GOOD),
        json.dumps({**GOOD, "trace_id": "c", "total_cost": 1.5}),
        json.dumps({**GOOD, "trace_id": "d", "difficulty": 9}),
        "",
        "{",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_validate_good_file_exits_0_with_summary(good_file: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(good_file)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "read=2 accepted=2 rejected=0\n"


def test_validate_bad_file_prints_every_problem_and_exits_1(bad_file: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(bad_file)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{bad_file}:3: difficulty: expected an int 1..5 or null, got 9",
        f"{bad_file}:5: invalid JSON: the line ends before the JSON value is complete",
        f"warning: {bad_file}:2: total_cost: 1.5 differs from the sum of call costs 0.0"
        " (model 0.0 + tools 0.0); the run is kept",
        "read=4 accepted=2 rejected=2",
    ]


def test_validate_json_summary(bad_file: Path, good_file: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "--json", str(bad_file), str(good_file)])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["read"], report["accepted"], report["rejected"]) == (6, 3, 3)
    # good.jsonl:1 reuses bad.jsonl:1's trace_id "a"
    assert [(p["file"], p["line"]) for p in report["problems"]] == [
        (str(bad_file), 3),
        (str(bad_file), 5),
        (str(good_file), 1),
    ]
    assert len(report["warnings"]) == 1


def test_validate_names_a_path_that_matches_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "nope-*.jsonl")])
    assert result.exit_code == 1
    assert (
        result.stderr == f"error: {tmp_path}/nope-*.jsonl: no file matches this pattern;"
        " check the glob and the folder\n"
    )


def test_ingest_skip_prints_counts_and_writes_the_dataset(tmp_path: Path, bad_file: Path) -> None:
    out = tmp_path / "ds"
    result = CliRunner().invoke(
        main, ["ingest", str(bad_file), "--out", str(out), "--on-error", "skip"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "read=4 accepted=2 rejected=2\n"
    assert len((out / "rejected.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "manifest.json").read_text())["counts"]["accepted"] == 2


def test_ingest_fails_by_default_on_bad_lines(tmp_path: Path, bad_file: Path) -> None:
    result = CliRunner().invoke(main, ["ingest", str(bad_file), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 2 of 4 lines break trace format v1: ")
    assert not (tmp_path / "ds").exists()


def test_ingest_refuses_to_overwrite_without_force(tmp_path: Path, good_file: Path) -> None:
    out = tmp_path / "ds"
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(good_file), "--out", str(out)]).exit_code == 0
    again = runner.invoke(main, ["ingest", str(good_file), "--out", str(out)])
    assert again.exit_code == 1
    assert "exists and is not empty; pass --force" in again.stderr
    forced = runner.invoke(main, ["ingest", str(good_file), "--out", str(out), "--force", "--json"])
    assert forced.exit_code == 0
    assert json.loads(forced.stdout)["accepted"] == 2


def test_real_cli_exits_1_on_a_bad_file(bad_file: Path) -> None:
    exe = Path(sys.executable).with_name("aco-lab")
    done = subprocess.run([str(exe), "validate", str(bad_file)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "read=4 accepted=2 rejected=2"


@pytest.fixture
def misspelt_file(tmp_path: Path) -> Path:
    path = tmp_path / "misspelt.jsonl"
    path.write_text(
        json.dumps(GOOD)
        + "\n"
        + json.dumps({**GOOD, "trace_id": "b", "task_tpye": "coding"})
        + "\n"
    )
    return path


def test_validate_strict_names_unknown_keys(misspelt_file: Path) -> None:
    assert CliRunner().invoke(main, ["validate", str(misspelt_file)]).exit_code == 0
    result = CliRunner().invoke(main, ["validate", "--strict", str(misspelt_file)])
    assert result.exit_code == 1
    problem, summary = result.stdout.splitlines()
    assert problem.startswith(
        f'{misspelt_file}:2: task_tpye: not a field of trace format v1 (did you mean "task_type"?)'
    )
    assert summary == "read=2 accepted=1 rejected=1"


def test_ingest_strict_keeps_the_refused_line_and_records_strict(
    tmp_path: Path, misspelt_file: Path
) -> None:
    out = tmp_path / "dataset"
    result = CliRunner().invoke(
        main, ["ingest", "--strict", "--on-error", "skip", "--out", str(out), str(misspelt_file)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "read=2 accepted=1 rejected=1\n"
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["raw"]) for r in rejected] == [
        (2, misspelt_file.read_text().splitlines()[1])
    ]
    assert json.loads((out / "manifest.json").read_text())["strict"] is True
