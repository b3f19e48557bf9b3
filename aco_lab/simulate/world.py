"""The simulated world of aco_lab/simulate/generate.py: task types, their tools, each tier.

Each request has a latent difficulty (0..1): a part its text shows (`visible`, which drives the
wording in aco_lab/simulate/request_templates.py) plus a part it does not. A run at tier t of a
request of task type k succeeds with probability
sigmoid(SKILL_SLOPE * (capability[k][t] - difficulty) + luck), where `luck` is shared by every
run of the request, so outcomes correlate across tiers as in real data.

The capabilities are calibrated so that success by task type and tier matches TARGET_SUCCESS,
which follows public benchmark results of the default tier table's models (aco/config.py):
RouterBench (single-turn prompts: the cheapest tier already solves most of them, the dearest is
not best everywhere) and SWE-bench Verified (agentic coding: 33% / 57% / 64% / 70% / 73% for
tiers 1..5). Numbers here are the simulator's assumptions, stated once; data/README.md shows
what they produce on the shipped sample.
"""

from __future__ import annotations

from dataclasses import dataclass

VISIBLE_SD = 0.25  # spread of the visible difficulty around the task type's mean
HIDDEN_SD = 0.06  # sd of the difficulty the text does not show
SKILL_SLOPE = 12.0  # success logit per unit of (capability - difficulty)
LUCK_SD = 0.6  # sd of the per-request logit noise all its runs share
TIERS = (1, 2, 3, 4, 5)  # the tiers the world has a capability for


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
    capability = PROFILES[request.task_type].capability[tier - 1]
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
    capability: tuple[float, ...]  # tiers 1..5, on the difficulty scale (see TARGET_SUCCESS)
    steps: tuple[int, int]  # usual step count range of a run
    tool_rate: float  # chance a (non-final) step calls tools
    useful_tools: tuple[Tool, ...]  # called more often by runs that succeed
    other_tools: tuple[Tool, ...]  # called as often by runs that fail
    verify_final: float  # chance the final answer is checked by a verifier
    system_tokens: int  # the agent's system prompt and tool schemas, sent with every call
    output_tokens: tuple[int, int]  # per call (the final answer gets half)
    tool_result_tokens: tuple[int, int]  # what one tool call adds to the context
    context_cap: int  # context kept from earlier steps (the agent summarises beyond this)
    actions: tuple[str, ...]  # step intents, in order
    answers: tuple[str, ...]  # final answer templates ({k}: a number)


