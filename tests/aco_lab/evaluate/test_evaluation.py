"""Evaluating a bundle: replay on counterfactual traces, estimates on logs, overlap, baselines."""

import json

import numpy as np
import polars as pl
import pytest

from aco.bundle import load_bundle
from aco.errors import DataError
from aco.router import Router
from aco_lab.evaluate.evaluation import evaluate_bundle
from aco_lab.evaluate.replay import KIND_ESTIMATE, KIND_REPLAY
from aco_lab.evaluate.results import MODE_ESTIMATE, MODE_REPLAY, EvalOptions
from aco_lab.traces import schema as S
from aco_lab.traces.reading import read_traces
from tests.aco_lab.eval_case import eval_case, read_jsonl  # noqa: F401 - the fixture

FAST = EvalOptions(compare_models=())


@pytest.fixture(scope="module")
def replayed(eval_case):  # noqa: ANN001, ANN201, F811
    return evaluate_bundle(eval_case.bundle, [eval_case.eval], options=FAST)


def test_counterfactual_traces_are_replayed_on_their_disjoint_requests(replayed, eval_case) -> None:  # noqa: F811
    ev = replayed
    assert ev.mode == MODE_REPLAY
    assert ev.router.kind == KIND_REPLAY
    assert ev.data.n_overlap == 0
    # A request is left out when some tier's run of it has no known outcome.
    runs = read_traces(eval_case.eval).runs
    unknown = runs.filter(pl.col(S.TASK_SUCCESS).is_null())[S.REQUEST_ID].n_unique()
    assert ev.data.n_excluded == unknown
    assert ev.data.n_requests + ev.data.n_excluded == 80
    names = [b.name for b in ev.baselines]
    for expected in (
        "tier 1 only",
        "tier 5 only",
        "random mixing at the router's cost",
        "task-floor rule (config)",
        "static cascade (verifier error 20%)",
        "best tier per task type (fit on training)",
        "oracle (cheapest successful tier)",
    ):
        assert expected in names
    assert ev.decisions.height == ev.data.n_requests


def test_single_tier_rows_equal_the_mean_outcome_of_that_tiers_runs(replayed, eval_case) -> None:  # noqa: F811
    runs = read_traces(eval_case.eval).runs
    unknown = runs.filter(pl.col(S.TASK_SUCCESS).is_null())[S.REQUEST_ID]
    runs = runs.filter(~pl.col(S.REQUEST_ID).is_in(unknown.to_list()))
    by_tier = runs.group_by(S.TIER).agg(pl.col(S.TASK_SUCCESS).mean(), pl.col(S.TOTAL_COST).mean())
    rows = {b.name: b for b in replayed.baselines}
    for tier, success, cost in by_tier.iter_rows():
        assert rows[f"tier {tier} only"].success_rate == pytest.approx(success)
        assert rows[f"tier {tier} only"].cost_per_request == pytest.approx(cost)


def test_the_oracle_bounds_every_policy_and_random_mixing_matches_the_router_cost(replayed) -> None:
    rows = {b.name: b for b in replayed.baselines}
    oracle = rows["oracle (cheapest successful tier)"]
    for r in (replayed.router, *replayed.baselines):
        assert oracle.success_rate >= r.success_rate - 1e-12 or r.kind != KIND_REPLAY
    mix = rows["random mixing at the router's cost"]
    singles = [r for r in replayed.baselines if r.name.startswith("tier ") and "only" in r.name]
    # At the router's cost, or at the most successful tier's when the router spends more (a
    # dearer, less successful tier is off the cost-success hull that mixing moves along).
    best = max(singles, key=lambda r: (r.success_rate, -r.cost_per_request))
    budget = min(replayed.router.cost_per_request, best.cost_per_request)
    assert mix.cost_per_request == pytest.approx(budget)


def test_lab_decisions_equal_the_runtime_routers_decisions(replayed, eval_case) -> None:  # noqa: F811
    router = Router.load(eval_case.bundle)
    requests = {}
    for trace in read_jsonl(eval_case.eval):
        steps = [s for s in trace["steps"] if s.get("model_call")]
        tokens = steps[0]["model_call"].get("input_tokens") if steps else None
        requests[trace["request_id"]] = (
            trace["request"],
            trace["task_type"],
            tokens,
            trace.get("difficulty"),
        )
    for row in replayed.decisions.iter_rows(named=True):
        request, task_type, tokens, difficulty = requests[row[S.REQUEST_ID]]
        decision = router.decide(
            request, task_type=task_type, input_tokens=tokens, difficulty=difficulty
        )
        assert decision.tier == row[S.TIER], row[S.REQUEST_ID]
        assert np.allclose(decision.probabilities, row["p_success"])


