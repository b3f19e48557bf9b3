"""Candidates cross-validated by request, the operating point on out-of-fold predictions,
several models per tier, config/trace mismatch warnings, an unreachable floor refused."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from aco.config import ACOConfig, load_config
from aco.errors import DataError
from aco.router import Router, expected_cost_table, predict_success
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces import schema as S
from aco_lab.traces.labels import (
    add_labels,
    build_outcome_matrix,
    build_training_runs,
    check_tier_models,
)
from aco_lab.traces.reading import read_traces
from aco_lab.train.candidates import (
    CANDIDATES,
    ENSEMBLE_MEMBERS,
    build_training_set,
    fit_candidate,
    predict_candidate,
    table_rates,
)
from aco_lab.train.model_selection import (
    CandidateScore,
    assign_folds,
    out_of_fold,
    score_candidate,
    select,
)
from aco_lab.train.operating_point import ValidationSet
from aco_lab.train.router import TrainOptions, build_request_matrix, build_router

CONFIG = ACOConfig()
SEED = 7


@pytest.fixture(scope="module")
def sim_runs(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    path = tmp_path_factory.mktemp("sim") / "counterfactual.jsonl"
    write_simulated_traces(path, 200, seed=SEED, config=CONFIG)
    return read_traces(path).runs


@pytest.fixture(scope="module")
def auto_payload(sim_runs: pl.DataFrame) -> dict:
    return build_router(sim_runs, CONFIG, TrainOptions(seed=SEED, controls=False)).payload


def training_set(runs: pl.DataFrame, config: ACOConfig = CONFIG):  # noqa: ANN201
    from aco.features import build_feature_spec

    labeled = add_labels(runs, config)
    usable = build_training_runs(labeled)
    outcomes = build_outcome_matrix(usable, config)
    spec = build_feature_spec(outcomes.task_types)
    return build_training_set(labeled, usable, outcomes, build_request_matrix(outcomes, spec), spec)


# -- candidate selection ----------------------------------------------------------------------
def test_auto_cross_validates_every_candidate_and_says_why_the_winner_won(auto_payload) -> None:
    selection = auto_payload["validation"]["selection"]
    figures = selection["candidates"]
    assert set(figures) == set(CANDIDATES) and selection["folds"] == 5
    for f in figures.values():
        assert {"cost_at_target", "aiq", "log_loss", "standard_error"} <= set(f)
        assert 0 < f["aiq"] <= 1 and f["log_loss"] > 0
    winner = selection["winner"]
    assert winner in selection["why"] and "cross-validated" in selection["why"]
    lowest = min(f["cost_at_target"] for f in figures.values() if f["cost_at_target"] is not None)
    near = {
        name
        for name, f in figures.items()
        if f["cost_at_target"] is not None
        and f["cost_at_target"] <= lowest + f["standard_error"] + 1e-12
    }
    assert winner in near  # within one standard error of the lowest cost ...
    assert figures[winner]["log_loss"] <= min(figures[n]["log_loss"] for n in near) + 1e-4


def score(
    name: str, cost: float, replicates: np.ndarray, aiq: float = 0.8, log_loss: float = 0.5
) -> CandidateScore:
    return CandidateScore(
        name, np.zeros((1, 5)), {"method": "none"}, cost, aiq, log_loss, 0.0, replicates
    )


def test_within_one_standard_error_the_lowest_log_loss_then_the_simplest_wins() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.05, 200)
    noisy = base - 0.02 + rng.normal(0, 0.05, 200)  # 2 points cheaper, 5 points of noise
    tie = select([score("table", 0.50, base), score("lgbm", 0.48, noisy)], 0.95, 5)
    assert tie.winner.name == "table" and "with the lowest log loss" in tie.why
    sharper = select(
        [score("table", 0.50, base), score("lgbm", 0.48, noisy, log_loss=0.4)], 0.95, 5
    )
    assert sharper.winner.name == "lgbm" and "the lowest of the candidates" in sharper.why
    blunter = select(
        [score("table", 0.50, base, log_loss=0.6), score("lgbm", 0.48, noisy)], 0.95, 5
    )
    assert blunter.winner.name == "lgbm"
    far = select(
        [score("table", 0.50, base, log_loss=0.1), score("lgbm", 0.30, base - 0.2)], 0.95, 5
    )  # far cheaper: the log loss does not matter
    assert far.winner.name == "lgbm" and "only one within one standard error" in far.why


def test_no_candidate_reaching_the_target_picks_the_highest_aiq() -> None:
    ones = np.ones(50)
    chosen = select([score("table", None, ones, 0.7), score("knn", None, ones, 0.75)], 1.2, 5)
    assert chosen.winner.name == "knn" and "no candidate" in chosen.why


def test_a_forced_model_is_cross_validated_alone_and_routed_by_the_runtime(
    sim_runs: pl.DataFrame,
) -> None:
    payload = build_router(
        sim_runs, CONFIG, TrainOptions(model="table", seed=SEED, controls=False)
    ).payload
    assert payload["model"]["kind"] == "table"
    assert set(payload["validation"]["selection"]["candidates"]) == {"table"}
    from aco.policy import calibrate

    router = Router(payload)
    task_type = payload["feature_spec"]["task_types"][0]
    rates = payload["validation"]["selection"]["table"][task_type]
    expected = np.maximum.accumulate(calibrate(np.array(rates), payload["calibration"]))
    for text in ("Fix the failing test in auth.py", "What is 2+2?"):
        decision = router.decide(text, task_type=task_type)
        assert np.allclose(decision.probabilities, expected, atol=1e-4)  # rates rounded to 1e-4


def test_the_ensemble_averages_its_members_in_the_lab_and_in_the_runtime(
    sim_runs: pl.DataFrame,
) -> None:
    data = training_set(sim_runs)
    every = np.arange(data.n_requests)
    fitted = fit_candidate("ensemble", "success", data, every, SEED, 1)
    assert [m["kind"] for m in fitted.model["members"]] == [
        "table",
        "logreg",
        "logreg",
        "knn",
        "lgbm",
        "lgbm",
    ]  # table_logreg, residual: their kinds
    members = [predict_candidate(m, data.X[:20]) for m in fitted.members]
    mean = predict_candidate(fitted, data.X[:20])
    assert np.allclose(mean, np.mean(members, axis=0))
    assert (np.diff(mean, axis=1) >= -1e-12).all()
    # The runtime computes the same mean from the plain data alone.
    assert np.allclose(predict_success(fitted.model, data.X[:20]), mean, atol=1e-9)
    # Cross-validated from its members' out-of-fold predictions, nothing refitted.
    folds = assign_folds(data.request_ids, 5, SEED)
    oofs = [out_of_fold(m, "success", data, folds, SEED, 1) for m in ENSEMBLE_MEMBERS]
    payload = build_router(
        sim_runs, CONFIG, TrainOptions(model="ensemble", seed=SEED, controls=False)
    ).payload
    assert payload["model"]["kind"] == "ensemble" and len(payload["model"]["members"]) == 6
    figures = payload["validation"]["selection"]["candidates"]["ensemble"]
    success = data.outcomes  # the log loss reads outcomes and calibration only, not costs
    validation = ValidationSet(
        p=np.full(success.shape, 0.5),
        costs=np.ones(success.shape),
        success=success,
        cost=np.ones(success.shape),
        task_types=[None] * len(success),
        configured=np.ones(5, bool),
    )
    expected = score_candidate(
        "ensemble", np.mean(oofs, axis=0), validation, 1.0, 0.95, payload["options"]["calibration"]
    )
    assert figures["log_loss"] == pytest.approx(expected.log_loss, abs=1e-4)
    decision = Router(payload, CONFIG).decide("Fix the failing test", task_type="coding")
    assert decision.mode == "bundle" and 1 <= decision.tier <= 5


# -- out-of-fold predictions and the operating point -------------------------------------------
def test_out_of_fold_predictions_come_from_the_other_folds_only(sim_runs: pl.DataFrame) -> None:
    data = training_set(sim_runs)
    folds = assign_folds(data.request_ids, 5, SEED)
    assert sorted(np.bincount(folds)) == [40] * 5
    oof = out_of_fold("table", "success", data, folds, SEED, 1)
    assert not np.isnan(oof).any()
    from aco_lab.train.candidates import task_type_index

    types = task_type_index(data.X, data.spec)
    for k in range(5):
        other = folds != k
        rates, overall = table_rates(data.X[other], data.outcomes[other], data.spec)
        mine = np.flatnonzero(folds == k)
        expected = np.where(types[mine, None] >= 0, rates[types[mine]], overall)
        assert np.allclose(oof[mine], np.maximum.accumulate(expected, axis=1), atol=1e-6)


def test_the_operating_point_holds_the_floor_on_the_out_of_fold_predictions(
    auto_payload: dict,
) -> None:
    point = auto_payload["validation"]["operating_point"]
    assert point["n_requests"] == auto_payload["training_data"]["n_requests"]
    assert point["met_floor"] and point["success_ratio"] >= point["floor"] - 1e-9
    assert point["aim"] >= point["floor"] and point["standard_error"] > 0  # margin of 1 error
    assert point["success_ratio"] >= point["aim"] - 1e-9


def test_held_out_requests_keep_about_the_floor(auto_payload: dict, tmp_path: Path) -> None:
    from aco.policy import PolicyParams
    from aco_lab.evaluate.evaluation import build_evaluation
    from aco_lab.evaluate.results import BundleInfo, EvalOptions

    path = tmp_path / "eval.jsonl"
    write_simulated_traces(path, 300, seed=SEED + 100, config=CONFIG)
    info = BundleInfo(
        "v1", "x", "", "auto", 200, PolicyParams.from_dict(auto_payload["policy"]), ()
    )
    ev = build_evaluation(
        auto_payload, info, CONFIG, read_traces(path).runs, EvalOptions(compare_models=())
    )
    assert ev.router.success_rate >= 0.9 * ev.reference.strong_success
    assert ev.router.cost_per_request < ev.reference.strong_cost


def test_a_mixed_operating_point_routes_alike_in_the_runtime_and_the_lab(
    auto_payload: dict, sim_runs: pl.DataFrame
) -> None:
    from aco_lab.evaluate.router_scores import score_outcomes

    payload = {
        **auto_payload,
        "policy_mix": {
            "policy": {**auto_payload["policy"], "safety_threshold": 1.0},
            "share": 0.4,
            "salt": 3,
        },
    }
    outcomes = build_outcome_matrix(sim_runs, CONFIG)
    scores = score_outcomes(payload, CONFIG, outcomes)
    lab, _ = scores.decide()
    router = Router(payload, CONFIG)  # the config's task floors, as the lab applies them
    runtime = [
        router.decide(r, t, None if np.isnan(n) else int(n), None if np.isnan(d) else int(d)).tier
        for r, t, n, d in zip(
            outcomes.requests,
            outcomes.task_types,
            outcomes.input_tokens,
            outcomes.difficulty,
            strict=True,
        )
    ]
    assert lab.tolist() == runtime
    second = scores.coins < 0.4
    assert 0.25 < second.mean() < 0.55  # about the share, picked by the request's hash
    assert (lab[second] == 5).all()  # the second policy: every request at the top tier


# -- several models per tier -------------------------------------------------------------------
def with_second_model(runs: pl.DataFrame, tier: int, model_id: str, success: bool) -> pl.DataFrame:
    """The runs plus a copy of every tier-`tier` run by another model that always (or never)
    succeeds."""
    copy = runs.filter(pl.col(S.TIER) == tier).with_columns(
        pl.lit(model_id).alias(S.MODEL_ID),
        pl.lit(success).alias(S.TASK_SUCCESS),
        (pl.col(S.TRACE_ID) + "-" + model_id).alias(S.TRACE_ID),
    )
    return pl.concat([runs, copy])


def test_lightgbm_learns_from_every_model_and_predicts_for_the_configured_one(
    sim_runs: pl.DataFrame,
) -> None:
    runs = with_second_model(sim_runs, 3, "sim-weak-3", success=False)
    options = TrainOptions(model="lgbm", seed=SEED, controls=False)
    named = build_router(runs, CONFIG, options).payload
    data = training_set(runs)
    assert "sim-weak-3" in data.models
    assert data.pooled.label.size == data.rows.label.size + 200  # the weak model's runs too
    weak_tiers = tuple(
        replace(t, model_id="sim-weak-3") if t.tier == 3 else t for t in CONFIG.tiers
    )
    weak = build_router(runs, replace(CONFIG, tiers=weak_tiers), options).payload
    ours, theirs = named["model"]["tier_values"], weak["model"]["tier_values"]
    assert theirs[2] < ours[2] - 2  # the configured model's skill, not the tier's average
    from aco.router import predict_success

    X = data.X
    assert (
        predict_success(weak["model"], X)[:, 2].mean()
        < predict_success(named["model"], X)[:, 2].mean()
    )


# -- mismatch between the config and the traces ----------------------------------------------
def test_config_models_missing_from_the_traces_are_warned_loudly(sim_runs: pl.DataFrame) -> None:
    tiers = tuple(replace(t, model_id="gpt-99") if t.tier == 5 else t for t in CONFIG.tiers)
    config = replace(CONFIG, tiers=tiers)
    warnings = check_tier_models(add_labels(sim_runs, config), config)
    assert any("'gpt-99' has no runs" in w and "--config" in w for w in warnings)
    payload = build_router(
        sim_runs, config, TrainOptions(model="table", seed=SEED, controls=False)
    ).payload
    assert any("gpt-99" in w for w in payload["warnings"])


def test_most_traced_models_missing_from_the_config_are_warned(sim_runs: pl.DataFrame) -> None:
    renamed = sim_runs.with_columns(("other-" + pl.col(S.MODEL_ID)).alias(S.MODEL_ID))
    warnings = check_tier_models(add_labels(renamed, CONFIG), CONFIG)
    assert any("5 of the 5 traced models are not in the config" in w for w in warnings)
    assert sum("has no runs" in w for w in warnings) == 5
    assert check_tier_models(add_labels(sim_runs, CONFIG), CONFIG) == []


def test_prices_far_from_the_traced_costs_are_warned_and_routing_uses_the_observed_costs(
    sim_runs: pl.DataFrame,
) -> None:
    dear = tuple(
        replace(
            t,
            cost_per_1k_input=t.cost_per_1k_input * 100,
            cost_per_1k_output=t.cost_per_1k_output * 100,
        )
        for t in CONFIG.tiers
    )
    config = replace(CONFIG, tiers=dear)
    options = TrainOptions(model="table", seed=SEED, controls=False)
    payload = build_router(sim_runs, config, options).payload
    assert any("misjudge what the traced runs cost" in w for w in payload["warnings"])
    factors = np.array(payload["cost_model"]["tier_cost_factor"])
    plain = np.array(
        build_router(sim_runs, CONFIG, options).payload["cost_model"]["tier_cost_factor"]
    )
    priced = np.array([t.cost_per_1k_input > 0 for t in CONFIG.tiers])
    assert np.allclose(factors[priced] * 100, plain[priced], rtol=1e-6)
    task_type = payload["feature_spec"]["task_types"][0]
    dear_quote = Router(payload, config).decide(
        "Summarise this report", task_type=task_type, input_tokens=800
    )
    plain_quote = Router(build_router(sim_runs, CONFIG, options).payload, CONFIG).decide(
        "Summarise this report", task_type=task_type, input_tokens=800
    )
    assert dear_quote.cost_estimate == pytest.approx(plain_quote.cost_estimate, rel=1e-6)


def test_task_types_whose_runs_cost_more_than_priced_get_their_own_cost_factor(
    sim_runs: pl.DataFrame,
) -> None:
    # Coding runs at tier 1 made to cost 5x what they did: only coding's factor follows.
    dear = sim_runs.with_columns(
        pl.when((pl.col(S.TASK_TYPE) == "coding") & (pl.col(S.TIER) == 1))
        .then(pl.col(S.TOTAL_COST) * 5)
        .otherwise(pl.col(S.TOTAL_COST))
        .alias(S.TOTAL_COST)
    )
    options = TrainOptions(model="table", seed=SEED, controls=False)
    plain = build_router(sim_runs, CONFIG, options).payload["cost_model"]
    costly = build_router(dear, CONFIG, options).payload["cost_model"]
    ratio = np.array(costly["task_cost_factor"]["coding"]) / np.array(
        plain["task_cost_factor"]["coding"]
    )
    assert 3.0 < ratio[0] < 5.0  # shrunk a little toward the tier's factor
    assert np.allclose(ratio[1:], 1.0)
    other = "quick_answer"
    assert np.allclose(costly["task_cost_factor"][other][1:], plain["task_cost_factor"][other][1:])
    # Routing prices coding at tier 1 with its own factor (the runtime's cost table), and the
    # router quotes its chosen tier at that table's price.
    types = ["coding", other]
    tokens, chars = np.array([900.0, 900.0]), np.array([20.0, 20.0])
    ratios = expected_cost_table(costly, CONFIG.tiers, tokens, types, chars) / expected_cost_table(
        plain, CONFIG.tiers, tokens, types, chars
    )
    assert np.allclose(ratios[0], ratio) and np.allclose(ratios[1, 1:], 1.0)
    table = expected_cost_table(costly, CONFIG.tiers, tokens, types, chars)
    router = Router(build_router(dear, CONFIG, options).payload, CONFIG)
    decision = router.decide("Fix the login bug", task_type="coding", input_tokens=900)
    assert decision.cost_estimate == pytest.approx(table[0, decision.tier - 1])


def test_training_on_ordinary_logs_warns_that_its_figures_are_estimates(
    sim_runs: pl.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "logs.jsonl"
    write_simulated_traces(path, 300, seed=SEED, config=CONFIG, mode="logs")
    options = TrainOptions(model="table", seed=SEED, controls=False)
    logs = build_router(read_traces(path).runs, CONFIG, options).payload
    assert any("ordinary logs" in w and "aco-lab evaluate" in w for w in logs["warnings"])
    counterfactual = build_router(sim_runs, CONFIG, options).payload
    assert not any("ordinary logs" in w for w in counterfactual.get("warnings", []))


def test_the_train_command_prints_the_warnings(sim_runs: pl.DataFrame, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from aco_lab.cli import main

    path = tmp_path / "traces.jsonl"
    write_simulated_traces(path, 60, seed=SEED, config=CONFIG)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "models:\n  tier1:\n    model_id: nobody-ran-me\n"
        "    cost_per_1k_input: 0.001\n    cost_per_1k_output: 0.002\n"
    )
    result = CliRunner().invoke(
        main,
        [
            "train",
            str(path),
            "--config",
            str(config_file),
            "--model",
            "table",
            "--no-controls",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "WARNING: tier 1: the config's model 'nobody-ran-me' has no runs" in result.stderr


# -- an unreachable floor --------------------------------------------------------------------
def test_an_unreachable_floor_is_refused_with_what_to_do(sim_runs: pl.DataFrame) -> None:
    options = TrainOptions(model="table", seed=SEED, success_floor=1.5, controls=False)
    with pytest.raises(DataError, match=r"lower --success-floor .*--allow-shortfall"):
        build_router(sim_runs, CONFIG, options)


def test_allow_shortfall_ships_the_best_point_and_every_output_says_so(
    sim_runs: pl.DataFrame, tmp_path: Path
) -> None:
    from aco.policy import PolicyParams
    from aco_lab.evaluate.evaluation import build_evaluation
    from aco_lab.evaluate.results import BundleInfo, EvalOptions
    from aco_lab.report.evaluation_report import format_headline

    options = TrainOptions(
        model="table", seed=SEED, success_floor=1.5, controls=False, allow_shortfall=True
    )
    payload = build_router(sim_runs, CONFIG, options).payload
    point = payload["validation"]["operating_point"]
    assert not point["met_floor"] and point["shortfall"] > 0.3
    assert any(w.startswith("shortfall:") for w in payload["warnings"])
    path = tmp_path / "eval.jsonl"
    write_simulated_traces(path, 60, seed=SEED + 1, config=CONFIG)
    info = BundleInfo(
        "v1",
        "x",
        "",
        "table",
        200,
        PolicyParams.from_dict(payload["policy"]),
        (),
        floor=1.5,
        shortfall=point["shortfall"],
    )
    ev = build_evaluation(
        payload, info, CONFIG, read_traces(path).runs, EvalOptions(compare_models=(), target=1.5)
    )
    headline = format_headline(ev)
    assert "short of its 150% floor" in headline and "not a saving" in headline


# -- real data (skipped without ../shared) -------------------------------------------------------
@pytest.mark.shared_data
def test_swebench_pools_its_models_and_warns_of_the_unnamed_ones(swebench_dir: Path) -> None:
    config = load_config(swebench_dir / "config.yaml")
    runs = read_traces(swebench_dir / "traces.jsonl.gz").runs
    ids = sorted(runs[S.REQUEST_ID].unique().to_list())[::2]
    payload = build_router(
        runs.filter(pl.col(S.REQUEST_ID).is_in(ids)),
        config,
        TrainOptions(model="lgbm", seed=1, controls=False),
    ).payload
    assert any("19 of the 24 traced models are not in the config" in w for w in payload["warnings"])
    values = payload["model"]["tier_values"]
    assert len(values) == 5 and np.isfinite(values).all()
    # Tokens are unknown there: costs come from the runs (an agent's many calls).
    assert min(payload["cost_model"]["tier_cost_factor"]) > 100
    point = payload["validation"]["operating_point"]
    assert point["met_floor"] and point["success_ratio"] >= 0.95
