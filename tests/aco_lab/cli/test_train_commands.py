"""`aco-lab train`: output, version increments, --json, errors, the real console script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.config import ACOConfig
from aco.router import Router
from aco_lab.cli import main
from aco_lab.simulate.generate import write_simulated_traces


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train_cli") / "sim.jsonl"
    write_simulated_traces(path, 80, seed=2, config=ACOConfig())
    return path


def test_train_prints_path_version_and_headline_then_increments(traces: Path, tmp_path: Path):
    out = tmp_path / "models"
    args = ["train", str(traces), "--out", str(out), "--model", "logreg", "--seed", "2"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    lines = dict(line.split(": ", 1) for line in first.stdout.splitlines())
    assert lines["bundle"] == str(out / "router_bundle_v1.pkl") and lines["version"] == "1"
    assert {"success_vs_top", "cost_vs_top", "brier_after", "log_loss_after"} <= set(lines)
    second = CliRunner().invoke(main, [*args, "--json"])
    assert second.exit_code == 0, second.output
    result = json.loads(second.stdout)
    assert result["version"] == 2 and result["path"].endswith("router_bundle_v2.pkl")
    router = Router.load(result["path"])
    assert router.bundle["command"] == (
        f"aco-lab train --out {out} --model logreg --seed 2 {traces}"
    )
    assert router.bundle["options"]["model"] == "logreg"


def test_success_floor_is_recorded_and_bounded(traces: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["train", str(traces), "--out", str(tmp_path), "--success-floor", "2.5"]
    )
    assert result.exit_code == 2 and "success-floor" in result.output


def test_cheapest_on_logs_is_one_line_error(tmp_path: Path) -> None:
    logs = tmp_path / "logs.jsonl"
    write_simulated_traces(logs, 120, seed=1, config=ACOConfig(), mode="logs")
    result = CliRunner().invoke(
        main,
        [
            "train",
            str(logs),
            "--out",
            str(tmp_path / "m"),
            "--objective",
            "cheapest",
            "--model",
            "lgbm",
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: --objective cheapest needs")


def test_real_console_script_trains_and_routes(traces: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("aco-lab")
    done = subprocess.run(
        [
            str(exe),
            "train",
            str(traces),
            "--out",
            str(tmp_path),
            "--json",
            "--model",
            "knn",
            "--calibration",
            "isotonic",
            "--no-controls",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # stderr is a pipe: no progress drawn
    path = json.loads(done.stdout)["path"]
    router = Router.load(path)
    assert router.calibration["method"] == "isotonic" and "controls" not in router.bundle
    decision = router.decide("Fix the flaky login test", task_type="coding")
    assert decision.mode == "bundle" and 1 <= decision.tier <= 5


def test_each_training_warning_is_printed_once(tmp_path: Path) -> None:
    from aco_lab.simulate.generate import write_simulated_traces

    logs = tmp_path / "logs.jsonl"
    write_simulated_traces(logs, 200, seed=3, mode="logs")
    exe = Path(sys.executable).with_name("aco-lab")
    done = subprocess.run(
        [
            str(exe),
            "train",
            str(logs),
            "--out",
            str(tmp_path / "m"),
            "--model",
            "table",
            "--no-controls",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert sum("ordinary logs" in line for line in lines) == 1
    assert all(line.startswith("WARNING: ") for line in lines), lines
