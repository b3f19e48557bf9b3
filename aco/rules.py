"""The documented rule-based router: what the runtime decides when no bundle is configured.

Deterministic and cheap (a few regex scans of the request). It answers the same questions
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

from aco.config import ACOConfig
from aco.decisions import MODE_RULES, ContextBudget, RoutingDecision
from aco.errors import ACOError
from aco.trace_format import MAX_DIFFICULTY, MIN_DIFFICULTY, MIN_TIER

# Characters per token of English text and code, for cost estimates: the same estimate as
# aco.features.CHARS_PER_TOKEN, kept here so that rule routing never loads numpy.
CHARS_PER_TOKEN = 4

# Rules carry no calibrated probability of success: 0.5 says "unknown" and keeps the
# verifier rule (which verifies below a confidence) on the careful side.
RULES_CONFIDENCE = 0.5

# Task types, in the order they are tried; the first whose cues match wins.
TASK_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("legal_regulated", r"\b(contracts?|legal|lawsuits?|liabilit\w*|complian\w*|gdpr|hipaa|"
                            r"sox|regulat\w*|clauses?|court|attorney|tax(es)?|audit\w*|medical|"
                            r"diagnos\w*|prescri\w*)\b"),
        ("coding", r"\b(bugs?|debug\w*|code|coding|functions?|refactor\w*|compil\w*|stack ?trace|"
                   r"exceptions?|unit tests?|python|javascript|typescript|java|rust|golang|sql|"
                   r"api|endpoints?|regex|script|class|implement\w*|segfault|null pointer)\b|```"),
        ("long_horizon", r"\b(migrat\w*|end[- ]to[- ]end|multi[- ]step|roadmap|step by step plan|"
                         r"build (an?|the) (app|application|service|system|pipeline)|"
                         r"set up|orchestrat\w*|project plan)\b"),
        ("research", r"\b(research|compare|comparison|analy[sz]\w*|investigat\w*|literature|"
                     r"papers?|studies|survey|summari[sz]e|pros and cons|trade-?offs?|sources)\b"),
        ("quick_answer", r"^\s*(what|who|when|where|which|how (much|many|old)|is|are|does|do|"
                         r"define|convert|translate)\b"),
    )
)
# Tier a task type starts from before cues; the config's task floor still applies after.
BASE_TIER = {"quick_answer": 1, "research": 2, "coding": 3, "long_horizon": 3,
             "legal_regulated": 4}
DEFAULT_BASE_TIER = 2  # an unknown kind of request starts at the cheap cloud tier

RISK_CUES = re.compile(
    r"\b(production|prod|live|outage|incident|security|vulnerab\w*|auth\w*|login|passwords?|"
    r"credentials?|payments?|billing|invoices?|bank\w*|transfer|financ\w*|data loss|"
    r"corrupt\w*|breach|critical|urgent|customers?|patients?)\b",
    re.IGNORECASE,
)
HARD_CUES = re.compile(
    r"\b(concurren\w*|race conditions?|deadlocks?|distributed|architect\w*|prove|proof|"
    r"theorem|optimi[sz]\w*|performance|scal(e|ing|ability)|cryptograph\w*|memory leak|"
    r"design (a|the) system)\b",
    re.IGNORECASE,
)
TRIVIAL_CUES = re.compile(
    r"^\s*(what is|what's|define|convert|translate|spell)\b|^[\s\d+\-*/().=?x^%]+$|"
    r"\b\d+\s*[-+*/x]\s*\d+\b",
    re.IGNORECASE,
)
SHORT_QUESTION_WORDS = 12  # a question of at most this many words counts as trivial
LONG_REQUEST_TOKENS = 1_500  # +1 tier above this many estimated tokens: long inputs are harder
CODE_CUES = re.compile(r"```|^\s*(def|class|import|from \S+ import|function|const|let|#include)\b|"
                       r"Traceback \(most recent call last\)|[;{}]\s*$", re.MULTILINE)
# "error" inside a word too: TypeError, ValueError, errors.
ERROR_CUES = re.compile(r"error|exception|traceback|stack ?trace|\b(failed|failing|crash\w*)\b",
                        re.IGNORECASE)
IDENTIFIER_CUES = re.compile(r"\b[A-Z]{2,}-?\d+\b|\b\d{3,}\b|\b[\w.+-]+@[\w-]+\.\w+\b")

# Expected output tokens of one call, by task type (USD estimates only).
EXPECTED_OUTPUT_TOKENS = {"quick_answer": 100, "research": 800, "coding": 800,
                          "long_horizon": 1_500, "legal_regulated": 1_000}
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


def estimate_tokens(text: str) -> int:
    """Rough token count of a text (characters / 4, at least 1 for non-empty text)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def read_cues(request: str, task_type: str | None = None) -> RequestCues:
    """Scan a request once for every cue the rules use (pure)."""
    inferred, task_cues = _infer_task_type(request)
    has_code = bool(CODE_CUES.search(request))
    if task_type is None:
        task_type = inferred if inferred or not has_code else "coding"
    words = request.split()
    trivial = bool(TRIVIAL_CUES.search(request)) or (
        request.rstrip().endswith("?") and len(words) <= SHORT_QUESTION_WORDS
    )
    return RequestCues(
        task_type=task_type,
        task_cues=task_cues,
        risk=_matches(RISK_CUES, request),
        hard=_matches(HARD_CUES, request),
        trivial=trivial,
        has_code=has_code,
        has_errors=bool(ERROR_CUES.search(request)),
        has_identifiers=bool(IDENTIFIER_CUES.search(request)),
        tokens=estimate_tokens(request),
    )


