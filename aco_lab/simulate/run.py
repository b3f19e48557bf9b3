"""One simulated run: its steps, model and tool calls, verifier checks, escalations and outcome.

`build_run(request, tier, setting, rng)` decides the run's fate first (success, or a doomed loop),
then writes steps consistent with it: confident logprobs and passing checks when on track,
useful tools more often when it will succeed, a cascade one tier up after some failed checks,
a stop when the budget is spent. total_cost is the sum of the model and tool costs written.
Optional fields that are null are left out of a step (the format's default), as loggers do.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from aco import trace_format as tf
from aco.config import TierSpec
from aco_lab.simulate.world import (
    ANSWER_HEDGES,
    ANSWER_REFUSALS,
    PROFILES,
    SimRequest,
    TaskProfile,
    success_logit,
)

DOOM_SHARE = 0.6  # hopeless runs (logit << 0) that loop without progress, at most this share
ESCALATE_ON_FAIL = 0.45  # chance a failed verifier check escalates to the next tier
MID_VERIFY = 0.06  # chance an intermediate step calls the verifier
FALSE_DONE = {1: 0.6, 2: 0.55, 3: 0.45, 4: 0.35, 5: 0.35}  # failed runs that still claim DONE
LOGPROB_MISSING = {4: 0.3, 5: 0.4}  # share of runs whose API returned no logprobs, per tier
MAX_STEPS = 30  # the agent's step limit: only doomed long-horizon runs reach it
# Tokens as agents spend them (system prompt and tool schemas on every call, tool results
# piling up in the context: TaskProfile), so real per-token prices give real run costs: a
# fraction of a cent for a quick answer at tier 1, tens of cents for agentic work at tier 5,
# dollars for a long-horizon run that loops.
CACHE_FIRST, CACHE_LATER = 0.3, 0.7  # chance a call hits the prompt cache, first / later calls
LATENCY_BASE_MS = {1: 300.0, 2: 450.0, 3: 900.0, 4: 1100.0, 5: 1600.0}  # time to first token
LATENCY_PER_TOKEN_MS = {1: 4.0, 2: 6.0, 3: 12.0, 4: 14.0, 5: 22.0}
FAILED_ANSWERS = (
    "I could not finish this task.",
    "Stopping: the tools keep failing.",
    "I was unable to find a working solution.",
)


@dataclass(frozen=True, slots=True)
class RunSetting:
    """What every run of a simulation shares: the tier table and the run limits."""

    specs: dict[int, TierSpec]  # configured tiers
    budget: float  # USD a run may spend (ACOConfig.max_cost_per_task)
    max_retries: int  # escalations allowed per run (0: the run stays at its tier)
    unknown_outcome: float  # share of completed runs nobody graded (task_success null)


@dataclass(frozen=True, slots=True)
class SimRun:
    """A built run: its steps and outcome."""

    steps: list[dict]
    final_outcome: str
    task_success: bool | None
    total_cost: float


@dataclass(slots=True)
class _State:
    """The mutable state of one run while its steps are built."""

    tier: int
    success: bool
    doomed: bool
    logprobs: bool
    cost: float = 0.0
    history: int = 0
    calls_at_tier: int = 0
    escalations: int = 0
    escalated_from: int | None = None  # set for the next call after an escalation
    over_budget: bool = False


def build_run(request: SimRequest, tier: int, setting: RunSetting, rng: random.Random) -> SimRun:
    """One run of `request` starting at `tier`."""
    profile = PROFILES[request.task_type]
    logit = success_logit(request, tier)
    success = rng.random() < _sigmoid(logit)
    doomed = not success and rng.random() < DOOM_SHARE * _sigmoid(-logit - 2.0)
    state = _State(tier, success, doomed, rng.random() >= LOGPROB_MISSING.get(tier, 0.0))
    steps = _build_steps(request, profile, state, setting, rng)
    outcome, task_success = _outcome(state, setting.unknown_outcome, rng)
    if outcome in (tf.OUTCOME_COMPLETED, "failed"):
        steps[-1][tf.MODEL_CALL][tf.OUTPUT_TEXT] = _answer(profile, outcome, task_success, rng)
    return SimRun(steps, outcome, task_success, state.cost)


def _build_steps(
    request: SimRequest,
    profile: TaskProfile,
    state: _State,
    setting: RunSetting,
    rng: random.Random,
) -> list[dict]:
    """The run's steps; stops early when the budget is spent, grows when a check escalates."""
    n_steps = _step_count(profile, state, rng)
    top = max(setting.specs)
    steps: list[dict] = []
    while len(steps) < n_steps:
        final = len(steps) + 1 == n_steps
        spec = setting.specs[state.tier]
        step = _build_step(request, profile, state, spec, len(steps) + 1, final, rng)
        steps.append(step)
        if state.cost > setting.budget:
            state.over_budget = True
            break
        if (
            step.get(tf.VERIFIER_PASSED) is False
            and _escalate(request, state, top, setting.max_retries, rng)
            and final
        ):
            n_steps += 1  # the cascade answers again at the higher tier
    return steps


