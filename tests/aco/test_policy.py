"""The decision rule: vectorised (lab) and single-request (runtime) forms agree; invariants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aco.policy import (
    PolicyParams,
    build_allowed,
    calibrate,
    choose_tier,
    choose_tiers,
    expected_costs,
    make_monotone,
)

COSTS = np.array([0.0, 0.05, 0.3, 1.0, 1.5])
probs = st.lists(st.floats(0, 1), min_size=5, max_size=5).map(lambda v: np.maximum.accumulate(v))
params = st.builds(
    PolicyParams, st.floats(0, 1), st.floats(0, 1), st.sampled_from([0, 0.5, 3, 30]), st.just(1.0)
)


@settings(max_examples=300, deadline=None)
@given(p=probs, prm=params, floor=st.integers(1, 5), scale=st.floats(0.1, 10))
def test_single_request_rule_matches_the_vectorised_rule(p, prm, floor, scale) -> None:
    costs = COSTS * scale
    allowed = build_allowed(np.array([floor]), np.ones(5, dtype=bool))
    tiers, reasons = choose_tiers(p[None, :], costs[None, :], allowed, prm)
    single = choose_tier(p.tolist(), costs.tolist(), allowed[0].tolist(), prm)
    assert single == (tiers[0], reasons[0])
    assert tiers[0] + 1 >= floor


@settings(max_examples=200, deadline=None)
@given(
    p=probs,
    safety=st.floats(0, 1),
    low=st.floats(0, 1),
    high=st.floats(0, 1),
    value=st.sampled_from([0, 1, 10]),
)
def test_raising_the_downgrade_threshold_never_picks_a_cheaper_tier(p, safety, low, high, value):
    low, high = sorted((low, high))
    allowed = np.ones((1, 5), dtype=bool)
    t_low, _ = choose_tiers(p[None], COSTS[None], allowed, PolicyParams(safety, low, value, 1.0))
    t_high, _ = choose_tiers(p[None], COSTS[None], allowed, PolicyParams(safety, high, value, 1.0))
    assert t_high[0] >= t_low[0]


def test_safety_sends_hopeless_requests_to_the_top_allowed_tier() -> None:
    p = np.array([[0.1, 0.1, 0.2, 0.2, 0.25], [0.5, 0.9, 0.9, 0.95, 0.97]])
    allowed = build_allowed(np.array([1, 1]), np.array([True] * 4 + [False]))
    tiers, reasons = choose_tiers(p, np.tile(COSTS, (2, 1)), allowed, PolicyParams(0.3, 0.9))
    assert tiers.tolist() == [3, 1]  # top *configured* tier 4; then tier 2 keeps 0.9/0.95
    assert reasons.tolist() == [0, 1]


def test_success_value_trades_success_for_each_request_s_own_cost() -> None:
    p = np.array([[0.7, 0.7, 0.7, 0.7, 0.9]] * 2)
    costs = np.array([[0.0, 0.01, 0.02, 0.03, 0.1], [0.0, 0.01, 0.02, 0.03, 10.0]])
    allowed = np.ones((2, 5), dtype=bool)
    tiers, _ = choose_tiers(p, costs, allowed, PolicyParams(0.0, 0.0, success_value=1.0))
    assert tiers.tolist() == [4, 0]  # the top tier only where it is cheap for this request


def test_floor_above_every_configured_tier_leaves_the_top_configured_one() -> None:
    allowed = build_allowed(np.array([5]), np.array([True, True, True, False, False]))
    assert allowed.tolist() == [[False, False, True, False, False]]


def test_helpers() -> None:
    assert make_monotone(np.array([[0.5, 0.4, 0.6]])).tolist() == [[0.5, 0.5, 0.6]]
    np.testing.assert_allclose(
        expected_costs(
            np.array([1000.0]), np.array([[0, 500]]), np.array([1.0, 2.0]), np.array([0.0, 4.0])
        ),
        [[1.0, 4.0]],
    )
    assert calibrate(np.array([0.3]), {"method": "none"}) == 0.3
    assert calibrate(np.array([0.5]), {"method": "platt", "a": 1.0, "b": 0.0}) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="calibration.method"):
        calibrate(np.array([0.5]), {"method": "magic"})
    params = PolicyParams(0.1, 0.2, 3.0, 0.5)
    assert PolicyParams.from_dict(params.to_dict()) == params


@settings(max_examples=200, deadline=None)
@given(p=st.lists(st.floats(0, 1), min_size=5, max_size=5), a=st.floats(0, 5), b=st.floats(-5, 5))
def test_single_request_calibration_matches_the_vectorised_one(p, a, b) -> None:
    from aco.policy import calibrate_one, make_monotone_one

    for calibration in (
        {"method": "platt", "a": a, "b": b},
        {"method": "none"},
        {"method": "isotonic", "x": [0.0, 0.5, 1.0], "y": [0.1, 0.4, 0.9]},
    ):
        one = make_monotone_one(calibrate_one(p, calibration))
        many = make_monotone(calibrate(np.array([p]), calibration))[0]
        np.testing.assert_allclose(one, many, rtol=0, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    raw=st.lists(st.floats(-40, 40), min_size=5, max_size=5), a=st.floats(0, 5), b=st.floats(-5, 5)
)
def test_calibrating_margins_matches_calibrating_their_sigmoid(raw, a, b) -> None:
    from aco.policy import calibrate_margins_one

    for calibration in ({"method": "platt", "a": a, "b": b}, {"method": "none"}):
        fused = calibrate_margins_one(raw, calibration)
        plain = calibrate(1.0 / (1.0 + np.exp(-np.array(raw))), calibration)
        np.testing.assert_allclose(fused, plain, rtol=0, atol=1e-9)
