"""The tool gate: per-tool figures, shrinkage, one-sided denial, the simulator's truth."""

import pytest

from aco.config import ACOConfig
from aco.decisions import ADVISORY, ENFORCED
from aco.learned_controls import apply_gate, check_spec
from aco_lab.controls.tool_gate import (
    LEARNED_ADVICE,
    LEARNED_ENFORCED,
    RUNS_WITH,
    RUNS_WITHOUT,
    SUCCESS_WITH,
    GateSettings,
    build_tool_table,
    describe_enforcement,
    evaluate_gate,
    learn_gate,
)
from aco_lab.simulate.world import PROFILES
from tests.aco_lab.controls.builders import run, step, tables_of


def _runs(
    tool: str,
    cost: float,
    n_with: int,
    ok_with: int,
    n_without: int,
    ok_without: int,
    fail: bool = False,
) -> list[dict]:
    out = []
    for i in range(n_with):
        out.append(
            run(
                f"w{i}",
                [step(1, tools=((tool, not fail, cost),)), step(2)],
                i < ok_with,
                task_type="qa",
            )
        )
    for i in range(n_without):
        out.append(
            run(
                f"o{i}",
                [step(1, tools=(("other", True, 0.0),)), step(2)],
                i < ok_without,
                task_type="qa",
            )
        )
    return out


def test_the_table_compares_with_runs_that_used_other_tools(tmp_path) -> None:
    runs = _runs("search", 0.01, 10, 3, 20, 15) + [run("plain", [step(1)], True, task_type="qa")]
    table = build_tool_table(tables_of(tmp_path, runs))
    row = table.filter((table["task_type"] == "qa") & (table["tool_name"] == "search")).row(
        0, named=True
    )
    # The one-step run that called no tool is not the comparison group.
    assert (row[RUNS_WITH], row[SUCCESS_WITH], row[RUNS_WITHOUT]) == (10, 3, 20)
    assert set(table["task_type"]) == {"qa", "*"}


def test_a_costly_tool_that_does_not_pay_is_denied_with_its_figures(tmp_path) -> None:
    spec = learn_gate(tables_of(tmp_path, _runs("search", 0.05, 60, 15, 60, 45)))
    check_spec("gate", spec)
    entry = spec["tools"]["qa/search"]
    assert not entry["allow"]
    assert entry["lift"] == pytest.approx(-0.5)
    assert entry["shrunk_lift"] == pytest.approx(-0.5 * 60 / 80)
    # 60 runs each way: a deny, but too few runs to enforce it: the call goes ahead.
    assert entry["enforcement"] == ADVISORY
    decision = apply_gate(spec, "search", "qa")
    assert decision.allow and decision.advice == "deny" and "60 runs" in decision.reason
    assert not decision.recommended_allow and decision.enforcement == ADVISORY
    assert describe_enforcement(spec)[0] == ADVISORY


def test_a_deny_is_enforced_only_on_strong_evidence(tmp_path) -> None:
    # An expensive tool that changes nothing: the deny rests on its cost; enforced.
    strong = learn_gate(tables_of(tmp_path, _runs("search", 0.5, 250, 180, 250, 180)))
    check_spec("gate", strong)
    entry = strong["tools"]["qa/search"]
    assert (entry["allow"], entry["enforcement"]) == (False, ENFORCED)
    assert entry["best_case_net_value"] < 0
    decision = apply_gate(strong, "search", "qa")
    assert not decision.allow and decision.enforcement == ENFORCED and "enforced" in decision.reason
    mode, why = describe_enforcement(strong)
    assert mode == ENFORCED and ">= 200 training runs" in why
    # The same on fewer runs than the strong threshold stays advice.
    few = learn_gate(
        tables_of(tmp_path, _runs("search", 0.5, 250, 180, 250, 180), "few.jsonl"),
        GateSettings(strong_runs=300),
    )
    assert few["tools"]["qa/search"]["enforcement"] == ADVISORY
    assert apply_gate(few, "search", "qa").allow


def test_a_deny_resting_on_runs_in_trouble_is_never_enforced(tmp_path) -> None:
    # A cheap tool called mostly by failing runs: many runs, a clear negative lift, but
    # reversed (runs in trouble reach for it) it could be worth more than it costs.
    spec = learn_gate(tables_of(tmp_path, _runs("search", 0.005, 250, 60, 250, 190)))
    entry = spec["tools"]["qa/search"]
    assert (entry["allow"], entry["enforcement"]) == (False, ADVISORY)
    assert entry["best_case_net_value"] > 0
    assert apply_gate(spec, "search", "qa").advice == "deny"


def test_rare_and_free_tools_are_never_denied(tmp_path) -> None:
    rare = learn_gate(tables_of(tmp_path, _runs("search", 0.05, 8, 0, 60, 45), "rare.jsonl"))
    assert rare["tools"]["qa/search"]["allow"]  # 8 runs: too few to judge
    free = learn_gate(tables_of(tmp_path, _runs("think", 0.0, 60, 15, 60, 45), "free.jsonl"))
    assert free["tools"]["qa/think"]["allow"]  # costs nothing, never fails: nothing to save
    flaky = learn_gate(
        tables_of(tmp_path, _runs("think", 0.0, 60, 15, 60, 45, fail=True), "flaky.jsonl")
    )
    assert not flaky["tools"]["qa/think"]["allow"]  # every call fails: a wasted step each


def test_more_shrinkage_never_denies_more(sim) -> None:
    denied = [
        sum(
            not v["allow"]
            for v in learn_gate(sim.train, GateSettings(prior_runs=k))["tools"].values()
        )
        for k in (0.0, 20.0, 200.0, 2000.0)
    ]
    assert denied == sorted(denied, reverse=True)


def test_on_simulated_traces_it_denies_mostly_tools_the_simulator_made_useless(sim) -> None:
    spec = learn_gate(sim.train)
    denied = {k for k, v in spec["tools"].items() if not v["allow"] and not k.startswith("*/")}
    useless = {f"{task}/{t.name}" for task, p in PROFILES.items() for t in p.other_tools}
    useless -= {f"{task}/{t.name}" for task, p in PROFILES.items() for t in p.useful_tools}
    # A useful tool can still be denied where it costs more than a cheap task's success is
    # worth (a $0.02 search for a $0.10 quick answer): precision, not perfection.
    assert len(denied & useless) >= 0.85 * len(denied)
    assert len(denied & useless) >= 0.5 * len(useless)
    advice, enforced, rules = evaluate_gate(spec, sim.held_out, ACOConfig())
    assert (advice.name, enforced.name) == (LEARNED_ADVICE, LEARNED_ENFORCED)
    assert advice.denied_runs_success < advice.other_runs_success
    assert advice.denied_cost > rules.denied_cost
    assert enforced.denied_calls <= advice.denied_calls  # enforced denies are some of them
    assert advice.enforcement == enforced.enforcement == describe_enforcement(spec)[0]