def _step_count(profile: TaskProfile, state: _State, rng: random.Random) -> int:
    low, high = profile.steps
    n = _randint(rng, low, high)
    if state.tier >= 4:
        n = low + int((n - low) * 0.7)  # strong models take fewer detours
    if not state.success:
        n += _randint(rng, 0, 2)
    if state.doomed:
        n += _randint(rng, 3, high)  # a doomed run burns steps without progress
    return min(n, MAX_STEPS)


def _build_step(
    request: SimRequest,
    profile: TaskProfile,
    state: _State,
    spec: TierSpec,
    step_num: int,
    final: bool,
    rng: random.Random,
) -> dict:
    """One step: a model call, maybe tool calls, maybe a verifier check."""
    on_track = state.success or (not state.doomed and rng.random() < 0.5)
    step: dict = {tf.STEP_NUM: step_num, tf.ACTION: _action(profile, state, step_num, final, rng)}
    call = _model_call(request, profile, state, spec, final, on_track, rng)
    step[tf.MODEL_CALL] = call
    tools = [] if final or rng.random() >= profile.tool_rate else _tool_calls(profile, state, rng)
    step[tf.TOOL_CALLS] = tools
    if rng.random() < (profile.verify_final if final else MID_VERIFY):
        step[tf.VERIFIER_CALLED] = True
        step[tf.VERIFIER_PASSED] = rng.random() < (0.88 if on_track else 0.3)
    else:
        step[tf.VERIFIER_CALLED] = False
    state.cost += call[tf.COST]
    for tool in tools:
        state.cost += tool[tf.COST]
    low, high = profile.tool_result_tokens
    grown = state.history + call[tf.OUTPUT_TOKENS] + sum(_randint(rng, low, high) for _ in tools)
    state.history = grown if grown < profile.context_cap else profile.context_cap
    return step


def _model_call(
    request: SimRequest,
    profile: TaskProfile,
    state: _State,
    spec: TierSpec,
    final: bool,
    on_track: bool,
    rng: random.Random,
) -> dict:
    prefix = profile.system_tokens + request.tokens + state.history
    input_tokens = prefix if state.calls_at_tier == 0 else prefix + int(rng.random() * 40)
    output_tokens = _randint(rng, *profile.output_tokens) // (2 if final else 1)
    latency = LATENCY_BASE_MS[spec.tier] + output_tokens * LATENCY_PER_TOKEN_MS[spec.tier]
    call: dict = {
        tf.MODEL_ID: spec.model_id,
        tf.TIER: spec.tier,
        tf.INPUT_TOKENS: input_tokens,
        tf.OUTPUT_TOKENS: output_tokens,
        tf.COST: round(spec.cost(input_tokens, output_tokens), 10),
        tf.LATENCY_MS: round(latency * math.exp(rng.gauss(0.0, 0.25)), 1),
    }
    if spec.provider != "local":  # the local runtime does not report its prompt cache
        call[tf.CACHED_INPUT_TOKENS] = _cached_tokens(request, profile, state, rng)
    if state.escalated_from is not None:
        call[tf.ESCALATED_FROM] = state.escalated_from
        state.escalated_from = None
    if state.logprobs:
        call[tf.MEAN_LOGPROB], call[tf.MIN_LOGPROB] = _logprobs(on_track, rng)
    state.calls_at_tier += 1
    return call


