"""The learned cascade at run time: answer keys and features, the candidate, the stage rule."""

import copy

import pytest

from aco.cascade import (
    ACCEPT,
    CALL,
    Answer,
    CascadePolicy,
    answer_features,
    answer_from_logprobs,
    answer_key,
    check_spec,
    choose_candidate,
    score,
    state_features,
    subset_key,
)
from aco.errors import ACOError, BundleError

CHEAP_A, CHEAP_B, TOP = "cheap-a", "cheap-b", "top"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("B\n", "option:B"),
        ("(c)", "option:C"),
        ("A) dry palms", "option:A"),
        ("  d.", "option:D"),
        ("", None),
        (None, None),
        ("I do", None),  # a truncated refusal, as claude-v2 answers on RouterBench
        ("I'm sorry, but I cannot help with that.", None),
        ("The answer is Paris.", "text:the answer is paris"),
        ("Answer:  PARIS!", "text:answer paris"),
    ],
)
def test_answer_key_normalizes_what_an_answer_says(text, key) -> None:
    assert answer_key(text) == key


def test_code_answers_agree_when_only_comments_and_spacing_differ() -> None:
    one = "Here:\n```python\ndef f(x):\n    return x + 1  # add one\n```\nDone."
    two = "Sure!\n```python\n\ndef f(x):\n    return x + 1\n```"
    other = "```python\ndef f(x):\n    return x - 1\n```"
    assert answer_key(one) == answer_key(two) != answer_key(other)


def test_answer_features_see_form_refusal_hedging_and_logprobs() -> None:
    code = answer_features(Answer("m", 2, "```python\ndef f():\n    return 1\n```"))
    broken = answer_features(Answer("m", 2, "```python\ndef f(:\n"))
    js = answer_features(Answer("m", 2, "```javascript\nfunction f() {}\n```"))
    hedge = answer_features(Answer("m", 2, "I think it might be B", -0.5, -3.0))
    assert (code["code"], code["parses"], code["other_language"]) == (1.0, 1.0, 0.0)
    assert (broken["parses"], broken["truncated"]) == (0.0, 1.0)
    assert (js["other_language"], js["parses"]) == (1.0, 0.0)
    assert hedge["hedging"] == 1.0 and hedge["has_logprobs"] == 1.0
    assert (hedge["mean_logprob"], hedge["min_logprob"]) == (-0.5, -3.0)
    assert answer_features(Answer("m", 1, ""))["empty"] == 1.0


def test_answer_from_logprobs_keeps_mean_and_minimum_and_refuses_positive_values() -> None:
    answer = answer_from_logprobs("m", 1, "B", [-0.1, -0.3, -2.0])
    assert answer.min_logprob == -2.0
    assert answer.mean_logprob == pytest.approx(-0.8)
    assert answer_from_logprobs("m", 1, "B", None).mean_logprob is None
    with pytest.raises(ACOError, match=r"cheap_logprobs\[1\]"):
        answer_from_logprobs("m", 1, "B", [-0.1, 0.5])


def test_the_candidate_is_the_majority_answer_and_ties_go_to_the_better_ranked_model() -> None:
    a, b, c = Answer("a", 1, "A"), Answer("b", 2, "B"), Answer("c", 3, "B")
    assert choose_candidate([a, b, c], rank=["a", "b", "c"]) == ("b", 2)
    assert choose_candidate([a, b], rank=["a", "b"]) == ("a", 1)
    assert choose_candidate([a, b], rank=["b", "a"]) == ("b", 1)
    # A refusal casts no vote: the one real answer wins whatever the ranking.
    assert choose_candidate([Answer("a", 1, "I do"), b], rank=["a", "b"]) == ("b", 1)


def test_state_features_name_agreement_per_model() -> None:
    candidate, f = state_features(
        [Answer("a", 1, "A"), Answer("b", 2, "A"), Answer("c", 3, "C")], rank=["c", "b", "a"]
    )
    assert candidate == "b"
    assert f["share"] == pytest.approx(2 / 3)
    assert f["all_agree"] == 0.0
    assert (f["a:agrees"], f["b:agrees"], f["c:agrees"]) == (1.0, 1.0, 0.0)
    assert f["candidate:b"] == 1.0


def _model(weight_on_agreement: float, bias: float) -> dict:
    return {"features": ["all_agree"], "weights": [weight_on_agreement], "bias": bias}


def spec() -> dict:
    """Two cheap models then the top: accept when both agree, else escalate."""
    return {
        "kind": "cascade_stages",
        "version": 1,
        "top": TOP,
        "options": {CHEAP_A: {"tier": 1}, CHEAP_B: {"tier": 2}, TOP: {"tier": 5}},
        "policies": {
            "*": {
                "sequence": [CHEAP_A, CHEAP_B],
                "fallback": TOP,
                "accept_at": [0.99, 0.8],
                "escalate_below": [0.0, 0.0],
                "rank": [TOP, CHEAP_B, CHEAP_A],
                "models": {
                    CHEAP_A: _model(0.0, 0.0),  # P = 0.5 whatever the answer
                    subset_key([CHEAP_A, CHEAP_B]): _model(6.0, -3.0),
                },  # 0.95 or 0.05
            }
        },
    }