def test_the_sweep_holds_the_bundles_point_and_the_recommended_one_the_target(replayed) -> None:
    ev = replayed
    params = ev.bundle.params
    own = [
        p
        for p in ev.sweep
        if (p.downgrade_threshold, p.success_value)
        == (params.downgrade_threshold, params.success_value)
    ]
    assert len(own) == 1
    if load_bundle(ev.bundle.path).get("policy_mix") is None:  # else the router mixes two
        assert own[0].result.success_rate == ev.router.success_rate
        assert own[0].result.cost_per_request == ev.router.cost_per_request
    rec = ev.recommended
    assert rec is not None
    assert rec.success_rate >= ev.options.target * ev.reference.strong_success - 1e-12
    cheaper = [p for p in ev.sweep if p.result.cost_per_request < rec.cost_per_request - 1e-15]
    assert all(
        p.result.success_rate < ev.options.target * ev.reference.strong_success for p in cheaper
    )


def test_evaluating_on_training_requests_is_refused_unless_allowed(eval_case) -> None:  # noqa: F811
    with pytest.raises(DataError, match="used to train the bundle.*--allow-overlap"):
        evaluate_bundle(eval_case.bundle, [eval_case.train], options=FAST)
    ev = evaluate_bundle(
        eval_case.bundle,
        [eval_case.train],
        options=EvalOptions(compare_models=(), allow_overlap=True),
    )
    assert ev.data.n_overlap == 160 and ev.data.overlap_allowed
    assert ev.bundle.name == "v1"
    assert any("used to train this bundle" in w for w in ev.warnings)


def test_no_paths_and_no_recorded_holdout_says_what_to_pass(eval_case) -> None:  # noqa: F811
    with pytest.raises(DataError, match="pass trace files the bundle did not train on"):
        evaluate_bundle(eval_case.bundle, [], options=FAST)


def test_a_version_resolves_in_the_models_dir(eval_case) -> None:  # noqa: F811
    ev = evaluate_bundle("v1", [eval_case.eval], options=FAST, models_dir=eval_case.models_dir)
    assert ev.bundle.name == "v1"
    assert ev.bundle.path.endswith("router_bundle_v1.pkl")


def test_ordinary_logs_give_labelled_ipw_estimates_never_a_replay(eval_case) -> None:  # noqa: F811
    ev = evaluate_bundle(eval_case.bundle, [eval_case.logs], options=FAST)
    assert ev.mode == MODE_ESTIMATE
    assert ev.router.kind == KIND_ESTIMATE
    assert "inverse-propensity" in ev.router.note
    assert any("ESTIMATE" in w for w in ev.warnings)
    skipped = dict(ev.skipped)
    assert "oracle" in skipped and "static cascade" in skipped
    rows = {b.name: b for b in ev.baselines}
    assert rows["rule-based router (aco.rules)"].kind == KIND_ESTIMATE
    assert rows["task-floor rule (config)"].kind == KIND_ESTIMATE
    logged = rows["as logged (observed)"]
    assert logged.kind == KIND_REPLAY
    runs = read_traces(eval_case.logs).runs.filter(pl.col(S.TASK_SUCCESS).is_not_null())
    assert logged.success_rate == pytest.approx(runs[S.TASK_SUCCESS].mean())
    assert ev.extra["estimator"] == "ipw"


def test_logs_without_propensities_fall_back_to_the_direct_method(eval_case, tmp_path) -> None:  # noqa: F811
    stripped = tmp_path / "logs.jsonl"
    with open(stripped, "w", encoding="utf-8") as out:
        for trace in read_jsonl(eval_case.logs):
            trace["metadata"] = {}
            out.write(json.dumps(trace) + "\n")
    ev = evaluate_bundle(eval_case.bundle, [stripped], options=FAST)
    assert ev.router.kind == KIND_ESTIMATE
    assert "direct-method" in ev.router.note
    assert ev.extra["estimator"] == "direct"
    # The direct method's success is the mean predicted P(success) at the chosen tiers.
    p = np.array(ev.decisions["p_success"].to_list())
    chosen = ev.decisions[S.TIER].to_numpy() - 1
    assert ev.router.success_rate == pytest.approx(p[np.arange(len(p)), chosen].mean())


def test_trained_baselines_are_skipped_with_a_reason_when_training_files_are_gone(
    eval_case,  # noqa: F811
    tmp_path,
) -> None:
    import shutil

    moved = tmp_path / "models"
    shutil.copytree(eval_case.models_dir, moved)
    train = eval_case.train.rename(tmp_path / "train-moved.jsonl")
    try:
        ev = evaluate_bundle(
            moved / "router_bundle_v1.pkl",
            [eval_case.eval],
            options=EvalOptions(compare_models=("knn",)),
        )
    finally:
        train.rename(eval_case.train)
    skipped = dict(ev.skipped)
    assert "training traces are not readable" in skipped["knn router"]
    assert "best tier per task type" in skipped


def test_without_paths_the_holdout_the_bundle_records_is_evaluated(eval_case, tmp_path) -> None:  # noqa: F811
    from aco.bundle import load_bundle
    from aco_lab.train.bundle_writer import write_bundle

    payload = load_bundle(eval_case.bundle)
    ids = sorted({t["request_id"] for t in read_jsonl(eval_case.eval)})[:30]
    payload["training_data"]["holdout"] = {
        "files": [{"path": str(eval_case.eval)}],
        "request_ids": ids,
    }
    info = write_bundle(payload, tmp_path)
    ev = evaluate_bundle(info.path, [], options=FAST)
    assert ev.data.n_requests + ev.data.n_excluded == 30
    assert set(ev.decisions[S.REQUEST_ID].to_list()) <= set(ids)


