"""Run controls: rule cascade/doom/gate/verify, and the learned specs of a bundle's controls."""

import math

import pytest

from aco.config import ACOConfig
from aco.controls import (
    DOOM_STALLED_STEPS,
    LOW_QUANTILE,
    Controls,
    read_answer_signals,
    rule_confidence,
)
from aco.decisions import MODE_BUNDLE, MODE_RULES
from aco.errors import ACOError, BundleError
from aco.rules import read_cues

CONFIG = ACOConfig()
RULES = Controls(CONFIG)
CONFIDENT = [-0.01] * 20
SHAKY = [-0.01] * 16 + [-2.0, -2.5, -3.0, -1.8]  # mostly easy tokens, the key ones guessed


def test_low_quantile_sees_what_the_mean_hides() -> None:
    long_shaky = [-0.001] * 180 + [-3.0] * 20  # 10% guessed tokens in a long answer
    signals = read_answer_signals(long_shaky, "The answer is 42 because ...")
    assert math.exp(signals.mean_logprob) > 0.7  # the mean looks confident
    assert signals.low_prob == pytest.approx(math.exp(-3.0))  # the low quantile does not
    assert LOW_QUANTILE == 0.10
    assert RULES.cascade(signals, 1).escalated


@pytest.mark.parametrize(
    ("logprobs", "response", "escalated", "cue"),
    [
        (CONFIDENT, "The capital of France is Paris.", False, None),
        (SHAKY, "The capital of France is Lyon.", True, None),
        (CONFIDENT, "", True, "empty"),
        (CONFIDENT, "I'm sorry, but I cannot help with that request.", True, "refusal"),
        ([-0.9] * 20, "I think it might be Paris, but I'm not sure.", True, "hedging"),  # .41*.6
        (None, "The capital of France is Paris.", False, None),
        (None, "Possibly Lyon, I'm not sure.", False, "hedging"),  # 0.6 * 0.6 = 0.36 >= 0.30
    ],
)
def test_rule_cascade_table(
    logprobs: list[float] | None, response: str, escalated: bool, cue: str | None
) -> None:
    signals = read_answer_signals(logprobs, response)
    decision = RULES.cascade(signals, 2)
    assert decision.escalated is escalated, decision.reason
    assert decision.final_tier == (3 if escalated else 2)
    assert decision.model_id == CONFIG.tier(decision.final_tier).model_id
    assert decision.mode == MODE_RULES
    if cue:
        assert cue in signals.cues


def test_very_short_answer_is_a_mild_cue_unless_expected() -> None:
    short = read_answer_signals(CONFIDENT, "4")
    expected = read_answer_signals(CONFIDENT, "4", short_expected=True)
    assert "very_short" in short.cues and "very_short" not in expected.cues
    assert rule_confidence(short) < rule_confidence(expected)
    assert not RULES.cascade(short, 1).escalated  # confident tokens still carry it


def test_cascade_respects_top_tier_and_max_retries() -> None:
    shaky = read_answer_signals(SHAKY, "Lyon")
    top = RULES.cascade(shaky, CONFIG.top_tier)
    assert not top.escalated and "top tier" in top.reason
    spent = RULES.cascade(shaky, 1, retries_used=CONFIG.max_retries)
    assert not spent.escalated and "max_retries" in spent.reason
    assert RULES.cascade(shaky, 1, retries_used=CONFIG.max_retries - 1).escalated


def test_raising_the_threshold_escalates_more() -> None:
    signals = read_answer_signals([-0.5] * 10, "Paris is the capital.")
    low = Controls(CONFIG.replace(safety_threshold=0.3)).cascade(signals, 1)
    high = Controls(CONFIG.replace(safety_threshold=0.9)).cascade(signals, 1)
    assert not low.escalated and high.escalated


@pytest.mark.parametrize("bad", [[0.5], [float("nan")], ["x"], "abc", 3.0])
def test_bad_logprobs_are_refused(bad: object) -> None:
    with pytest.raises(ACOError, match="cheap_logprobs"):
        read_answer_signals(bad, "text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spent", "stalled", "doomed"),
    [
        (0.0, 0, False),
        (4.9, 0, False),  # much spent, but still progressing
        (5.0, 0, True),  # the whole budget
        (1.0, DOOM_STALLED_STEPS, True),  # looping
        (1.0, DOOM_STALLED_STEPS - 1, False),
        (2.5, 2, True),  # half the budget and stalling
        (2.4, 2, False),
    ],
)
def test_rule_doom_table(spent: float, stalled: int, doomed: bool) -> None:
    decision = RULES.doom(spent, stalled, n_steps=stalled)
    assert decision.doomed is doomed, decision.reason
    assert decision.mode == MODE_RULES


