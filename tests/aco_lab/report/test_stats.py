"""aco_lab.report.stats: metrics over runs tables by hand, groups, parity with the runtime,
real data."""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from aco.config import ACOConfig, AlertThresholds
from aco.errors import DataError
from aco.monitoring import METRIC_KEYS, NULL_GROUP, compute_metrics, read_trace_lines
from aco_lab.report.stats import compute_stats
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces import schema as S
from aco_lab.traces.reading import read_traces

DEFAULTS = {
    S.TASK_SUCCESS: True, S.TOTAL_COST: 1.0, S.FINAL_OUTCOME: "completed", S.TIER: 2,
    S.ESCALATED: False, S.INPUT_TOKENS: 100, S.CACHED_INPUT_TOKENS: 20, S.N_STEPS: 1,
    S.N_VERIFIER_CALLS: 0,
}  # fmt: skip


def runs_frame(*rows: dict[str, Any]) -> pl.DataFrame:
    """A runs table with RUNS_SCHEMA: each row is DEFAULTS updated by the given columns."""
    full = [{name: None for name in S.RUNS_SCHEMA} | DEFAULTS | row for row in rows]
    return pl.DataFrame(full, schema=S.RUNS_SCHEMA)


SMALL = runs_frame(
    {S.TIER: 4, S.TOTAL_COST: 2.0, S.INPUT_TOKENS: 100, S.CACHED_INPUT_TOKENS: 40,
     S.N_VERIFIER_CALLS: 1, S.TASK_TYPE: "coding"},
    {S.TIER: 4, S.TASK_SUCCESS: False, S.INPUT_TOKENS: 50, S.CACHED_INPUT_TOKENS: None,
     S.N_STEPS: 2, S.TASK_TYPE: "coding"},
    {S.TIER: 1, S.TOTAL_COST: 0.5, S.INPUT_TOKENS: 30, S.CACHED_INPUT_TOKENS: 10,
     S.ESCALATED: True},
    {S.TIER: 1, S.TASK_SUCCESS: None, S.TOTAL_COST: 0.5, S.FINAL_OUTCOME: "aborted",
     S.INPUT_TOKENS: 20, S.CACHED_INPUT_TOKENS: None, S.TASK_TYPE: "quick_answer"},
)  # fmt: skip


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("runs", 4),
        ("successes", 2),
        ("success_rate", 2 / 3),
        ("total_cost", 4.0),
        ("labelled_share", 0.75),
        ("cost_per_success", 3.5 / 2),  # the unlabelled run's cost is left out
        ("success_rate_by_tier", {1: 1.0, 4: 0.5}),
        ("escalation_rate", 0.25),
        ("cache_hit_rate", 50 / 200),
        ("verifier_call_rate", 1 / 5),
        ("false_done_rate", 1 / 3),
    ],
)
def test_metrics_by_hand(key: str, expected: object) -> None:
    assert getattr(compute_stats(SMALL), key) == pytest.approx(expected)


def test_to_dict_has_exactly_the_metric_keys() -> None:
    assert list(compute_stats(SMALL).to_dict()) == list(METRIC_KEYS)
    grouped = compute_stats(SMALL, by="task_type").to_dict()
    assert list(grouped) == [*METRIC_KEYS, "by_task_type"]
    assert list(grouped["by_task_type"]) == ["coding", "quick_answer", NULL_GROUP]


def test_accepts_trace_tables_and_lazy_frames(tmp_path: Path) -> None:
    path = tmp_path / "sim.jsonl"
    write_simulated_traces(path, 20, seed=1)
    tables = read_traces(path)
    expected = compute_stats(tables.runs)
    assert compute_stats(tables) == expected
    assert compute_stats(tables.runs.lazy()) == expected


