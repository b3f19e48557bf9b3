"""The documented rule-based router: what the runtime decides when no bundle is configured.

Deterministic and cheap (one pass over the request's words, tens of microseconds for a
typical request). It answers the same questions
as a bundle with the same decision types, always with ``mode="rules"``:

- the tier: a base tier for the task type (inferred from keywords when not given), the task
  floor from the config, then cues in the request: risk (production, auth, payments, ...)
  +1, hard problems (concurrency, architecture, proofs, ...) +1, long requests +1, trivial
  questions (arithmetic, "what is", a short question) -1;
- the context budget: a token allowance by tier, what to keep verbatim, what to drop.

The rule versions of the other controls (cascade, doom, tool gate, verifier) live in
``aco/controls.py``, beside their learned versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress

from aco.config import ACOConfig
from aco.decisions import (
    FROM_CALLER,
    FROM_NONE,
    FROM_RULE_CUES,
    MODE_RULES,
    ContextBudget,
    RoutingDecision,
)
from aco.errors import ACOError
from aco.trace_format import MAX_DIFFICULTY, MIN_DIFFICULTY, MIN_TIER

# Characters per token of English text and code, for cost estimates: the same estimate as
# aco.features.CHARS_PER_TOKEN, kept here so that rule routing never loads numpy.
CHARS_PER_TOKEN = 4

# Rules carry no calibrated probability of success: 0.5 says "unknown" and keeps the
# verifier rule (which verifies below a confidence) on the careful side.
RULES_CONFIDENCE = 0.5


@dataclass(frozen=True, slots=True)
class CueSet:
    """Words, word prefixes, word parts and phrases that signal one thing in a request."""

    words: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()  # "migrat" matches migrate, migrating, migration
    parts: tuple[str, ...] = ()  # anywhere in a word: "error" matches TypeError
    phrases: tuple[str, ...] = ()  # several words, matched on the lowered words joined by " "

    def matches_word(self, word: str) -> bool:
        """Whether one lowered word is a cue of this set."""
        return (
            word in self.words
            or word.startswith(self.prefixes)
            or any(part in word for part in self.parts)
        )


def _cues(words: str = "", prefixes: str = "", parts: str = "", phrases: tuple = ()) -> CueSet:
    return CueSet(frozenset(words.split()), tuple(prefixes.split()), tuple(parts.split()), phrases)


# Task types, in the order they are tried: the first with a cue in the request wins.
TASK_CUES: dict[str, CueSet] = {
    "legal_regulated": _cues(
        "contract contracts legal lawsuit lawsuits gdpr hipaa sox clause clauses court attorney "
        "tax taxes medical",
        "liabilit complian regulat audit diagnos prescri",
    ),
    "coding": _cues(
        "bug bugs code coding function functions stacktrace exception exceptions python "
        "javascript typescript java rust golang sql api endpoint endpoints regex script class "
        "segfault",
        "debug refactor compil implement",
        phrases=("stack trace", "unit test", "null pointer"),
    ),
    "long_horizon": _cues(
        "roadmap",
        "migrat orchestrat",
        phrases=(
            "end to end",
            "multi step",
            "step by step plan",
            "set up",
            "project plan",
            *(
                f"build {a} {b}"
                for a in ("a", "an", "the")
                for b in ("app", "application", "service", "system", "pipeline")
            ),
        ),
    ),
    "research": _cues(
        "research compare comparison literature paper papers studies survey sources tradeoff "
        "tradeoffs",
        "analy investigat summari",
        phrases=("pros and cons", "trade off", "trade offs"),
    ),
}
# A request opening with one of these words (or "how much/many/old") is a quick answer.
QUICK_ANSWER_OPENERS = frozenset(
    (
        "what",
        "who",
        "when",
        "where",
        "which",
        "is",
        "are",
        "does",
        "do",
        "define",
        "convert",
        "translate",
    )
)
QUICK_ANSWER_HOW = frozenset(("much", "many", "old"))
# Tier a task type starts from before cues; the config's task floor still applies after.
BASE_TIER = {"quick_answer": 1, "research": 2, "coding": 3, "long_horizon": 3, "legal_regulated": 4}
DEFAULT_BASE_TIER = 2  # an unknown kind of request starts at the cheap cloud tier

RISK_CUES = _cues(
    "production prod live outage incident security auth authentication authorization oauth "
    "login password passwords credential credentials payment payments billing invoice invoices "
    "transfer breach critical urgent customer customers patient patients",
    "vulnerab bank financ corrupt",
    phrases=("data loss",),
)
HARD_CUES = _cues(
    "distributed prove proof theorem performance scale scaling scalability deadlock deadlocks",
    "concurren architect optimi optimal cryptograph",
    phrases=("race condition", "memory leak", "design a system", "design the system"),
)
ERROR_CUES = _cues(
    "traceback stacktrace failed failing", "crash", "error exception", phrases=("stack trace",)
)
_WORD_CUES = {**TASK_CUES, "risk": RISK_CUES, "hard": HARD_CUES, "error": ERROR_CUES}
# (cue set, " phrase ") pairs, padded once: phrases match whole words of the joined words.
_PHRASES = tuple(
    (name, f" {phrase} ") for name, cues in _WORD_CUES.items() for phrase in cues.phrases
)
_CUES_HAVE_DIGITS = any(
    ch.isdigit()
    for cues in _WORD_CUES.values()
    for cue in (*cues.words, *cues.prefixes, *cues.parts)
    for ch in cue
)
_PHRASES_BY_FIRST_WORD: dict[str, list[int]] = {}  # first word -> indexes into _PHRASES
for _i, (_, _phrase) in enumerate(_PHRASES):
    _PHRASES_BY_FIRST_WORD.setdefault(_phrase.split()[0], []).append(_i)
_PHRASE_FIRST_WORDS = frozenset(_PHRASES_BY_FIRST_WORD)
TRIVIAL_OPENERS = ("what is", "what's", "define", "convert", "translate", "spell")
ARITHMETIC = re.compile(r"\d\s*[-+*/x^%]\s*\d")  # "2+2", "6 x 7"
SHORT_QUESTION_WORDS = 12  # a question of at most this many words counts as trivial
LONG_REQUEST_TOKENS = 1_500  # +1 tier above this many estimated tokens: long inputs are harder
# Code: a fence, a line opening like code, a Python traceback, a line ending in ; { or }, or a
# call "name()". Searched as separate patterns behind cheap substring tests: the same
# answer as one alternation, without trying every alternative at every character.
CODE_FENCE, TRACEBACK = "```", "Traceback (most recent call last)"
CODE_LINE = re.compile(
    r"^\s*(def|class|import|from \S+ import|function|const|let|#include)\b", re.MULTILINE
)
CODE_LINE_END = re.compile(r"[;{}]\s*$", re.MULTILINE)
CODE_CALL = re.compile(r"\w\(\)")
# A word of 3+ characters with a digit or "_" (an id, a number, a snake_case name), searched
# in the request's words joined by spaces.
IDENTIFIER = re.compile(r" (?=[a-z0-9_]{3})[a-z]*[0-9_]")
WORD = re.compile(r"[a-z0-9_]+")  # on the lowered text: "what's" -> what, s
# Cues are read from the first 24K and the last 8K characters: a pasted megabyte of logs
# must not make every decision slow, and what the request asks sits at its ends.
SCAN_HEAD_CHARS, SCAN_TAIL_CHARS = 24_000, 8_000

# Expected output tokens of one call, by task type (USD estimates only).
EXPECTED_OUTPUT_TOKENS = {
    "quick_answer": 100,
    "research": 800,
    "coding": 800,
    "long_horizon": 1_500,
    "legal_regulated": 1_000,
}
DEFAULT_OUTPUT_TOKENS = 500

# Context allowance by tier (tokens): cheap tiers get short contexts because their windows
# are small and long prompts are where they fail; the top tiers can use what they get.
CONTEXT_TOKENS_BY_TIER = {1: 4_000, 2: 8_000, 3: 16_000, 4: 32_000, 5: 64_000}
CONTEXT_MARGIN_TOKENS = 1_000  # room for the answer beyond the request itself


@dataclass(frozen=True, slots=True)
class RequestCues:
    """What the rules saw in a request: the inputs of every rule decision."""

    task_type: str | None
    task_cues: tuple[str, ...]
    risk: tuple[str, ...]
    hard: tuple[str, ...]
    trivial: bool
    has_code: bool
    has_errors: bool
    has_identifiers: bool
    tokens: int
    task_type_from: str = FROM_CALLER  # the caller's type, or the cues' (FROM_RULE_CUES/NONE)

    def with_task_type(
        self, task_type: str | None, task_type_from: str | None = None
    ) -> RequestCues:
        """The same cues under another task type (dataclasses.replace, without its cost)."""
        return RequestCues(
            task_type,
            self.task_cues,
            self.risk,
            self.hard,
            self.trivial,
            self.has_code,
            self.has_errors,
            self.has_identifiers,
            self.tokens,
            task_type_from or self.task_type_from,
        )


def estimate_tokens(text: str) -> int:
    """Rough token count of a text (characters / 4, at least 1 for non-empty text)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def read_cues(request: str, task_type: str | None = None) -> RequestCues:
    """Scan a request once for every cue the rules use (pure)."""
    text = (
        request
        if len(request) <= SCAN_HEAD_CHARS + SCAN_TAIL_CHARS
        else (request[:SCAN_HEAD_CHARS] + "\n" + request[-SCAN_TAIL_CHARS:])
    )
    lower = text.lower()
    words = WORD.findall(lower)
    joined = " " + " ".join(words) + " "  # punctuation and hyphens are spaces now
    found = _find_cues(dict.fromkeys(words), joined)
    inferred, task_cues = _task_type_of(words, found)
    has_code = _has_code(text)
    source = FROM_CALLER
    if task_type is None:
        task_type = inferred if inferred or not has_code else "coding"
        source = FROM_RULE_CUES if task_type is not None else FROM_NONE
    trivial = (
        lower.lstrip().startswith(TRIVIAL_OPENERS)
        or bool(ARITHMETIC.search(text))
        or (text.rstrip().endswith("?") and len(text.split()) <= SHORT_QUESTION_WORDS)
    )
    return RequestCues(
        task_type=task_type,
        task_cues=task_cues,
        risk=found.get("risk", ()),
        hard=found.get("hard", ()),
        trivial=trivial,
        has_code=has_code,
        has_errors="error" in found,
        has_identifiers="@" in text or IDENTIFIER.search(joined) is not None,
        tokens=estimate_tokens(request),
        task_type_from=source,
    )