def test_doom_with_a_zero_budget() -> None:
    zero = Controls(CONFIG.replace(max_cost_per_task=0.0))
    assert not zero.doom(0.0, 0, 0).doomed
    assert zero.doom(0.01, 0, 1).doomed


@pytest.mark.parametrize(
    ("tool", "task_type", "allow"),
    [
        ("web_search", "quick_answer", False),
        ("python_exec", "quick_answer", False),
        ("calculator", "quick_answer", True),
        ("web_search", "research", True),
        ("web_search", None, True),
        ("delete_file", "coding", True),
    ],
)
def test_rule_gate_table(tool: str, task_type: str | None, allow: bool) -> None:
    decision = RULES.gate(tool, task_type)
    assert decision.allow is allow
    assert decision.tool_name == tool and decision.mode == MODE_RULES


def test_gate_notes_side_effects() -> None:
    assert "side effects" in RULES.gate("send_email", "coding").reason


@pytest.mark.parametrize(
    ("risk", "confidence", "verify"),
    [
        ("low", 0.2, True),
        ("low", 0.5, False),
        ("medium", 0.6, True),
        ("medium", 0.8, False),
        ("high", 0.99, True),
        ("high", 1.0, True),
    ],
)
def test_rule_verify_table(risk: str, confidence: float, verify: bool) -> None:
    assert RULES.verify(risk, confidence).verify is verify


@pytest.mark.parametrize(("risk", "confidence"), [("extreme", 0.5), ("low", 1.5), ("low", -0.1)])
def test_verify_refuses_bad_input(risk: str, confidence: float) -> None:
    with pytest.raises(ACOError):
        RULES.verify(risk, confidence)


# A learned cascade (aco.cascade): ask tier 1, then tier 2 when unsure, accept when they agree,
# else fall back to tier 5.
CASCADE = {
    "kind": "cascade_stages",
    "version": 1,
    "options": {
        "tiny-local-3b": {"tier": 1, "mean_cost": 0.0},
        "cheap-cloud-8b": {"tier": 2, "mean_cost": 0.001},
        "specialist-expert": {"tier": 5, "mean_cost": 0.1},
    },
    "top": "specialist-expert",
    "policies": {
        "*": {
            "sequence": ["tiny-local-3b", "cheap-cloud-8b"],
            "fallback": "specialist-expert",
            "accept_at": [0.8, 0.6],
            "escalate_below": [0.0, 0.0],
            "rank": ["cheap-cloud-8b", "tiny-local-3b"],
            "models": {
                "tiny-local-3b": {
                    "features": ["tiny-local-3b:min_logprob"],
                    "weights": [2.0],
                    "bias": 2.0,
                },
                "cheap-cloud-8b|tiny-local-3b": {
                    "features": ["all_agree"],
                    "weights": [4.0],
                    "bias": -2.0,
                },
            },
        }
    },
}
# Learned doom, gate, verify and context budget in aco.learned_controls' formats.
TOOL = {
    "runs": 40,
    "lift": -0.05,
    "shrunk_lift": -0.03,
    "cost": 0.01,
    "failure_rate": 0.2,
    "net_value": -0.02,
}
LEARNED = {
    "cascade": CASCADE,
    "doom": {
        "kind": "doom_logistic",
        "version": 1,
        "model": {"features": ["stalled", "log_spend_ratio"], "weights": [-1.0, -2.0], "bias": 2.0},
        "threshold": 0.2,
        "min_steps": 2,
        "typical": {"*/*": {"cost": 1.0, "steps": 4.0}},
    },
    "gate": {
        "kind": "tool_values",
        "version": 1,
        "value_per_success": 1.0,
        "tools": {
            "coding/web_search": {**TOOL, "allow": False, "enforcement": "enforced"},
            "coding/shell": {**TOOL, "allow": False},  # advisory (the default)
            "*/web_search": {**TOOL, "allow": True},
        },
    },
    "verify": {
        "kind": "false_done_logistic",
        "version": 1,
        "model": {"features": [], "weights": [], "bias": 0.0},
        "threshold": {"*": 0.3},
        "false_done_cost": {"*": 1.0},
        "verifier_cost": 0.01,
        "max_call_rate": 0.5,
    },
    "context_budget": {
        "kind": "token_quantiles",
        "version": 1,
        "quantile": 0.9,
        "total_tokens": {"*/1": 1234, "*/*": 5000},
        "keep_exact": {"*": ["request"]},
        "omit": {"*": ["old_turns"]},
    },
}


