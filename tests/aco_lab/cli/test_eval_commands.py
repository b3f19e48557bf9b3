"""`aco-lab evaluate`, `compare` and `report`: wiring (CliRunner) and one real subprocess."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco_lab.cli import main
from aco_lab.report.document import fmt_pct, fmt_usd
from tests.aco_lab.eval_case import eval_case  # noqa: F401 - the fixture

ACO_LAB = Path(sys.executable).with_name("aco-lab")


def test_evaluate_prints_the_table_and_writes_every_output(eval_case, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "ev"
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--bundle",
            str(eval_case.bundle),
            str(eval_case.eval),
            "--out",
            str(out),
            "--compare-models",
            "",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "router (v1)" in result.stdout
    assert "oracle (cheapest successful tier)" in result.stdout
    for name in ("metrics.json", "decisions.jsonl", "sweep.csv", "report.md", "report.html"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    expected = [
        "aco-lab",
        "evaluate",
        "--bundle",
        str(eval_case.bundle),
        "--out",
        str(out),
        "--compare-models",
        "",
        str(eval_case.eval),
    ]
    assert metrics["command"] == shlex.join(expected)
    # The last line is the headline: the cost at the target success along the router's curve,
    # then what its own operating point keeps (its cost per success only when that holds it).
    headline = result.stdout.splitlines()[-1]
    goal = metrics["quality_goal"]
    assert headline.startswith(
        "headline: at 95% of the top tier's success, router (v1) costs "
        f"{fmt_pct(goal['curve_cost_fraction_at_target'])} of the top "
        "tier's cost along its curve"
    )
    kept = fmt_pct(goal["operating_point"]["success_fraction_of_top"])
    assert (
        f"its operating point keeps {'only ' * goal['operating_point']['below_target']}{kept}"
        in headline
    )
    assert (fmt_usd(metrics["router"]["cost_per_success"]) in headline) == (
        not goal["operating_point"]["below_target"]
    )
    assert any(
        line.startswith("verdict at 95% of the top tier's success: router curve")
        for line in result.stdout.splitlines()
    )


def test_evaluate_finds_latest_in_the_models_dir(eval_case, tmp_path) -> None:  # noqa: F811
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--bundle",
            "latest",
            "--models-dir",
            str(eval_case.models_dir),
            str(eval_case.eval),
            "--out",
            str(tmp_path),
            "--compare-models",
            "",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bundle"]["path"] == str(eval_case.bundle)


def test_evaluate_json_prints_metrics(eval_case, tmp_path) -> None:  # noqa: F811
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--bundle",
            str(eval_case.bundle),
            str(eval_case.eval),
            "--out",
            str(tmp_path),
            "--json",
            "--compare-models",
            "",
            "--verifier-error",
            "0.3",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["settings"]["verifier_error"] == 0.3
    assert "static cascade (verifier error 30%)" in metrics["baselines"]


def test_overlap_is_one_error_line_saying_how_to_proceed(eval_case, tmp_path) -> None:  # noqa: F811
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--bundle",
            str(eval_case.bundle),
            str(eval_case.train),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--allow-overlap" in errors[0]
    assert "Traceback" not in result.stderr


def test_compare_puts_two_bundles_side_by_side(eval_case, tmp_path) -> None:  # noqa: F811
    from aco.config import ACOConfig
    from aco_lab.train.router import TrainOptions, train_router

    models = tmp_path / "router_models"
    for seed in (1, 2):
        train_router([eval_case.train], ACOConfig(), TrainOptions(model="lgbm", seed=seed), models)
    result = CliRunner().invoke(
        main,
        [
            "compare",
            str(models / "router_bundle_v1.pkl"),
            str(models / "router_bundle_v2.pkl"),
            str(eval_case.eval),
            "--out",
            str(tmp_path / "cmp"),
        ],
    )
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0]
    assert header.split() == ["v1", "v2"]
    assert "cost per successful task" in result.stdout
    metrics = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert [b["bundle"]["name"] for b in metrics["bundles"]] == ["v1", "v2"]
    assert 'data-chart="cost_success"' in (tmp_path / "cmp" / "report.html").read_text()


@pytest.mark.skipif(not ACO_LAB.exists(), reason="the aco-lab console script is not installed")
def test_report_runs_as_a_real_command(eval_case, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "dash"
    done = subprocess.run(
        [str(ACO_LAB), "report", str(eval_case.logs), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()
    # The overall metrics, printed as `aco-lab stats` prints them.
    stats = subprocess.run(
        [str(ACO_LAB), "stats", str(eval_case.logs)], capture_output=True, text=True, timeout=600
    )
    assert done.stdout == stats.stdout
    assert done.stdout.splitlines()[0].split() == ["runs", "200"]


def test_holdout_splits_by_request_and_prints_both_paths(eval_case, tmp_path) -> None:  # noqa: F811
    result = CliRunner().invoke(
        main,
        [
            "holdout",
            str(eval_case.eval),
            "--out",
            str(tmp_path),
            "--eval-fraction",
            "0.25",
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"train: {tmp_path / 'train.jsonl.gz'}",
        f"eval: {tmp_path / 'eval.jsonl.gz'}",
    ]


def test_an_unknown_baseline_model_is_a_usage_error(tmp_path) -> None:
    result = CliRunner().invoke(
        main, ["evaluate", "--bundle", "v1", "--compare-models", "svm", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "svm: expected models from" in result.stderr
