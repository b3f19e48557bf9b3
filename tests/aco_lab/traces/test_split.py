"""Request-grouped splits: deterministic, exact, never one request across splits."""

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aco.errors import DataError
from aco_lab.traces import schema as S
from aco_lab.traces.split import assign_splits, check_disjoint, split_by_request

FOLDS = (("a", 0.5), ("b", 0.3), ("c", 0.2))


@settings(max_examples=50, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=60), seed=st.integers(0, 9)
)
def test_every_request_lands_in_exactly_one_split(ids: list[str], seed: int) -> None:
    parts = assign_splits(ids, FOLDS, seed)
    flat = [r for part in parts.values() for r in part]
    assert sorted(flat) == sorted(set(ids))
    assert len(parts["a"]) == round(0.5 * len(set(ids)))


def test_split_is_independent_of_order_and_changes_with_the_seed() -> None:
    ids = [f"r{i}" for i in range(200)]
    assert assign_splits(ids, FOLDS, 1) == assign_splits(list(reversed(ids)), FOLDS, 1)
    assert assign_splits(ids, FOLDS, 1) != assign_splits(ids, FOLDS, 2)


def test_runs_of_one_request_stay_together() -> None:
    runs = pl.DataFrame(
        {S.REQUEST_ID: [f"r{i % 50}" for i in range(250)], S.TIER: [i % 5 + 1 for i in range(250)]}
    )
    parts = split_by_request(runs, (("train", 0.5), ("eval", 0.5)), seed=0)
    train, held = set(parts["train"][S.REQUEST_ID]), set(parts["eval"][S.REQUEST_ID])
    assert not train & held and len(train) == len(held) == 25
    assert parts["train"].height + parts["eval"].height == 250


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="fractions"):
        assign_splits(["a"], (("x", 0.5), ("y", 0.6)), 0)


def test_overlap_is_refused_with_examples() -> None:
    check_disjoint(["a", "b"], ["c"])
    with pytest.raises(DataError, match=r"eval.jsonl: 1 evaluation request_ids .*\(e\.g\. b\)"):
        check_disjoint(["a", "b"], ["b", "c"], where="eval.jsonl")
