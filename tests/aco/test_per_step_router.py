"""PerStepRouter: tiers per step, downgrade then refuse, never past the budget."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aco.config import ACOConfig, TierSpec
from aco.errors import ACOError, BudgetExceededError
from aco.per_step_router import STEP_INPUT_TOKENS, STEP_OUTPUT_TOKENS, PerStepRouter

CONFIG = ACOConfig()
PRICED = ACOConfig(tiers=tuple(  # every tier costs something, so a budget can run out
    TierSpec(t, f"model-{t}", cost_per_1k_input=0.01 * 3**t, cost_per_1k_output=0.02 * 3**t)
    for t in range(1, 6)))


@pytest.mark.parametrize(
    ("action", "failures", "risk", "tier"),
    [
        ("Plan the refactor of the payment module", False, "medium", 4),
        ("Read the config file", False, "medium", 1),
        ("Write the patch", False, "medium", 3),
        ("Write the patch", True, "medium", 4),
        ("Write the patch", False, "high", 4),
        ("Write the patch", False, "low", 2),
        ("Run the test suite", False, "medium", 2),
        ("Diagnose the failing test", True, "high", 5),
        ("List the files", False, "low", 1),
    ],
)
def test_step_tier_table(action: str, failures: bool, risk: str, tier: int) -> None:
    decision = PerStepRouter(1_000.0).route_step(action, 1, failures, risk)
    assert decision.adjusted_tier == tier, decision.reason
    assert decision.allowed
    assert decision.model_id == CONFIG.tier(tier).model_id
    assert decision.cost_estimate == pytest.approx(
        CONFIG.tier(tier).cost(STEP_INPUT_TOKENS, STEP_OUTPUT_TOKENS))


def test_downgrades_before_refusing() -> None:
    router = PerStepRouter(1.0, PRICED)
    wanted = router.route_step("Plan the work", 1)  # tier 4 costs 0.01*81*2 + 0.02*81*0.5 > 1
    assert wanted.allowed and wanted.adjusted_tier < 4
    assert "downgraded 4->" in wanted.reason
    assert wanted.cost_estimate <= router.budget_remaining


def test_refuses_when_nothing_fits() -> None:
    router = PerStepRouter(0.05, PRICED)
    router.record(0.049)
    decision = router.route_step("Read the file", 3)
    assert not decision.allowed
    assert decision.adjusted_tier == 1
    assert "refused" in decision.reason and "budget_exceeded" in decision.reason
    with pytest.raises(BudgetExceededError, match="refused"):
        router.require_step("Read the file", 3)


def test_min_tier_bounds_the_downgrade() -> None:
    router = PerStepRouter(0.5, PRICED, min_tier=3)
    decision = router.route_step("Read the file", 1)
    assert decision.adjusted_tier == 3  # wanted 1, raised to min_tier
    assert not PerStepRouter(0.1, PRICED, min_tier=3).route_step("Read", 1).allowed


def test_record_tracks_spend_and_remaining() -> None:
    router = PerStepRouter(2.0)
    router.record(0.5)
    router.record(0.25)
    assert router.total_spent == pytest.approx(0.75)
    assert router.budget_remaining == pytest.approx(1.25)
    router.record(5.0)  # a step that cost more than planned still counts
    assert router.budget_remaining == 0.0 and router.total_spent == pytest.approx(5.75)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"action": 3, "step_num": 1}, "action"), ({"action": "a", "step_num": 0}, "step_num"),
     ({"action": "a", "step_num": 1, "task_risk": "extreme"}, "task_risk")],
)
def test_bad_step_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ACOError, match=message):
        PerStepRouter(1.0).route_step(**kwargs)


@pytest.mark.parametrize("budget", [-1.0, float("inf"), "5"])
def test_bad_budget(budget: object) -> None:
    with pytest.raises(ACOError, match="max_budget"):
        PerStepRouter(budget)  # type: ignore[arg-type]


def test_record_refuses_negative_cost() -> None:
    with pytest.raises(ACOError, match="cost"):
        PerStepRouter(1.0).record(-0.1)


STEPS = st.lists(
    st.tuples(
        st.sampled_from(["Plan it", "Read it", "Write it", "Check it", "Diagnose it", ""]),
        st.booleans(),
        st.sampled_from(["low", "medium", "high"]),
        st.floats(0.0, 1.0),  # the share of its estimate the step really costs
        st.integers(0, 20_000),  # the step's input tokens
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(budget=st.floats(0.0, 50.0), min_tier=st.integers(1, 5), steps=STEPS)
def test_no_sequence_of_steps_overspends(budget: float, min_tier: int, steps: list) -> None:
    router = PerStepRouter(budget, PRICED, min_tier=min_tier)
    for n, (action, failures, risk, share, tokens) in enumerate(steps, start=1):
        before = router.budget_remaining
        decision = router.route_step(action, n, failures, risk, input_tokens=tokens)
        if not decision.allowed:
            assert decision.cost_estimate > before
            continue
        assert decision.cost_estimate <= before
        assert decision.adjusted_tier >= min_tier
        router.record(decision.cost_estimate * share)
        assert router.total_spent <= budget
