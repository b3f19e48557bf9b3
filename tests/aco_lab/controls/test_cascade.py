"""Learning and replaying the cascade: data layout, the learned policy, exact paid replay."""

import json
from pathlib import Path

import numpy as np
import pytest

from aco.cascade import CascadePolicy
from aco.config import ACOConfig, TierSpec, load_config
from aco.errors import DataError
from aco_lab.controls.cascade import CascadeSettings, cascade_curve_specs, learn_cascade
from aco_lab.controls.cascade_data import build_cascade_data
from aco_lab.controls.cascade_replay import (
    agreement_chooser,
    learned_chooser,
    replay,
    write_decisions,
)
from aco_lab.traces.split import assign_splits
from tests.aco_lab.controls.builders import (
    agreement_world,
    replay_decisions_independently,
    run,
    step,
    tables_of,
)

CONFIG = ACOConfig(tiers=(TierSpec(1, "cheap-a"), TierSpec(2, "cheap-b"), TierSpec(5, "top")),
                   task_floors={})


def test_cascade_data_lays_out_each_requests_final_answers_and_costs(tmp_path) -> None:
    runs = [
        run("x-a", [step(1, 1, 0.001, "cheap-a", text="draft"),
                    step(2, 1, 0.002, "cheap-a", text="B", logprobs=(-0.2, -1.5))],
            True, request_id="x"),
        run("x-top", [step(1, 5, 0.05, "top", text="B")], True, request_id="x"),
        run("y-a", [step(1, 1, 0.001, "cheap-a", text="C")], False, request_id="y"),  # alone
    ]
    data = build_cascade_data(tables_of(tmp_path, runs), CONFIG)
    assert data.request_ids == ("x",)  # y ran at one tier only: nothing to learn from it
    assert data.options == ("cheap-a", "top") and data.top == "top"
    answer = data.answer(0, "cheap-a")
    assert (answer.text, answer.mean_logprob, answer.min_logprob) == ("B", -0.2, -1.5)
    assert data.cost[0, data.col("cheap-a")] == pytest.approx(0.003)  # every call of the run


