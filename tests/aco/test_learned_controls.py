"""The learned doom check, tool gate, verifier budget and context budget applied from plain data."""

import pytest

from aco.cascade import Answer
from aco.decisions import MODE_BUNDLE
from aco.errors import BundleError
from aco.learned_controls import (
    apply_context_budget,
    apply_doom,
    apply_gate,
    apply_verify,
    check_spec,
    doom_features,
    lookup,
)

TYPICAL = {
    "coding/3": {"cost": 0.5, "steps": 4.0},
    "*/3": {"cost": 1.0, "steps": 5.0},
    "*/*": {"cost": 2.0, "steps": 6.0},
}


def doom_spec(threshold: float = 0.3) -> dict:
    # P(success) falls with each failed step: 0.5 with none, ~0.12 after two.
    model = {"features": ["failures"], "weights": [-1.0], "bias": 0.0}
    return {
        "kind": "doom_logistic",
        "version": 1,
        "model": model,
        "threshold": threshold,
        "min_steps": 2,
        "typical": TYPICAL,
    }


def test_lookup_falls_back_from_task_and_tier_to_tier_to_everything() -> None:
    assert lookup(TYPICAL, "coding", 3)["cost"] == 0.5
    assert lookup(TYPICAL, "research", 3)["cost"] == 1.0
    assert lookup(TYPICAL, "research", 4)["cost"] == 2.0
    assert lookup({"coding": 1, "*": 2}, "coding") == 1
    assert lookup({"coding": 1, "*": 2}, None) == 2


def test_doom_features_scale_spend_and_steps_by_the_typical_successful_run() -> None:
    f = doom_features(TYPICAL, "coding", 3, n_steps=8, spend=1.0, failures=2, stalled=1)
    assert f["steps_ratio"] == 2.0
    assert f["log_spend_ratio"] == pytest.approx(1.0986, rel=1e-3)  # log1p(2)
    assert f["failure_share"] == 0.25
    assert f["task:coding"] == 1.0 and f["tier:3"] == 1.0
    huge = doom_features(TYPICAL, "coding", 3, n_steps=1000, spend=1e6, failures=0, stalled=0)
    assert huge["steps_ratio"] == 20.0  # capped: beyond 20x typical says nothing more
    assert huge["log_spend_ratio"] == pytest.approx(3.0445, rel=1e-3)  # log1p(20)


@pytest.mark.parametrize(
    ("steps", "failures", "doomed"),
    [
        (1, 5, False),  # too early to judge, whatever happened
        (3, 0, False),
        (3, 2, True),
    ],
)
def test_doom_stops_a_run_below_the_learned_threshold(steps, failures, doomed) -> None:
    decision = apply_doom(doom_spec(), "coding", 3, steps, 0.4, failures, failures)
    assert decision.doomed is doomed
    assert decision.mode == MODE_BUNDLE
    assert decision.success_probability == pytest.approx(1 / (1 + 2.718281828**failures), abs=1e-4)


def test_a_higher_doom_threshold_never_stops_fewer_states() -> None:
    states = [(s, f) for s in range(1, 8) for f in range(0, s + 1)]
    stopped = [
        sum(apply_doom(doom_spec(t), None, 2, s, 0.1, f, 0).doomed for s, f in states)
        for t in (0.1, 0.2, 0.4, 0.6)
    ]
    assert stopped == sorted(stopped)
    assert stopped[0] < stopped[-1]


def gate_spec() -> dict:
    entry = {
        "runs": 40,
        "lift": -0.3,
        "shrunk_lift": -0.2,
        "cost": 0.005,
        "failure_rate": 0.2,
        "net_value": -0.05,
        "allow": False,
    }
    return {
        "kind": "tool_values",
        "version": 1,
        "tools": {
            "coding/web_search": entry,
            "*/web_search": {
                **entry,
                "allow": True,
                "lift": 0.1,
                "shrunk_lift": 0.05,
                "net_value": 0.01,
            },
        },
    }


def test_the_gate_denies_with_the_figures_and_falls_back_to_all_task_types() -> None:
    spec = gate_spec()
    spec["tools"]["coding/web_search"]["enforcement"] = "enforced"
    denied = apply_gate(spec, "web_search", "coding")
    assert not denied.allow and denied.mode == MODE_BUNDLE and denied.enforcement == "enforced"
    for figure in ("40 runs", "-30.0 pts", "$0.005/call", "20.0% of calls fail"):
        assert figure in denied.reason
    assert apply_gate(gate_spec(), "web_search", "research").allow
    assert "across task types" in apply_gate(gate_spec(), "web_search", "research").reason
    unknown = apply_gate(gate_spec(), "shell", "coding")
    assert unknown.allow and "no traces" in unknown.reason


