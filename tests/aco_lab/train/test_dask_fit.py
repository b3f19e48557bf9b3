"""Training on a Dask cluster: the bundle of the local engine's quality on the same held-out
requests, LightGBM fitted by lightgbm.dask (every fit of the cross-validation), the other
estimators on a recorded sample."""

import numpy as np
import polars as pl
import pytest

from aco.config import ACOConfig
from aco.features import FeatureSpec
from aco.policy import calibrate, make_monotone
from aco.router import predict_success
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces.labels import add_labels, build_outcome_matrix, build_training_runs
from aco_lab.traces.reading import read_traces
from aco_lab.train.estimators import held_out_log_loss
from aco_lab.train.fit_data import LgbmRows
from aco_lab.train.router import TrainOptions, build_request_matrix, build_router
from tests.dask_cluster import dask_cluster  # noqa: F401 - the fixture

pytest.importorskip("distributed")
from aco_lab.train.dask_fit import DaskTrainer, log_loss, split_rows  # noqa: E402

CONFIG = ACOConfig()
SEED = 3
# Two engines grow different trees (LightGBM's data-parallel bins and sums per worker): the
# same held-out requests must score within this of each other.
LOG_LOSS_NOISE = 0.02
FOLDS = 2  # cross-validation folds: fewer fits, the same code path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    path = tmp_path_factory.mktemp("dask_fit") / "train.jsonl"
    write_simulated_traces(path, 300, seed=SEED, config=CONFIG)
    return read_traces(path).runs


@pytest.fixture(scope="module")
def eval_runs(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    path = tmp_path_factory.mktemp("dask_fit") / "eval.jsonl"
    write_simulated_traces(path, 300, seed=SEED + 100, config=CONFIG)
    return read_traces(path).runs


def eval_log_loss(payload: dict, runs: pl.DataFrame) -> float:
    """A bundle's calibrated P(success) on other requests' observed outcomes (log loss)."""
    outcomes = build_outcome_matrix(build_training_runs(add_labels(runs, CONFIG)), CONFIG)
    X = build_request_matrix(outcomes, FeatureSpec.from_dict(payload["feature_spec"]))
    p = calibrate(make_monotone(predict_success(payload["model"], X)), payload["calibration"])
    return held_out_log_loss(p, outcomes.success)


@pytest.mark.parametrize(
    ("model", "objective"), [("lgbm", "success"), ("residual", "success"), ("lgbm", "cheapest")]
)
def test_lgbm_on_dask_matches_the_local_engine(
    runs,
    eval_runs,
    dask_cluster,  # noqa: F811
    model,
    objective,
) -> None:
    options = TrainOptions(
        model=model,
        objective=objective,
        seed=SEED,
        controls=False,
        cv_folds=FOLDS,
        allow_shortfall=True,
    )
    local = build_router(runs, CONFIG, options).payload
    trainer = DaskTrainer(dask_cluster)
    on_dask = build_router(runs, CONFIG, options, engine=trainer).payload
    assert on_dask["model"]["kind"] == "lgbm" and on_dask["model"]["objective"] == objective
    assert ("prior" in on_dask["model"]) == (model == "residual")
    assert on_dask["validation"]["folds"] == local["validation"]["folds"]  # the same split
    assert on_dask["options"] | {"engine": "dask"} == on_dask["options"]
    assert on_dask["options"]["fit_sample_requests"] is None  # LightGBM saw every request
    assert "engine" not in local["options"]
    losses = [eval_log_loss(p, eval_runs) for p in (local, on_dask)]
    assert abs(losses[0] - losses[1]) < LOG_LOSS_NOISE, losses
    points = [p["validation"]["operating_point"] for p in (local, on_dask)]
    assert abs(points[0]["cost_ratio"] - points[1]["cost_ratio"]) < 0.1, points


def test_other_estimators_fit_on_a_recorded_sample(
    runs,
    eval_runs,
    dask_cluster,  # noqa: F811
) -> None:
    options = TrainOptions(
        model="knn", seed=SEED, controls=False, cv_folds=FOLDS, allow_shortfall=True
    )
    trainer = DaskTrainer(dask_cluster, sample_requests=100)  # of the ~240 a final fit has
    payload = build_router(runs, CONFIG, options, engine=trainer).payload
    assert payload["options"]["fit_sample_requests"] == 100
    full = build_router(runs, CONFIG, options).payload
    assert eval_log_loss(payload, eval_runs) < eval_log_loss(full, eval_runs) + 0.05


def test_partitions_hold_every_row_once_with_the_features_they_use() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    request = rng.integers(0, 50, size=400)
    rows = LgbmRows(X, rng.random(400), request, rng.integers(1, 6, size=400), rng.random(400))
    parts = list(split_rows(rows, workers=4))
    assert len(parts) == 4 and all(len(p.rows.label) for p in parts)
    stacked = np.concatenate([p.matrix() for p in parts])
    expected = rows.stacked()
    order = np.lexsort(expected.T[::-1])
    assert np.array_equal(stacked[np.lexsort(stacked.T[::-1])], expected[order])
    assert sorted(np.concatenate([p.labels() for p in parts])) == sorted(rows.label)
    pairs = np.concatenate([np.c_[p.labels(), p.margins()] for p in parts])  # kept together
    assert sorted(map(tuple, pairs)) == sorted(zip(rows.label, rows.init, strict=True))
    plain = list(split_rows(LgbmRows(X, rng.random(50)), workers=3))
    assert np.array_equal(np.concatenate([p.matrix() for p in plain]), X)


def test_log_loss_of_raw_scores() -> None:
    y = np.array([1.0, 0.0])
    assert log_loss(np.zeros(2), y) == pytest.approx(np.log(2))
    assert log_loss(np.zeros((2, 3)), np.array([0, 2])) == pytest.approx(np.log(3))
