"""The doom check: states from steps, the learned threshold, held-out savings and false alarms."""

import polars as pl
import pytest

from aco.config import ACOConfig
from aco.errors import DataError
from aco.learned_controls import apply_doom, check_spec
from aco_lab.controls.doom import (
    STATE_FAILURES,
    STATE_SPEND,
    STATE_STALLED,
    STATE_STEPS,
    DoomSettings,
    build_doom_states,
    evaluate_doom,
    first_stops,
    learn_doom,
)
from tests.aco_lab.controls.builders import run, step, tables_of


def test_states_follow_spend_failures_and_streaks_step_by_step(tmp_path) -> None:
    steps = [
        step(1, cost=0.1, tools=(("search", False, 0.01),)),  # all tools failed
        step(2, cost=0.2, verified=False),  # the verifier failed
        step(3, cost=0.3, tools=(("search", True, 0.0),)),  # progress
        step(4, cost=0.4, tools=(("search", False, 0.0), ("read", True, 0.0))),  # progress
        step(5, cost=0.5),
    ]
    states = build_doom_states(tables_of(tmp_path, [run("a", steps, False)]))
    assert states[STATE_STEPS].to_list() == [1, 2, 3, 4]  # none after the last step
    assert states[STATE_SPEND].to_list() == pytest.approx([0.11, 0.31, 0.61, 1.01])
    assert states[STATE_FAILURES].to_list() == [1, 2, 2, 2]
    assert states[STATE_STALLED].to_list() == [1, 2, 0, 0]
    assert states["remaining_spend"].to_list() == pytest.approx([1.4, 1.2, 0.9, 0.5])


def test_runs_without_outcome_or_model_call_have_no_states(tmp_path) -> None:
    runs = [
        run("unknown", [step(1), step(2)], None),
        run("tools", [step(1, tier=None), step(2, tier=None)], True),
    ]
    assert build_doom_states(tables_of(tmp_path, runs)).is_empty()


def test_first_stops_picks_each_runs_first_flagged_state() -> None:
    ids = pl.Series(["a", "a", "a", "b", "b", "c"]).to_numpy()
    stop = pl.Series([False, True, True, False, False, True]).to_numpy()
    assert first_stops(ids, stop).tolist() == [1, 5]


@pytest.fixture(scope="module")
def learned(sim) -> dict:  # noqa: ANN001
    return learn_doom(sim.train, seed=0)


def test_doom_is_learned_within_its_loss_budget_on_training_runs(learned) -> None:
    check_spec("doom", learned)
    train = learned["train"]
    assert train["lost_success_share"] <= DoomSettings().max_lost_success_share
    assert train["saved"] > 0 and train["flagged"] > 0
    # More failed steps never raise P(success): the model learned which way failure points.
    weights = dict(zip(learned["model"]["features"], learned["model"]["weights"], strict=True))
    assert weights["failures"] < 0


def test_held_out_false_alarms_stay_far_below_prior_art_and_beat_the_rules(learned, sim) -> None:
    result, rules = evaluate_doom(learned, sim.held_out, ACOConfig())
    assert result.flagged > 50
    assert result.false_alarm_share < 0.30  # prior art: 58-72% of flagged runs recover
    assert result.lost_success_share < 0.05
    assert result.saved > rules.saved


def test_the_runtime_stops_where_the_lab_replay_stopped(learned, sim) -> None:
    states = build_doom_states(sim.held_out).head(400)
    for r in states.iter_rows(named=True):
        decision = apply_doom(
            learned,
            r["task_type"],
            r["tier"],
            r[STATE_STEPS],
            r[STATE_SPEND],
            r[STATE_FAILURES],
            r[STATE_STALLED],
        )
        assert decision.success_probability is not None
        expected = r[STATE_STEPS] >= learned["min_steps"] and (
            decision.success_probability < learned["threshold"] - 1e-4
        )
        if abs(decision.success_probability - learned["threshold"]) > 1e-4:
            assert decision.doomed == expected


def test_single_step_traces_cannot_teach_doom(tmp_path) -> None:
    runs = [run(f"r{i}", [step(1)], i % 2 == 0) for i in range(10)]
    with pytest.raises(DataError, match="multi-step"):
        learn_doom(tables_of(tmp_path, runs), seed=0)
