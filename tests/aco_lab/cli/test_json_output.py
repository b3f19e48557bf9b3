"""`--json` on every command of both command lines: exactly one JSON object on stdout, with
its key fields (logs and progress stay on stderr)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from aco.cli import main as aco_main
from aco_lab.cli import main as lab_main
from tests.aco_lab.eval_case import EvalCase, eval_case  # noqa: F401 - the fixture

OTEL = Path(__file__).parents[1] / "importers" / "fixtures" / "otel_genai.json"
OTEL_TIERS = ("--tier", "gpt-4o-mini=1", "--tier", "gpt-4o=4", "--tier", "claude-sonnet-4-5=4")


@pytest.mark.parametrize("cli", [aco_main, lab_main], ids=["aco", "aco-lab"])
def test_every_command_has_a_json_option(cli: click.Group) -> None:
    for name, command in cli.commands.items():
        flags = [p for p in command.params if "--json" in getattr(p, "opts", ())]
        assert flags and flags[0].is_flag, f"{name} has no --json flag"


Args = Callable[[EvalCase, Path], list[str]]
# command -> (its arguments, fields its JSON object must have)
CASES: dict[str, tuple[Args, set[str]]] = {
    "validate": (
        lambda c, t: [str(c.eval)],
        {"read", "accepted", "rejected", "problems", "warnings"},
    ),
    "ingest": (
        lambda c, t: [str(c.eval), "--out", str(t / "ds")],
        {"out_dir", "lines_read", "accepted", "rejected", "steps", "tool_calls"},
    ),
    "import": (
        lambda c, t: ["--from", "otel", str(OTEL), "--out", str(t / "i.jsonl"), *OTEL_TIERS],
        {"records", "runs", "written", "rejected", "problems"},
    ),
    "label": (
        lambda c, t: ["run-1", "run-2", "--success", "--traces", str(t)],
        {"labelled", "task_success", "trace_ids", "outcomes_file"},
    ),
    "simulate": (
        lambda c, t: ["--n", "3", "--out", str(t / "s.jsonl")],
        {"path", "mode", "requests", "traces", "bytes"},
    ),
    "stats": (lambda c, t: [str(c.logs)], {"runs", "success_rate", "cost_per_success", "alerts"}),
    "train": (
        lambda c, t: [str(c.train), "--out", str(t), "--model", "logreg", "--no-controls"],
        {"path", "version", "sha256", "success_vs_top", "cost_vs_top"},
    ),
    "evaluate": (
        lambda c, t: [
            "--bundle",
            str(c.bundle),
            str(c.eval),
            "--out",
            str(t),
            "--compare-models",
            "",
        ],
        {"bundle", "router", "baselines", "command"},
    ),
    "compare": (
        lambda c, t: [str(c.bundle), str(c.bundle), str(c.eval), "--out", str(t)],
        {"bundles", "command"},
    ),
    "report": (lambda c, t: [str(c.logs), "--out", str(t)], {"overall"}),
    "holdout": (lambda c, t: [str(c.eval), "--out", str(t)], {"train", "eval"}),
}


def test_every_lab_command_is_covered() -> None:
    assert set(CASES) == set(lab_main.commands)


@pytest.mark.parametrize("command", sorted(CASES))
def test_json_is_one_object_with_its_key_fields(eval_case, tmp_path, command) -> None:  # noqa: F811
    args, fields = CASES[command]
    result = CliRunner().invoke(lab_main, [command, *args(eval_case, tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    data = json.loads(result.stdout)
    assert isinstance(data, dict) and fields <= set(data), sorted(data)


def test_label_json_names_the_outcomes_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        lab_main, ["label", "t-9", "--failure", "--traces", str(tmp_path), "--json"]
    )
    data = json.loads(result.stdout)
    assert data == {
        "labelled": 1,
        "task_success": False,
        "trace_ids": ["t-9"],
        "outcomes_file": str(tmp_path / "outcomes.jsonl"),
    }
    assert '"trace_id": "t-9"' in (tmp_path / "outcomes.jsonl").read_text().replace('":"', '": "')


def test_report_json_is_its_metrics_file(eval_case, tmp_path) -> None:  # noqa: F811
    result = CliRunner().invoke(
        lab_main, ["report", str(eval_case.logs), "--out", str(tmp_path), "--json"]
    )
    assert json.loads(result.stdout) == json.loads((tmp_path / "metrics.json").read_text())


def test_holdout_json_names_both_parts(eval_case, tmp_path) -> None:  # noqa: F811
    result = CliRunner().invoke(
        lab_main, ["holdout", str(eval_case.eval), "--out", str(tmp_path), "--json"]
    )
    data = json.loads(result.stdout)
    assert data == {
        "train": str(tmp_path / "train.jsonl.gz"),
        "eval": str(tmp_path / "eval.jsonl.gz"),
    }
    assert all(Path(p).is_file() for p in data.values())
