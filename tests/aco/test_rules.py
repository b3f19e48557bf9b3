"""The rule-based router: the guide's examples, cues, floors, difficulty, configured tiers."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aco.config import ACOConfig, TierSpec
from aco.decisions import MODE_RULES
from aco.errors import ACOError
from aco.rules import (
    CONTEXT_TOKENS_BY_TIER,
    LONG_REQUEST_TOKENS,
    _has_code,
    build_context_budget,
    estimate_tokens,
    infer_task_type,
    read_cues,
    route_by_rules,
)

CONFIG = ACOConfig()


@pytest.mark.parametrize(
    ("request_text", "task_type", "low", "high"),
    [
        ("Fix the auth bug in production", "coding", 4, 5),
        ("What is 2+2?", "quick_answer", 1, 2),
        ("How many legs does a spider have?", "quick_answer", 1, 2),
        ("Translate 'good morning' into French", "quick_answer", 1, 2),
        ("Write a Python function that reverses a string", "coding", 3, 3),
        ("Review this vendor contract for GDPR liability clauses", "legal_regulated", 4, 5),
        ("Summarize recent papers on retrieval-augmented generation", "research", 2, 2),
        ("Plan the migration of our billing service to Kubernetes", "long_horizon", 4, 5),
        ("Debug the deadlock in our distributed job scheduler", "coding", 4, 5),
        ("hello there", None, 2, 2),
    ],
)
def test_rule_table(request_text: str, task_type: str | None, low: int, high: int) -> None:
    decision = route_by_rules(request_text, CONFIG)
    assert decision.task_type == task_type
    assert low <= decision.tier <= high, decision.reason
    assert decision.mode == MODE_RULES
    assert decision.model_id == CONFIG.tier(decision.tier).model_id
    assert decision.reason.startswith("rules: ")


@pytest.mark.parametrize(
    "text", ["def f(x):\n    return x + 1\n", "Fix the TypeError in parse()", "x = {1: 2};"]
)
def test_code_without_keywords_is_coding(text: str) -> None:
    assert read_cues(text).task_type == "coding"


def test_given_task_type_wins_and_its_floor_applies() -> None:
    decision = route_by_rules("What is 2+2?", CONFIG, task_type="legal_regulated")
    assert decision.task_type == "legal_regulated"
    assert decision.tier >= CONFIG.floor_for("legal_regulated")


def test_floor_comes_from_the_config() -> None:
    config = CONFIG.replace(task_floors={"quick_answer": 3})
    assert route_by_rules("What is 2+2?", config).tier == 3


def test_risk_cue_raises_the_tier() -> None:
    plain = route_by_rules("Fix the bug in the parser", CONFIG)
    risky = route_by_rules("Fix the bug in the payment parser in production", CONFIG)
    assert risky.tier == plain.tier + 1


def test_long_request_raises_the_tier() -> None:
    short = route_by_rules("Summarize this report", CONFIG)
    long = route_by_rules("Summarize this report " + "lorem ipsum " * LONG_REQUEST_TOKENS, CONFIG)
    assert long.tier == short.tier + 1
    assert (
        route_by_rules("Summarize this report", CONFIG, input_tokens=LONG_REQUEST_TOKENS + 1).tier
        == short.tier + 1
    )


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
def test_difficulty_replaces_the_task_base(difficulty: int) -> None:
    assert route_by_rules("hello there", CONFIG, difficulty=difficulty).tier == difficulty


@pytest.mark.parametrize("difficulty", [0, 6, "hard", True])
def test_bad_difficulty_is_refused(difficulty: object) -> None:
    with pytest.raises(ACOError, match="difficulty: expected an int 1..5"):
        route_by_rules("hello", CONFIG, difficulty=difficulty)


def test_only_configured_tiers_are_chosen() -> None:
    config = ACOConfig(
        tiers=(
            TierSpec(1, "small", cost_per_1k_input=0.1),
            TierSpec(3, "big", cost_per_1k_input=1.0),
        ),
        task_floors={},
    )
    assert route_by_rules("hello there", config).tier == 3  # wanted 2: next configured is 3
    assert route_by_rules("Fix the auth bug in production", config).tier == 3  # top tier


def test_cost_estimate_uses_the_tier_prices() -> None:
    cheap = route_by_rules("hello there", CONFIG, input_tokens=1000)
    pricier = route_by_rules(
        "hello there",
        CONFIG.replace(
            tiers=tuple(
                TierSpec(
                    s.tier,
                    s.model_id,
                    s.provider,
                    s.cost_per_1k_input * 2,
                    s.cost_per_1k_output * 2,
                )
                for s in CONFIG.tiers
            )
        ),
        input_tokens=1000,
    )
    assert cheap.cost_estimate > 0
    assert pricier.cost_estimate == pytest.approx(2 * cheap.cost_estimate)


def test_non_string_request_is_refused() -> None:
    with pytest.raises(ACOError, match="request: expected a string"):
        route_by_rules(None, CONFIG)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [("", 0), ("abcd", 1), ("abcde", 2)])
def test_estimate_tokens(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected


def test_infer_task_type_is_none_without_cues() -> None:
    assert infer_task_type("good morning") is None


def test_context_budget_keeps_what_the_request_needs() -> None:
    request = "Fix the TypeError in parse_order():\n```\nTraceback (most recent call last)\n```"
    budget = build_context_budget(read_cues(request), 3)
    assert budget.total_tokens == CONTEXT_TOKENS_BY_TIER[3]
    assert {"request", "code", "error_messages"} <= set(budget.keep_exact)
    quick = build_context_budget(read_cues("What is 2+2?"), 3)
    assert quick.total_tokens < budget.total_tokens
    assert "conversation_history" in quick.omit


def test_context_budget_fits_a_long_request() -> None:
    request = "x" * 4 * 50_000
    assert build_context_budget(read_cues(request), 1).total_tokens > 50_000


def test_a_huge_request_is_scanned_at_its_ends_only() -> None:
    filler = "lorem ipsum " * 100_000  # 1.2 MB of pasted log between the ends
    cues = read_cues("Fix the bug. " + filler + " outage " + filler + " It is urgent.")
    assert cues.task_type == "coding" and cues.risk == ("urgent",)  # "outage" sits mid-log
    assert cues.tokens == estimate_tokens(
        "Fix the bug. " + filler + " outage " + filler + " It is urgent."
    )


@pytest.mark.parametrize(
    ("text", "risk"),
    [
        ("we had an outage in prod", ("outage", "prod")),
        ("the author wrote", ()),
        ("possible data loss", ("data loss",)),
        ("metadata lossy", ()),
    ],
)
def test_cues_match_whole_words_and_phrases(text: str, risk: tuple) -> None:
    assert read_cues(text).risk == risk


# The one alternation _has_code replaced (kept here as the reference it must equal).
CODE_ALTERNATION = re.compile(
    r"```|^\s*(def|class|import|from \S+ import|function|const|let|#include)\b|"
    r"Traceback \(most recent call last\)|[;{}]\s*$|\w\(\)",
    re.MULTILINE,
)
CODE_PIECES = [
    "```",
    "def ",
    "class",
    " import ",
    "from x import y",
    "let",
    "#include",
    "()",
    "f()",
    ";",
    "{",
    "}",
    " ",
    "\n",
    "\t",
    "Traceback (most recent call last)",
    "a",
    "_",
    "9",
    "(",
    ")",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(CODE_PIECES), max_size=12).map("".join))
def test_has_code_equals_the_single_alternation(text: str) -> None:
    assert _has_code(text) == bool(CODE_ALTERNATION.search(text))