def _has_code(text: str) -> bool:
    return (
        CODE_FENCE in text
        or TRACEBACK in text
        or ("()" in text and CODE_CALL.search(text) is not None)
        or (("{" in text or "}" in text or ";" in text) and CODE_LINE_END.search(text) is not None)
        or CODE_LINE.search(text) is not None
    )


def infer_task_type(request: str) -> str | None:
    """The task type the request's keywords suggest, or None when none matches."""
    return read_cues(request).task_type


def _find_cues(unique: dict[str, None], joined: str) -> dict[str, tuple[str, ...]]:
    """Cue set name -> the cues found (unique words first, then phrases)."""
    found: dict[str, dict[str, None]] = {}
    for word in compress(unique, map(_word_cues, unique)):  # C-level: most words are no cue
        for name in _word_cues(word):
            found.setdefault(name, {})[word] = None
    # A phrase can only match when its first word is a word of the request: try those, in
    # the order of _PHRASES.
    tried = sorted(
        i
        for first in _PHRASE_FIRST_WORDS.intersection(unique)
        for i in _PHRASES_BY_FIRST_WORD[first]
    )
    for name, phrase in map(_PHRASES.__getitem__, tried):
        if phrase in joined:
            found.setdefault(name, {})[phrase.strip()] = None
    return {name: tuple(cues) for name, cues in found.items()}