@pytest.mark.shared_data
def test_routerbench_half_and_half(routerbench_dir, tmp_path) -> None:
    from aco.config import load_config
    from aco_lab.traces.holdout import split_trace_files
    from aco_lab.train.router import TrainOptions, train_router

    config_path = routerbench_dir / "config.yaml"
    train, held = split_trace_files([routerbench_dir / "traces.jsonl.gz"], tmp_path, 0.5, seed=0)
    info, _ = train_router(
        [train], load_config(config_path), TrainOptions(seed=0), tmp_path / "models"
    )
    ev = evaluate_bundle(info.path, [held], config_path, options=FAST)
    assert ev.mode == MODE_REPLAY and ev.data.n_overlap == 0
    # gpt-4 (tier 5) on the held-out half, straight from the raw lines.
    gpt4 = [
        t
        for t in read_jsonl_gz(held)
        if t["steps"][0]["model_call"]["tier"] == 5
        and t["steps"][0]["model_call"]["model_id"] == ev.tier_models[-1]
    ]
    top = next(b for b in ev.baselines if b.name == "tier 5 only")
    assert top.n_requests == len(gpt4) == ev.data.n_requests
    assert top.success_rate == pytest.approx(np.mean([t["task_success"] for t in gpt4]))
    areas = {name: a.to_dict() for name, a in ev.areas}
    oracle = next(b for b in ev.baselines if b.name.startswith("oracle"))
    assert (
        oracle.cost_per_request / ev.reference.strong_cost
        < areas["random mixing of tiers"]["cost_fraction_at"]["95"]
    )
    router = Router.load(info.path, load_config(config_path))
    by_id = {t["request_id"]: t for t in gpt4}
    for row in ev.decisions.head(50).iter_rows(named=True):
        t = by_id[row[S.REQUEST_ID]]
        tokens = t["steps"][0]["model_call"]["input_tokens"]
        assert router.decide(t["request"], t["task_type"], tokens).tier == row[S.TIER]


def read_jsonl_gz(path) -> list[dict]:  # noqa: ANN001
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def test_unseen_task_types_are_flagged() -> None:
    from aco_lab.evaluate.results import unseen_task_types

    payload = {"feature_spec": {"task_types": ["coding"]}}
    assert unseen_task_types(payload, ["coding", None]) == ()
    (warning,) = unseen_task_types(payload, ["coding", "legal", "legal", "chat"])
    assert warning.startswith("3 evaluation requests have task types the bundle never trained on")
    assert "(chat, legal)" in warning


def test_the_task_type_predictor_is_measured_on_the_evaluation_requests(replayed) -> None:
    figures = replayed.task_type_inference
    assert figures["requests"] == replayed.data.n_requests  # the simulator types every request
    assert 0.3 < figures["accuracy"] <= 1.0
    assert figures["novel_share"] <= 0.05  # like the training requests: no drift warning
    assert not any("unlike the bundle's training requests" in w for w in replayed.warnings)


def test_requests_unlike_the_training_ones_are_reported_as_drift(eval_case, tmp_path) -> None:  # noqa: F811
    drifted = tmp_path / "drifted.jsonl"
    lines = read_jsonl(eval_case.eval)
    reworded = sorted({t["request_id"] for t in lines})[::3]  # a third of the requests
    for trace in lines:  # the same outcomes, other wording
        if trace["request_id"] in reworded:
            trace["request"] = f"zqx vbnm wert plokij {reworded.index(trace['request_id'])}"
    drifted.write_text("".join(json.dumps(t) + "\n" for t in lines), encoding="utf-8")
    ev = evaluate_bundle(eval_case.bundle, [drifted], options=FAST)
    assert ev.task_type_inference["novel_share"] > 0.25
    (warning,) = [w for w in ev.warnings if "unlike the bundle's training requests" in w]
    assert warning.startswith(f"{ev.task_type_inference['novel_share']:.1%} of the evaluation")


def test_a_bundle_trained_on_logs_is_replayed_without_the_per_task_type_table(tmp_path) -> None:
    from aco.config import ACOConfig
    from aco_lab.simulate.generate import write_simulated_traces
    from aco_lab.train.router import TrainOptions, train_router

    logs, runs = tmp_path / "logs.jsonl", tmp_path / "counterfactual.jsonl"
    write_simulated_traces(logs, 400, seed=1, mode="logs")
    write_simulated_traces(runs, 60, seed=2)
    info, _ = train_router(
        [logs], ACOConfig(), TrainOptions(model="table", seed=1, controls=False), tmp_path / "m"
    )
    ev = evaluate_bundle(info.path, [runs], options=EvalOptions(compare_models=()))
    assert ev.mode == MODE_REPLAY
    assert [name for name, _ in ev.skipped] == ["best tier per task type"]
    assert "ordinary logs" in ev.skipped[0][1]
    assert not any(r.name.startswith("best tier per task type") for r in ev.baselines)