def test_traces_with_one_tier_per_request_cannot_teach_a_cascade(tmp_path) -> None:
    runs = [run(f"r{i}", [step(1, 1, text="A")], True) for i in range(5)]
    with pytest.raises(DataError, match="counterfactual"):
        build_cascade_data(tables_of(tmp_path, runs), CONFIG)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Agreement world: 500 training requests and 500 held-out ones, laid out."""
    tmp = tmp_path_factory.mktemp("world")
    data = build_cascade_data(tables_of(tmp, agreement_world(1000, seed=3)), CONFIG)
    train = data.take(np.arange(500))
    held = data.take(np.arange(500, 1000))
    return train, held, learn_cascade(train, seed=0)


def test_the_learned_cascade_trusts_agreement_and_pays_far_less_than_the_top(world) -> None:
    train, held, spec = world
    policy = spec["policies"]["mc"]
    assert policy["sequence"] == ["cheap-a", "cheap-b"] and policy["fallback"] == "top"
    lines, learned = replay("learned", held, learned_chooser(spec))
    assert learned.success_ratio >= 0.93
    assert learned.cost_ratio <= 0.75
    _, crude = replay("agreement", held, agreement_chooser(["cheap-a", "cheap-b"], "top"))
    assert learned.cost <= crude.cost * 1.02  # it never pays more than blind agreement
    escalated = [line for line in lines if len(line.tiers) == 3]
    assert escalated and all(line.final_model == "top" for line in escalated)


def test_every_call_a_cascade_makes_is_paid(world) -> None:
    _, held, spec = world
    lines, summary = replay("learned", held, learned_chooser(spec))
    for line in lines:
        row = held.request_ids.index(line.request_id)
        paid = sum(held.cost[row, held.col(m)] for m in line.models)
        assert line.cost == pytest.approx(paid)
        assert line.tiers == tuple(held.tier_of(m) for m in line.models)
        assert line.final_model in line.models
    assert summary.cost == pytest.approx(sum(line.cost for line in lines))


def test_a_higher_target_buys_more_success_on_the_training_requests(world) -> None:
    train, _, _ = world
    figures = []
    for target in (0.80, 0.90, 0.99):
        spec = learn_cascade(train, seed=0, settings=CascadeSettings(target_success_ratio=target))
        _, summary = replay("t", train, learned_chooser(spec))
        figures.append((summary.successes, summary.cost))
    assert [s for s, _ in figures] == sorted(s for s, _ in figures)
    assert [c for _, c in figures] == sorted(c for _, c in figures)


def test_the_curve_specs_trade_cost_for_success_around_the_chosen_point(world) -> None:
    train, _, chosen = world
    specs = cascade_curve_specs(train, seed=0, points=9)
    values = [spec["value_per_success"] for spec in specs]
    successes = [spec["train"]["successes"] for spec in specs]
    costs = [spec["train"]["cost"] for spec in specs]
    assert values == sorted(values) and len(set(values)) == 9
    assert successes == sorted(successes) and costs == sorted(costs)
    assert successes[0] < successes[-1]
    # learn_cascade's point is on the same curve: the same fits, its value inside the range
    assert values[0] < chosen["value_per_success"] < values[-1]
    assert successes[0] <= chosen["train"]["successes"] <= successes[-1]


def test_the_spec_is_plain_data_the_runtime_accepts(world) -> None:
    _, _, spec = world
    CascadePolicy(spec)  # validates
    assert json.loads(json.dumps(spec)) == spec


def _check_replay_file(tmp_path: Path, traces: Path, config: ACOConfig, seed: int) -> None:
    from aco_lab.traces.reading import read_traces

    data = build_cascade_data(read_traces([traces]), config)
    parts = assign_splits(data.request_ids, [("train", 0.5), ("eval", 0.5)], seed=seed)
    spec = learn_cascade(data.select(set(parts["train"])), seed=seed)
    lines, summary = replay("learned", data.select(set(parts["eval"])), learned_chooser(spec))
    path = write_decisions(lines, tmp_path / "decisions.jsonl")
    successes, cost, calls = replay_decisions_independently(path, [traces])
    assert successes == summary.successes
    assert cost == pytest.approx(summary.cost, rel=1e-9)
    assert calls == round(summary.calls_per_request * summary.requests)
    assert calls > summary.requests  # some requests paid for more than one call


def test_decisions_replay_exactly_from_simulated_traces(tmp_path, sim) -> None:
    _check_replay_file(tmp_path, sim.path, ACOConfig(), seed=0)


@pytest.mark.shared_data
def test_decisions_replay_exactly_from_routerbench(tmp_path, routerbench_dir) -> None:
    _check_replay_file(tmp_path, routerbench_dir / "traces.jsonl.gz",
                       load_config(routerbench_dir / "config.yaml"), seed=0)


def test_a_policy_replayed_on_its_own_search_rows_gives_the_searched_totals() -> None:
    from aco_lab.controls.cascade_search import StageData, replay_point, search_sequence

    rng = np.random.default_rng(5)
    n = 300
    p = [rng.random(n), rng.random(n)]
    correct = [(rng.random(n) < q).astype(float) for q in p]
    costs = [np.full(n, 0.001), np.full(n, 0.002)]
    fb_correct, fb_cost = (rng.random(n) < 0.9).astype(float), np.full(n, 0.05)
    stages = [StageData(p[k], correct[k], costs[k]) for k in range(2)]
    points = search_sequence(("a", "b"), "top", stages, fb_correct, fb_cost)
    assert len(points) > 3
    for point in points:
        assert replay_point(point, p, correct, costs, fb_correct, fb_cost) == pytest.approx(
            (point.successes, point.cost))


def test_cross_fitting_raises_the_in_sample_target_and_reports_out_of_sample_figures(
        world) -> None:
    train, held, plain = world
    spec = learn_cascade(train, seed=0, settings=CascadeSettings(cross_fit=True))
    assert json.loads(json.dumps(spec)) == spec  # plain data still
    figures = spec["train"]["cross_fitted"]
    assert spec["train"]["in_sample_target"] >= 0.95
    assert figures["successes"] >= 0.95 * figures["top_successes"]
    assert figures["top_successes"] == spec["train"]["top_successes"]  # every row, once
    _, crossed = replay("crossed", held, learned_chooser(spec))
    _, learned = replay("plain", held, learned_chooser(plain))
    assert crossed.successes >= learned.successes  # a target at least as high
