"""aco._native (the C hot loops) against the numpy code it restates, and its input checks."""

import dataclasses
import os

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aco import features as F
from aco import scoring as sc
from aco.errors import BundleError
from aco.native import native
from aco_lab.simulate.generate import build_sim_request
from aco_lab.train.plain_models import lgbm_model_to_plain

if native is None:
    if os.environ.get("ACO_REQUIRE_NATIVE"):
        pytest.fail("aco._native is not built; `pip install -e .` needs a C compiler",
                    pytrace=False)
    pytest.skip("aco._native is not in use (not built, or ACO_PURE_PYTHON=1)",
                allow_module_level=True)

SPECS = [
    F.build_feature_spec(["coding", "quick_answer"]),
    F.build_feature_spec([], hash_buckets=2048, word_ngrams=(2, 2), char_ngrams=(1, 8)),
    F.build_feature_spec([], hash_buckets=2, word_ngrams=(1, 1), char_ngrams=(4, 4),
                         window_head=16, window_tail=0),
]
EDGE_TEXTS = [
    "", "a", "?", "\na)", "\n(a)", "\nh.", "\ni)", "\n(b", "def f(): return 1; }",
    "answer: 5\n\nQ?", "Ünïcödé — 日本語 🚀 URGENT legal\x00 review", "\ud800 lone surrogate",
    "word " * 3000, "production outage urgent contract gdpr async await self",
]


def both_paths(spec: F.FeatureSpec, text: str, monkeypatch: pytest.MonkeyPatch) -> tuple:
    c_path = F.request_features(spec, text, "coding", None, None)
    with monkeypatch.context() as m:
        m.setattr(F, "_native", None)
        numpy_path = F.request_features(spec, text, "coding", None, None)
    return c_path, numpy_path


