"""The simulated world of aco_lab/simulate.py: task types, their tools, what each tier can do.

Each request has a latent difficulty (0..1): a part its text shows (`visible`, which drives the
wording in aco_lab/request_templates.py) plus a part it does not. A run at tier t succeeds with
probability sigmoid(SKILL_SLOPE * (capability[t] - difficulty) + luck), where `luck` is shared
by every run of the request, so outcomes correlate across tiers as in real data.
Numbers here are the simulator's assumptions, stated once; data/README.md shows what they
produce (success by tier and task type, costs, outcome mix) on the shipped sample.
"""

from __future__ import annotations

from dataclasses import dataclass

VISIBLE_SD = 0.18  # spread of the visible difficulty around the task type's mean
HIDDEN_SD = 0.15  # sd of the difficulty the text does not show
SKILL_SLOPE = 9.0  # success logit per unit of (capability - difficulty)
LUCK_SD = 0.9  # sd of the per-request logit noise all its runs share


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One simulated request and its latent truth (the truth never enters a trace)."""

    index: int
    request_id: str
    task_type: str
    text: str
    visible: float  # the difficulty the text shows, 0..1
    difficulty: float  # the latent difficulty, 0..1
    luck: float  # logit noise shared by all runs of this request
    estimate: int | None  # the pre-run difficulty estimate written to the trace (1..5)
    start: float  # seconds after the simulation's start time
    tokens: int  # prompt tokens of the request text


def success_logit(request: SimRequest, tier: int) -> float:
    """The success log-odds of a run of `request` at `tier` (before the per-run draw)."""
    capability = CAPABILITY[tier] + TASK_TIER_BONUS.get((request.task_type, tier), 0.0)
    return SKILL_SLOPE * (capability - request.difficulty) + request.luck


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool an agent may call."""

    name: str
    cost: float  # USD per call
    success_rate: float  # chance a call succeeds (lower in doomed runs)


@dataclass(frozen=True, slots=True)
class TaskProfile:
    """How one task type behaves: difficulty, length, tools, checks and answers."""

    weight: float  # share of requests
    difficulty: float  # mean visible difficulty, 0..1
    steps: tuple[int, int]  # usual step count range of a run
    tool_rate: float  # chance a (non-final) step calls tools
    useful_tools: tuple[Tool, ...]  # called more often by runs that succeed
    other_tools: tuple[Tool, ...]  # called as often by runs that fail
    verify_final: float  # chance the final answer is checked by a verifier
    output_tokens: tuple[int, int]  # per call (the final answer gets half)
    actions: tuple[str, ...]  # step intents, in order
    answers: tuple[str, ...]  # final answer templates ({k}: a number)


# Tier capability on the difficulty scale: a run succeeds about half the time when its
# capability equals the request's difficulty (before the request's shared luck).
CAPABILITY = {1: 0.22, 2: 0.42, 3: 0.60, 4: 0.78, 5: 0.84}
# The most expensive tier is not best everywhere: the specialist shines on expert work and
# overthinks simple chats; the small local model loses the thread on long tasks.
TASK_TIER_BONUS = {
    ("legal_regulated", 5): 0.08,
    ("coding", 5): 0.05,
    ("data_analysis", 5): 0.04,
    ("quick_answer", 5): -0.06,
    ("customer_support", 5): -0.05,
    ("long_horizon", 1): -0.06,
}

ANSWER_HEDGES = ("I think ", "Probably: ", "I'm not entirely sure, but ", "It might be that ")
ANSWER_REFUSALS = (
    "I can't help with that request.",
    "I'm unable to give advice on this.",
    "Sorry, I don't have enough information to answer.",
)

_WEB = Tool("web_search", 0.005, 0.95)
_FETCH = Tool("fetch_url", 0.001, 0.85)
_CALC = Tool("calculator", 0.0, 0.99)
_KB = Tool("search_kb", 0.002, 0.9)
_PY = Tool("python_exec", 0.002, 0.85)
_SQL = Tool("run_sql", 0.003, 0.8)

