"""Router: the golden bundle routes identically, versions are checked, runtime == LightGBM."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from aco.config import ACOConfig, TierSpec
from aco.errors import BundleError, FeatureVersionError
from aco.router import Router

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_BUNDLE = GOLDEN / "router_bundle_v1.pkl"


def golden_cases() -> list[dict]:
    lines = (GOLDEN / "expected_decisions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def golden() -> Router:
    return Router.load(GOLDEN_BUNDLE)


def test_golden_bundle_routes_identically(golden: Router) -> None:
    """Every future runtime must load the committed bundle and make the recorded decisions."""
    cases = golden_cases()
    assert len(cases) >= 20
    for case in cases:
        d = golden.decide(
            case["request"], task_type=case["task_type"], input_tokens=case["input_tokens"]
        )
        assert (d.tier, d.model_id, d.task_type) == (
            case["tier"],
            case["model_id"],
            case["decided_task_type"],
        ), case["request"]
        np.testing.assert_allclose(d.probabilities, case["probabilities"], rtol=0, atol=1e-9)
        assert d.confidence == pytest.approx(case["confidence"], abs=1e-9)
        assert d.cost_estimate == pytest.approx(case["cost_estimate"], rel=1e-12)
        assert d.mode == "bundle"


def test_decision_fields_and_reason(golden: Router) -> None:
    d = golden.decide(
        "Summarise the attached quarterly report", task_type="research", input_tokens=1200
    )
    assert list(d.probabilities) == sorted(d.probabilities)  # non-decreasing in the tier
    assert d.confidence == d.probabilities[d.tier - 1]
    assert d.reason.startswith("bundle v1: P(success)")
    predicted = golden.decide("Summarise the attached quarterly report")
    assert "task type predicted" in predicted.reason and predicted.task_type is not None


def test_the_reason_says_in_dollars_what_a_success_is_worth(golden: Router) -> None:
    from dataclasses import replace

    from aco.formatting import format_money

    params = golden.params
    for value in (0.0, 2.5):
        golden.params = replace(params, success_value=value, downgrade_threshold=0.9)
        try:
            d = golden.decide("Fix the failing test", task_type="research", input_tokens=800)
        finally:
            golden.params = params
        assert "within 10% of the best" in d.reason
        worth = format_money(value * params.cost_scale)
        if value == 0:
            assert "the cheapest tier" in d.reason and "worth" not in d.reason
        else:
            assert f"counts a success as worth {worth}" in d.reason
            assert f"P(success) x {worth} exceeds its extra cost" in d.reason


def test_config_supplies_prices_and_can_only_raise_floors(golden: Router) -> None:
    bundle = golden.bundle
    free = ACOConfig(
        tiers=tuple(TierSpec(t, f"m{t}") for t in range(1, 6)), task_floors={"quick_answer": 5}
    )
    router = Router(bundle, free)
    d = router.decide("What is 2+2?", task_type="quick_answer", input_tokens=10)
    assert d.tier == 5 and d.model_id == "m5" and d.cost_estimate == 0.0
    assert "task floor 5" in d.reason


def test_feature_version_mismatch_is_refused_with_what_to_do(golden: Router) -> None:
    bundle = dict(golden.bundle)
    bundle["feature_version"] = 999
    with pytest.raises(FeatureVersionError, match="retrain"):
        Router(bundle)
    spec = dict(bundle["feature_spec"], version=999)
    with pytest.raises(FeatureVersionError):
        Router(dict(golden.bundle, feature_spec=spec))


def test_foreign_or_incomplete_payloads_are_refused(golden: Router) -> None:
    with pytest.raises(BundleError, match="^bundle: format: expected one of aco-router"):
        Router(dict(golden.bundle, format="something-else"))
    incomplete = {k: v for k, v in golden.bundle.items() if k != "policy"}
    with pytest.raises(BundleError, match="^here: policy: missing"):
        Router(incomplete, source="here")


def test_feature_version_mismatch_in_a_file(tmp_path: Path, golden: Router) -> None:
    from tests.bundle_files import write_unchecked

    path = write_unchecked(dict(golden.bundle, feature_version=999), tmp_path)
    with pytest.raises(FeatureVersionError):
        Router.load(path)


@pytest.mark.shared_data
def test_runtime_matches_lightgbm_on_routerbench(routerbench_dir: Path, tmp_path: Path) -> None:
    """Router probabilities == booster.predict + the same calibration, within 1e-9."""
    import polars as pl

    from aco.config import load_config
    from aco.features import FeatureSpec, request_features
    from aco.policy import calibrate
    from aco_lab.traces.reading import read_traces
    from aco_lab.train.bundle_writer import write_bundle
    from aco_lab.train.router import TrainOptions, build_router

    config = load_config(routerbench_dir / "config.yaml")
    runs = read_traces(routerbench_dir / "traces.jsonl.gz").runs
    ids = sorted(runs["request_id"].unique().to_list())
    train = runs.filter(pl.col("request_id").is_in(ids[::5]))
    trained = build_router(train, config, TrainOptions(model="lgbm", seed=3, controls=False))
    router = Router.load(write_bundle(trained.payload, tmp_path).path, config)
    spec = FeatureSpec.from_dict(trained.payload["feature_spec"])
    held = runs.filter(pl.col("request_id").is_in(ids[1::40]))
    held = held.unique("request_id").sort("request_id")
    for request, task_type, tokens in held.select(
        "request", "task_type", "first_input_tokens"
    ).iter_rows():
        x = request_features(spec, request, task_type, None, tokens)
        # The last column: each tier's model skill (pooled over RouterBench's 11 models).
        rows = np.column_stack(
            [np.repeat(x[None], 5, axis=0), trained.payload["model"]["tier_values"]]
        )
        expected = np.maximum.accumulate(
            calibrate(trained.booster.predict(rows), trained.payload["calibration"])
        )
        d = router.decide(request, task_type=task_type, input_tokens=tokens)
        np.testing.assert_allclose(d.probabilities, expected, rtol=0, atol=1e-9)


def test_golden_bundle_is_plain_data() -> None:
    from aco.bundle import load_bundle

    payload = load_bundle(GOLDEN_BUNDLE)
    assert pickle.loads(pickle.dumps(payload)) == payload


def test_folded_task_type_predictor_equals_the_linear_model(golden: Router) -> None:
    from aco.features import request_features
    from aco.router import TaskTypePredictor, predict_task_types
    from aco_lab.simulate.generate import build_sim_request

    predictor = TaskTypePredictor(golden.task_model)
    texts = [build_sim_request(4, i).text for i in range(200)]
    X = np.stack(
        [request_features(golden.spec, t, difficulty=d) for t in texts for d in (None, 3)]
    )  # NaN difficulty: read as the training mean
    index, prob = predict_task_types(golden.task_model, X)
    for x, i, p in zip(X, index, prob, strict=True):
        task_type, q = predictor.predict(x)
        assert task_type == golden.task_model["task_types"][i]
        assert q == pytest.approx(p, abs=1e-12)
    assert len(set(index.tolist())) > 1  # the check covers more than one answer


# -- the task-type predictor's novelty check -------------------------------------------------
HAND_WRITTEN = {  # requests unlike the simulator's templates, with the type their cues name
    "Fix the auth bug in production": "coding",
    "Refactor the payment service to use async IO and add tests": "coding",
    "Summarize the attached contract and flag any GDPR issues": "legal_regulated",
}


def test_a_request_unlike_the_training_ones_takes_its_type_from_the_rule_cues(
    trained_bundle: Path,
) -> None:
    router = Router.load(trained_bundle)
    assert "novelty" in router.task_model
    for request, cue_type in HAND_WRITTEN.items():
        decision = router.decide(request)
        assert decision.task_type == cue_type, decision.reason
        assert "request unlike the training requests" in decision.reason
        assert f"task type {cue_type} from rule cues" in decision.reason
        assert decision.task_type_from == "rule_cues"
        # The type decided is the one routed: the same as giving it.
        given = router.decide(request, task_type=cue_type)
        assert given.task_type_from == "caller"
        assert (decision.tier, decision.probabilities) == (given.tier, given.probabilities)


def test_a_novel_request_without_rule_cues_is_routed_with_no_task_type(
    trained_bundle: Path,
) -> None:
    router = Router.load(trained_bundle)
    decision = router.decide("zqx vbnm wert plokij")  # no cue, no n-gram of the templates
    assert (decision.task_type, decision.task_type_from) == (None, "none")
    assert decision.reason.endswith("task type unknown")
    assert (
        decision.probabilities
        == router.decide("zqx vbnm wert plokij", task_type=None).probabilities
    )


def test_requests_like_the_training_ones_are_predicted(trained_bundle: Path) -> None:
    from aco_lab.simulate.generate import build_sim_request

    router = Router.load(trained_bundle)
    reasons = [router.decide(build_sim_request(11, i).text).reason for i in range(300)]
    decisions = [router.decide(build_sim_request(11, i).text) for i in range(300)]
    assert {d.task_type_from for d in decisions} <= {"classifier", "rule_cues", "none"}
    assert sum(d.task_type_from == "classifier" for d in decisions) == sum(
        "task type predicted" in d.reason for d in decisions
    )
    predicted = sum("task type predicted" in r for r in reasons)
    assert predicted >= 0.95 * len(reasons)  # the threshold calls ~1% of held-out ones novel
    assert predicted + sum("unlike the training requests" in r for r in reasons) == len(reasons)


def test_a_malformed_novelty_check_is_refused_when_the_bundle_loads(trained_bundle: Path) -> None:
    from aco.bundle import load_bundle

    payload = load_bundle(trained_bundle)
    novelty = payload["task_type_model"]["novelty"]
    for broken in (
        {**novelty, "centroids": novelty["centroids"][:-2]},
        {**novelty, "offset": novelty["offset"] + 1},
        {k: v for k, v in novelty.items() if k != "threshold"},
    ):
        payload["task_type_model"]["novelty"] = broken
        with pytest.raises(BundleError, match="task_type_model.novelty"):
            Router(payload, source="b.pkl")
