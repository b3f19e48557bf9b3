"""What every command that reads traces takes: files, dirs, ingested datasets (their Parquet,
never their rejected.jsonl), and `--on-error fail|skip`; a broken file is one line, no
traceback."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.formatting import format_count
from aco_lab.cli import main
from aco_lab.traces.ingest import ingest_traces
from aco_lab.traces.reading import read_dataset, read_traces
from tests.aco_lab.eval_case import eval_case  # noqa: F401 - the fixture

ACO_LAB = Path(sys.executable).with_name("aco-lab")
TORN = '{"trace_id": "torn", "request": "a writer cr'  # what a crash mid-append leaves


def invoke(*args: str):  # noqa: ANN201
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def logs(eval_case, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    """The case's training traces as a dataset (with one rejected line), and as a runtime
    log whose last line is torn."""
    root = tmp_path_factory.mktemp("inputs")
    torn = root / "torn.jsonl"
    torn.write_bytes(eval_case.train.read_bytes() + TORN.encode() + b"\n")
    dataset = root / "dataset"
    ingest_traces([torn], dataset, on_error="skip")
    return {"torn": torn, "dataset": dataset, "eval": eval_case.eval, "bundle": eval_case.bundle}


def test_report_and_stats_read_a_dataset_not_its_rejected_lines(logs, tmp_path) -> None:
    runs = read_dataset(logs["dataset"]).runs.height
    report = invoke("report", logs["dataset"], "--out", tmp_path / "r", "--on-error", "skip")
    assert report.exit_code == 0, report.output
    assert report.stdout.splitlines()[0].split() == ["runs", format_count(runs)]
    stats = invoke("stats", logs["dataset"], "--json", "--on-error", "skip")
    assert json.loads(stats.stdout)["runs"] == runs


def test_a_folder_holding_a_dataset_reads_it_as_one(logs, tmp_path) -> None:
    folder = tmp_path / "folder"
    shutil.copytree(logs["dataset"], folder / "ds")
    assert (
        read_traces(folder, on_error="skip").runs.height
        == read_dataset(logs["dataset"]).runs.height
    )


def test_a_torn_line_fails_with_advice_that_works(logs, tmp_path) -> None:
    for command in (
        ["train", "--out", tmp_path / "m", "--model", "logreg", "--no-controls"],
        ["holdout", "--out", tmp_path / "h"],
        ["report", "--out", tmp_path / "r"],
        ["stats"],
    ):
        failed = invoke(*command, logs["torn"])
        assert failed.exit_code == 1, command
        assert failed.stderr.splitlines()[-1].startswith("error: 1 of ")
        assert f"{logs['torn']}:" in failed.output and "--on-error skip" in failed.output
        assert invoke(*command, logs["torn"], "--on-error", "skip").exit_code == 0, command


def test_train_holdout_and_evaluate_take_a_dataset(logs, tmp_path) -> None:
    trained = invoke(
        "train",
        logs["dataset"],
        "--out",
        tmp_path / "m",
        "--model",
        "logreg",
        "--no-controls",
        "--json",
        "--on-error",
        "skip",
    )
    assert trained.exit_code == 0, trained.output
    held = invoke("holdout", logs["dataset"], "--out", tmp_path / "h", "--on-error", "skip")
    assert held.exit_code == 0, held.output
    parts = [read_dataset(tmp_path / "h" / name).runs for name in ("train", "eval")]
    assert sum(p.height for p in parts) == read_dataset(logs["dataset"]).runs.height
    assert not set(parts[0]["request_id"]) & set(parts[1]["request_id"])
    evaluation = tmp_path / "eval-dataset"
    ingest_traces([logs["eval"]], evaluation)
    on_files = invoke(
        "evaluate",
        "--bundle",
        logs["bundle"],
        logs["eval"],
        "--out",
        tmp_path / "e1",
        "--compare-models",
        "",
        "--json",
    )
    on_dataset = invoke(
        "evaluate",
        "--bundle",
        logs["bundle"],
        evaluation,
        "--out",
        tmp_path / "e2",
        "--compare-models",
        "",
        "--json",
    )
    assert on_dataset.exit_code == 0, on_dataset.output
    first, second = json.loads(on_files.stdout), json.loads(on_dataset.stdout)
    assert first["router"] == second["router"]


def run(*args: str | Path, drop_read_override: bool = False) -> subprocess.CompletedProcess:
    command = [str(ACO_LAB), *map(str, args)]
    if drop_read_override:  # root reads any file: drop that power for this one process
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True)


def one_line_error(done: subprocess.CompletedProcess, *parts: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Aborted" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    for part in parts:
        assert part in errors[0]


def test_broken_and_unreadable_files_are_one_line_each(tmp_path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps(
            {
                "trace_id": "a",
                "request": "q",
                "final_outcome": "completed",
                "task_success": True,
                "total_cost": 0.0,
                "steps": [],
            }
        )
        + "\n"
    )
    line = good.read_text()
    whole = gzip.compress(
        "".join(line.replace('"a"', f'"b{i}"') for i in range(200)).encode(), mtime=0
    )
    truncated, trailing = tmp_path / "cut.jsonl.gz", tmp_path / "tail.jsonl.gz"
    truncated.write_bytes(whole[:-12])
    trailing.write_bytes(whole + b"junk")
    one_line_error(run("stats", truncated, good), str(truncated), "truncated")
    one_line_error(
        run("ingest", trailing, good, "--out", tmp_path / "d"),
        str(trailing),
        "bytes after the gzip data",
    )
    skipped = run(
        "ingest", truncated, good, "--out", tmp_path / "d", "--on-error", "skip", "--json"
    )
    assert skipped.returncode == 0, skipped.stderr
    counts = json.loads(skipped.stdout)
    assert counts["rejected"] == 1 and counts["accepted"] == counts["lines_read"] - 1 > 1
    (tmp_path / "afile").write_text("")
    one_line_error(
        run("ingest", good, "--out", tmp_path / "afile" / "sub"), "afile is a file, not a directory"
    )
    secret = tmp_path / "secret.jsonl"
    shutil.copy(good, secret)
    secret.chmod(0)
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("root reads any file, and setpriv is absent to drop that")
    as_user = os.geteuid() == 0
    listed = run("validate", secret, good, drop_read_override=as_user)
    assert listed.returncode == 1 and not listed.stderr
    assert f"{secret}:1: cannot read the file: Permission denied" in listed.stdout.splitlines()
    one_line_error(
        run("stats", secret, good, drop_read_override=as_user), str(secret), "Permission denied"
    )
    listed = run("stats", secret, good, "--on-error", "skip", drop_read_override=as_user)
    assert listed.returncode == 0 and "skipped 1 of 2 lines" in listed.stderr, listed.stderr