PROFILES: dict[str, TaskProfile] = {
    "quick_answer": TaskProfile(
        0.22,
        0.18,
        (1, 2),
        0.3,
        (_CALC, _WEB),
        (_FETCH,),
        0.05,
        (10, 80),
        ("look up the fact",),
        (
            "The answer is {k}.",
            "About {k} hours.",
            "Yes.",
            "No, it is divisible by {k}.",
            "Paris.",
            "It was written in 18{k}.",
        ),
    ),
    "customer_support": TaskProfile(
        0.16,
        0.35,
        (2, 6),
        0.6,
        (
            Tool("lookup_order", 0.0, 0.95),
            Tool("get_user_details", 0.0, 0.97),
            Tool("issue_refund", 0.01, 0.9),
        ),
        (_KB, Tool("update_ticket", 0.0, 0.98)),
        0.2,
        (20, 100),
        (
            "read the customer's account",
            "look up the order",
            "check the policy",
            "apply the change",
            "confirm with the customer",
        ),
        (
            "Your refund of ${k}.00 is on its way.",
            "Done: the address on your order is updated.",
            "I rebooked you on the next flight; {k} seats are confirmed.",
            "Your subscription is cancelled and the prorated amount refunded.",
        ),
    ),
    "coding": TaskProfile(
        0.18,
        0.55,
        (3, 10),
        0.55,
        (
            Tool("run_tests", 0.002, 0.75),
            Tool("read_file", 0.0, 0.98),
            Tool("search_code", 0.0, 0.95),
        ),
        (Tool("lint", 0.0, 0.95), _WEB, Tool("write_file", 0.0, 0.97)),
        0.55,
        (30, 160),
        (
            "read the code",
            "reproduce the bug",
            "write a fix",
            "run the tests",
            "refactor",
            "update the docs",
        ),
        (
            "Fixed: the loop now stops at len(items) - 1 and all {k} tests pass.",
            "Here is the patch; the race is gone because the queue uses a compare-and-swap loop.",
            "Done. The function handles empty input and unicode; {k} new tests added.",
            "```python\ndef solve(items):\n    return sorted(set(items))\n```",
        ),
    ),
    "research": TaskProfile(
        0.14,
        0.5,
        (3, 8),
        0.65,
        (_WEB, _FETCH, Tool("citation_lookup", 0.004, 0.9)),
        (Tool("summarize_pdf", 0.01, 0.85), _CALC),
        0.4,
        (40, 160),
        (
            "plan the search",
            "search for sources",
            "read the sources",
            "compare the findings",
            "draft the summary",
        ),
        (
            "Three key sources agree; the effect is about {k}% (see refs 1-3).",
            "The original paper is from 20{k}; later work refines it.",
            "Summary: evidence is mixed; {k} studies support the claim.",
        ),
    ),
    "legal_regulated": TaskProfile(
        0.08,
        0.62,
        (2, 6),
        0.45,
        (Tool("statute_search", 0.02, 0.9), Tool("case_law_lookup", 0.03, 0.85)),
        (_WEB, Tool("compliance_check", 0.01, 0.9)),
        0.85,
        (40, 180),
        (
            "identify the jurisdiction",
            "find the applicable rules",
            "analyse the clause",
            "draft the advice",
        ),
        (
            "Under Article {k}, consent must be freely given; the banner needs a reject button.",
            "The clause is likely enforceable; notice of {k} days is reasonable.",
            "You must notify the authority within 72 hours and the affected users without delay.",
        ),
    ),
    "long_horizon": TaskProfile(
        0.10,
        0.72,
        (6, 14),
        0.5,
        (_PY, Tool("read_file", 0.0, 0.98), Tool("run_tests", 0.002, 0.75), _WEB),
        (Tool("send_message", 0.0, 0.99), Tool("create_ticket", 0.0, 0.98), _FETCH),
        0.4,
        (20, 110),
        (
            "break the goal into milestones",
            "set up the environment",
            "do milestone 1",
            "check progress",
            "do milestone 2",
            "fix what broke",
            "do milestone 3",
            "write the report",
        ),
        (
            "All {k} milestones are done; the report is attached.",
            "Migration complete: {k} services upgraded, CI is green.",
            "Finished. Remaining risks are listed in the summary.",
        ),
    ),
    "data_analysis": TaskProfile(
        0.12,
        0.5,
        (2, 8),
        0.65,
        (_SQL, _PY, Tool("load_csv", 0.0, 0.95)),
        (Tool("plot_chart", 0.001, 0.95), _WEB),
        0.45,
        (30, 140),
        ("load the data", "clean the data", "run the analysis", "check the result", "plot"),
        (
            "Average order value rose {k}% month over month.",
            "The difference is significant (p = 0.0{k}).",
            "Top driver of churn: support tickets in the first {k} days.",
        ),
    ),
}
TASK_TYPES = tuple(PROFILES)
TASK_WEIGHTS = tuple(profile.weight for profile in PROFILES.values())
