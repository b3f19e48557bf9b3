"""build_features: the runtime's request_features row by row (parity on real traces)."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from aco.errors import DataError
from aco.features import build_feature_spec, request_features
from aco_lab.traces import schema as S
from aco_lab.traces.reading import read_traces
from aco_lab.train import features as lab_features
from aco_lab.train.features import build_features


def runtime_matrix(runs: pl.DataFrame, spec) -> np.ndarray:
    rows = runs.select(S.REQUEST, S.TASK_TYPE, S.DIFFICULTY, S.FIRST_INPUT_TOKENS).iter_rows()
    return np.stack([request_features(spec, *row) for row in rows])


@pytest.mark.shared_data
@pytest.mark.parametrize("fixture", ["routerbench_dir", "tau_bench_dir"])
def test_lab_features_equal_runtime_features_on_real_traces(fixture: str, request) -> None:
    data_dir: Path = request.getfixturevalue(fixture)
    runs = read_traces(data_dir / "traces.jsonl.gz").runs
    if fixture == "routerbench_dir":  # every 7th run keeps the test quick; all requests appear
        runs = runs.gather_every(7)
    spec = build_feature_spec(runs.get_column(S.TASK_TYPE).to_list())
    lab = build_features(runs, spec)
    assert lab.shape == (runs.height, spec.n_features)
    np.testing.assert_array_equal(lab, runtime_matrix(runs, spec))  # exact, NaN == NaN


def small_runs() -> pl.DataFrame:
    return pl.DataFrame(
        {
            S.SOURCE_FILE: ["a.jsonl"] * 5,
            S.LINE: [1, 2, 3, 4, 5],
            S.REQUEST: [
                "fix the bug",
                "fix the bug",
                "what is 2+2?",
                "fix the bug",
                "legal review",
            ],
            S.TASK_TYPE: ["coding", "coding", "quick_answer", "research", None],
            S.DIFFICULTY: [3, 3, None, 3, 5],
            S.FIRST_INPUT_TOKENS: [120, 120, None, 120, 4000],
        },
        schema_overrides={S.DIFFICULTY: pl.Int8, S.FIRST_INPUT_TOKENS: pl.Int64},
    )


def test_repeated_requests_share_one_computation_and_rows_stay_in_order() -> None:
    runs = small_runs()
    spec = build_feature_spec(["coding", "quick_answer"])
    lab = build_features(runs, spec)
    np.testing.assert_array_equal(lab, runtime_matrix(runs, spec))
    np.testing.assert_array_equal(lab[0], lab[1])
    assert not np.array_equal(lab[0], lab[3])  # same text, another task type


def test_process_pool_gives_the_same_matrix(monkeypatch) -> None:
    runs = pl.concat([small_runs()] * 3).with_columns(
        pl.format("{} #{}", S.REQUEST, pl.int_range(pl.len())).alias(S.REQUEST)
    )
    spec = build_feature_spec(["coding"])
    serial = build_features(runs, spec, workers=1)
    monkeypatch.setattr(lab_features, "PARALLEL_MIN_ROWS", 2)
    np.testing.assert_array_equal(build_features(runs, spec, workers=2), serial)


def test_optional_columns_may_be_absent() -> None:
    runs = small_runs().select(S.REQUEST)
    spec = build_feature_spec([])
    np.testing.assert_array_equal(
        build_features(runs, spec),
        np.stack([request_features(spec, r) for r in runs.get_column(S.REQUEST)]),
    )


def test_null_request_names_the_file_and_line() -> None:
    runs = small_runs().with_columns(
        pl.when(pl.col(S.LINE) == 3).then(None).otherwise(pl.col(S.REQUEST)).alias(S.REQUEST)
    )
    with pytest.raises(DataError, match=r"a\.jsonl:3: request: expected a string, got null"):
        build_features(runs, build_feature_spec([]))
