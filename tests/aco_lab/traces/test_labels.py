"""Labels and the outcome matrix from counterfactual traces and from ordinary logs."""

import numpy as np
import polars as pl
import pytest

from aco.config import ACOConfig, TierSpec
from aco.errors import DataError
from aco_lab.traces import schema as S
from aco_lab.traces.labels import (
    IS_TIER_MODEL,
    SUCCESS,
    add_labels,
    build_outcome_matrix,
    build_training_runs,
    is_counterfactual,
    select_tier_models,
)

CONFIG = ACOConfig(
    tiers=(TierSpec(1, "small", cost_per_1k_input=0.1), TierSpec(2, "big", cost_per_1k_input=1.0))
)


def runs(rows: list[tuple]) -> pl.DataFrame:
    """A runs table from (request_id, tier, model_id, success, cost, output_tokens) rows."""
    return pl.DataFrame(
        {
            S.REQUEST_ID: [r[0] for r in rows],
            S.REQUEST: [f"text of {r[0]}" for r in rows],
            S.TASK_TYPE: ["qa"] * len(rows),
            S.DIFFICULTY: [None] * len(rows),
            S.TIER: [r[1] for r in rows],
            S.MODEL_ID: [r[2] for r in rows],
            S.TASK_SUCCESS: [r[3] for r in rows],
            S.TOTAL_COST: [r[4] for r in rows],
            S.OUTPUT_TOKENS: [r[5] for r in rows],
            S.FIRST_INPUT_TOKENS: [100] * len(rows),
        },
        schema_overrides={S.TIER: S.TIER_DTYPE, S.DIFFICULTY: pl.Int8},
    )


COUNTERFACTUAL = runs(
    [
        ("a", 1, "small", False, 0.01, 5),
        ("a", 2, "big", True, 0.10, 7),
        ("a", 2, "other", False, 0.20, 9),  # another model at tier 2: not the config's
        ("b", 1, "small", True, 0.02, 3),
        ("b", 2, "big", True, 0.30, 4),
    ]
)
LOGS = runs(
    [
        ("a", 1, "small", True, 0.01, 5),
        ("b", 2, "big", None, 0.1, 6),
        ("c", 2, "big", False, 0.2, 8),
    ]
)


def test_add_labels_marks_success_and_the_tier_model() -> None:
    labeled = add_labels(COUNTERFACTUAL, CONFIG)
    assert labeled[SUCCESS].to_list() == [0, 1, 0, 1, 1]
    assert labeled[IS_TIER_MODEL].to_list() == [True, True, False, True, True]
    assert COUNTERFACTUAL.columns == runs([]).columns  # the input is not modified


def test_unknown_outcomes_are_left_out_of_training_rows() -> None:
    usable = build_training_runs(add_labels(LOGS, CONFIG))
    assert usable[S.REQUEST_ID].to_list() == ["a", "c"]
    assert not is_counterfactual(usable)
    assert is_counterfactual(build_training_runs(add_labels(COUNTERFACTUAL, CONFIG)))


def test_a_log_with_a_few_requests_repeated_at_another_tier_is_still_a_log() -> None:
    repeated = runs(
        [
            ("a", 1, "small", True, 0.01, 5),
            ("a", 2, "big", True, 0.1, 6),
            ("b", 2, "big", False, 0.2, 8),
            ("c", 1, "small", True, 0.01, 4),
        ]
    )
    assert not is_counterfactual(build_training_runs(add_labels(repeated, CONFIG)))
    half = runs(
        [
            ("a", 1, "small", True, 0.01, 5),
            ("a", 2, "big", True, 0.1, 6),
            ("b", 2, "big", False, 0.2, 8),
        ]
    )
    assert is_counterfactual(build_training_runs(add_labels(half, CONFIG)))


def test_tier_model_falls_back_to_the_most_run_model() -> None:
    frame = runs(
        [
            ("a", 2, "x", True, 0.1, 1),
            ("b", 2, "y", True, 0.1, 1),
            ("c", 2, "y", False, 0.1, 1),
            ("a", 1, "small", True, 0.0, 1),
        ]
    )
    assert select_tier_models(frame, CONFIG) == {1: "small", 2: "y"}


def test_outcome_matrix_of_counterfactual_runs() -> None:
    om = build_outcome_matrix(COUNTERFACTUAL, CONFIG)
    assert om.request_ids == ("a", "b")
    np.testing.assert_array_equal(om.success[:, :2], [[0, 1], [1, 1]])
    np.testing.assert_allclose(om.cost[:, :2], [[0.01, 0.10], [0.02, 0.30]])
    np.testing.assert_array_equal(om.output_tokens[:, :2], [[5, 7], [3, 4]])
    assert om.available[:, :2].all() and not om.available[:, 2:].any()
    assert om.tier_models[:2] == ("small", "big")
    assert om.take(np.array([1])).request_ids == ("b",)


def test_outcome_matrix_of_logs_has_one_tier_per_request() -> None:
    om = build_outcome_matrix(LOGS, CONFIG)
    assert om.request_ids == ("a", "c")
    assert om.available.sum(axis=1).tolist() == [1, 1]
    assert om.success[0, 0] == 1 and om.success[1, 1] == 0


def test_outcome_matrix_averages_repeated_runs() -> None:
    frame = runs([("a", 1, "small", True, 0.1, 1), ("a", 1, "small", False, 0.3, 3)])
    om = build_outcome_matrix(frame, CONFIG)
    assert om.success[0, 0] == 0.5 and om.cost[0, 0] == pytest.approx(0.2)


def test_outcome_matrix_without_outcomes_is_an_error() -> None:
    with pytest.raises(DataError, match="task_success"):
        build_outcome_matrix(runs([("a", 1, "small", None, 0.1, 1)]), CONFIG)