@pytest.mark.parametrize(
    ("rows", "nulls"),
    [
        ([{S.TASK_SUCCESS: False}], ["cost_per_success"]),
        ([{S.TASK_SUCCESS: None}], ["success_rate", "cost_per_success", "false_done_rate"]),
        ([{S.INPUT_TOKENS: 0, S.CACHED_INPUT_TOKENS: 0}], ["cache_hit_rate"]),
        ([{S.CACHED_INPUT_TOKENS: None}], ["cache_hit_rate"]),  # no call reported the cache
        ([{S.N_STEPS: 0, S.TIER: None}], ["verifier_call_rate"]),
        (
            [{S.FINAL_OUTCOME: "failed", S.TASK_SUCCESS: False}],
            ["cost_per_success", "false_done_rate"],
        ),
    ],
    ids=[
        "no success",
        "unknown outcome",
        "zero input tokens",
        "cache unreported",
        "no steps",
        "nothing completed",
    ],
)
def test_null_edges(rows: list[dict], nulls: list[str]) -> None:
    metrics = compute_stats(runs_frame(*rows)).to_dict()
    assert [key for key in METRIC_KEYS if metrics[key] is None] == nulls


def test_no_runs_at_all() -> None:
    metrics = compute_stats(pl.DataFrame(schema=S.RUNS_SCHEMA))
    assert (metrics.runs, metrics.successes, metrics.total_cost) == (0, 0, 0.0)
    assert metrics.success_rate_by_tier == {} and metrics.alerts == ()


@pytest.mark.parametrize(
    ("lines", "fired"),
    [
        ({}, ["low_success_rate", "high_cost_per_success"]),
        ({"min_success_rate": 0.5}, ["high_cost_per_success"]),  # 0.5 is not below 0.5
        ({"max_cost_ratio_vs_frontier": 3.0}, ["low_success_rate"]),
        (
            {"max_escalation_rate": 0.2, "max_verifier_call_rate": 0.1},
            [
                "low_success_rate",
                "high_cost_per_success",
                "high_verifier_call_rate",
                "high_escalation_rate",
            ],
        ),
    ],
)
def test_alerts_at_their_lines(lines: dict, fired: list[str]) -> None:
    # Tier 5 (top): $1 per success. Overall: $6 / 2 = $3 per success, 3x the frontier.
    frame = runs_frame(
        {S.TIER: 5, S.TOTAL_COST: 1.0},
        {S.TIER: 2, S.TOTAL_COST: 5.0, S.ESCALATED: True, S.N_VERIFIER_CALLS: 1},
        {S.TIER: 2, S.TOTAL_COST: 0.0, S.TASK_SUCCESS: False},
        {S.TIER: 2, S.TOTAL_COST: 0.0, S.TASK_SUCCESS: False},
    )
    metrics = compute_stats(frame, ACOConfig(alerts=AlertThresholds(**lines)))
    assert [alert.name for alert in metrics.alerts] == fired


def test_groups_by_tier_equal_the_metrics_of_their_rows() -> None:
    grouped = compute_stats(SMALL, by="tier")
    assert list(grouped.groups) == ["1", "4"]
    for key, metrics in grouped.groups.items():
        alone = compute_stats(SMALL.filter(pl.col(S.TIER) == int(key)))
        assert metrics == alone


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(DataError, match="--by: expected one of task_type, tier, source"):
        compute_stats(SMALL, by="model_id")
    with pytest.raises(DataError, match="lacks n_steps, n_verifier_calls; load traces"):
        compute_stats(SMALL.drop(S.N_STEPS, S.N_VERIFIER_CALLS))
    with pytest.raises(DataError, match="expected a runs table or TraceTables, got dict"):
        compute_stats({"runs": 1})


