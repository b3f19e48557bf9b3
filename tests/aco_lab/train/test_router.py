"""Training end to end: simulated counterfactual data and logs, determinism, monotonicity."""

import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from aco.bundle import load_bundle
from aco.config import ACOConfig
from aco.errors import DataError
from aco.features import FeatureSpec, request_features
from aco.policy import calibrate
from aco.router import predict_success
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces.reading import read_traces
from aco_lab.train.router import TrainOptions, build_router, train_router

CONFIG = ACOConfig()
SEED = 5
CREATED = "2026-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "counterfactual.jsonl"
    write_simulated_traces(path, 160, seed=SEED, config=CONFIG)
    return path


@pytest.fixture(scope="module")
def sim_runs(sim_file: Path) -> pl.DataFrame:
    return read_traces(sim_file).runs


@pytest.fixture(scope="module")
def logs_runs(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    path = tmp_path_factory.mktemp("sim") / "logs.jsonl"
    write_simulated_traces(path, 400, seed=SEED, config=CONFIG, mode="logs")
    return read_traces(path).runs


@pytest.fixture(scope="module")
def lgbm_payload(sim_runs: pl.DataFrame) -> dict:
    options = TrainOptions(model="lgbm", seed=SEED)
    return build_router(sim_runs, CONFIG, options, created_at=CREATED).payload


def test_counterfactual_training_yields_a_complete_bundle_payload(lgbm_payload: dict) -> None:
    p = lgbm_payload
    assert p["model"]["kind"] == "lgbm" and p["model"]["objective"] == "success"
    assert set(p["policy"]) == {
        "safety_threshold",
        "downgrade_threshold",
        "success_value",
        "cost_scale",
    }
    assert 0 <= p["policy"]["downgrade_threshold"] <= 1 and p["policy"]["cost_scale"] > 0
    training = p["training_data"]
    assert training["counterfactual"] and training["n_requests"] == 160
    assert training["request_ids"] == sorted(training["request_ids"])
    calib = p["validation"]["calibration"]
    assert {"brier_before", "brier_after", "log_loss_before", "log_loss_after"} <= set(calib)
    point = p["validation"]["operating_point"]
    assert point["met_floor"] and point["success_ratio"] >= 0.95
    assert len(p["cost_model"]["default_output_tokens"]) == 5
    assert p["task_type_model"]["task_types"] == p["feature_spec"]["task_types"]


def test_success_never_drops_as_the_tier_rises(lgbm_payload: dict) -> None:
    """The monotone constraint itself, before any running maximum, on many random requests:
    success never drops as the tier's model skill rises (the trees' last column)."""
    spec = FeatureSpec.from_dict(lgbm_payload["feature_spec"])
    rng = np.random.default_rng(0)
    words = [
        "fix",
        "the",
        "bug",
        "in",
        "auth",
        "deploy",
        "report",
        "legal",
        "contract",
        "quickly",
        "why",
        "how",
        "data",
    ]
    X = np.stack(
        [
            request_features(
                spec,
                " ".join(rng.choice(words, rng.integers(1, 60))),
                rng.choice([*spec.task_types, None]),
                int(rng.integers(1, 6)),
                int(rng.integers(1, 5000)),
            )
            for _ in range(400)
        ]
    )
    X += rng.normal(0, 0.5, X.shape) * (rng.uniform(size=X.shape) < 0.2)
    by_skill = np.argsort(lgbm_payload["model"]["tier_values"], kind="stable")
    raw = predict_success(lgbm_payload["model"], X)[:, by_skill]
    assert np.all(np.diff(raw, axis=1) >= 0)
    assert np.all(np.diff(calibrate(raw, lgbm_payload["calibration"]), axis=1) >= 0)


def test_same_data_and_seed_give_the_same_bundle(sim_file: Path, tmp_path: Path) -> None:
    options = TrainOptions(seed=SEED)
    one, _ = train_router([sim_file], CONFIG, options, tmp_path / "a")
    two, _ = train_router([sim_file], CONFIG, options, tmp_path / "b")
    a, b = load_bundle(one.path), load_bundle(two.path)
    a.pop("created_at"), b.pop("created_at")
    assert pickle.dumps(a) == pickle.dumps(b)
    assert a["training_data"]["files"][0]["sha256"] == b["training_data"]["files"][0]["sha256"]


def test_another_seed_gives_another_split(sim_runs: pl.DataFrame, lgbm_payload: dict) -> None:
    other = build_router(sim_runs, CONFIG, TrainOptions(seed=SEED + 1), created_at=CREATED)
    assert other.payload["model"] != lgbm_payload["model"]


@pytest.mark.parametrize("model", ["logreg", "knn"])
def test_other_estimators_train_on_logs(logs_runs: pl.DataFrame, model: str) -> None:
    payload = build_router(logs_runs, CONFIG, TrainOptions(model=model, seed=SEED)).payload
    assert not payload["training_data"]["counterfactual"]
    assert payload["model"]["kind"] == model
    if model == "knn":
        assert payload["model"]["knn"]["k"] in (1, 3, 5, 10, 20, 40, 80, 160)
    point = payload["validation"]["operating_point"]
    assert 0 < point["cost_ratio"] <= 1.2


def test_lgbm_trains_on_logs_too(logs_runs: pl.DataFrame) -> None:
    payload = build_router(logs_runs, CONFIG, TrainOptions(seed=SEED)).payload
    assert payload["validation"]["operating_point"]["n_requests"] > 0


@pytest.mark.parametrize("model", ["lgbm", "logreg", "knn"])
def test_cheapest_tier_objective_on_counterfactual_data(sim_runs: pl.DataFrame, model: str) -> None:
    options = TrainOptions(model=model, objective="cheapest")
    payload = build_router(sim_runs, CONFIG, options).payload
    assert payload["model"]["objective"] == "cheapest"
    spec = FeatureSpec.from_dict(payload["feature_spec"])
    x = request_features(spec, "Refactor the payment service", "coding", 3, 900)
    p = predict_success(payload["model"], x)
    assert p.shape == (1, 5) and np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1


def test_cheapest_tier_objective_refuses_logs(logs_runs: pl.DataFrame) -> None:
    with pytest.raises(DataError, match="counterfactual"):
        build_router(logs_runs, CONFIG, TrainOptions(model="lgbm", objective="cheapest"))


def test_too_few_requests_is_a_data_error(sim_runs: pl.DataFrame) -> None:
    few = sim_runs.head(25)  # five requests on five tiers
    with pytest.raises(DataError, match="at least"):
        build_router(few, CONFIG, TrainOptions())


@pytest.mark.shared_data
def test_routerbench_training_end_to_end(routerbench_dir: Path) -> None:
    """A small slice of the real traces: 240 requests on the config's five models."""
    from aco.config import load_config

    config = load_config(routerbench_dir / "config.yaml")
    runs = read_traces(routerbench_dir / "traces.jsonl.gz").runs
    ids = sorted(runs["request_id"].unique().to_list())[::6][:240]
    payload = build_router(
        runs.filter(pl.col("request_id").is_in(ids)), config, TrainOptions(seed=1)
    ).payload
    assert payload["training_data"]["n_requests"] == 240
    assert sorted(payload["feature_spec"]["task_types"]) == [
        "coding",
        "commonsense_qa",
        "science_qa",
    ]
    assert payload["tiers"][4]["model_id"] == "gpt-4-1106-preview"
    assert payload["validation"]["operating_point"]["success_ratio"] >= 0.9


def test_the_novelty_threshold_calls_the_chosen_share_of_held_out_requests_novel() -> None:
    from aco.features import build_feature_spec
    from aco.router import nearest_similarity, read_novelty
    from aco_lab.simulate.generate import build_sim_request
    from aco_lab.train.task_types import NOVELTY_QUANTILE, fit_novelty

    spec = build_feature_spec(["coding"])
    X = np.stack([request_features(spec, build_sim_request(SEED, i).text) for i in range(600)])
    novelty = fit_novelty(X[:400], X[400:], spec, seed=SEED)
    assert novelty == fit_novelty(X[:400], X[400:], spec, seed=SEED)  # deterministic
    centroids, offset, threshold = read_novelty({"novelty": novelty}, spec.n_features)
    assert offset == spec.hash_offset and len(centroids) == 64
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-3)
    held = nearest_similarity(centroids, X[400:, offset:])
    assert np.mean(held < threshold) <= NOVELTY_QUANTILE + 1e-9
    assert np.mean(held <= threshold) >= NOVELTY_QUANTILE  # the quantile, not a bound far off
    other = np.stack(
        [request_features(spec, t) for t in ("Fix the auth bug in production", "What is 2+2?")]
    )
    assert (nearest_similarity(centroids, other[:, offset:]) < threshold).all()


