"""The verifier budget: DONE table, verifier rates, break-even thresholds, the call-rate cap."""

import pytest

from aco.config import ACOConfig
from aco.learned_controls import check_spec
from aco_lab.controls.verifier_budget import (
    FAILURES,
    FALSE_DONE,
    VerifierSettings,
    build_done_table,
    evaluate_verifier,
    learn_verifier,
)
from tests.aco_lab.controls.builders import run, step, tables_of


def test_the_done_table_keeps_completed_runs_and_what_was_known_at_done(tmp_path) -> None:
    runs = [
        run("ok", [step(1, tools=(("t", False, 0.0),)), step(2, text="B", verified=False)], True),
        run("bad", [step(1), step(2, text="I think C")], False),
        run("failed", [step(1)], False, outcome="failed"),
        run("unknown", [step(1)], None),
    ]
    done = build_done_table(tables_of(tmp_path, runs)).sort("trace_id")
    assert done["trace_id"].to_list() == ["bad", "ok"]
    assert done[FALSE_DONE].to_list() == [True, False]
    # The final step's own failed check is what is being decided: not counted as a failure.
    assert done[FAILURES].to_list() == [0, 1]
    assert done["output_text"].to_list() == ["I think C", "B"]


@pytest.fixture(scope="module")
def learned(sim) -> dict:  # noqa: ANN001
    return learn_verifier(sim.train)


def test_rates_come_from_verified_dones_in_the_traces(learned) -> None:
    check_spec("verify", learned)
    rates = learned["verifier"]
    assert rates["source"].startswith("traces")
    assert rates["catch_rate"] > rates["false_reject_rate"]


def test_verification_lowers_false_dones_for_a_fraction_of_always_verifying(learned, sim) -> None:
    learned_r, rules, always, never = evaluate_verifier(learned, sim.held_out, ACOConfig())
    assert learned_r.call_rate <= 0.55  # the 50% cap, chosen on training runs
    assert learned_r.false_done_rate_with < never.false_done_rate_without
    assert learned_r.verifier_cost < always.verifier_cost / 2
    # Per call, the learned choice catches more false DONEs than checking everything.
    assert learned_r.caught / learned_r.verified > always.caught / always.verified
    assert rules.name == "rules"


def test_a_tighter_cap_verifies_fewer_dones(sim) -> None:
    rates = []
    for cap in (0.05, 0.2, 0.5):
        spec = learn_verifier(sim.train, VerifierSettings(max_call_rate=cap))
        rates.append(evaluate_verifier(spec, sim.train, ACOConfig())[0].call_rate)
        assert rates[-1] <= cap + 1e-9
    assert rates == sorted(rates)


def test_without_verified_dones_the_rates_are_assumed_and_said_so(tmp_path) -> None:
    runs = [
        run(f"r{i}", [step(1), step(2, text="I think" if i % 3 else "B")], i % 3 == 0)
        for i in range(60)
    ]
    spec = learn_verifier(tables_of(tmp_path, runs))
    assert spec["verifier"]["source"].startswith("assumed")
    assert spec["verifier"]["catch_rate"] == VerifierSettings().assumed_catch_rate