@pytest.mark.parametrize("spec", SPECS, ids=["default", "wide", "tiny"])
def test_window_features_equal_the_numpy_path(spec, monkeypatch) -> None:
    texts = EDGE_TEXTS + [build_sim_request(3, i).text for i in range(300)]
    for text in texts:
        c_path, numpy_path = both_paths(spec, text, monkeypatch)
        np.testing.assert_array_equal(c_path, numpy_path, err_msg=repr(text[:60]))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abh ()\n\t;{}[]_09`?.:-é中\x00")), max_size=400)
       | st.text(max_size=400))
def test_window_features_equal_the_numpy_path_on_any_text(text) -> None:
    c_path = F.request_features(SPECS[0], text)
    saved, F._native = F._native, None
    try:
        numpy_path = F.request_features(SPECS[0], text)
    finally:
        F._native = saved
    np.testing.assert_array_equal(c_path, numpy_path)


def test_window_features_refuses_bad_arguments() -> None:
    out = np.empty(10)
    with pytest.raises(ValueError, match="too short"):
        native.window_features(b"abc", out, 0, 8, 1, 2, 3, 5)  # 256 buckets do not fit
    with pytest.raises(ValueError, match="out of range"):
        native.window_features(b"abc", np.empty(300), 0, 8, 1, 3, 3, 5)
    with pytest.raises(TypeError):
        native.window_features("text", np.empty(300), 0, 8, 1, 2, 3, 5)


@pytest.mark.parametrize("width", [1, 7, 8, 256, 259])  # whole and partial blocks of eight
def test_linear_scores_and_nearest_similarity_equal_numpy(width: int) -> None:
    rng = np.random.default_rng(width)
    weights, constant, fill = (rng.normal(size=(9, width)), rng.normal(size=9),
                               rng.normal(size=width))
    x = rng.random(width)
    x[rng.random(width) < 0.2] = np.nan
    expected = weights @ np.where(np.isnan(x), fill, x) + constant
    got = native.linear_scores(weights.tobytes(), x, fill.tobytes(), constant.tobytes())
    assert np.allclose(got, expected, rtol=1e-12, atol=1e-12)
    centroids = rng.random((64, width)).astype("<f4")
    row = rng.random(width)
    nearest = native.nearest_similarity(centroids.tobytes(), row)
    assert nearest == pytest.approx((centroids.astype(np.float64) @ row).max(), rel=1e-5)


def test_nearest_similarity_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="not k x 4 float32"):
        native.nearest_similarity(bytes(4 * 6), np.zeros(4))  # 24 bytes: not whole rows
    with pytest.raises(ValueError):
        native.nearest_similarity(bytes(16), np.zeros(4, dtype=np.float32))
    with pytest.raises(TypeError):
        native.nearest_similarity(np.zeros(4), np.zeros(4))
    assert native.nearest_similarity(b"", np.zeros(4)) == float("-inf")  # no centroid


def trained_trees(classes: int = 2, seed: int = 0) -> tuple[lgb.Booster, dict]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(1200, 6))
    X[rng.random(X.shape) < 0.15] = 0.0
    X[rng.random(X.shape) < 0.15] = np.nan
    X[:, -1] = rng.integers(1, 6, size=len(X))  # a tier column
    score = np.nan_to_num(X[:, 0]) + X[:, -1] / 2 + rng.normal(scale=0.5, size=len(X))
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    params = {"objective": "multiclass" if classes > 2 else "binary", "verbosity": -1,
              "num_leaves": 15, "min_data_in_leaf": 5, "seed": seed, "num_threads": 1,
              **({"num_class": classes} if classes > 2 else {})}
    booster = lgb.train(params, lgb.Dataset(X, y), 30)
    return booster, lgbm_model_to_plain(booster)


@pytest.mark.parametrize("classes", [2, 3])
def test_sweep_equals_the_numpy_path_and_lightgbm(classes: int) -> None:
    booster, plain = trained_trees(classes)
    compiled = sc.compile_lgbm(plain)
    numpy_only = dataclasses.replace(compiled, native=None, plans={})
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = rng.normal(size=6)
        x[rng.random(6) < 0.3] = np.nan
        for values in ([1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 1.0, 3.0], [np.nan, 0.0, 2.5]):
            ours = sc.predict_lgbm_raw_sweep(compiled, x, 5, values)
            theirs = sc.predict_lgbm_raw_sweep(numpy_only, x, 5, values)
            rows = np.repeat(x[None, :], len(values), axis=0)
            rows[:, 5] = values
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
            np.testing.assert_allclose(ours, booster.predict(rows, raw_score=True), atol=1e-9)


def test_sweep_reads_x_without_the_swept_last_column() -> None:
    _, plain = trained_trees()
    x = np.random.default_rng(2).normal(size=6)
    full = sc.sweep_raw_list(plain, x, 5, (1.0, 2.0, 3.0, 4.0, 5.0))
    assert sc.sweep_raw_list(plain, x[:5], 5, (1.0, 2.0, 3.0, 4.0, 5.0)) == full
    with pytest.raises(ValueError, match="float64 x of 6 features"):
        sc.compile_lgbm(plain).native.sweep(x[:4], 5, (1.0,))


def test_tables_pointing_outside_are_refused_at_load() -> None:
    _, plain = trained_trees()
    left = np.frombuffer(plain["left"], dtype="<i4").copy()
    internal = np.flatnonzero(left != np.arange(len(left)))[0]
    left[internal] = len(left) + 5
    with pytest.raises(BundleError, match="inconsistent"):
        sc.compile_lgbm({**plain, "left": left.astype("<i4").tobytes()})


def test_a_cycle_in_a_tree_raises_instead_of_looping() -> None:
    i4 = lambda *v: np.array(v, dtype="<i4").tobytes()  # noqa: E731
    f8 = lambda *v: np.array(v, dtype="<f8").tobytes()  # noqa: E731
    # Entry 0 splits to 1/2; entry 1 splits back to 0/1: x <= 0 descends forever.
    trees = native.Trees(i4(0, 0, 0), f8(1.0, 1.0, 0.0), i4(1, 0, 2), bytes(3), f8(0, 0, 0.5),
                         i4(0), 1, 2)
    assert trees.sweep(np.array([2.0]), 1, [0.0, 5.0]) == [0.5, 0.5]  # x > 1: the leaf
    with pytest.raises(ValueError, match="cycle"):
        trees.sweep(np.array([0.0]), 1, [0.0])


def test_a_cycle_is_refused_when_the_numpy_tables_are_built() -> None:
    i4 = lambda *v: np.array(v, dtype="<i4").tobytes()  # noqa: E731
    f8 = lambda *v: np.array(v, dtype="<f8").tobytes()  # noqa: E731
    plain = {"kind": sc.LGBM_KIND, "layout_version": sc.LGBM_LAYOUT_VERSION, "num_class": 1,
             "num_features": 2, "average_output": False, "objective": "binary", "max_depth": 3,
             "feature": i4(0, 0, 0), "threshold": f8(1.0, 1.0, 0.0), "left": i4(1, 0, 2),
             "missing": bytes(3), "value": f8(0, 0, 0.5), "tree_root": i4(0)}
    with pytest.raises(BundleError, match="cycle"):
        sc.compile_lgbm(plain)
