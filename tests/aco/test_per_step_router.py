"""PerStepRouter: tiers per step, downgrade then refuse, never past the budget (threads too)."""

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aco.config import ACOConfig, TierSpec
from aco.errors import ACOError, BudgetExceededError
from aco.per_step_router import STEP_INPUT_TOKENS, STEP_OUTPUT_TOKENS, PerStepRouter

CONFIG = ACOConfig()
PRICED = ACOConfig(
    tiers=tuple(  # every tier costs something, so a budget can run out
        TierSpec(t, f"model-{t}", cost_per_1k_input=0.01 * 3**t, cost_per_1k_output=0.02 * 3**t)
        for t in range(1, 6)
    )
)


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
        CONFIG.tier(tier).cost(STEP_INPUT_TOKENS, STEP_OUTPUT_TOKENS)
    )


def test_downgrades_before_refusing() -> None:
    router = PerStepRouter(1.0, PRICED)
    wanted = router.route_step("Plan the work", 1)  # tier 4 costs 0.01*81*2 + 0.02*81*0.5 > 1
    assert wanted.allowed and wanted.adjusted_tier < 4
    assert "downgraded 4->" in wanted.reason
    assert wanted.cost_estimate <= 1.0
    assert router.reserved == wanted.cost_estimate  # held until its cost is recorded
    assert router.budget_remaining == pytest.approx(1.0 - wanted.cost_estimate)


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
    [
        ({"action": 3, "step_num": 1}, "action"),
        ({"action": "a", "step_num": 0}, "step_num"),
        ({"action": "a", "step_num": 1, "task_risk": "extreme"}, "task_risk"),
    ],
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
        router.record(decision.cost_estimate * share, decision)
        assert router.total_spent <= budget and router.reserved == 0


# -- reservations: a routed step holds its estimate until its cost is recorded ---------------
def test_a_routed_step_holds_its_estimate_until_recorded() -> None:
    router = PerStepRouter(1.0, PRICED)
    step = router.route_step("Read it", 1, input_tokens=10_000)  # tier 1: 0.03*10 + 0.06*0.5
    assert step.allowed and step.reservation
    assert router.reserved == pytest.approx(0.33) and router.total_spent == 0.0
    assert not router.fits(0.7)  # the hold counts: 0.33 + 0.7 > 1
    router.record(0.1, step)  # the call cost less than its estimate: the rest is free again
    assert router.reserved == 0.0 and router.total_spent == pytest.approx(0.1)
    assert router.budget_remaining == pytest.approx(0.9)


def test_release_drops_a_hold_without_spending() -> None:
    router = PerStepRouter(1.0, PRICED)
    step = router.route_step("Read it", 1)
    router.release(step)
    assert router.reserved == 0.0 and router.total_spent == 0.0


@pytest.mark.parametrize("end", ["record", "release"])
def test_a_hold_ends_once(end: str) -> None:
    router, other = PerStepRouter(1.0, PRICED), PerStepRouter(1.0, PRICED)
    step = router.route_step("Read it", 1)
    router.record(0.01, step)
    with pytest.raises(ACOError, match="holds no budget here"):
        router.record(0.01, step) if end == "record" else router.release(step)
    with pytest.raises(ACOError, match="holds no budget here"):  # another router's step
        router.release(other.route_step("Read it", 1))
    refused = PerStepRouter(0.0, PRICED).route_step("Read it", 1)
    with pytest.raises(ACOError, match="holds no budget here"):
        router.release(refused)
    with pytest.raises(ACOError, match="step: expected the StepDecision"):
        router.record(0.01, "step 1")  # type: ignore[arg-type]
    assert router.total_spent == pytest.approx(0.01)  # a refused record spends nothing


