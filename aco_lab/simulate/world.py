"""The simulated world of aco_lab/simulate/generate.py: task types, their tools, each tier.

Each request has a latent difficulty (0..1): a part its text shows (`visible`, which drives the
wording in aco_lab/simulate/request_templates.py) plus a part it does
not. A run at tier t succeeds with
probability sigmoid(SKILL_SLOPE * (capability[t] - difficulty) + luck), where `luck` is shared
by every run of the request, so outcomes correlate across tiers as in real data.
Numbers here are the simulator's assumptions, stated once; data/README.md shows what they
produce (success by tier and task type, costs, outcome mix) on the shipped sample.
"""

from __future__ import annotations

from dataclasses import dataclass

VISIBLE_SD = 0.25  # spread of the visible difficulty around the task type's mean
HIDDEN_SD = 0.06  # sd of the difficulty the text does not show
SKILL_SLOPE = 14.0  # success logit per unit of (capability - difficulty)
LUCK_SD = 0.6  # sd of the per-request logit noise all its runs share


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
CAPABILITY = {1: 0.25, 2: 0.45, 3: 0.62, 4: 0.78, 5: 0.84}
# The most expensive tier is not best everywhere: the specialist shines on expert work and
# overthinks simple chats; the mid-size model was tuned on support dialogues; the small local
# model loses the thread on long tasks. A router can learn these from the task type and text.
TASK_TIER_BONUS = {
    ("legal_regulated", 5): 0.10,
    ("coding", 5): 0.07,
    ("data_analysis", 5): 0.05,
    ("quick_answer", 5): -0.08,
    ("customer_support", 5): -0.08,
    ("customer_support", 3): 0.08,
    ("research", 2): 0.05,
    ("long_horizon", 1): -0.08,
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

# fmt: off
PROFILES: dict[str, TaskProfile] = {
    "quick_answer": TaskProfile(
        weight=0.22, difficulty=0.10, steps=(1, 2), tool_rate=0.3,
        useful_tools=(_CALC, _WEB), other_tools=(_FETCH,),
        verify_final=0.05, output_tokens=(10, 80),
        actions=("look up the fact",),
        answers=("The answer is {k}.", "About {k} hours.", "Yes.", "No, it is divisible by {k}.",
                 "Paris.", "It was written in 18{k}."),
    ),
    "customer_support": TaskProfile(
        weight=0.16, difficulty=0.28, steps=(2, 6), tool_rate=0.6,
        useful_tools=(Tool("lookup_order", 0.0, 0.95), Tool("get_user_details", 0.0, 0.97),
                      Tool("issue_refund", 0.01, 0.9)),
        other_tools=(_KB, Tool("update_ticket", 0.0, 0.98)),
        verify_final=0.2, output_tokens=(20, 100),
        actions=("read the customer's account", "look up the order", "check the policy",
                 "apply the change", "confirm with the customer"),
        answers=("Your refund of ${k}.00 is on its way.",
                 "Done: the address on your order is updated.",
                 "I rebooked you on the next flight; {k} seats are confirmed.",
                 "Your subscription is cancelled and the prorated amount refunded."),
    ),
    "coding": TaskProfile(
        weight=0.18, difficulty=0.55, steps=(3, 10), tool_rate=0.55,
        useful_tools=(Tool("run_tests", 0.002, 0.75), Tool("read_file", 0.0, 0.98),
                      Tool("search_code", 0.0, 0.95)),
        other_tools=(Tool("lint", 0.0, 0.95), _WEB, Tool("write_file", 0.0, 0.97)),
        verify_final=0.55, output_tokens=(30, 160),
        actions=("read the code", "reproduce the bug", "write a fix", "run the tests",
                 "refactor", "update the docs"),
        answers=("Fixed: the loop now stops at len(items) - 1 and all {k} tests pass.",
                 "Here is the patch; the race is gone because the queue uses a CAS loop.",
                 "Done. The function handles empty input and unicode; {k} new tests added.",
                 "```python\ndef solve(items):\n    return sorted(set(items))\n```"),
    ),
    "research": TaskProfile(
        weight=0.14, difficulty=0.48, steps=(3, 8), tool_rate=0.65,
        useful_tools=(_WEB, _FETCH, Tool("citation_lookup", 0.004, 0.9)),
        other_tools=(Tool("summarize_pdf", 0.01, 0.85), _CALC),
        verify_final=0.4, output_tokens=(40, 160),
        actions=("plan the search", "search for sources", "read the sources",
                 "compare the findings", "draft the summary"),
        answers=("Three key sources agree; the effect is about {k}% (see refs 1-3).",
                 "The original paper is from 20{k}; later work refines it.",
                 "Summary: evidence is mixed; {k} studies support the claim."),
    ),
    "legal_regulated": TaskProfile(
        weight=0.08, difficulty=0.62, steps=(2, 6), tool_rate=0.45,
        useful_tools=(Tool("statute_search", 0.02, 0.9), Tool("case_law_lookup", 0.03, 0.85)),
        other_tools=(_WEB, Tool("compliance_check", 0.01, 0.9)),
        verify_final=0.85, output_tokens=(40, 180),
        actions=("identify the jurisdiction", "find the applicable rules", "analyse the clause",
                 "draft the advice"),
        answers=("Under Article {k}, consent must be freely given; add a reject button.",
                 "The clause is likely enforceable; notice of {k} days is reasonable.",
                 "Notify the authority within 72 hours and the affected users without delay."),
    ),
    "long_horizon": TaskProfile(
        weight=0.10, difficulty=0.72, steps=(6, 14), tool_rate=0.5,
        useful_tools=(_PY, Tool("read_file", 0.0, 0.98), Tool("run_tests", 0.002, 0.75), _WEB),
        other_tools=(Tool("send_message", 0.0, 0.99), Tool("create_ticket", 0.0, 0.98), _FETCH),
        verify_final=0.4, output_tokens=(20, 110),
        actions=("break the goal into milestones", "set up the environment", "do milestone 1",
                 "check progress", "do milestone 2", "fix what broke", "do milestone 3",
                 "write the report"),
        answers=("All {k} milestones are done; the report is attached.",
                 "Migration complete: {k} services upgraded, CI is green.",
                 "Finished. Remaining risks are listed in the summary."),
    ),
    "data_analysis": TaskProfile(
        weight=0.12, difficulty=0.48, steps=(2, 8), tool_rate=0.65,
        useful_tools=(_SQL, _PY, Tool("load_csv", 0.0, 0.95)),
        other_tools=(Tool("plot_chart", 0.001, 0.95), _WEB),
        verify_final=0.45, output_tokens=(30, 140),
        actions=("load the data", "clean the data", "run the analysis", "check the result",
                 "plot"),
        answers=("Average order value rose {k}% month over month.",
                 "The difference is significant (p = 0.0{k}).",
                 "Top driver of churn: support tickets in the first {k} days."),
    ),
}
# fmt: on
TASK_TYPES = tuple(PROFILES)
TASK_WEIGHTS = tuple(profile.weight for profile in PROFILES.values())
