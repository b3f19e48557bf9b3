"""Replay of tier choices on an outcome matrix, mixtures, and the two estimators for logs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aco.errors import DataError
from aco_lab.evaluate.replay import (
    KIND_ESTIMATE,
    KIND_REPLAY,
    LoggedRuns,
    build_under_over,
    estimate_direct,
    estimate_ipw,
    replay_choices,
    replay_mixture,
)

TIERS = (1, 3, 5)
# Rows: requests; columns: tiers 1, 3, 5.
SUCCESS = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
COST = np.array([[1.0, 2.0, 10.0], [1.0, 3.0, 10.0], [2.0, 2.0, 20.0], [1.0, 1.0, 1.0]])


def test_replay_takes_the_observed_run_of_each_chosen_tier() -> None:
    r = replay_choices("p", SUCCESS, COST, TIERS, np.array([1, 1, 5, 3]))
    assert r.kind == KIND_REPLAY
    assert r.n_requests == 4
    assert r.success_rate == pytest.approx(2 / 4)
    assert r.cost_per_request == pytest.approx((1 + 1 + 20 + 1) / 4)
    assert r.cost_per_success == pytest.approx(23 / 2)
    assert dict(r.tier_mix) == {1: 0.5, 3: 0.25, 5: 0.25}
    # Request 1 at tier 1 failed where tier 3 succeeded: under-routed; nothing over-routed.
    assert r.under_routing == pytest.approx(1 / 4)
    assert r.over_routing == pytest.approx(0.0)


def test_paying_for_a_higher_tier_when_a_cheaper_one_succeeded_is_over_routing() -> None:
    r = replay_choices("top", SUCCESS, COST, TIERS, np.full(4, 5))
    assert r.over_routing == pytest.approx(2 / 4)  # requests 0 and 1
    assert r.under_routing == 0.0


def test_under_over_matrices_by_hand() -> None:
    under, over = build_under_over(SUCCESS)
    assert under.tolist() == [
        [False, False, False],
        [True, False, False],
        [True, True, False],
        [False, False, False],
    ]
    assert over.tolist() == [
        [False, True, True],
        [False, False, True],
        [False, False, False],
        [False, False, False],
    ]


def test_nothing_succeeded_gives_no_cost_per_success() -> None:
    r = replay_choices("none", SUCCESS[3:], COST[3:], TIERS, np.array([1]))
    assert r.cost_per_success is None
    assert r.to_dict()["cost_per_success"] is None


def test_an_unknown_tier_is_a_data_error_naming_it() -> None:
    with pytest.raises(DataError, match="tier 2 is not one of the evaluated tiers"):
        replay_choices("p", SUCCESS, COST, TIERS, np.array([1, 2, 5, 5]))


def test_no_requests_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no evaluation requests"):
        replay_choices("p", SUCCESS[:0], COST[:0], TIERS, np.array([], dtype=int))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=4, max_size=4))
def test_a_one_hot_mixture_equals_the_replay(columns) -> None:
    chosen = np.array([TIERS[c] for c in columns])
    weights = np.zeros(SUCCESS.shape)
    weights[np.arange(4), columns] = 1.0
    a = replay_choices("p", SUCCESS, COST, TIERS, chosen)
    b = replay_mixture("p", SUCCESS, COST, TIERS, weights, kind=KIND_REPLAY)
    assert a == b


def test_a_mixture_is_the_weighted_average_of_its_parts() -> None:
    weights = np.tile([0.25, 0.0, 0.75], (4, 1))
    r = replay_mixture("mix", SUCCESS, COST, TIERS, weights)
    t1 = replay_choices("1", SUCCESS, COST, TIERS, np.full(4, 1))
    t5 = replay_choices("5", SUCCESS, COST, TIERS, np.full(4, 5))
    assert r.success_rate == pytest.approx(0.25 * t1.success_rate + 0.75 * t5.success_rate)
    expected_cost = 0.25 * t1.cost_per_request + 0.75 * t5.cost_per_request
    assert r.cost_per_request == pytest.approx(expected_cost)
    assert dict(r.tier_mix) == pytest.approx({1: 0.25, 3: 0.0, 5: 0.75})


def test_direct_method_with_true_probabilities_matches_the_expected_outcome() -> None:
    probs = np.array([[0.2, 0.5, 0.9]] * 1000)
    cost = np.tile([1.0, 2.0, 4.0], (1000, 1))
    r = estimate_direct("router", probs, cost, TIERS, np.full(1000, 3))
    assert r.kind == KIND_ESTIMATE
    assert r.success_rate == pytest.approx(0.5)
    assert r.cost_per_request == pytest.approx(2.0)
    assert r.under_routing is None and "not a replay" in r.note


def test_ipw_recovers_a_policy_from_uniformly_logged_runs() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    true_success = np.array([0.3, 0.6, 0.9])
    true_cost = np.array([1.0, 2.0, 5.0])
    column = rng.integers(0, 3, n)
    logs = LoggedRuns(
        tier=np.asarray(TIERS)[column],
        success=(rng.random(n) < true_success[column]).astype(float),
        cost=true_cost[column],
        propensity=np.full(n, 1 / 3),
    )
    # The policy: tier 3 for the first half of the requests, tier 5 for the rest.
    chosen = np.where(np.arange(n) < n // 2, 3, 5)
    r = estimate_ipw("router", logs, TIERS, chosen)
    assert r.kind == KIND_ESTIMATE
    assert r.success_rate == pytest.approx(0.75, abs=0.02)
    assert r.cost_per_request == pytest.approx(3.5, abs=0.1)
    assert "effective sample size" in r.note


def test_ipw_refuses_logs_without_routing_probabilities() -> None:
    logs = LoggedRuns(np.array([1]), np.array([1.0]), np.array([1.0]), np.array([np.nan]))
    with pytest.raises(DataError, match="routing probability"):
        estimate_ipw("router", logs, TIERS, np.array([1]))
