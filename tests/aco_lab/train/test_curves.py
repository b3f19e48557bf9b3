"""Frontier and area metrics: hand-checked curves and invariants over random point sets."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aco_lab.train.curves import (
    Curve,
    Reference,
    build_area_metrics,
    build_frontier,
    build_reference,
    build_sweep,
    choose_point,
    frontier_cost_at,
    frontier_success,
)

REF = Reference(
    weak_cost=1.0, weak_success=0.5, strong_cost=3.0, strong_success=0.9, cost_lo=1.0, cost_hi=3.0
)


def test_frontier_drops_dominated_points_and_points_under_a_segment() -> None:
    costs = [1.0, 2.0, 2.0, 3.0, 4.0, 5.0]
    successes = [0.5, 0.6, 0.55, 0.9, 0.8, 0.85]
    fc, fs = build_frontier(costs, successes)
    # (2, 0.6) lies under the segment (1, .5)-(3, .9); everything past the best is dropped.
    assert fc.tolist() == [1.0, 3.0]
    assert fs.tolist() == [0.5, 0.9]


def test_frontier_success_is_zero_left_flat_right_and_linear_between() -> None:
    fc, fs = np.array([1.0, 3.0]), np.array([0.5, 0.9])
    assert frontier_success(fc, fs, 0.5) == 0.0
    assert frontier_success(fc, fs, 2.0) == pytest.approx(0.7)
    assert frontier_success(fc, fs, 10.0) == pytest.approx(0.9)


def test_linear_mix_of_weak_and_strong_recovers_half_the_gap() -> None:
    m = build_area_metrics(Curve("mix", (1.0, 3.0), (0.5, 0.9)), REF)
    assert m.apgr == pytest.approx(0.5)
    assert m.aiq == pytest.approx(0.7)
    cpt = dict(m.cpt)
    assert cpt[0.5] == pytest.approx(0.5)
    assert cpt[0.8] == pytest.approx(0.8)
    cost_at = dict(m.cost_at)
    assert cost_at[1.0] == pytest.approx(3.0)
    assert dict(m.cost_fraction_at)[1.0] == pytest.approx(1.0)


def test_a_router_at_strong_success_for_weak_cost_recovers_everything() -> None:
    m = build_area_metrics(Curve("perfect", (1.0,), (0.9,)), REF)
    assert m.apgr == pytest.approx(1.0)
    assert m.aiq == pytest.approx(0.9)
    assert dict(m.cpt)[0.8] == pytest.approx(0.0)


def test_a_curve_that_never_reaches_the_target_has_no_cost_at_it() -> None:
    m = build_area_metrics(Curve("weak", (1.0, 2.0), (0.5, 0.8)), REF)
    assert dict(m.cost_at)[0.95] is None
    assert m.to_dict()["cost_at"]["95"] is None
    assert m.to_dict()["cost_at"]["80"] == pytest.approx(1.0 + 0.22 / 0.3)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.01, 10.0), st.floats(0.0, 1.0)), min_size=1, max_size=12),
    st.floats(0.0, 1.0),
)
def test_frontier_is_increasing_and_cost_at_inverts_it(points, target) -> None:
    fc, fs = build_frontier([p[0] for p in points], [p[1] for p in points])
    assert np.all(np.diff(fc) > 0) and np.all(np.diff(fs) > 0)
    # No input point lies above the frontier.
    for c, s in points:
        assert s <= frontier_success(fc, fs, c) + 1e-9 or c < fc[0]
    cost = frontier_cost_at(fc, fs, target)
    if cost is None:
        assert target > fs[-1]
    else:
        assert frontier_success(fc, fs, cost) >= target - 1e-9
        assert cost == fc[0] or frontier_success(fc, fs, cost * (1 - 1e-9)) < target + 1e-9


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(1.0, 3.0), st.floats(0.0, 1.0)), min_size=1, max_size=10),
    st.tuples(st.floats(1.0, 3.0), st.floats(0.0, 1.0)),
)
def test_adding_a_point_never_lowers_the_area(points, extra) -> None:
    base = build_area_metrics(Curve("a", *map(tuple, zip(*points, strict=True))), REF)
    more = build_area_metrics(Curve("b", *map(tuple, zip(*(points + [extra]), strict=True))), REF)
    assert more.aiq >= base.aiq - 1e-12


def test_reference_takes_the_cheapest_tier_as_weak_and_the_top_tier_as_strong() -> None:
    ref = build_reference({1: 2.0, 2: 1.0, 5: 9.0}, {1: 0.6, 2: 0.5, 5: 0.8}, top_tier=5)
    assert (ref.weak_cost, ref.weak_success) == (1.0, 0.5)
    assert (ref.strong_cost, ref.strong_success) == (9.0, 0.8)
    assert (ref.cost_lo, ref.cost_hi) == (1.0, 9.0)


def test_build_sweep_and_choose_point() -> None:
    success = np.array([1.0, 0.0, 1.0, 1.0])
    curve = build_sweep(
        decide=lambda t: (np.arange(4) < round(t * 4)).astype(int),
        score=lambda tiers: (float(tiers.sum()), float((tiers * success).mean())),
        thresholds=[0.0, 0.25, 0.5, 1.0],
    )
    assert curve.params == (0.0, 0.25, 0.5, 1.0)
    assert curve.successes == (0.0, 0.25, 0.25, 0.75)
    assert choose_point(curve, 0.25) == 1  # same success at 0.5 costs more
    assert choose_point(curve, 0.8) is None