@pytest.mark.parametrize("enforcement", [None, "advisory"])
def test_an_advisory_deny_allows_the_call_and_gives_the_advice(enforcement) -> None:
    spec = gate_spec()  # as a bundle written before the field: no "enforcement"
    if enforcement:
        spec["tools"]["coding/web_search"]["enforcement"] = enforcement
    check_spec("gate", spec)
    decision = apply_gate(spec, "web_search", "coding")
    assert decision.allow and not decision.recommended_allow
    assert (decision.enforcement, decision.advice) == ("advisory", "deny")
    assert "deny recommended, allowed (advisory" in decision.reason


def test_an_unknown_enforcement_is_refused() -> None:
    spec = gate_spec()
    spec["tools"]["coding/web_search"]["enforcement"] = "strict"
    with pytest.raises(
        BundleError,
        match=r"tools\.coding/web_search\.enforcement: expected one "
        "of advisory, enforced",
    ):
        check_spec("gate", spec)


def verify_spec() -> dict:
    model = {"features": ["answer:hedging"], "weights": [3.0], "bias": -2.0}
    return {
        "kind": "false_done_logistic",
        "version": 1,
        "model": model,
        "threshold": {"*": 0.5, "legal": 0.05},
        "false_done_cost": {"*": 1.0, "legal": 9.0},
        "verifier_cost": 0.01,
        "max_call_rate": 0.5,
    }


def test_verify_when_a_false_done_is_likely_enough_for_the_task_type() -> None:
    sure, hedged = Answer("m", 2, "It is B."), Answer("m", 2, "I think it might be B.")
    assert not apply_verify(verify_spec(), "coding", 2, sure).verify  # P 0.12 < 0.5
    assert apply_verify(verify_spec(), "coding", 2, hedged).verify  # P 0.73
    assert apply_verify(verify_spec(), "legal", 2, sure).verify  # 0.12 >= 0.05
    given = apply_verify(verify_spec(), "coding", 2, confidence=0.3)
    assert given.verify and "given confidence" in given.reason


def context_spec() -> dict:
    return {
        "kind": "token_quantiles",
        "version": 1,
        "quantile": 0.9,
        "total_tokens": {"qa/1": 500, "*/1": 800, "*/*": 2000},
        "keep_exact": {"qa": ["final_question"], "*": ["final_question", "code"]},
        "omit": {"*": ["few_shot_preamble"]},
    }


def test_context_budget_by_task_and_tier_never_below_the_request() -> None:
    qa = apply_context_budget(context_spec(), "qa", 1)
    assert (qa.total_tokens, qa.keep_exact, qa.omit) == (
        500,
        ("final_question",),
        ("few_shot_preamble",),
    )
    assert apply_context_budget(context_spec(), "coding", 1).total_tokens == 800
    assert apply_context_budget(context_spec(), "coding", 4).total_tokens == 2000
    long = apply_context_budget(context_spec(), "qa", 1, request_tokens=900, margin=100)
    assert long.total_tokens == 1000 and "raised" in long.reason


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("doom", {**doom_spec(), "kind": "thresholds"}, "kind"),
        ("doom", {**doom_spec(), "version": 2}, "version"),
        ("doom", {k: v for k, v in doom_spec().items() if k != "typical"}, "typical"),
        ("doom", {**doom_spec(), "model": {"features": ["a"], "weights": [], "bias": 0}}, "model"),
        (
            "verify",
            {k: v for k, v in verify_spec().items() if k != "max_call_rate"},
            "max_call_rate",
        ),
        ("fortune", doom_spec(), "unknown control"),
    ],
)
def test_malformed_specs_are_refused(name, spec, message) -> None:
    with pytest.raises(BundleError, match=message):
        check_spec(name, spec)


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("doom", doom_spec()),
        ("gate", gate_spec()),
        ("verify", verify_spec()),
        ("context_budget", context_spec()),
    ],
)
def test_well_formed_specs_pass(name, spec) -> None:
    check_spec(name, spec)
