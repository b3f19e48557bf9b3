"""Learning and replaying the cascade: data layout, the learned policy, exact paid replay."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aco.cascade import CascadePolicy
from aco.config import ACOConfig, TierSpec, load_config
from aco.errors import DataError
from aco_lab.controls.cascade import (
    CascadeSettings,
    cascade_curve_specs,
    learn_cascade,
    learn_cascades,
)
from aco_lab.controls.cascade_data import CascadeData, build_cascade_data
from aco_lab.controls.cascade_fit import OPERATING_POINTS
from aco_lab.controls.cascade_point import choose_point
from aco_lab.controls.cascade_replay import (
    CascadeSummary,
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

CONFIG = ACOConfig(
    tiers=(TierSpec(1, "cheap-a"), TierSpec(2, "cheap-b"), TierSpec(5, "top")), task_floors={}
)


def test_cascade_data_lays_out_each_requests_final_answers_and_costs(tmp_path) -> None:
    runs = [
        run(
            "x-a",
            [
                step(1, 1, 0.001, "cheap-a", text="draft"),
                step(2, 1, 0.002, "cheap-a", text="B", logprobs=(-0.2, -1.5)),
            ],
            True,
            request_id="x",
        ),
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


def _check_replay_file(
    tmp_path: Path, held: CascadeData, spec: dict, traces: Path
) -> CascadeSummary:
    lines, summary = replay("learned", held, learned_chooser(spec))
    path = write_decisions(lines, tmp_path / "decisions.jsonl")
    successes, cost, calls = replay_decisions_independently(path, [traces])
    assert successes == summary.successes
    assert cost == pytest.approx(summary.cost, rel=1e-9)
    assert calls == round(summary.calls_per_request * summary.requests)
    assert calls > summary.requests  # some requests paid for more than one call
    return summary


def test_decisions_replay_exactly_from_simulated_traces(tmp_path, sim, sim_cascade) -> None:
    _, held, specs = sim_cascade
    _check_replay_file(tmp_path, held, specs["out_of_fold"], sim.path)


@pytest.mark.shared_data
def test_decisions_replay_exactly_from_routerbench_and_keep_the_target(
    tmp_path, routerbench_dir
) -> None:
    from aco_lab.traces.reading import read_traces

    traces = routerbench_dir / "traces.jsonl.gz"
    data = build_cascade_data(read_traces([traces]), load_config(routerbench_dir / "config.yaml"))
    parts = assign_splits(data.request_ids, [("train", 0.5), ("eval", 0.5)], seed=0)
    spec = learn_cascade(data.select(set(parts["train"])), seed=0)
    summary = _check_replay_file(tmp_path, data.select(set(parts["eval"])), spec, traces)
    # The point chosen out of fold holds on the other half (chosen in sample, the same
    # cascade kept 93.9% there).
    assert summary.success_ratio >= 0.95


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
            (point.successes, point.cost)
        )


@pytest.fixture(scope="module")
def sim_cascade(sim):  # noqa: ANN201
    """The simulator's traces laid out, and cascades learned on the training half with the
    operating point chosen each way."""
    train = build_cascade_data(sim.train, ACOConfig())
    held = build_cascade_data(sim.held_out, ACOConfig())
    specs = learn_cascades(
        train, seed=0, settings=[CascadeSettings(operating_point=rule) for rule in OPERATING_POINTS]
    )
    return train, held, dict(zip(OPERATING_POINTS, specs, strict=True))


def test_the_out_of_fold_point_keeps_on_held_out_requests_what_it_promises(sim_cascade) -> None:
    train, held, specs = sim_cascade
    point = specs["out_of_fold"]["train"]["operating_point"]
    assert (point["rule"], point["folds"], point["reached"]) == ("out_of_fold", 5, True)
    assert point["successes"] >= 0.95 * point["top_successes"]
    # every training request is replayed once, by policies learned without it
    assert point["top_successes"] == specs["out_of_fold"]["train"]["top_successes"]
    promised = specs["in_sample"]["train"]["operating_point"]
    assert promised["rule"] == "in_sample" and promised["success_ratio"] >= 0.95
    _, in_sample = replay("in sample", held, learned_chooser(specs["in_sample"]))
    _, out_of_fold = replay("out of fold", held, learned_chooser(specs["out_of_fold"]))
    # The frontier's own figures promise 95% and the simulator's other half gives less;
    # the point chosen on replays of requests the policies did not learn from keeps it.
    assert in_sample.success_ratio < 0.95 <= out_of_fold.success_ratio


def test_a_budget_caps_the_cost_and_the_spec_says_the_target_is_out_of_reach(world, caplog) -> None:
    train, held, free = world
    budget = 0.5 * free["train"]["operating_point"]["cost_ratio"]
    with caplog.at_level(logging.WARNING, logger="aco_lab.controls.cascade_point"):
        spec = learn_cascade(train, seed=0, settings=CascadeSettings(max_cost_ratio=budget))
    point = spec["train"]["operating_point"]
    assert point["max_cost_ratio"] == budget and not point["reached"]
    assert point["cost_ratio"] <= budget
    assert "out of reach" in caplog.text
    _, capped = replay("capped", held, learned_chooser(spec))
    _, uncapped = replay("free", held, learned_chooser(free))
    assert capped.cost < uncapped.cost and capped.successes < uncapped.successes


def test_too_few_requests_for_the_folds_choose_the_point_in_sample(tmp_path, caplog) -> None:
    data = build_cascade_data(tables_of(tmp_path, agreement_world(8, seed=1)), CONFIG)
    with caplog.at_level(logging.WARNING, logger="aco_lab.controls.cascade_point"):
        spec = learn_cascade(data, seed=0)
    assert spec["train"]["operating_point"]["rule"] == "in_sample"
    assert "too few for 5 folds" in caplog.text


def test_small_task_types_are_counted_where_the_pooled_policy_serves_them(tmp_path) -> None:
    runs = agreement_world(300, seed=4)
    for r in runs:  # a third of the requests spread over task types too small for a policy
        i = int(r["request_id"][1:])
        if i % 3 == 0:
            r["task_type"] = f"rare-{i % 4}"
    data = build_cascade_data(tables_of(tmp_path, runs), CONFIG)
    spec = learn_cascade(data, seed=0, settings=CascadeSettings(operating_point="in_sample"))
    assert set(spec["policies"]) == {"mc", "*"}
    assert spec["policies"]["*"]["train"]["requests"] == 100  # the rare types' requests
    assert spec["train"]["requests"] == 300  # the operating point counts every request
    assert spec["train"]["top_successes"] == np.nansum(data.success[:, data.col("top")])


# (success, cost) of four values per success, the top model at (100, 100) on the same requests
FIGURES = [(80, 10), (94, 20), (96, 30), (97, 25)]


@pytest.mark.parametrize(
    ("target", "budget", "chosen", "reached"),
    [
        (0.95, None, 3, True),  # the cheapest reaching 95%: 97 at 25 before 96 at 30
        (0.90, None, 1, True),
        (0.95, 0.22, 1, False),  # within the budget, the most successful
        (0.99, None, 3, False),  # out of reach: the most successful, the cheapest of those
        (0.50, 0.05, 0, False),  # nothing within the budget: the cheapest
    ],
)
def test_the_rule_takes_the_cheapest_point_reaching_the_target_within_the_budget(
    target, budget, chosen, reached
) -> None:
    figures = np.array([(s, c, 100.0, 100.0) for s, c in FIGURES])
    point = choose_point(
        np.arange(1.0, 5.0),
        figures,
        CascadeSettings(target_success_ratio=target, max_cost_ratio=budget),
    )
    assert (point.value, point.reached) == (chosen + 1.0, reached)
    assert (point.successes, point.cost) == FIGURES[chosen]


@given(
    st.lists(st.tuples(st.integers(0, 120), st.integers(1, 100)), min_size=1, max_size=12),
    st.sampled_from([0.8, 0.9, 0.95, 1.0]),
    st.sampled_from([None, 0.2, 0.5]),
)
def test_no_cheaper_point_reaches_the_target_than_the_chosen_one(points, target, budget) -> None:
    figures = np.array([(s, c, 100.0, 100.0) for s, c in points], dtype=float)
    point = choose_point(
        np.arange(len(points), dtype=float),
        figures,
        CascadeSettings(target_success_ratio=target, max_cost_ratio=budget),
    )
    ok = [(s >= 100 * target) and (budget is None or c <= 100 * budget) for s, c in points]
    assert point.reached == any(ok)
    if point.reached:
        assert point.successes >= 100 * target
        assert point.cost == min(c for (s, c), good in zip(points, ok, strict=True) if good)


def test_several_operating_points_of_one_learning_are_those_learned_one_by_one(world) -> None:
    train, _, default = world
    settings = [
        CascadeSettings(),
        CascadeSettings(operating_point="in_sample"),
        CascadeSettings(target_success_ratio=0.9, max_cost_ratio=0.3),
    ]
    specs = learn_cascades(train, seed=0, settings=settings)
    assert specs[0] == default
    assert specs[1:] == [learn_cascade(train, seed=0, settings=one) for one in settings[1:]]
    with pytest.raises(DataError, match="differ only"):
        learn_cascades(train, seed=0, settings=[CascadeSettings(), CascadeSettings(C=0.1)])


def test_settings_refuse_an_unknown_operating_point_rule() -> None:
    with pytest.raises(DataError, match="operating_point"):
        CascadeSettings(operating_point="held_out")