def test_training_reports_the_task_type_predictor_on_held_out_requests(lgbm_payload: dict) -> None:
    from aco_lab.train.router import validation_headline

    figures = lgbm_payload["validation"]["task_type"]
    folds = lgbm_payload["validation"]["folds"]
    assert folds == {"cross_validation": 5, "requests": 160}
    assert figures["requests"] == 64  # two folds in five held out for it
    assert 0.3 < figures["accuracy"] <= 1.0  # above chance (1/7) on 160 requests' worth
    assert (
        abs(figures["accuracy_as_routed"] - figures["accuracy"]) <= figures["novel_share"] + 1e-4
    )  # the figures are rounded to 4 decimals
    assert 0 < figures["novel_share"] < 0.1
    assert validation_headline(lgbm_payload)["task_type_novel_share"] == figures["novel_share"]


def test_task_types_a_runtime_guessed_do_not_teach_the_task_type_classifier(
    sim_runs: pl.DataFrame,
) -> None:
    from aco_lab.train.router import guessed_task_type_requests

    ids = sorted(sim_runs["request_id"].unique().to_list())
    guessed = set(ids[::2])
    marked = sim_runs.with_columns(
        pl.when(pl.col("request_id").is_in(guessed))
        .then(pl.lit('{"task_type_from": "classifier", "router_mode": "bundle"}'))
        .otherwise(pl.lit('{"task_type_from": "caller"}'))
        .alias("metadata")
    )
    assert guessed_task_type_requests(marked) == guessed
    assert guessed_task_type_requests(sim_runs) == set()  # the simulator's types are given
    payload = build_router(marked, CONFIG, TrainOptions(seed=SEED), created_at=CREATED).payload
    plain = build_router(sim_runs, CONFIG, TrainOptions(seed=SEED), created_at=CREATED).payload
    figures = payload["validation"]["task_type"]
    assert 0 < figures["requests"] < plain["validation"]["task_type"]["requests"]
    assert payload["task_type_model"]["linear"] != plain["task_type_model"]["linear"]
    assert payload["model"] == plain["model"]  # the router itself learns from every request
