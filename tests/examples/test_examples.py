"""The integration examples run end to end against their deterministic fake model clients."""

import importlib.util
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from aco.config import ACOConfig, TierSpec
from aco.optimizer import ACOOptimizer
from aco.trace_log import TraceLog
from aco_lab.traces.reading import read_traces

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


agent = _load("cost_aware_agent")


@pytest.fixture
def opt(tmp_path: Path) -> ACOOptimizer:
    return ACOOptimizer(ACOConfig(trace_dir=str(tmp_path / "traces")))


def _calls(trace: dict) -> list[dict]:
    return [s["model_call"] for s in trace["steps"] if s["model_call"]]


# -- the cost-aware agent harness ----------------------------------------------------------
def test_easy_task_completes_on_the_cheapest_tier(opt: ACOOptimizer) -> None:
    result = agent.run_agent(
        opt, agent.ScriptedClient(opt.config), agent.Task("What is 6 times 7?", risk="low")
    )
    assert result.outcome == "completed" and result.trace["task_success"] is True
    assert [c["tier"] for c in _calls(result.trace)] == [1]


def test_hedged_cheap_answer_escalates(opt: ACOOptimizer) -> None:
    client = agent.ScriptedClient(opt.config)
    result = agent.run_agent(opt, client, agent.Task("Solve this hard puzzle", risk="low"))
    calls = _calls(result.trace)
    assert result.outcome == "completed"
    assert calls[0]["tier"] <= 2 and calls[1]["escalated_from"] == calls[0]["tier"]
    assert calls[1]["tier"] == calls[0]["tier"] + 1
    assert calls[-1]["tier"] == 3  # the fake hedges on tiers 1-2 only
    assert result.trace["metadata"]["escalations"] == len(calls) - 1


def test_high_risk_answer_is_verified(opt: ACOOptimizer) -> None:
    result = agent.run_agent(
        opt,
        agent.ScriptedClient(opt.config),
        agent.Task("Fix the auth bug in production", risk="high"),
    )
    verifier_steps = [s for s in result.trace["steps"] if s["verifier_called"]]
    assert result.outcome == "completed" and len(verifier_steps) == 1
    assert verifier_steps[0]["verifier_passed"] is True
    assert verifier_steps[0]["model_call"]["tier"] == opt.config.top_tier


def test_gate_keeps_a_quick_answer_off_web_search(opt: ACOOptimizer) -> None:
    searched = []
    task = agent.Task(
        "What is the latest search trend?",
        task_type="quick_answer",
        tools={"web_search": lambda: searched.append(1) or True},
    )
    result = agent.run_agent(opt, agent.ScriptedClient(opt.config), task)
    assert not searched
    assert all(not s["tool_calls"] for s in result.trace["steps"])
    assert any("web_search is expensive" in note for note in result.notes)


def test_allowed_tool_is_called_and_recorded(opt: ACOOptimizer) -> None:
    task = agent.Task("Research and search the release notes", tools={"web_search": lambda: True})
    result = agent.run_agent(opt, agent.ScriptedClient(opt.config), task)
    tools = [t for s in result.trace["steps"] for t in s["tool_calls"]]
    assert result.outcome == "completed"
    assert tools == [{"tool_name": "web_search", "success": True, "cost": 0.0}]


def test_looping_agent_is_stopped_by_the_doom_check(opt: ACOOptimizer) -> None:
    task = agent.Task("loop on the flaky service", tools={"flaky": lambda: False})
    result = agent.run_agent(opt, agent.ScriptedClient(opt.config), task, max_steps=20)
    assert result.outcome == "aborted" and result.trace["final_outcome"] == "aborted"
    assert len(result.trace["steps"]) < 20
    assert "no progress" in result.notes[-1]


def test_budget_runs_out_before_it_is_overspent(tmp_path: Path) -> None:
    priced = ACOConfig(
        trace_dir=str(tmp_path),
        tiers=tuple(
            TierSpec(t, f"m{t}", cost_per_1k_input=0.5 * t, cost_per_1k_output=0.5 * t)
            for t in range(1, 6)
        ),
    )
    opt = ACOOptimizer(priced)
    task = agent.Task("loop on the flaky service", tools={"flaky": lambda: False})
    result = agent.run_agent(opt, agent.ScriptedClient(priced), task, budget=1.5, max_steps=50)
    assert result.outcome in ("budget_exceeded", "aborted")
    assert result.trace["total_cost"] <= 1.5


