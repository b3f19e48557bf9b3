"""The learned tool gate at run time: an enforced deny stops the call; an advisory one (the
default, also of bundles written before the field) allows it and records the advice."""

import json
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.cli import main
from aco.config import ACOConfig
from aco.optimizer import ACOOptimizer
from tests.bundle_files import write_unchecked
from tests.conftest import GOLDEN_BUNDLE

ENTRY = {
    "runs": 400,
    "runs_without": 300,
    "lift": -0.3,
    "shrunk_lift": -0.29,
    "cost": 0.02,
    "failure_rate": 0.1,
    "net_value": -0.05,
}
GATE = {
    "kind": "tool_values",
    "version": 1,
    "value_per_success": {"*": 1.0},
    "tools": {
        "*/web_search": {**ENTRY, "allow": False, "enforcement": "enforced"},
        "*/browser": {**ENTRY, "allow": False, "enforcement": "advisory"},
        "*/shell": {**ENTRY, "allow": False},  # written before the field
        "*/calculator": {**ENTRY, "allow": True, "enforcement": "advisory"},
    },
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    payload = pickle.loads(GOLDEN_BUNDLE.read_bytes())
    return write_unchecked({**payload, "controls": {"gate": GATE}}, tmp_path / "models")


@pytest.fixture
def opt(bundle: Path, tmp_path: Path) -> ACOOptimizer:
    return ACOOptimizer(ACOConfig(trace_dir=str(tmp_path / "traces")), bundle=bundle)


@pytest.mark.parametrize(
    ("tool", "allow", "enforcement", "advice"),
    [
        ("web_search", False, "enforced", ""),
        ("browser", True, "advisory", "deny"),
        ("shell", True, "advisory", "deny"),
        ("calculator", True, "enforced", ""),
    ],
)
def test_the_runtime_honours_each_denys_enforcement(opt, tool, allow, enforcement, advice) -> None:
    decision = opt.gate_tool(tool, "coding")
    assert (decision.allow, decision.enforcement, decision.advice) == (allow, enforcement, advice)
    assert decision.mode == "bundle"


def test_a_run_records_the_advice_in_its_trace(opt) -> None:
    opt.start_run("Fix the failing test in auth.py", task_type="coding")
    assert opt.gate_tool("browser").allow
    assert not opt.gate_tool("web_search").allow  # enforced: no advice, the call is denied
    assert opt.gate_tool("shell").allow
    trace = opt.end_run(True)
    assert trace["metadata"]["gate_advice"] == ["deny browser", "deny shell"]
    opt.start_run("Fix it", task_type="coding")
    assert "gate_advice" not in opt.end_run(True)["metadata"]


def test_aco_gate_prints_the_advice(bundle: Path) -> None:
    def gate(tool: str, *json_flag: str) -> str:
        result = CliRunner().invoke(main, ["gate", tool, "--bundle", str(bundle), *json_flag])
        assert result.exit_code == 0, result.output
        return result.output

    data = json.loads(gate("browser", "--json"))
    assert (data["allow"], data["enforcement"], data["advice"]) == (True, "advisory", "deny")
    assert "advice=deny (advisory)" in gate("browser")
    assert json.loads(gate("web_search", "--json"))["allow"] is False
