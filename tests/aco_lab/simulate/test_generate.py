"""The simulator: determinism, validity, realism invariants, modes, signal without a perfect fit."""

from __future__ import annotations

import gzip
import json
import math
import os
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from aco.config import ACOConfig, TierSpec
from aco.errors import ConfigError, DataError
from aco.rules import route_by_rules
from aco_lab.simulate import generate as simulate
from aco_lab.simulate.generate import (
    EXPLORE,
    SPAN_SECONDS,
    START_EPOCH,
    build_sim_request,
    generate_traces,
    write_simulated_traces,
)
from aco_lab.simulate.world import ANSWER_HEDGES, ANSWER_REFUSALS, TARGET_SUCCESS
from aco_lab.traces.reading import read_traces

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def counterfactual() -> list[dict]:
    return list(generate_traces(400, seed=3))


@pytest.fixture(scope="module")
def logs() -> list[dict]:
    return list(generate_traces(400, seed=3, mode="logs"))


def _steps_cost(trace: dict) -> float:
    total = 0.0
    for step in trace["steps"]:
        total += (step["model_call"] or {}).get("cost", 0.0)
        total += sum(tool["cost"] for tool in step.get("tool_calls", []))
    return total


# -- determinism --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.jsonl"])
@pytest.mark.parametrize("mode", ["counterfactual", "logs"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, name: str, mode: str) -> None:
    first, again, other = (tmp_path / d / name for d in ("1", "2", "3"))
    write_simulated_traces(first, 30, seed=5, mode=mode)
    write_simulated_traces(again, 30, seed=5, mode=mode)
    write_simulated_traces(other, 30, seed=6, mode=mode)
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_a_request_is_the_same_whatever_the_mode_and_tiers() -> None:
    full = list(generate_traces(20, seed=9))
    some = list(generate_traces(20, seed=9, tiers=[3]))
    logged = list(generate_traces(20, seed=9, mode="logs"))
    assert [t for t in full if t["predicted_tier"] == 3] == some  # run of tier 3 unchanged
    assert [t["request"] for t in logged] == [t["request"] for t in some]


# -- validity -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["counterfactual", "logs"])
def test_every_simulated_trace_passes_validation(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "sim.jsonl.gz"
    summary = write_simulated_traces(path, 300, seed=21, mode=mode)
    tables = read_traces(path, on_error="fail")
    assert tables.rejected == () and tables.warnings == ()
    assert tables.lines_read == tables.runs.height == summary.traces
    assert summary.traces == (1500 if mode == "counterfactual" else 300)
    assert summary.bytes == path.stat().st_size


def test_total_cost_is_the_sum_of_model_and_tool_costs(counterfactual: list[dict]) -> None:
    for trace in counterfactual:
        assert math.isclose(trace["total_cost"], _steps_cost(trace), rel_tol=1e-12, abs_tol=1e-12)


def test_call_costs_follow_the_price_table(counterfactual: list[dict]) -> None:
    prices = {spec.tier: spec for spec in ACOConfig().tiers}
    for trace in counterfactual[:200]:
        for step in trace["steps"]:
            call = step["model_call"]
            spec = prices[call["tier"]]
            assert call["model_id"] == spec.model_id
            expected = spec.cost(call["input_tokens"], call["output_tokens"])
            assert call["cost"] == pytest.approx(expected, abs=1e-9)
            assert call.get("cached_input_tokens", 0) <= call["input_tokens"]


def test_the_price_table_comes_from_the_config() -> None:
    free = tuple(TierSpec(s.tier, f"x{s.tier}", s.provider, 0.0, 0.0) for s in ACOConfig().tiers)
    config = ACOConfig().replace(tiers=free)
    traces = list(generate_traces(10, seed=1, config=config))
    assert all(math.isclose(t["total_cost"], _steps_cost(t), abs_tol=1e-12) for t in traces)
    models = {call["model_id"] for t in traces for call in _calls(t)}
    assert models <= {f"x{i}" for i in range(1, 6)}
    assert all(call["cost"] == 0.0 for t in traces for call in _calls(t))


def _calls(trace: dict) -> list[dict]:
    return [step["model_call"] for step in trace["steps"] if step["model_call"]]


# -- counterfactual and logs modes -------------------------------------------------------------
def test_counterfactual_runs_share_request_id_across_tiers(counterfactual: list[dict]) -> None:
    by_request = defaultdict(list)
    for trace in counterfactual:
        by_request[trace["request_id"]].append(trace)
    assert len(by_request) == 400
    for runs in by_request.values():
        assert [t["predicted_tier"] for t in runs] == [1, 2, 3, 4, 5]
        assert len({t["request"] for t in runs}) == 1
        # Known before the run, so the same for every run of the request.
        assert len({t["difficulty"] for t in runs}) == 1
        assert len({t["task_type"] for t in runs}) == 1
    assert len({t["trace_id"] for t in counterfactual}) == len(counterfactual)


def test_logs_mode_has_one_run_per_request_with_its_propensity(logs: list[dict]) -> None:
    assert len({t["request_id"] for t in logs}) == len(logs) == 400
    explore_only, rule = EXPLORE / 5, EXPLORE / 5 + (1 - EXPLORE)
    propensities = {round(t["metadata"]["routing_propensity"], 12) for t in logs}
    assert propensities == {round(explore_only, 12), round(rule, 12)}
    # Every tier was logged (exploration), the rule's choice most often.
    assert {t["predicted_tier"] for t in logs} == {1, 2, 3, 4, 5}
    share = sum(1 for t in logs if t["metadata"]["routing_propensity"] > 0.5) / len(logs)
    expected = 1 - EXPLORE + EXPLORE / 5
    assert expected - 0.05 < share < expected + 0.05
    assert all("routing_propensity" not in t["metadata"] for t in generate_traces(5, seed=3))


def test_logs_mode_routes_harder_task_types_higher(logs: list[dict]) -> None:
    tiers = defaultdict(list)
    for trace in logs:
        tiers[trace["task_type"]].append(trace["predicted_tier"])
    assert np.mean(tiers["legal_regulated"]) > np.mean(tiers["quick_answer"]) + 1


def test_logs_mode_follows_the_runtime_rules_unless_exploring(logs: list[dict]) -> None:
    """The logging policy is what `aco` logs without a bundle (aco.rules), plus exploration."""
    config = ACOConfig()
    for trace in logs:
        if trace["metadata"]["routing_propensity"] > 0.5:  # the rule's own choice
            rule = route_by_rules(trace["request"], config, trace["task_type"])
            assert trace["predicted_tier"] == rule.tier
            assert trace["steps"][0]["model_call"]["model_id"] == rule.model_id


# -- realism ---------------------------------------------------------------------------------
def _rate(traces: list[dict], **where) -> float:
    chosen = [t for t in traces if all(t[k] == v for k, v in where.items())]
    return sum(t["task_success"] is True for t in chosen) / len(chosen)


def test_success_increases_with_tier_on_average(counterfactual: list[dict]) -> None:
    rates = [_rate(counterfactual, predicted_tier=tier) for tier in (1, 2, 3, 4, 5)]
    assert rates[0] < rates[1] < rates[2] < rates[3]
    assert rates[4] > rates[2]  # the top tier is not best everywhere, but well above the middle
    assert rates[0] > 0.4 and rates[4] < 0.9  # as on RouterBench: 58% at tier 1, 87% at the top


@pytest.fixture(scope="module")
def success_table() -> dict[tuple[str, int], float]:
    """Success by (task type, tier) on 2,000 counterfactual requests."""
    traces = list(generate_traces(2000, seed=11))
    runs = defaultdict(list)
    for t in traces:
        runs[t["task_type"], t["predicted_tier"]].append(t["task_success"] is True)
    return {key: float(np.mean(won)) for key, won in runs.items()}


def test_success_by_task_type_and_tier_follows_the_targets(success_table: dict) -> None:
    """The calibrated world gives the documented rates (sampling noise aside)."""
    for (task_type, tier), rate in success_table.items():
        target = TARGET_SUCCESS[task_type][tier - 1] / 100
        assert abs(rate - target) < 0.09, (task_type, tier, rate, target)


def test_cheap_tiers_answer_quick_questions_and_the_dearest_is_not_always_best(
    success_table: dict,
) -> None:
    assert success_table["quick_answer", 1] > 0.85  # the cheapest tier solves most of them
    assert success_table["quick_answer", 2] > success_table["quick_answer", 5] - 0.03
    assert success_table["legal_regulated", 5] > success_table["legal_regulated", 4] + 0.03
    assert success_table["coding", 1] < 0.55 < success_table["coding", 4]  # agentic work
    assert success_table["long_horizon", 1] < 0.2


def test_trivial_questions_succeed_at_every_tier() -> None:
    """Capitals ("What is the capital of Japan?") are solved by every tier: route them low."""
    traces = list(generate_traces(1000, seed=12))
    trivial = [
        t
        for t in traces
        if "What is the capital of" in t["request"] and t["task_type"] == "quick_answer"
    ]
    assert len({t["request_id"] for t in trivial}) >= 10
    assert np.mean([t["task_success"] is True for t in trivial]) > 0.97


def test_run_costs_follow_real_prices(counterfactual: list[dict]) -> None:
    """Fractions of a cent for a quick answer at tier 1, tens of cents for agentic work on top."""

    def mean_cost(task_type: str, tier: int) -> float:
        return np.mean(
            [
                t["total_cost"]
                for t in counterfactual
                if (t["task_type"], t["predicted_tier"]) == (task_type, tier)
            ]
        )

    assert mean_cost("quick_answer", 1) < 0.002
    assert 0.05 < mean_cost("coding", 5) < 1.0
    assert mean_cost("long_horizon", 5) > mean_cost("long_horizon", 4) > mean_cost("coding", 3)


def test_outcomes_are_not_perfectly_predictable(counterfactual: list[dict]) -> None:
    by_request = defaultdict(dict)
    for trace in counterfactual:
        by_request[trace["request_id"]][trace["predicted_tier"]] = trace["task_success"] is True
    # A cheaper tier sometimes succeeds where a dearer one fails (noise, not only difficulty).
    inversions = sum(
        any(r[lo] and not r[hi] for lo in r for hi in r if lo < hi) for r in by_request.values()
    )
    assert 0.05 < inversions / len(by_request) < 0.6
    # The same task type and difficulty estimate leave the outcome open.
    cell = [
        t
        for t in counterfactual
        if (t["task_type"], t["difficulty"], t["predicted_tier"]) == ("coding", 3, 1)
    ]
    assert 0.2 < sum(t["task_success"] is True for t in cell) / len(cell) < 0.9


def test_text_carries_real_but_noisy_signal() -> None:
    """A text-only classifier trained on half the requests ranks the rest well, not perfectly."""
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    traces = list(generate_traces(1600, seed=8, tiers=[3]))
    text = HashingVectorizer(n_features=2**12, ngram_range=(1, 2)).transform(
        [t["request"] for t in traces]
    )
    won = np.array([t["task_success"] is True for t in traces])
    model = LogisticRegression(C=1.0, max_iter=2000).fit(text[:800], won[:800])
    auc = roc_auc_score(won[800:], model.predict_proba(text[800:])[:, 1])
    assert 0.65 < auc < 0.93


def test_the_run_mix_has_every_kind_of_run(counterfactual: list[dict]) -> None:
    outcomes = Counter(t["final_outcome"] for t in counterfactual)
    assert {"completed", "failed", "aborted"} <= set(outcomes)  # budget_exceeded: its own test
    false_done = sum(
        t["final_outcome"] == "completed" and t["task_success"] is False for t in counterfactual
    )
    assert 0.03 < false_done / len(counterfactual) < 0.3
    assert {None, 1, 2, 3, 4, 5} == {t["difficulty"] for t in counterfactual}
    steps = [step for t in counterfactual for step in t["steps"]]
    assert {len(t["steps"]) for t in counterfactual} >= set(range(1, 15))
    assert {step.get("verifier_passed") for step in steps if step["verifier_called"]} == {
        True,
        False,
    }
    assert any(step["model_call"].get("cached_input_tokens") for step in steps)
    tools = [tool for step in steps for tool in step["tool_calls"]]
    assert {tool["success"] for tool in tools} == {True, False}
    assert len({tool["tool_name"] for tool in tools}) > 15
    assert len({t["task_type"] for t in counterfactual}) == 7


def test_only_logged_runs_escalate(counterfactual: list[dict], logs: list[dict]) -> None:
    def escalations(traces: list[dict]) -> list[dict]:
        return [
            step["model_call"]
            for t in traces
            for step in t["steps"]
            if "escalated_from" in step["model_call"]
        ]

    assert escalations(counterfactual) == []  # each counterfactual run stays at its tier
    calls = escalations(logs)
    assert calls and all(c["tier"] == c["escalated_from"] + 1 for c in calls)
    escalated = sum(any("escalated_from" in s["model_call"] for s in t["steps"]) for t in logs)
    assert 0.02 < escalated / len(logs) < 0.25


def test_doomed_runs_burn_steps(counterfactual: list[dict]) -> None:
    aborted = [len(t["steps"]) for t in counterfactual if t["final_outcome"] == "aborted"]
    done = [len(t["steps"]) for t in counterfactual if t["task_success"] is True]
    assert np.mean(aborted) > np.mean(done) + 3
    retries = [
        s["action"] for t in counterfactual if t["final_outcome"] == "aborted" for s in t["steps"]
    ]
    assert any(action.startswith("retry: ") for action in retries)


def test_outcomes_are_known_in_counterfactual_runs_and_sometimes_missing_in_logs(
    counterfactual: list[dict],
    logs: list[dict],
) -> None:
    """A benchmark grades every run; in production logs some runs were never labelled."""
    assert all(t["task_success"] is not None for t in counterfactual)
    unknown = [t for t in logs if t["task_success"] is None]
    assert 0.03 < len(unknown) / len(logs) < 0.15
    assert all(t["final_outcome"] == "completed" for t in unknown)


def test_budget_exceeded_runs_stop_past_the_budget() -> None:
    """Long-horizon runs at the dearest tiers sometimes spend past the budget, and stop there."""
    config = ACOConfig().replace(max_cost_per_task=0.5)
    traces = list(generate_traces(300, seed=3, config=config, tiers=[4, 5]))
    over = [t for t in traces if t["final_outcome"] == "budget_exceeded"]
    assert over and all(t["total_cost"] > config.max_cost_per_task for t in over)
    assert all(t["task_success"] is False for t in over)
    others = [t for t in traces if t["final_outcome"] != "budget_exceeded"]
    assert all(t["total_cost"] <= config.max_cost_per_task for t in others)
    assert Counter(t["task_type"] for t in over).most_common(1)[0][0] == "long_horizon"


def test_logprobs_and_answers_lean_with_correctness(counterfactual: list[dict]) -> None:
    final = defaultdict(list)
    hedged = defaultdict(list)
    for trace in counterfactual:
        if trace["final_outcome"] != "completed" or trace["task_success"] is None:
            continue
        call = trace["steps"][-1]["model_call"]
        if "mean_logprob" in call:
            final[trace["task_success"]].append(call["mean_logprob"])
            assert call["min_logprob"] <= call["mean_logprob"] <= 0
        text = call["output_text"]
        hedged[trace["task_success"]].append(
            text.startswith(ANSWER_HEDGES) or text in ANSWER_REFUSALS
        )
    assert np.mean(final[True]) > np.mean(final[False]) + 0.1
    assert np.mean(hedged[False]) > np.mean(hedged[True]) + 0.15
    assert np.mean(hedged[True]) > 0  # right answers hedge too: a signal, not a label


def test_timestamps_spread_over_thirty_days(counterfactual: list[dict]) -> None:
    stamps = [datetime.fromisoformat(t["timestamp"]).timestamp() for t in counterfactual]
    assert min(stamps) >= START_EPOCH and max(stamps) <= START_EPOCH + SPAN_SECONDS + 600
    assert max(stamps) - min(stamps) > 0.9 * SPAN_SECONDS


def test_request_texts_vary_with_difficulty() -> None:
    requests = [build_sim_request(4, i) for i in range(600)]
    easy = [r.text for r in requests if r.visible < 0.25]
    hard = [r.text for r in requests if r.visible > 0.7]
    assert np.mean([len(t) for t in hard]) > 1.5 * np.mean([len(t) for t in easy])
    assert len({r.text for r in requests}) > 0.98 * len(requests)  # short ones may repeat
    assert any(not t.isascii() for t in (r.text for r in requests))


# -- arguments and the file ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_requests": -1}, DataError, "--n: expected an int >= 0"),
        ({"mode": "replay"}, DataError, "--mode: expected one of counterfactual, logs"),
        ({"tiers": [2, 6]}, ConfigError, r"--tiers: tier 6 is not configured; choose among"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, error: type, message: str) -> None:
    args = {"n_requests": 3, "seed": 0, **kwargs}
    with pytest.raises(error, match=message):
        list(generate_traces(**args))


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "sim.jsonl.gz"
    write_simulated_traces(path, 3, seed=1)
    before = path.read_bytes()
    with pytest.raises(ConfigError):
        write_simulated_traces(path, 3, seed=2, tiers=[9])
    # A failure after some blocks were written (fault injected into the second block).
    real = simulate._encode_block

    def second_fails(job: tuple) -> bytes:
        if job[0] > 0:
            raise OSError("disk full")
        return real(job)

    monkeypatch.setattr(simulate, "_encode_block", second_fails)
    with pytest.raises(OSError, match="disk full"):
        write_simulated_traces(path, simulate.BLOCK_REQUESTS + 1, seed=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["sim.jsonl.gz"]


def test_workers_write_the_same_bytes(tmp_path: Path) -> None:
    n = 2 * simulate.BLOCK_REQUESTS + 7
    one = write_simulated_traces(tmp_path / "one.jsonl.gz", n, seed=3, mode="logs")
    two = write_simulated_traces(tmp_path / "two.jsonl.gz", n, seed=3, mode="logs", workers=2)
    assert (tmp_path / "one.jsonl.gz").read_bytes() == (tmp_path / "two.jsonl.gz").read_bytes()
    assert one.traces == two.traces == n


def test_gzip_output_is_plain_gzip_of_the_lines(tmp_path: Path) -> None:
    write_simulated_traces(tmp_path / "a.jsonl.gz", 5, seed=2)
    write_simulated_traces(tmp_path / "a.jsonl", 5, seed=2)
    assert (
        gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes())
        == (tmp_path / "a.jsonl").read_bytes()
    )
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(generate_traces(5, seed=2))


SHIPPED = [
    (
        "aco-lab simulate --n 2000 --seed 20260101 --out data/sample_traces.jsonl.gz",
        "sample_traces.jsonl.gz",
        "counterfactual",
    ),
    (
        "aco-lab simulate --mode logs --n 2000 --seed 20260101 --out data/sample_logs.jsonl.gz",
        "sample_logs.jsonl.gz",
        "logs",
    ),
]


@pytest.mark.parametrize(("command", "name", "mode"), SHIPPED)
def test_the_shipped_samples_are_what_their_documented_commands_write(
    tmp_path: Path,
    command: str,
    name: str,
    mode: str,
) -> None:
    """data/README.md's commands regenerate data/*.jsonl.gz line for line."""
    readme = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    assert command in readme
    write_simulated_traces(tmp_path / name, 2000, seed=20260101, mode=mode)
    regenerated = gzip.decompress((tmp_path / name).read_bytes())
    assert gzip.decompress((REPO / "data" / name).read_bytes()) == regenerated
