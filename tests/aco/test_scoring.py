"""aco.scoring against the real libraries: LightGBM raw scores, scikit-learn logistic, brute kNN."""

import pickle
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from aco import scoring as sc
from aco.bundle import check_plain
from aco.errors import BundleError, DataError
from aco.payload_trees import LGBM_LAYOUT_VERSION, LgbmTrees
from aco_lab.train.plain_models import lgbm_model_to_plain, linear_model_to_plain

N_FEATURES = 8
BASE = {"num_leaves": 15, "min_data_in_leaf": 5, "verbosity": -1, "seed": 7, "num_threads": 1}


def messy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gaussian features with 15% NaN, 15% exact zeros and a few values below 1e-35."""
    X = rng.normal(size=(n, N_FEATURES))
    X[rng.random(X.shape) < 0.15] = 0.0
    X[rng.random(X.shape) < 0.15] = np.nan
    X[rng.random(X.shape) < 0.02] = 1e-36
    return X


def labels(X: np.ndarray, rng: np.random.Generator, classes: int = 2) -> np.ndarray:
    score = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2 - np.isnan(X[:, 2])
    score = score + rng.normal(scale=0.5, size=len(X))
    return np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))


def train(params: dict, rounds: int = 40, classes: int = 2, seed: int = 0) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    X = messy(rng, 1500)
    return lgb.train({**BASE, **params}, lgb.Dataset(X, labels(X, rng, classes)), rounds)


def row_sets(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    batch = messy(rng, 400)
    tiers = np.repeat(batch[:1], 5, axis=0)
    tiers[:, -1] = np.arange(1, 6)  # one request x 5 tiers: the router's shared-row path
    return {"batch": batch, "one row": batch[:1], "one request x 5 tiers": tiers}


def assert_parity(booster: lgb.Booster, plain: dict) -> None:
    for name, X in row_sets().items():
        ours, theirs = sc.predict_lgbm_raw(plain, X), booster.predict(X, raw_score=True)
        assert ours.shape == theirs.shape, name
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(sc.predict_lgbm(plain, X), booster.predict(X), atol=1e-9)
    messy_row = row_sets()["batch"][1]
    for x, values in [
        (np.nan_to_num(messy_row), [1.0, 2.0, 3.0, 4.0, 5.0]),  # no NaN anywhere: X as is
        (messy_row, [np.nan, 0.0, 1e-36, 2.0, -1.0]),  # missing and zero tiers
    ]:
        rows = np.repeat(x[None, :], len(values), axis=0)
        rows[:, -1] = values
        expected = booster.predict(rows, raw_score=True)
        ours = sc.predict_lgbm_raw(plain, rows)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9, err_msg=f"tiers {values}")


@pytest.mark.parametrize(
    "params, classes",
    [
        ({"objective": "binary"}, 2),
        ({"objective": "binary", "zero_as_missing": True}, 2),
        ({"objective": "binary", "use_missing": False}, 2),
        ({"objective": "binary", "monotone_constraints": [1] + [0] * (N_FEATURES - 1)}, 2),
        ({"objective": "multiclass", "num_class": 4}, 4),
        ({"objective": "multiclassova", "num_class": 3}, 3),
        ({"objective": "regression"}, 2),
        ({"objective": "binary", "boosting": "rf", "bagging_fraction": 0.7, "bagging_freq": 1}, 2),
    ],
    ids=["binary", "zero-as-missing", "no-missing", "monotone", "multiclass", "ova", "l2", "rf"],
)
def test_lgbm_parity_on_random_data_with_nans_and_zeros(params: dict, classes: int) -> None:
    booster = train(params, classes=classes)
    plain = lgbm_model_to_plain(booster)
    check_plain(plain)
    assert LgbmTrees.from_dict(plain, "model").to_dict() == plain  # the loader's checks pass
    assert_parity(booster, plain)


def test_wide_and_deep_trees() -> None:
    booster = train({"objective": "binary", "num_leaves": 120, "min_data_in_leaf": 2}, rounds=8)
    plain = lgbm_model_to_plain(booster)
    assert sc.compile_lgbm(plain).depth > 10
    assert_parity(booster, plain)


def test_single_leaf_trees() -> None:
    rng = np.random.default_rng(3)
    X = messy(rng, 200)
    y = (np.nan_to_num(X[:, 0]) > 0).astype(int)
    params = {**BASE, "objective": "binary", "min_data_in_leaf": 150}  # most trees cannot split
    booster = lgb.train(params, lgb.Dataset(X, y), 10)
    plain = lgbm_model_to_plain(booster)
    assert booster.dump_model()["tree_info"][-1]["num_leaves"] == 1
    assert_parity(booster, plain)


def test_large_batches_are_scored_in_chunks(monkeypatch) -> None:
    booster = train({"objective": "multiclass", "num_class": 3}, classes=3)
    plain = lgbm_model_to_plain(booster)
    X = messy(np.random.default_rng(5), 1000)
    monkeypatch.setattr(sc, "CHUNK_CELLS", 5000)
    np.testing.assert_allclose(
        sc.predict_lgbm_raw(plain, X), booster.predict(X, raw_score=True), atol=1e-9
    )


def test_plain_model_survives_a_bundle_round_trip() -> None:
    booster = train({"objective": "binary"})
    stored = pickle.dumps({"model": lgbm_model_to_plain(booster)}, protocol=5)
    plain = LgbmTrees.from_dict(pickle.loads(stored)["model"], "model").to_dict()
    X = row_sets()["batch"]
    np.testing.assert_allclose(
        sc.predict_lgbm_raw(plain, X), booster.predict(X, raw_score=True), atol=1e-9
    )


def test_categorical_splits_are_refused() -> None:
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.integers(0, 6, 2000), rng.normal(size=2000)])
    y = np.isin(X[:, 0], (1, 4)).astype(int)
    booster = lgb.train(
        {**BASE, "objective": "binary"}, lgb.Dataset(X, y, categorical_feature=[0]), 5
    )
    with pytest.raises(DataError, match="categorical split .* not supported"):
        lgbm_model_to_plain(booster)


def test_wrong_width_and_foreign_models_are_refused() -> None:
    plain = lgbm_model_to_plain(train({"objective": "binary"}, rounds=3))
    with pytest.raises(ValueError, match=f"expected shape \\(n, {N_FEATURES}\\)"):
        sc.predict_lgbm_raw(plain, np.zeros((2, N_FEATURES + 1)))
    with pytest.raises(BundleError, match="model.layout_version: expected an int in 1..1"):
        sc.compile_lgbm(plain | {"layout_version": 99})
    with pytest.raises(BundleError, match="model.kind: expected one of lgbm_trees"):
        sc.predict_lgbm_raw({"kind": "knn"}, np.zeros((1, N_FEATURES)))


def test_tables_pointing_outside_are_refused_at_load() -> None:
    plain = lgbm_model_to_plain(train({"objective": "binary"}, rounds=3))
    left = np.frombuffer(plain["left"], dtype="<i4").copy()
    internal = np.flatnonzero(left != np.arange(len(left)))[0]
    left[internal] = len(left) + 5
    with pytest.raises(BundleError, match=rf"model.left\[{internal}\]: expected a child after"):
        sc.compile_lgbm({**plain, "left": left.astype("<i4").tobytes()})


def tiny_tree(left: tuple, max_depth: int) -> dict:
    """A one-tree plain model over 3 entries; `left` decides its shape."""
    i4 = lambda *v: np.array(v, dtype="<i4").tobytes()  # noqa: E731
    f8 = lambda *v: np.array(v, dtype="<f8").tobytes()  # noqa: E731
    return {
        "kind": sc.LGBM_KIND,
        "layout_version": LGBM_LAYOUT_VERSION,
        "num_class": 1,
        "num_trees": 1,
        "num_features": 2,
        "average_output": False,
        "objective": "binary",
        "feature_names": [],
        "monotone_constraints": [],
        "max_depth": max_depth,
        "feature": i4(0, 0, 0),
        "threshold": f8(1.0, 1.0, 0.0),
        "left": i4(*left),
        "missing": bytes(3),
        "value": f8(0, 0.25, 0.5),
        "tree_root": i4(0),
    }


def test_a_cycle_or_a_wrong_depth_is_refused_at_load() -> None:
    good = tiny_tree((1, 1, 2), max_depth=1)  # entry 0 splits into the leaves 1 and 2
    np.testing.assert_array_equal(sc.predict_lgbm_raw(good, [[0.0, 0.0], [2.0, 0.0]]), [0.25, 0.5])
    # Entry 1 splits back to 0/1: x <= 1 would descend forever.
    with pytest.raises(BundleError, match=r"model.left\[1\]: expected a child after its parent"):
        sc.compile_lgbm(tiny_tree((1, 0, 2), max_depth=3))
    for depth in (0, -1, 3):
        with pytest.raises(BundleError, match="model.max_depth: expected an int in 1..1"):
            sc.compile_lgbm(tiny_tree((1, 1, 2), max_depth=depth))


@pytest.mark.shared_data
def test_lgbm_parity_on_routerbench_features(routerbench_dir: Path) -> None:
    from aco.features import build_feature_spec
    from aco_lab.traces import schema as S
    from aco_lab.traces.reading import read_traces
    from aco_lab.train.features import build_features

    runs = read_traces(routerbench_dir / "traces.jsonl.gz").runs
    runs = runs.filter(pl.col(S.TIER).is_not_null() & pl.col(S.TASK_SUCCESS).is_not_null())
    spec = build_feature_spec(runs.get_column(S.TASK_TYPE).to_list(), hash_buckets=64)
    X = np.column_stack([build_features(runs, spec), runs.get_column(S.TIER).to_numpy()])
    y = runs.get_column(S.TASK_SUCCESS).to_numpy().astype(int)
    monotone = [0] * (X.shape[1] - 1) + [1]  # success never drops as the tier rises
    params = {**BASE, "objective": "binary", "monotone_constraints": monotone, "max_bin": 63}
    booster = lgb.train(params, lgb.Dataset(X[::2], y[::2]), 80)
    plain = lgbm_model_to_plain(booster)
    held = X[1::2][:2000]
    np.testing.assert_allclose(
        sc.predict_lgbm_raw(plain, held), booster.predict(held, raw_score=True), atol=1e-9
    )
    tiers = np.repeat(held[:1], 5, axis=0)
    tiers[:, -1] = np.arange(1, 6)
    np.testing.assert_allclose(
        sc.predict_lgbm_raw(plain, tiers), booster.predict(tiers, raw_score=True), atol=1e-9
    )


# -- linear ------------------------------------------------------------------------------------
@pytest.mark.parametrize("classes", [2, 4])
def test_logistic_parity_with_scikit_learn(classes: int) -> None:
    rng = np.random.default_rng(11)
    X = rng.normal(loc=3.0, scale=[1, 10, 0.1, 5, 1, 1, 2, 3], size=(600, N_FEATURES))
    X[:, 5] = 1.0  # a constant column: scale 0 must not divide by zero
    y = labels(X, rng, classes)
    scaler = StandardScaler().fit(X)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(X), y)
    plain = linear_model_to_plain(clf, scaler)
    check_plain(plain)
    Xt = rng.normal(loc=3.0, size=(50, N_FEATURES))
    expected = clf.decision_function(scaler.transform(Xt))
    ours = sc.predict_linear(plain, Xt)
    np.testing.assert_allclose(ours[:, 0] if classes == 2 else ours, expected, rtol=0, atol=1e-9)


def test_linear_treats_nan_as_the_training_mean() -> None:
    model = sc.build_linear_model([[1.0, -2.0]], [0.5], mean=[10.0, 1.0], scale=[2.0, 4.0])
    with_nan = sc.predict_linear(model, [[np.nan, 3.0]])
    at_mean = sc.predict_linear(model, [[10.0, 3.0]])
    np.testing.assert_array_equal(with_nan, at_mean)
    assert at_mean[0, 0] == pytest.approx(0.5 - 2.0 * (3.0 - 1.0) / 4.0)


# -- kNN ---------------------------------------------------------------------------------------
def brute_force_knn(refs, targets, X, k, prior, weight, mean, scale) -> np.ndarray:
    def unit(v):
        z = np.nan_to_num((v - mean) / scale, nan=0.0)
        norm = np.sqrt(sum(float(a) ** 2 for a in z))
        return z / norm if norm else z

    stored = [unit(r) for r in refs]
    out = []
    for x in X:
        q = unit(x)
        sims = [float(np.dot(q, r)) for r in stored]
        nearest = sorted(range(len(stored)), key=lambda i: (-sims[i], i))[:k]
        row = []
        for j in range(targets.shape[1]):
            known = [targets[i, j] for i in nearest if not np.isnan(targets[i, j])]
            total, count = sum(known) + weight * prior[j], len(known) + weight
            row.append(total / count if count > 0 else prior[j])
        out.append(row)
    return np.array(out)


@pytest.mark.parametrize("k, weight", [(1, 0.0), (5, 0.0), (7, 2.0), (500, 0.0)])
def test_knn_parity_with_brute_force(k: int, weight: float) -> None:
    rng = np.random.default_rng(21)
    refs = rng.normal(size=(120, N_FEATURES))
    refs[10] = refs[3]  # exact ties: the lower stored index wins
    targets = (rng.random((120, 5)) < 0.6).astype(float)
    targets[rng.random(targets.shape) < 0.3] = np.nan  # tiers never run for that request
    targets[:, 4] = np.nan  # a tier nobody ran: falls back to the prior
    mean, scale = refs.mean(axis=0), refs.std(axis=0)
    model = sc.build_knn_model(refs, targets, k, prior_weight=weight, mean=mean, scale=scale)
    check_plain(model)
    X = np.vstack([rng.normal(size=(30, N_FEATURES)), refs[3:4]])
    X[0, 2] = np.nan
    prior = np.frombuffer(model["prior"], dtype="<f8")
    assert prior[4] == 0.5 and prior[0] == pytest.approx(np.nanmean(targets[:, 0]))
    expected = brute_force_knn(refs, targets, X, min(k, 120), prior, weight, mean, scale)
    np.testing.assert_allclose(sc.predict_knn(model, X), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        sc.predict_knn(model, X, k=3)[:, :4],
        brute_force_knn(refs, targets, X, 3, prior, weight, mean, scale)[:, :4],
        atol=1e-12,
    )


def test_linear_and_knn_models_may_hold_plain_lists_instead_of_bytes() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(20, 3))
    linear = sc.build_linear_model([[1.0, 2.0, -1.0]], [0.1], mean=[0.0, 1.0, 2.0], scale=[1, 2, 4])
    as_lists = {
        k: np.frombuffer(v).tolist() if isinstance(v, bytes) else v for k, v in linear.items()
    }
    np.testing.assert_array_equal(sc.predict_linear(as_lists, X), sc.predict_linear(linear, X))
    knn = sc.build_knn_model(X, rng.random((20, 2)), k=3)
    knn_lists = {
        k: np.frombuffer(v).tolist() if isinstance(v, bytes) else v for k, v in knn.items()
    }
    np.testing.assert_array_equal(sc.predict_knn(knn_lists, X[:4]), sc.predict_knn(knn, X[:4]))