def test_a_verifier_the_budget_cannot_pay_for_is_not_called(tmp_path: Path) -> None:
    priced = ACOConfig(
        trace_dir=str(tmp_path),
        tiers=tuple(
            TierSpec(t, f"m{t}", cost_per_1k_input=0.1 * t**3, cost_per_1k_output=0.1 * t**3)
            for t in range(1, 6)
        ),
    )
    task = agent.Task("Fix the auth bug in production", risk="high")
    step_tier = agent.PerStepRouter(100.0, priced).route_step(task.request, 1, False, "high")
    step = priced.tier(step_tier.adjusted_tier).cost(**agent._tokens(task.request))
    verifier = priced.tier(5).cost(**agent._tokens(f"VERIFY: {task.request}\nANSWER: x"))
    assert step < verifier
    client = agent.ScriptedClient(priced)
    result = agent.run_agent(ACOOptimizer(priced), client, task, budget=(step + verifier) / 2)
    assert result.outcome == "budget_exceeded" and "verifier at tier 5" in result.notes[-1]
    assert not any(prompt.startswith("VERIFY:") for _, prompt in client.calls)
    assert result.trace["total_cost"] <= (step + verifier) / 2


WORDS = (
    "what is",
    "hard",
    "search",
    "loop",
    "wrong",
    "fix the auth bug",
    "in production",
    "plan",
    "read the file",
    "design",
    "summarize",
    "prove",
    "the",
    "release notes",
)


def _random_run(seed: int, trace_log: TraceLog) -> tuple[float, list[float]]:
    """One seeded random run: prices, budget, request, risk, tools; (budget, call costs)."""
    rng = random.Random(seed)
    prices = [rng.choice([0.0, rng.uniform(0.0, 0.1)])]
    while len(prices) < 5:  # each tier dearer than the one below, by up to 6x
        prices.append(prices[-1] * rng.uniform(1.0, 6.0) + rng.uniform(0.0, 0.2))
    config = ACOConfig(
        tiers=tuple(
            TierSpec(t, f"m{t}", cost_per_1k_input=p, cost_per_1k_output=p * rng.uniform(0.5, 4))
            for t, p in enumerate(prices, start=1)
        )
    )
    request = " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))
    request += " x" * rng.choice([0] * 6 + [200, 2_000, 20_000])  # some prompts are long
    task = agent.Task(
        request,
        risk=rng.choice(["low", "medium", "high"]),
        task_type=rng.choice([None, "quick_answer", "coding", "legal_regulated"]),
        tools={"web_search": lambda: rng.random() < 0.5, "flaky": lambda: False},
    )
    # Budgets around what a few calls cost, where running out is decided call by call.
    call = config.tier(rng.randint(1, 5)).cost(200, 512)
    budget = max(call, 0.001) * 10 ** rng.uniform(-0.5, 1.5)
    opt = ACOOptimizer(config, trace_log=trace_log)
    result = agent.run_agent(
        opt, agent.ScriptedClient(config), task, budget=budget, max_steps=rng.randint(1, 12)
    )
    return budget, [c["cost"] for c in _calls(result.trace)]


def test_no_random_run_overspends(tmp_path: Path) -> None:
    trace_log = TraceLog(tmp_path, fsync=False)
    over = []
    for seed in range(1_000):
        budget, costs = _random_run(seed, trace_log)
        if math.fsum(costs) > budget:
            over.append((seed, budget, math.fsum(costs)))
    assert not over, f"{len(over)} runs overspent, e.g. seed, budget, spent = {over[:3]}"


def test_agent_traces_are_valid_for_the_lab(opt: ACOOptimizer) -> None:
    agent.main(str(Path(opt.config.trace_dir)))
    tables = read_traces(opt.config.trace_dir)
    assert tables.runs.height == 5 and not tables.rejected and not tables.warnings
    assert sorted(tables.runs["final_outcome"].to_list()) == ["aborted"] + ["completed"] * 4


def _validate(path: Path) -> str:
    aco_lab = Path(sys.executable).with_name("aco-lab")  # the console script beside python
    checked = subprocess.run(
        [str(aco_lab), "validate", "--strict", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return checked.stdout


def test_the_agent_example_script_runs(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "cost_aware_agent.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "traces appended to" in out.stdout
    assert "rejected=0" in _validate(tmp_path)


# -- the integrations: each runs from an empty folder, offline, and leaves ./traces -------------
@pytest.mark.parametrize("name", ["langchain_agent", "litellm_router", "openai_client"])
def test_integration_examples_run_offline(tmp_path: Path, name: str) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "", "NO_PROXY": "*"}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "traces appended to traces/traces.jsonl" in out.stdout
    assert "read=3 accepted=3 rejected=0" in _validate(tmp_path / "traces")
    lines = (tmp_path / "traces" / "traces.jsonl").read_text().splitlines()
    traces = [json.loads(line) for line in lines]
    called = {s["model_call"]["model_id"] for t in traces for s in t["steps"] if s["model_call"]}
    assert called == {"gpt-4o-mini", "gpt-4o"}  # the cheap model for the easy request only
    assert all(t["total_cost"] > 0 for t in traces)
