"""Progress on stderr: drawn when stderr is a terminal, never with --quiet or into a pipe
(real `aco-lab` processes, a pseudo-terminal for stderr); and the stages long commands report.
"""

from __future__ import annotations

import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.progress import LOGGER, RECORD_KEY
from aco_lab.cli import main
from tests.aco_lab.eval_case import eval_case  # noqa: F401 - the fixture

ACO_LAB = Path(sys.executable).with_name("aco-lab")
needs_script = pytest.mark.skipif(
    not ACO_LAB.exists(), reason="the aco-lab console script is not installed"
)


def run(args: list[str], terminal: bool) -> tuple[str, str]:
    """Run aco-lab; stderr on a pseudo-terminal or a pipe. Returns (stdout, stderr)."""
    if not terminal:
        done = subprocess.run([str(ACO_LAB), *args], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen([str(ACO_LAB), *args], stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    received = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        received.append(data)
    os.close(leader)
    stdout = process.stdout.read().decode()
    assert process.wait(timeout=600) == 0, b"".join(received).decode()
    return stdout, b"".join(received).decode()


@needs_script
def test_simulate_draws_a_bar_on_a_terminal_only(tmp_path: Path) -> None:
    args = ["simulate", "--n", "400", "--out", str(tmp_path / "s.jsonl")]
    shown, bar = run(args, terminal=True)
    assert "simulating requests" in bar and "100%" in bar and "400/400 requests" in bar
    quiet, nothing = run(["-q", *args], terminal=True)
    assert nothing == ""
    piped, none = run(args, terminal=False)
    assert none == ""
    assert shown == quiet == piped  # stdout holds the result whatever stderr is


@needs_script
def test_reading_traces_draws_a_bar_then_the_result(eval_case, tmp_path) -> None:  # noqa: F811
    stdout, stderr = run(["stats", str(eval_case.logs)], terminal=True)
    assert "reading traces" in stderr and "100%" in stderr
    assert stdout.startswith("runs")
    assert run(["--quiet", "stats", str(eval_case.logs)], terminal=True) == (stdout, "")


def _stages(caplog: pytest.LogCaptureFixture) -> list[str]:
    found = [getattr(r, RECORD_KEY, None) for r in caplog.records]
    names = [p.stage for p in found if p is not None]
    return [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]  # a meter: once


def test_train_reports_each_stage(eval_case, tmp_path, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger=LOGGER)
    result = CliRunner().invoke(
        main, ["train", str(eval_case.train), "--out", str(tmp_path), "--model", "logreg"]
    )
    assert result.exit_code == 0, result.output
    stages = _stages(caplog)
    expected = [
        "reading traces",
        "labelling runs",
        "building features of 160 requests",
        "cross-validating logreg",
        "fitting logreg on all training requests",
        "choosing the operating point",
        "fitting the task-type classifier",
        "learning the cascade control",
        "writing the bundle",
    ]
    assert [s for s in stages if s in expected] == expected
    # Not a terminal: no progress and no stage lines; only warnings about the data may show.
    assert all(line.startswith("WARNING: ") for line in result.stderr.splitlines())


def test_evaluate_reports_each_stage(eval_case, tmp_path, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger=LOGGER)
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--bundle",
            str(eval_case.bundle),
            str(eval_case.eval),
            "--out",
            str(tmp_path),
            "--compare-models",
            "logreg",
        ],
    )
    assert result.exit_code == 0, result.output
    stages = _stages(caplog)
    expected = [
        "reading traces",
        "reading the bundle's training traces",
        "reading traces",
        "sweeping the router's thresholds",
        "replaying the baselines",
        "training the logreg comparison router",
        "writing the report",
    ]
    assert [s for s in stages if s in expected] == expected
    assert any(s.startswith("replaying the router on ") for s in stages)