# -- parity: Polars sums == pure-Python sums -------------------------------------------------
def assert_same(lab: Any, runtime: Any, where: str = "") -> None:
    """Equal JSON-ready values, floats within 1e-12 (sums may add in another order)."""
    if isinstance(lab, dict):
        assert list(lab) == list(runtime), where
        for key in lab:
            assert_same(lab[key], runtime[key], f"{where}.{key}")
    elif isinstance(lab, list):
        assert len(lab) == len(runtime), where
        for i, (a, b) in enumerate(zip(lab, runtime, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(lab, float):
        assert isinstance(runtime, float) and math.isclose(lab, runtime, rel_tol=1e-12), where
    else:
        assert lab == runtime and type(lab) is type(runtime), where


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "traces.jsonl.gz"
    write_simulated_traces(path, 300, seed=11)
    logs = path.with_name("logs.jsonl")
    write_simulated_traces(logs, 300, seed=12, mode="logs")
    return path.parent


@pytest.mark.parametrize("by", [None, "task_type", "tier", "source"])
def test_parity_with_the_runtime_on_simulated_traces(simulated: Path, by: str | None) -> None:
    strict = ACOConfig(alerts=AlertThresholds(min_success_rate=0.9))  # alerts to compare too
    lab = compute_stats(read_traces(simulated), strict, by=by).to_dict()
    assert lab["runs"] == 1800 and lab["alerts"]
    assert_same(lab, compute_metrics(read_trace_lines(simulated), strict, by=by))


@pytest.fixture(scope="module")
def routerbench(routerbench_dir: Path) -> tuple[Path, ACOConfig, Any, list[dict]]:
    """The RouterBench traces read once: path, config, tables, trace dicts."""
    path = routerbench_dir / "traces.jsonl.gz"
    config = ACOConfig.from_yaml(routerbench_dir / "config.yaml")
    return path, config, read_traces(path), list(read_trace_lines(path))


@pytest.mark.shared_data
@pytest.mark.parametrize("by", [None, "tier"])
def test_parity_on_real_routerbench_traces(routerbench: tuple, by: str | None) -> None:
    _, config, tables, traces = routerbench
    lab = compute_stats(tables, config, by=by).to_dict()
    assert_same(lab, compute_metrics(traces, config, by=by))


@pytest.mark.shared_data
def test_parity_on_real_tau_bench_traces(tau_bench_dir: Path) -> None:
    path = tau_bench_dir / "traces.jsonl.gz"
    lab = compute_stats(read_traces(path), by="task_type").to_dict()
    assert_same(lab, compute_metrics(read_trace_lines(path), by="task_type"))
    assert lab["runs"] == 200 and lab["verifier_call_rate"] == 0.0


@pytest.mark.shared_data
def test_routerbench_success_by_tier_matches_plain_json(routerbench: tuple) -> None:
    """Success rate by tier, counted independently with json from the raw lines."""
    path, _, tables, _ = routerbench
    runs, wins, cost, successes = Counter(), Counter(), 0.0, 0
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            trace = json.loads(line)
            tier = max(step["model_call"]["tier"] for step in trace["steps"])
            runs[tier] += trace["task_success"] is not None
            wins[tier] += trace["task_success"] is True
            cost += trace["total_cost"]
            successes += trace["task_success"] is True
    metrics = compute_stats(tables)
    assert metrics.success_rate_by_tier == {t: wins[t] / runs[t] for t in sorted(runs)}
    assert metrics.cost_per_success == pytest.approx(cost / successes, rel=1e-12)
    assert metrics.runs == 17578 and metrics.cache_hit_rate is None


def test_groups_by_where_the_task_type_came_from_on_runtime_traces(tmp_path: Path) -> None:
    from aco.optimizer import ACOOptimizer

    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)))
    cases = [
        ("Fix the bug in the login code", "coding"),
        ("Fix the bug in the login code", None),
        ("zqx vbnm wert", None),
        ("What is 2+2?", None),
        ("Summarize this", "research"),
    ]
    for i, (request, task_type) in enumerate(cases):
        opt.start_run(request, task_type=task_type)
        opt.record_call(tier=1 + i % 3, cost=0.01 * (i + 1))
        opt.end_run(success=i % 2 == 0)
    lab = compute_stats(read_traces(opt.trace_log.path), by="task_type_from").to_dict()
    assert {k: v["runs"] for k, v in lab["by_task_type_from"].items()} == {
        "caller": 2,
        "rule_cues": 2,
        "none": 1,
    }
    assert_same(lab, compute_metrics(read_trace_lines(opt.trace_log.path), by="task_type_from"))