def test_reserve_holds_exactly_that_tier_or_refuses() -> None:
    router = PerStepRouter(1.0, PRICED)
    call = router.reserve(3, input_tokens=1_000, output_tokens=100, reason="verifier")
    assert call.allowed and call.adjusted_tier == 3 and call.reason == "verifier"
    assert call.cost_estimate == pytest.approx(0.27 + 0.054)
    refused = router.reserve(5, input_tokens=1_000)  # never downgraded
    assert not refused.allowed and refused.adjusted_tier == 5 and "refused" in refused.reason
    assert router.reserved == pytest.approx(call.cost_estimate)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_tokens": -(10**7)}, "input_tokens: expected an int >= 0, got -10000000"),
        ({"input_tokens": "10"}, "input_tokens: expected an int >= 0, got '10'"),
        ({"output_tokens": 2.5}, "output_tokens: expected an int >= 0, got 2.5"),
        ({"output_tokens": True}, "output_tokens: expected an int >= 0, got True"),
    ],
)
def test_bad_token_counts(kwargs: dict, message: str) -> None:
    router = PerStepRouter(1.0, PRICED)
    with pytest.raises(ACOError, match=f"^{message}$"):
        router.route_step("Read it", 1, **kwargs)
    with pytest.raises(ACOError, match=f"^{message}$"):
        router.reserve(1, **kwargs)
    assert router.reserved == 0.0


@pytest.mark.parametrize("name", ["step_input_tokens", "step_output_tokens"])
def test_bad_default_token_counts(name: str) -> None:
    with pytest.raises(ACOError, match=f"^{name}: expected an int >= 0"):
        PerStepRouter(1.0, **{name: -1})


def _run_threads(n: int, work) -> list:
    """Run work(i, barrier) in n threads at once; return what each returned (or raised)."""
    barrier, results = threading.Barrier(n), [None] * n

    def target(i: int) -> None:
        try:
            results[i] = work(i, barrier)
        except BaseException as exc:  # re-raised in the test thread
            results[i] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def test_threads_routing_before_any_records_cannot_overspend() -> None:
    # Eight threads route a $0.75 step each before any of them records: each must see the
    # others' holds (checking the budget without reserving let all eight spend $6 of $1).
    only_tier_4 = ACOConfig(
        tiers=(TierSpec(4, "m4", cost_per_1k_input=0.25, cost_per_1k_output=0.5),)
    )
    router = PerStepRouter(1.0, only_tier_4, min_tier=4)

    def work(i: int, barrier: threading.Barrier) -> bool:
        barrier.wait()
        step = router.route_step("Plan it", 1)
        barrier.wait()  # every thread has routed: now they all record
        if step.allowed:
            router.record(step.cost_estimate, step)
        return step.allowed

    allowed = _run_threads(8, work)
    assert sum(allowed) == 1
    assert router.total_spent == pytest.approx(0.75) and router.reserved == 0.0


THREAD_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["Plan it", "Read it", "Write it", "Check it"]),
        st.floats(0.0, 1.0),  # the share of its estimate the call really costs
        st.integers(0, 20_000),  # input tokens
        st.sampled_from(["now", "later", "release"]),  # record at once, after the barrier, or drop
    ),
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(budget=st.floats(0.0, 5.0), per_thread=st.lists(THREAD_STEPS, min_size=2, max_size=6))
def test_threads_sharing_a_router_never_overspend(budget: float, per_thread: list) -> None:
    # Each thread routes its steps, recording some at once and keeping others in flight until
    # every thread has routed (a barrier), so holds from all threads overlap.
    router = PerStepRouter(budget, PRICED)

    def work(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        in_flight = []
        for n, (action, share, tokens, when) in enumerate(per_thread[i], start=1):
            step = router.route_step(action, n, input_tokens=tokens)
            if step.allowed and when == "now":
                router.record(step.cost_estimate * share, step)
            elif step.allowed:
                in_flight.append((step, share, when))
        barrier.wait()
        assert router.total_spent + router.reserved <= budget * (1 + 1e-12)
        barrier.wait()
        for step, share, when in in_flight:
            if when == "later":
                router.record(step.cost_estimate * share, step)
            else:
                router.release(step)

    _run_threads(len(per_thread), work)
    assert router.total_spent <= budget
    assert router.reserved == 0.0