@lru_cache(maxsize=1 << 16)
def _word_cues(word: str) -> tuple[str, ...]:
    # Cached per word: a vocabulary repeats across requests, so most lookups are one hit.
    if word.isdigit() and not _CUES_HAVE_DIGITS:  # numbers are new words, and never cues
        return ()
    return tuple(name for name, cues in _WORD_CUES.items() if cues.matches_word(word))


def _task_type_of(
    words: list[str], found: dict[str, tuple[str, ...]]
) -> tuple[str | None, tuple[str, ...]]:
    for name in TASK_CUES:
        if name in found:
            return name, found[name]
    if words and (
        words[0] in QUICK_ANSWER_OPENERS
        or (words[0] == "how" and words[1:2] and words[1] in QUICK_ANSWER_HOW)
    ):
        return "quick_answer", tuple(words[:2] if words[0] == "how" else words[:1])
    return None, ()


def choose_tier(
    cues: RequestCues,
    config: ACOConfig,
    difficulty: int | None = None,
    input_tokens: int | None = None,
) -> tuple[int, str]:
    """The rule tier of a request and the reason, floors and configured tiers applied."""
    if difficulty is not None:
        _check_difficulty(difficulty)
        tier, why = difficulty, [f"difficulty {difficulty}"]
    else:
        tier = BASE_TIER.get(cues.task_type, DEFAULT_BASE_TIER)
        why = [f"task_type={cues.task_type} base {tier}"]
    tokens = input_tokens if input_tokens is not None else cues.tokens
    for present, step, label in (
        (cues.risk, +1, f"risk cues ({', '.join(cues.risk[:3])})"),
        (cues.hard, +1, f"hard cues ({', '.join(cues.hard[:3])})"),
        (tokens > LONG_REQUEST_TOKENS, +1, f"long request (~{tokens} tokens)"),
        (cues.trivial and not (cues.risk or cues.hard or cues.has_code), -1, "trivial question"),
    ):
        if present:
            tier += step
            why.append(f"{label} {step:+d}")
    floor = config.floor_for(cues.task_type)
    if tier < floor and floor > MIN_TIER:
        why.append(f"floor {floor} for {cues.task_type}")
    tier = nearest_configured_tier(max(tier, floor, MIN_TIER), config)
    return tier, "; ".join(why) + f" -> tier {tier}"


