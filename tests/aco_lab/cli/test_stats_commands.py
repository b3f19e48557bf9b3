"""`aco-lab simulate` and `aco-lab stats`: wiring, output shapes, errors, a real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.monitoring import METRIC_KEYS
from aco_lab.cli import main

ACO_LAB = Path(sys.executable).with_name("aco-lab")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "sim.jsonl.gz"
    invoke("simulate", "--n", "40", "--seed", "2", "--out", str(path))
    return path


def test_simulate_writes_the_file_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "logs.jsonl"
    text = invoke("simulate", "--n", "12", "--seed", "1", "--out", str(out), "--mode", "logs")
    assert text == f"wrote 12 traces (12 requests, logs) to {out} ({out.stat().st_size:,} bytes)\n"
    assert len(out.read_text().splitlines()) == 12


def test_simulate_json_summary_and_tiers(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    summary = json.loads(
        invoke("simulate", "--n", "10", "--out", str(out), "--tiers", "1,3", "--json")
    )
    assert summary == {
        "path": str(out),
        "mode": "counterfactual",
        "requests": 10,
        "traces": 20,
        "bytes": out.stat().st_size,
    }
    tiers = {json.loads(line)["predicted_tier"] for line in out.read_text().splitlines()}
    assert tiers == {1, 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tiers", "1,x"], "Invalid value for '--tiers': expected tiers like 1,3,5"),
        (["--tiers", "6"], "error: --tiers: tier 6 is not configured; choose among"),
        (["--mode", "replay"], "Invalid value for '--mode'"),
        (["--n", "-2"], "Invalid value for '--n'"),
    ],
)
def test_simulate_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        main, ["simulate", "--n", "3", "--out", str(tmp_path / "x.jsonl"), *args]
    )
    assert result.exit_code in (1, 2) and message in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_stats_json_has_exactly_the_metric_keys(sim: Path) -> None:
    metrics = json.loads(invoke("stats", str(sim), "--json"))
    assert list(metrics) == list(METRIC_KEYS)
    assert metrics["runs"] == 200 and list(metrics["success_rate_by_tier"]) == list("12345")


@pytest.mark.parametrize("by", ["task_type", "tier", "source"])
def test_stats_by_adds_one_named_key(sim: Path, by: str) -> None:
    metrics = json.loads(invoke("stats", str(sim), "--json", "--by", by))
    assert list(metrics) == [*METRIC_KEYS, f"by_{by}"]
    groups = metrics[f"by_{by}"]
    assert sum(group["runs"] for group in groups.values()) == metrics["runs"]
    assert all(list(group) == list(METRIC_KEYS) for group in groups.values())


def test_stats_table_shows_metrics_and_alerts(sim: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("alerts:\n  min_success_rate: 0.9\n")
    text = invoke("stats", str(sim), "--config", str(config))
    assert text.startswith("runs                  200\n")
    assert "cost_per_success      $" in text
    assert "ALERT low_success_rate: success rate" in text


def test_stats_config_sets_the_alert_lines(sim: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("alerts:\n  min_success_rate: 0.1\n  max_verifier_call_rate: 0.01\n")
    metrics = json.loads(invoke("stats", str(sim), "--json", "--config", str(config)))
    assert [a["name"] for a in metrics["alerts"]] == ["high_verifier_call_rate"]


def test_stats_on_a_bad_file_is_one_line_and_exit_1(sim: Path, tmp_path: Path, caplog) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"trace_id": "x"}\n')
    result = CliRunner().invoke(main, ["stats", str(bad)])
    assert result.exit_code == 1
    assert result.output.startswith("error: 1 of 1 lines break trace format v1: ")
    assert len(result.output.strip().splitlines()) == 1
    skipped = CliRunner().invoke(
        main, ["stats", str(sim), str(bad), "--on-error", "skip", "--json"]
    )
    assert skipped.exit_code == 0
    assert json.loads(skipped.stdout)["runs"] == 200
    assert "skipped 1 of 201 lines" in caplog.text  # a warning on stderr (logging)


def test_console_scripts_simulate_then_stats(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl.gz"
    made = subprocess.run(
        [str(ACO_LAB), "simulate", "--n", "20", "--seed", "4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    stats = subprocess.run(
        [str(ACO_LAB), "stats", str(out), "--json", "--by", "tier"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stats.returncode == 0, stats.stderr
    metrics = json.loads(stats.stdout)
    assert metrics["runs"] == 100 and list(metrics["by_tier"]) == list("12345")