def _learned_cascade(controls: Controls, replies: list[tuple[int, list[float], str]]):
    """Feed one cascade its replies in order, as the runtime does; the decisions."""
    answers, decisions = [], []
    for tier, logprobs, text in replies:
        signals = read_answer_signals(logprobs, text)
        answers.append(controls.answer(signals, text, tier, None))
        decisions.append(controls.cascade(signals, tier, len(decisions), answers, None))
    return decisions


def test_learned_cascade_accepts_escalates_and_compares_answers() -> None:
    learned = Controls(CONFIG, LEARNED)
    sure = _learned_cascade(learned, [(1, CONFIDENT, "Paris")])[0]
    assert (sure.escalated, sure.final_tier, sure.mode) == (False, 1, MODE_BUNDLE)
    assert sure.reason.startswith("learned") and sure.confidence > 0.8
    asked, agreed = _learned_cascade(learned, [(1, SHAKY, "Paris"), (2, SHAKY, "paris.")])
    assert (asked.escalated, asked.final_tier, asked.model_id) == (True, 2, "cheap-cloud-8b")
    assert (agreed.escalated, agreed.final_tier) == (False, 2)  # two cheap answers agree
    _, split = _learned_cascade(learned, [(1, SHAKY, "Paris"), (2, SHAKY, "Lyon")])
    assert (split.escalated, split.final_tier, split.model_id) == (True, 5, "specialist-expert")
    assert learned.answer(read_answer_signals(None, "x"), "x", 3, None) is None  # no tier-3 model


def test_learned_cascade_respects_max_retries() -> None:
    learned = Controls(CONFIG.replace(max_retries=1), LEARNED)
    asked, capped = _learned_cascade(learned, [(1, SHAKY, "Paris"), (2, SHAKY, "Lyon")])
    assert asked.escalated and not capped.escalated and "max_retries 1" in capped.reason


def test_learned_controls_decide_and_say_so() -> None:
    learned = Controls(CONFIG, LEARNED)
    assert learned.cascade(read_answer_signals(SHAKY, "x"), 1).mode == MODE_RULES  # no answers
    early = learned.doom(2.5, 3, 1)
    assert not early.doomed and "too early" in early.reason  # min_steps
    late = learned.doom(2.5, 3, 5, failures=3, task_type="coding", tier=3)
    assert late.doomed and late.success_probability < 0.2 and late.mode == MODE_BUNDLE
    assert learned.doom(5.0, 0, 1).doomed  # the whole budget stops a run in both modes
    assert not learned.gate("web_search", "coding").allow
    advised = learned.gate("shell", "coding")
    assert advised.allow and advised.advice == "deny" and advised.enforcement == "advisory"
    assert learned.gate("web_search", "research").allow  # the "*" entry
    assert learned.gate("calculator", "coding").allow  # no traces of it: allowed
    assert not learned.verify("medium", 0.9).verify  # P(false DONE) 0.1 < 0.3
    assert learned.verify("low", 0.5).verify  # the rule would skip a low-risk 0.5
    high = learned.verify("high", 0.99)
    assert high.verify and high.mode == MODE_RULES  # high risk is always verified
    budget = learned.context_budget(read_cues("hello"), 1)
    assert (budget.total_tokens, budget.keep_exact, budget.omit) == (
        1234,
        ("request",),
        ("old_turns",),
    )
    assert learned.context_budget(read_cues("x" * 40_000), 1).total_tokens == 10_000 + 1_000
    assert all(learned.mode(name) == MODE_BUNDLE for name in LEARNED)


def test_partial_controls_fall_back_to_rules_per_control() -> None:
    partial = Controls(CONFIG, {"gate": LEARNED["gate"]})
    assert partial.mode("gate") == MODE_BUNDLE and partial.mode("verify") == MODE_RULES
    assert partial.verify("low", 0.5).mode == MODE_RULES


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ({"teleport": {}}, "controls.teleport: unknown control"),
        ({"cascade": {"kind": "table"}}, "controls.cascade.kind"),
        ({"cascade": {**CASCADE, "top": "gpt-9"}}, "controls.cascade.top"),
        (
            {"doom": {**LEARNED["doom"], "model": {"features": ["a"], "weights": [], "bias": 0}}},
            "controls.doom.model",
        ),
        ({"gate": {**LEARNED["gate"], "version": 2}}, "controls.gate.version"),
        (
            {"verify": {k: v for k, v in LEARNED["verify"].items() if k != "threshold"}},
            "controls.verify.threshold",
        ),
        ({"context_budget": {"kind": "by_tier"}}, "controls.context_budget.kind"),
    ],
)
def test_malformed_controls_are_refused(specs: dict, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        Controls(CONFIG, specs)