def nearest_configured_tier(tier: int, config: ACOConfig) -> int:
    """The lowest configured tier at or above `tier`, else the top configured tier."""
    above = [spec.tier for spec in config.tiers if spec.tier >= tier]
    return min(above) if above else config.top_tier


def route_by_rules(
    request: str,
    config: ACOConfig,
    task_type: str | None = None,
    input_tokens: int | None = None,
    difficulty: int | None = None,
) -> RoutingDecision:
    """Route one request with the rules (mode="rules")."""
    if not isinstance(request, str):
        raise ACOError(f"request: expected a string, got {type(request).__name__}")
    return route_cues(read_cues(request, task_type), config, input_tokens, difficulty)


def route_cues(
    cues: RequestCues,
    config: ACOConfig,
    input_tokens: int | None = None,
    difficulty: int | None = None,
) -> RoutingDecision:
    """Route a request whose cues are already read (mode="rules")."""
    tier, reason = choose_tier(cues, config, difficulty, input_tokens)
    return RoutingDecision(
        tier=tier,
        model_id=config.tier(tier).model_id,
        confidence=RULES_CONFIDENCE,
        cost_estimate=estimate_call_cost(config, tier, cues, input_tokens),
        task_type=cues.task_type,
        reason=f"rules: {reason}",
        mode=MODE_RULES,
        task_type_from=cues.task_type_from,
    )


def estimate_call_cost(
    config: ACOConfig, tier: int, cues: RequestCues, input_tokens: int | None = None
) -> float:
    """USD of one call at `tier`: the request's tokens in, the task type's usual answer out."""
    tokens_in = input_tokens if input_tokens is not None else cues.tokens
    tokens_out = EXPECTED_OUTPUT_TOKENS.get(cues.task_type, DEFAULT_OUTPUT_TOKENS)
    return round(config.tier(tier).cost(tokens_in, tokens_out), 6)


def build_context_budget(cues: RequestCues, tier: int) -> ContextBudget:
    """The rule context budget of a run routed to `tier` (pure)."""
    allowance = CONTEXT_TOKENS_BY_TIER[min(tier, max(CONTEXT_TOKENS_BY_TIER))]
    if cues.task_type == "quick_answer":
        allowance //= 2  # a quick answer needs the question, not the history
    total = max(allowance, cues.tokens + CONTEXT_MARGIN_TOKENS)
    keep = ["request"]
    for present, item in (
        (cues.has_code, "code"),
        (cues.has_errors, "error_messages"),
        (cues.has_identifiers, "identifiers_and_numbers"),
        (cues.task_type in ("legal_regulated", "research"), "citations"),
        (cues.task_type in ("coding", "long_horizon"), "tool_schemas"),
    ):
        if present:
            keep.append(item)
    omit = ["greetings_and_chit_chat", "superseded_drafts", "stale_tool_outputs"]
    if cues.task_type == "quick_answer":
        omit.append("conversation_history")
    return ContextBudget(
        total_tokens=total,
        keep_exact=tuple(keep),
        omit=tuple(omit),
        reason=f"rules: tier {tier} allowance {allowance} tokens",
    )


def _check_difficulty(difficulty: int) -> None:
    ok = isinstance(difficulty, int) and not isinstance(difficulty, bool)
    if not ok or not MIN_DIFFICULTY <= difficulty <= MAX_DIFFICULTY:
        raise ACOError(
            f"difficulty: expected an int {MIN_DIFFICULTY}..{MAX_DIFFICULTY} or None, "
            f"got {difficulty!r}"
        )