def test_a_cascade_asks_the_next_cheap_model_then_accepts_agreement() -> None:
    policy = CascadePolicy(spec())
    assert policy.first("anything") == (CHEAP_A, 1)
    first = policy.step(None, [Answer(CHEAP_A, 1, "B")])
    assert (first.action, first.model_id, first.tier) == (CALL, CHEAP_B, 2)
    assert first.confidence == pytest.approx(0.5)
    agreed = policy.step(None, [Answer(CHEAP_A, 1, "B"), Answer(CHEAP_B, 2, "B\n")])
    assert (agreed.action, agreed.model_id) == (ACCEPT, CHEAP_B)
    assert agreed.confidence > 0.9 and "accept" in agreed.reason


def test_disagreement_escalates_to_the_fallback_whose_answer_is_final() -> None:
    policy = CascadePolicy(spec())
    split = policy.step(None, [Answer(CHEAP_A, 1, "A"), Answer(CHEAP_B, 2, "B")])
    assert (split.action, split.model_id, split.tier) == (CALL, TOP, 5)
    final = policy.step(
        None, [Answer(CHEAP_A, 1, "A"), Answer(CHEAP_B, 2, "B"), Answer(TOP, 5, "C")]
    )
    assert (final.action, final.model_id) == (ACCEPT, TOP)


def test_early_escalation_and_unknown_answer_sets_go_to_the_fallback() -> None:
    s = spec()
    s["policies"]["*"]["escalate_below"] = [0.6, 0.0]  # P 0.5 < 0.6: skip the second model
    policy = CascadePolicy(s)
    assert policy.step(None, [Answer(CHEAP_A, 1, "A")]).model_id == TOP
    odd = policy.step(None, [Answer(CHEAP_B, 2, "A")])  # no model learned for {cheap-b}
    assert (odd.action, odd.model_id) == (CALL, TOP)
    assert "no evidence model" in odd.reason


def test_option_of_maps_a_tier_to_the_policys_model() -> None:
    policy = CascadePolicy(spec())
    assert policy.option_of(None, 2) == CHEAP_B
    assert policy.option_of(None, 1, "cheap-a") == CHEAP_A
    assert policy.option_of(None, 3) is None


def test_task_types_without_a_policy_use_the_pooled_one() -> None:
    s = spec()
    s["policies"]["coding"] = copy.deepcopy(s["policies"]["*"])
    s["policies"]["coding"]["sequence"] = [CHEAP_B]
    s["policies"]["coding"]["accept_at"] = [0.5]
    s["policies"]["coding"]["escalate_below"] = [0.0]
    policy = CascadePolicy(s)
    assert policy.first("coding") == (CHEAP_B, 2)
    assert policy.first("poetry") == (CHEAP_A, 1)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("kind",), "logistic", "kind"),
        (("version",), 99, "version"),
        (("top",), "nobody", "top"),
        (("policies", "*", "sequence"), ["nobody"], "sequence"),
        (("policies", "*", "accept_at"), [0.5], "accept_at"),
        (("policies", "*", "models", CHEAP_A, "weights"), [1.0, 2.0], "models"),
    ],
)
def test_a_malformed_spec_is_refused_with_its_field(path, value, message) -> None:
    bad = spec()
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(BundleError, match=message):
        check_spec(bad)


def test_score_is_a_logistic_of_named_features() -> None:
    model = {"features": ["x", "y"], "weights": [2.0, -1.0], "bias": 0.5}
    assert score(model, {"x": 1.0, "y": 2.5}) == pytest.approx(0.5)
    assert score(model, {}) == pytest.approx(1 / (1 + 2.718281828**-0.5), rel=1e-6)


def test_the_runtime_asks_for_the_learned_model_even_when_the_config_names_another() -> None:
    from aco.config import ACOConfig, TierSpec
    from aco.controls import Controls, read_answer_signals

    config = ACOConfig(
        tiers=(TierSpec(1, CHEAP_A), TierSpec(2, "configured-b"), TierSpec(5, TOP)), task_floors={}
    )
    controls = Controls(config, {"cascade": spec()})
    signals = read_answer_signals(None, "B")
    first = controls.answer(signals, "B", 1, None)
    decision = controls.cascade(signals, 1, 0, [first], None)
    # Tier 2's learned model is cheap-b (its answers taught the thresholds), not the config's.
    assert (decision.escalated, decision.final_tier, decision.model_id) == (True, 2, CHEAP_B)
    second = controls.answer(signals, "B", 2, None)
    assert second.model_id == CHEAP_B
    assert not controls.cascade(signals, 2, 1, [first, second], None).escalated


def test_start_run_names_where_the_learned_cascade_begins(trained_bundle, tmp_path) -> None:
    from aco.bundle import load_bundle
    from aco.config import ACOConfig, TierSpec
    from aco.optimizer import ACOOptimizer
    from aco_lab.train.bundle_writer import write_bundle

    payload = load_bundle(trained_bundle)
    payload.pop("format_version", None)
    info = write_bundle({**payload, "controls": {"cascade": spec()}}, tmp_path / "models")
    config = ACOConfig(
        tiers=(TierSpec(1, CHEAP_A), TierSpec(2, CHEAP_B), TierSpec(5, TOP)),
        task_floors={},
        trace_dir=str(tmp_path / "traces"),
    )
    plan = ACOOptimizer(config, bundle=info.path).start_run("Is it A or B?")
    assert plan["cascade"] == {"tier": 1, "model_id": CHEAP_A}
    rules = ACOOptimizer(config.replace(trace_dir=str(tmp_path / "t2"))).start_run("A or B?")
    assert "cascade" not in rules
