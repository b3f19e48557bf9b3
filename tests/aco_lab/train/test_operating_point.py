"""The operating point: the cheapest swept policy that keeps the success floor."""

import numpy as np

from aco.policy import PolicyParams, build_allowed, choose_tiers
from aco_lab.train.operating_point import (
    ValidationSet,
    build_task_floors,
    choose_operating_point,
    request_floors,
)


def validation(n: int = 400, seed: int = 0, informative: bool = True) -> ValidationSet:
    """Requests whose cheap tiers solve the easy half; informative predictions know which."""
    rng = np.random.default_rng(seed)
    easy = rng.uniform(size=n) < 0.5
    success = np.column_stack([easy, easy, easy, easy | (rng.uniform(size=n) < 0.5), np.ones(n)])
    p_easy = np.where(easy, 0.95, 0.3) if informative else np.full(n, 0.6)
    columns = [p_easy] * 3 + [np.maximum(p_easy, 0.7), np.ones(n)]
    p = np.maximum.accumulate(np.column_stack(columns), axis=1)
    cost = np.tile([0.01, 0.02, 0.05, 0.5, 1.0], (n, 1))
    return ValidationSet(
        p=p,
        costs=cost,
        success=success.astype(float),
        cost=cost,
        task_types=["qa"] * n,
        configured=np.ones(5, dtype=bool),
    )


def test_operating_point_holds_the_floor_at_a_fraction_of_the_cost() -> None:
    point = choose_operating_point(validation(), 0.95, 1.0)
    assert point.met_floor and point.success_ratio >= 0.95
    assert point.cost_ratio < 0.6  # easy requests go cheap


def test_the_chosen_point_is_the_cheapest_on_the_grid_that_holds_the_floor() -> None:
    data = validation(seed=1)
    point = choose_operating_point(data, 0.95, 1.0)
    allowed = build_allowed(np.ones(400, dtype=int), data.configured)
    for safety, downgrade, value in [(0, 0.5, 0), (0, 0.9, 1.0), (0.2, 0.8, 10.0), (0, 1.0, 0)]:
        tiers, _ = choose_tiers(data.p, data.costs, allowed, PolicyParams(safety, downgrade, value))
        rows = np.arange(400)
        if data.success[rows, tiers].mean() >= 0.95 * data.success[:, 4].mean():
            assert point.cost <= data.cost[rows, tiers].mean() + 1e-12


def test_a_higher_floor_never_costs_less() -> None:
    data = validation(seed=2)
    costs = [choose_operating_point(data, f, 1.0).cost for f in (0.8, 0.9, 0.95, 1.0)]
    assert costs == sorted(costs)


def test_unreachable_floor_picks_the_most_successful_policy() -> None:
    data = validation(seed=3)
    data = ValidationSet(
        data.p, data.costs, data.success * 0.5, data.cost, data.task_types, data.configured
    )
    data.success[:, 4] = 1.0
    data.success[:, 3] = 0.0
    point = choose_operating_point(data, 1.01, 1.0)
    assert not point.met_floor and point.success == 1.0


def test_unobserved_cells_are_scored_with_predictions() -> None:
    data = validation(seed=4)
    success = data.success.copy()
    success[:, :4] = np.nan
    success_table, _ = ValidationSet(
        data.p, data.costs, success, data.cost, data.task_types, data.configured
    ).scored()
    np.testing.assert_array_equal(success_table[:, :4], data.p[:, :4])


def test_task_floors_skip_tiers_far_below_the_best() -> None:
    types = ["code"] * 300 + ["qa"] * 300
    tiers = np.tile([1, 2, 3], 200)
    rng = np.random.default_rng(0)
    rate = {
        ("code", 1): 0.2,
        ("code", 2): 0.3,
        ("code", 3): 0.8,
        ("qa", 1): 0.7,
        ("qa", 2): 0.8,
        ("qa", 3): 0.9,
    }
    success = np.array([rng.uniform() < rate[(t, k)] for t, k in zip(types, tiers, strict=True)])
    floors = build_task_floors(types, tiers, success.astype(float))
    assert floors == {"code": 3, "qa": 1}
    assert request_floors(["code", None, "other"], floors).tolist() == [3, 1, 1]


def test_sweep_scores_each_policy_as_the_decision_rule_routes() -> None:
    from aco_lab.train.operating_point import sweep

    data = validation(n=300, seed=5, informative=False)
    data.p[:, 2] = np.linspace(0.1, 0.9, 300)  # spread, so safety and downgrade both bite
    data = ValidationSet(
        np.maximum.accumulate(data.p, axis=1),
        data.costs,
        data.success,
        data.cost,
        ["qa"] * 150 + ["code"] * 150,
        data.configured,
    )
    floors = {"code": 3}
    points, successes, costs = sweep(data, floors, 1.0)
    allowed = build_allowed(np.array([1] * 150 + [3] * 150), data.configured)
    rows = np.arange(300)
    for i in range(0, len(points), 37):
        tiers, _ = choose_tiers(data.p, data.costs, allowed, points[i])
        assert successes[i] == data.success[rows, tiers].mean()
        assert costs[i] == data.cost[rows, tiers].mean()
