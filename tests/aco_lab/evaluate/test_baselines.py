"""The baselines on small outcome matrices (by hand) and invariants on random ones."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aco.config import ACOConfig
from aco_lab.evaluate.baselines import (
    choose_by_tradeoff,
    fit_task_type_table,
    oracle,
    random_mix_at_cost,
    random_mix_curve,
    rules_router,
    single_tier,
    static_cascade,
    task_floor_rule,
    task_type_curve,
)

TIERS = (1, 2, 3)
SUCCESS = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
COST = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])

outcome_matrices = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        arrays(np.float64, (n, 3), elements=st.sampled_from([0.0, 1.0])),
        arrays(np.float64, (n, 3), elements=st.floats(0.0, 5.0)),
    )
)


def test_oracle_takes_the_cheapest_successful_tier() -> None:
    r = oracle(SUCCESS, COST, TIERS)
    assert r.success_rate == pytest.approx(0.75)
    # tiers 1, 2, 3 for the solved requests; the unsolved one at its cheapest tier.
    assert r.cost_per_request == pytest.approx((1 + 2 + 4 + 1) / 4)
    assert dict(r.tier_mix) == {1: 0.5, 2: 0.25, 3: 0.25}


@settings(max_examples=60, deadline=None)
@given(outcome_matrices)
def test_oracle_succeeds_whenever_any_tier_did_and_never_under_routes(matrix) -> None:
    success, cost = matrix
    r = oracle(success, cost, TIERS)
    assert r.success_rate == pytest.approx(success.max(axis=1).mean())
    assert r.under_routing == 0.0
    for tier in TIERS:
        assert r.success_rate >= single_tier(success, cost, TIERS, tier).success_rate - 1e-12


def test_perfect_verifier_cascade_stops_at_the_first_success_and_pays_every_call() -> None:
    r = static_cascade(SUCCESS, COST, TIERS, verifier_error=0.0)
    assert r.success_rate == pytest.approx(0.75)
    # Request 0 stops at tier 1 (1), request 1 pays 1+2, requests 2 and 3 pay 1+2+4.
    assert r.cost_per_request == pytest.approx((1 + 3 + 7 + 7) / 4)
    assert dict(r.tier_mix) == pytest.approx({1: 0.25, 2: 0.25, 3: 0.5})


def test_a_verifier_that_is_always_wrong_accepts_failures_and_rejects_successes() -> None:
    r = static_cascade(SUCCESS, COST, TIERS, verifier_error=1.0)
    # Request 0: rejects 1, 2, top accepted (success). Request 1: accepts tier-1 failure.
    assert r.success_rate == pytest.approx(0.25)
    assert r.cost_per_request == pytest.approx((7 + 1 + 1 + 1) / 4)


@settings(max_examples=40, deadline=None)
@given(outcome_matrices, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_cascade_final_tiers_are_a_distribution_and_it_pays_the_first_call(m, e, v) -> None:
    success, cost = m
    r = static_cascade(success, cost, TIERS, verifier_error=e, verifier_cost=v)
    assert sum(share for _, share in r.tier_mix) == pytest.approx(1.0)
    assert r.cost_per_request >= cost[:, 0].mean() - 1e-9


def test_random_mixing_is_the_hull_of_single_tiers_and_interpolates_between_them() -> None:
    singles = [single_tier(SUCCESS, COST, TIERS, t) for t in TIERS]
    curve = random_mix_curve(singles)
    assert curve.costs == (1.0, 2.0, 4.0)
    assert curve.successes == (0.25, 0.5, 0.75)
    half = random_mix_at_cost(SUCCESS, COST, TIERS, singles, budget=3.0)
    assert half.cost_per_request == pytest.approx(3.0)
    assert half.success_rate == pytest.approx(0.625)
    assert dict(half.tier_mix) == pytest.approx({1: 0.0, 2: 0.5, 3: 0.5})
    at_tier = random_mix_at_cost(SUCCESS, COST, TIERS, singles, budget=2.0)
    assert at_tier.success_rate == pytest.approx(0.5)


def test_task_floor_rule_sends_each_type_to_its_floor() -> None:
    config = ACOConfig(task_floors={"coding": 3, "research": 2})
    r = task_floor_rule(SUCCESS, COST, TIERS, ["coding", "research", None, "chat"], config)
    assert dict(r.tier_mix) == {1: 0.5, 2: 0.25, 3: 0.25}


def test_rules_router_sends_trivial_questions_low_and_risky_code_high() -> None:
    tiers = (1, 2, 3, 4, 5)
    success, cost = np.ones((2, 5)), np.tile([1.0, 2.0, 3.0, 4.0, 5.0], (2, 1))
    requests = ["What is 2+2?", "Fix the race condition in our production payment code"]
    r = rules_router(success, cost, tiers, requests, [None, None], ACOConfig())
    mix = dict(r.tier_mix)
    assert mix[1] == pytest.approx(0.5)
    assert sum(mix[t] for t in (3, 4, 5)) == pytest.approx(0.5)


def test_per_task_type_choice_trades_success_for_cost() -> None:
    task_types = ["easy", "easy", "hard", "hard"]
    success = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    table = fit_task_type_table(success, COST, task_types)
    assert choose_by_tradeoff(table, TIERS, 0.0) == {"easy": 1, "hard": 3, "*": 3}
    assert choose_by_tradeoff(table, TIERS, 1e6) == {"easy": 1, "hard": 1, "*": 1}
    curve, choices = task_type_curve(table, TIERS, success, COST, task_types)
    assert max(curve.successes) == pytest.approx(1.0)
    assert min(curve.costs) == pytest.approx(1.0)
    assert len(choices) == len(curve.costs)


def test_unseen_task_types_get_the_overall_choice() -> None:
    table = fit_task_type_table(SUCCESS, COST, ["a"] * 4)
    curve, _ = task_type_curve(table, TIERS, SUCCESS, COST, ["never-seen"] * 4)
    assert curve.successes[0] == pytest.approx(0.75)  # tradeoff 0: the best tier overall