def _cached_tokens(
    request: SimRequest, profile: TaskProfile, state: _State, rng: random.Random
) -> int:
    if state.calls_at_tier == 0:  # a new model: at most the shared system prompt is cached
        return profile.system_tokens if rng.random() < CACHE_FIRST else 0
    prefix = profile.system_tokens + request.tokens + state.history
    return prefix if rng.random() < CACHE_LATER else 0


def _logprobs(on_track: bool, rng: random.Random) -> tuple[float, float]:
    """Mean and min token logprob: confident when on track, with overlap (a noisy signal)."""
    mean = -abs(rng.gauss(0.12, 0.07)) if on_track else -abs(rng.gauss(0.42, 0.22))
    spread = rng.expovariate(1.0 / (1.2 if on_track else 3.0))
    return round(mean, 4), round(mean - spread, 4)


def _tool_calls(profile: TaskProfile, state: _State, rng: random.Random) -> list[dict]:
    calls = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        # Runs that succeed reach for the useful tools more often: a gate can learn which.
        useful = rng.random() < (0.75 if state.success else 0.4)
        tool = rng.choice(profile.useful_tools if useful else profile.other_tools)
        ok = rng.random() < tool.success_rate * (0.6 if state.doomed else 1.0)
        latency = round(30.0 + rng.random() * 870.0, 1)
        calls.append(
            {
                tf.TOOL_NAME: tool.name,
                tf.TOOL_SUCCESS: ok,
                tf.COST: tool.cost,
                tf.LATENCY_MS: latency,
            }
        )
    return calls


def _escalate(
    request: SimRequest, state: _State, top: int, max_retries: int, rng: random.Random
) -> bool:
    """After a failed check, maybe move the rest of the run one tier up; True when it did."""
    if state.tier >= top or state.escalations >= max_retries or rng.random() >= ESCALATE_ON_FAIL:
        return False
    state.escalated_from, state.tier = state.tier, state.tier + 1
    state.escalations += 1
    state.calls_at_tier = 0
    if not state.success:
        # The higher tier gets a fresh chance, a little below its usual odds (it inherits a mess).
        state.success = rng.random() < _sigmoid(success_logit(request, state.tier) - 0.5)
        state.doomed = state.doomed and not state.success
    return True


def _outcome(state: _State, unknown_share: float, rng: random.Random) -> tuple[str, bool | None]:
    if state.over_budget:
        return "budget_exceeded", False
    if state.doomed:
        return ("aborted" if rng.random() < 0.6 else "failed"), False
    if not state.success and rng.random() >= FALSE_DONE[state.tier]:
        return "failed", False
    unknown = rng.random() < unknown_share
    return tf.OUTCOME_COMPLETED, None if unknown else state.success


def _answer(profile: TaskProfile, outcome: str, success: bool | None, rng: random.Random) -> str:
    """The final answer text: hedges and refusals are likelier when the answer is wrong."""
    if outcome == "failed":
        return rng.choice(FAILED_ANSWERS)
    wrong = success is False
    if rng.random() < (0.08 if wrong else 0.005):
        return rng.choice(ANSWER_REFUSALS)
    text = rng.choice(profile.answers).format(k=_randint(rng, 2, 40))
    if rng.random() < (0.4 if wrong else 0.1):
        text = rng.choice(ANSWER_HEDGES) + text[0].lower() + text[1:]
    return text


def _action(
    profile: TaskProfile, state: _State, step_num: int, final: bool, rng: random.Random
) -> str:
    if final:
        return "final answer"
    action = profile.actions[(step_num - 1) % len(profile.actions)]
    return "retry: " + action if state.doomed and step_num > 2 and rng.random() < 0.7 else action


def _randint(rng: random.Random, low: int, high: int) -> int:
    """An int in low..high (both included); cheaper than Random.randint in this hot loop."""
    return low + int(rng.random() * (high - low + 1))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0
