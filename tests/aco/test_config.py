"""ACOConfig: the defaults (defined once, in code), and one-line errors for every bad value."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.cli import main
from aco.config import ACOConfig, AlertThresholds, TierSpec, load_config
from aco.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_documented_defaults_are_the_code_defaults(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL).group(1)
    loaded = load_config(_write(tmp_path, block))
    assert loaded.replace(source_path=None) == ACOConfig()


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, "routing:\n  max_cost_per_task: 2.5\n"))
    assert loaded.max_cost_per_task == 2.5
    assert loaded.tiers == ACOConfig().tiers and loaded.alerts == AlertThresholds()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "models:\n  tier1: {model_id: a, cost_per_1k_input: .inf}\n",
            "models.tier1.cost_per_1k_input: expected a finite number >= 0, got inf",
        ),
        (
            "models:\n  tier2: {model_id: a, cost_per_1k_output: .nan}\n",
            "models.tier2.cost_per_1k_output: expected a finite number >= 0, got nan",
        ),
        (
            "models:\n  tier1: {model_id: a, cost_per_1k_input: -.inf}\n",
            "models.tier1.cost_per_1k_input: expected a finite number >= 0, got -inf",
        ),
        (
            "models:\n  tier1: {model_id: a, cost_per_1k_input: cheap}\n",
            "models.tier1.cost_per_1k_input: expected a finite number >= 0, got 'cheap'",
        ),
        (
            "models:\n  tier1: {model_id: a, provider: 5}\n",
            "models.tier1.provider: expected a non-empty string, got 5",
        ),
        (
            "models:\n  tier1: {model_id: ''}\n",
            "models.tier1.model_id: expected a non-empty string, got ''",
        ),
        ("models:\n  tier1: {provider: local}\n", "models.tier1.model_id: missing"),
        (
            "routing:\n  max_cost_per_task: .nan\n",
            "routing.max_cost_per_task: expected a finite number >= 0, got nan",
        ),
        (
            "routing:\n  max_cost_per_task: .inf\n",
            "routing.max_cost_per_task: expected a finite number >= 0, got inf",
        ),
        (
            f"routing:\n  max_cost_per_task: {10**400}\n",
            "routing.max_cost_per_task: expected a finite number >= 0, got 1000",
        ),
        (
            "routing:\n  safety_threshold: .nan\n",
            "routing.safety_threshold: expected a number in 0..1, got nan",
        ),
        ("routing:\n  max_retries: 1.5\n", "routing.max_retries: expected an int >= 0, got 1.5"),
        (
            "alerts:\n  min_success_rate: .nan\n",
            "alerts.min_success_rate: expected a number in 0..1, got nan",
        ),
        (
            "alerts:\n  max_escalation_rate: 1.5\n",
            "alerts.max_escalation_rate: expected a number in 0..1, got 1.5",
        ),
        (
            "alerts:\n  max_verifier_call_rate: -0.1\n",
            "alerts.max_verifier_call_rate: expected a number in 0..1, got -0.1",
        ),
        (
            "alerts:\n  max_cost_ratio_vs_frontier: .inf\n",
            "alerts.max_cost_ratio_vs_frontier: expected a finite number >= 0, got inf",
        ),
        (
            "alerts:\n  min_success_rate: true\n",
            "alerts.min_success_rate: expected a number in 0..1, got True",
        ),
        (
            "runtime:\n  trace_dir: 5\n",
            "runtime.trace_dir: expected a non-empty path string, got 5",
        ),
        ("runtime:\n  trace_dir: ''\n", "runtime.trace_dir: expected a non-empty path string"),
        (
            "runtime:\n  router_model_path: [a]\n",
            "runtime.router_model_path: expected a non-empty path string, got ['a']",
        ),
        ("task_floors:\n  coding: .nan\n", "task_floors.coding: expected an int 1..5, got nan"),
    ],
)
def test_bad_values_are_one_line_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_cost_per_task": float("nan")}, "routing.max_cost_per_task"),
        ({"alerts": AlertThresholds(min_success_rate=float("nan"))}, "alerts.min_success_rate"),
        (
            {"tiers": (TierSpec(1, "m", cost_per_1k_input=float("inf")),)},
            "models.tier1.cost_per_1k_input",
        ),
        ({"trace_dir": 5}, "runtime.trace_dir"),
    ],
)
def test_configs_built_in_code_are_checked_the_same(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(field)}: expected"):
        ACOConfig(**changes)


def test_a_path_object_is_a_trace_dir(tmp_path: Path) -> None:
    assert ACOConfig(trace_dir=tmp_path).trace_dir == tmp_path


def test_a_non_utf8_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"routing:\n  max_retries: 2\nmodels: \xff\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}:3: not UTF-8 text"):
        load_config(path)


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"models:\n  tier1: {model_id: a, cost_per_1k_input: .inf}\n",
            "models.tier1.cost_per_1k_input: expected a finite number >= 0, got inf",
        ),
        (b"runtime:\n  trace_dir: 5\n", "runtime.trace_dir: expected a non-empty path string"),
        (b"routing: \xfe\n", "not UTF-8 text"),
    ],
)
def test_the_cli_prints_one_line_and_exits_1(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    for args in (["route", "hello"], ["stats", "--trace-dir", str(tmp_path)]):
        result = CliRunner().invoke(main, [*args, "--config", str(path)])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and message in lines[0]
