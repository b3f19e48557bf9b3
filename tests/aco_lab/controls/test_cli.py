"""The controls through the command line: train stores them, evaluate replays and reports them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.bundle import load_bundle
from aco.config import ACOConfig
from aco_lab.cli import main
from aco_lab.simulate.generate import write_simulated_traces
from tests.aco_lab.controls.builders import replay_decisions_independently

ACO_LAB = [str(Path(sys.executable).with_name("aco-lab"))]  # the installed command


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held-out split (a real subprocess) and a bundle trained with its controls."""
    root = tmp_path_factory.mktemp("cli")
    traces = root / "sim.jsonl.gz"
    write_simulated_traces(traces, 400, seed=5, config=ACOConfig())
    subprocess.run(
        [*ACO_LAB, "holdout", str(traces), "--out", str(root / "split"), "--seed", "1"],
        check=True,
        capture_output=True,
        text=True,
    )
    result = CliRunner().invoke(
        main,
        ["train", str(root / "split" / "train.jsonl.gz"), "--out", str(root / "models"), "--json"],
    )
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output.splitlines()[-1])["controls"]) == {
        "cascade",
        "doom",
        "gate",
        "verify",
        "context_budget",
    }
    return root


def test_train_stores_the_controls_in_the_bundle(trained) -> None:
    payload = load_bundle(trained / "models" / "router_bundle_v1.pkl")
    assert payload["controls"]["cascade"]["kind"] == "cascade_stages"


def test_evaluate_policy_cascade_writes_decisions_anyone_can_replay(trained) -> None:
    out = trained / "cascade"
    done = subprocess.run(
        [
            *ACO_LAB,
            "evaluate",
            "--bundle",
            "v1",
            "--models-dir",
            str(trained / "models"),
            "--policy",
            "cascade",
            "--out",
            str(out),
            str(trained / "split" / "eval.jsonl.gz"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "learned cascade" in done.stdout and "top model only" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    learned = metrics["cascade"][0]
    successes, cost, calls = replay_decisions_independently(
        out / "decisions.jsonl", [trained / "split" / "eval.jsonl.gz"]
    )
    assert successes == learned["successes"]
    assert cost == pytest.approx(learned["cost"], abs=1e-6)
    assert calls == pytest.approx(learned["calls_per_request"] * learned["requests"], abs=1)
    assert "Cascade" in (out / "report.md").read_text()


def test_evaluate_reports_every_learned_control_beside_the_router(trained) -> None:
    out = trained / "router"
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--bundle",
            "v1",
            "--models-dir",
            str(trained / "models"),
            "--compare-models",
            "",
            "--out",
            str(out),
            str(trained / "split" / "eval.jsonl.gz"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    for title in ("Cascade", "Doom check", "Tool gate", "Verifier budget", "Context budget"):
        assert f"## {title}" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in metrics["controls"]["doom"]] == ["learned", "rules"]


def test_a_bundle_without_a_cascade_says_so(trained, tmp_path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "train",
            str(trained / "split" / "train.jsonl.gz"),
            "--out",
            str(tmp_path / "m"),
            "--no-controls",
        ],
    )
    assert result.exit_code == 0 and "controls: none (rules)" in result.output
    bad = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--bundle",
            "v1",
            "--models-dir",
            str(tmp_path / "m"),
            "--policy",
            "cascade",
            str(trained / "split" / "eval.jsonl.gz"),
        ],
    )
    assert bad.exit_code == 1 and "no learned cascade control" in bad.output