def infer_task_type(request: str) -> str | None:
    """The task type the request's keywords suggest, or None when none matches."""
    return _infer_task_type(request)[0]


def _infer_task_type(request: str) -> tuple[str | None, tuple[str, ...]]:
    for name, pattern in TASK_CUES:
        found = _matches(pattern, request)
        if found:
            return name, found
    return None, ()


def _matches(pattern: re.Pattern[str], text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for match in pattern.finditer(text):
        seen.setdefault(match.group(0).strip().lower(), None)
    return tuple(seen)


def choose_tier(cues: RequestCues, config: ACOConfig, difficulty: int | None = None,
                input_tokens: int | None = None) -> tuple[int, str]:
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


def route_by_rules(request: str, config: ACOConfig, task_type: str | None = None,
                   input_tokens: int | None = None,
                   difficulty: int | None = None) -> RoutingDecision:
    """Route one request with the rules (mode="rules")."""
    if not isinstance(request, str):
        raise ACOError(f"request: expected a string, got {type(request).__name__}")
    cues = read_cues(request, task_type)
    tier, reason = choose_tier(cues, config, difficulty, input_tokens)
    return RoutingDecision(
        tier=tier,
        model_id=config.tier(tier).model_id,
        confidence=RULES_CONFIDENCE,
        cost_estimate=estimate_call_cost(config, tier, cues, input_tokens),
        task_type=cues.task_type,
        reason=f"rules: {reason}",
        mode=MODE_RULES,
    )


def estimate_call_cost(config: ACOConfig, tier: int, cues: RequestCues,
                       input_tokens: int | None = None) -> float:
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
    for present, item in ((cues.has_code, "code"), (cues.has_errors, "error_messages"),
                          (cues.has_identifiers, "identifiers_and_numbers"),
                          (cues.task_type in ("legal_regulated", "research"), "citations"),
                          (cues.task_type in ("coding", "long_horizon"), "tool_schemas")):
        if present:
            keep.append(item)
    omit = ["greetings_and_chit_chat", "superseded_drafts", "stale_tool_outputs"]
    if cues.task_type == "quick_answer":
        omit.append("conversation_history")
    return ContextBudget(total_tokens=total, keep_exact=tuple(keep), omit=tuple(omit),
                         reason=f"rules: tier {tier} allowance {allowance} tokens")


def _check_difficulty(difficulty: int) -> None:
    ok = isinstance(difficulty, int) and not isinstance(difficulty, bool)
    if not ok or not MIN_DIFFICULTY <= difficulty <= MAX_DIFFICULTY:
        raise ACOError(f"difficulty: expected an int {MIN_DIFFICULTY}..{MAX_DIFFICULTY} or None, "
                       f"got {difficulty!r}")