# Success by task type at tiers 1..5 (%) that the capabilities below were calibrated to, on
# the counterfactual sample (every request at every tier). Cheap tiers answer most quick
# questions; agentic work needs strong tiers; the dearest tier is not best everywhere: it
# overthinks quick answers and support chats, and its long-horizon runs go over budget more
# often, while it leads on expert (legal) work. A router can learn these from the task type
# and the text.
TARGET_SUCCESS = {
    "quick_answer": (94, 96, 96, 96, 95),
    "customer_support": (58, 74, 82, 87, 85),
    "coding": (40, 66, 75, 81, 83),
    "research": (52, 70, 80, 83, 85),
    "legal_regulated": (30, 52, 66, 76, 84),
    "long_horizon": (12, 30, 46, 58, 55),
    "data_analysis": (50, 70, 80, 83, 84),
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
        weight=0.24, difficulty=0.02,
        capability=(0.491, 0.549, 0.549, 0.549, 0.517), steps=(1, 2), tool_rate=0.3,
        useful_tools=(_CALC, _WEB), other_tools=(_FETCH,),
        verify_final=0.05, system_tokens=350, output_tokens=(20, 240),
        tool_result_tokens=(60, 500), context_cap=4_000,
        actions=("look up the fact",),
        answers=("The answer is {k}.", "About {k} hours.", "Yes.", "No, it is divisible by {k}.",
                 "Paris.", "It was written in 18{k}."),
    ),
    "customer_support": TaskProfile(
        weight=0.16, difficulty=0.28,
        capability=(0.345, 0.477, 0.560, 0.626, 0.598), steps=(2, 6), tool_rate=0.6,
        useful_tools=(Tool("lookup_order", 0.0, 0.95), Tool("get_user_details", 0.0, 0.97),
                      Tool("issue_refund", 0.0, 0.9)),
        other_tools=(_KB, Tool("update_ticket", 0.0, 0.98)),
        verify_final=0.2, system_tokens=1_800, output_tokens=(60, 320),
        tool_result_tokens=(120, 700), context_cap=16_000,
        actions=("read the customer's account", "look up the order", "check the policy",
                 "apply the change", "confirm with the customer"),
        answers=("Your refund of ${k}.00 is on its way.",
                 "Done: the address on your order is updated.",
                 "I rebooked you on the next flight; {k} seats are confirmed.",
                 "Your subscription is cancelled and the prorated amount refunded."),
    ),
    "coding": TaskProfile(
        weight=0.18, difficulty=0.55,
        capability=(0.476, 0.673, 0.749, 0.808, 0.829), steps=(3, 10), tool_rate=0.55,
        useful_tools=(Tool("run_tests", 0.002, 0.75), Tool("read_file", 0.0, 0.98),
                      Tool("search_code", 0.0, 0.95)),
        other_tools=(Tool("lint", 0.0, 0.95), _WEB, Tool("write_file", 0.0, 0.97)),
        verify_final=0.55, system_tokens=2_600, output_tokens=(150, 1_200),
        tool_result_tokens=(300, 3_500), context_cap=60_000,
        actions=("read the code", "reproduce the bug", "write a fix", "run the tests",
                 "refactor", "update the docs"),
        answers=("Fixed: the loop now stops at len(items) - 1 and all {k} tests pass.",
                 "Here is the patch; the race is gone because the queue uses a CAS loop.",
                 "Done. The function handles empty input and unicode; {k} new tests added.",
                 "```python\ndef solve(items):\n    return sorted(set(items))\n```"),
    ),
    "research": TaskProfile(
        weight=0.13, difficulty=0.48,
        capability=(0.499, 0.642, 0.736, 0.769, 0.793), steps=(3, 8), tool_rate=0.65,
        useful_tools=(_WEB, _FETCH, Tool("citation_lookup", 0.004, 0.9)),
        other_tools=(Tool("summarize_pdf", 0.01, 0.85), _CALC),
        verify_final=0.4, system_tokens=1_200, output_tokens=(200, 1_000),
        tool_result_tokens=(500, 4_000), context_cap=60_000,
        actions=("plan the search", "search for sources", "read the sources",
                 "compare the findings", "draft the summary"),
        answers=("Three key sources agree; the effect is about {k}% (see refs 1-3).",
                 "The original paper is from 20{k}; later work refines it.",
                 "Summary: evidence is mixed; {k} studies support the claim."),
    ),
    "legal_regulated": TaskProfile(
        weight=0.08, difficulty=0.62,
        capability=(0.455, 0.626, 0.733, 0.818, 0.897), steps=(2, 6), tool_rate=0.45,
        useful_tools=(Tool("statute_search", 0.02, 0.9), Tool("case_law_lookup", 0.03, 0.85)),
        other_tools=(_WEB, Tool("compliance_check", 0.01, 0.9)),
        verify_final=0.85, system_tokens=1_500, output_tokens=(200, 1_200),
        tool_result_tokens=(400, 3_000), context_cap=40_000,
        actions=("identify the jurisdiction", "find the applicable rules", "analyse the clause",
                 "draft the advice"),
        answers=("Under Article {k}, consent must be freely given; add a reject button.",
                 "The clause is likely enforceable; notice of {k} days is reasonable.",
                 "Notify the authority within 72 hours and the affected users without delay."),
    ),
    "long_horizon": TaskProfile(
        weight=0.10, difficulty=0.72,
        capability=(0.374, 0.566, 0.689, 0.775, 0.754), steps=(6, 14), tool_rate=0.5,
        useful_tools=(_PY, Tool("read_file", 0.0, 0.98), Tool("run_tests", 0.002, 0.75), _WEB),
        other_tools=(Tool("send_message", 0.0, 0.99), Tool("create_ticket", 0.0, 0.98), _FETCH),
        verify_final=0.4, system_tokens=2_600, output_tokens=(100, 900),
        tool_result_tokens=(800, 9_000), context_cap=150_000,
        actions=("break the goal into milestones", "set up the environment", "do milestone 1",
                 "check progress", "do milestone 2", "fix what broke", "do milestone 3",
                 "write the report"),
        answers=("All {k} milestones are done; the report is attached.",
                 "Migration complete: {k} services upgraded, CI is green.",
                 "Finished. Remaining risks are listed in the summary."),
    ),
    "data_analysis": TaskProfile(
        weight=0.11, difficulty=0.48,
        capability=(0.483, 0.640, 0.736, 0.770, 0.783), steps=(2, 8), tool_rate=0.65,
        useful_tools=(_SQL, _PY, Tool("load_csv", 0.0, 0.95)),
        other_tools=(Tool("plot_chart", 0.001, 0.95), _WEB),
        verify_final=0.45, system_tokens=1_500, output_tokens=(100, 800),
        tool_result_tokens=(200, 2_500), context_cap=40_000,
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
