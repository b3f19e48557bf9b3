"""A cost-aware agent harness: per-step routing under a budget, cascade, tool gate, verifier,
doom check, and a trace per run that `aco-lab` can read back.

    python examples/cost_aware_agent.py [TRACE_DIR]

Plug in a real model client by giving `run_agent` any object with
``complete(model_id, prompt, max_tokens) -> Reply``; the `ScriptedClient` below is a
deterministic stand-in so that the example runs (and is tested) without an LLM or a network.

Every model call, the step's own, an escalation or a verifier, first holds its estimated cost
in the run's `PerStepRouter` and is skipped when the budget left cannot pay for it, so a run
never spends past its budget as long as no call costs more than its estimate: the estimate
counts the prompt's tokens plus the client's framing, and output is capped at `max_tokens`.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aco.config import ACOConfig
from aco.decisions import StepDecision
from aco.optimizer import ACOOptimizer
from aco.per_step_router import PerStepRouter
from aco.rules import estimate_tokens
from aco.run import Run

MAX_OUTPUT_TOKENS = 512  # every call's max_tokens: the output a call can be billed for
FRAMING_TOKENS = 64  # the client's system prompt and message framing, on top of the prompt


@dataclass(frozen=True)
class Reply:
    """What a model client returns: the text, token log-probs, usage, cost, a tool request."""

    text: str
    logprobs: tuple[float, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    tool: str | None = None  # the tool the model asks to call next, if any
    done: bool = False  # the model declares the task done


@dataclass(frozen=True)
class AgentResult:
    """How a run ended and its trace (trace format v1, as appended to the trace log)."""

    outcome: str
    trace: dict
    notes: tuple[str, ...] = ()


@dataclass
class Task:
    """A task for the harness: the request, its risk, the tools the agent may use."""

    request: str
    risk: str = "medium"  # low | medium | high: how much a wrong answer costs
    task_type: str | None = None
    tools: Mapping[str, Callable[[], bool]] = field(default_factory=dict)  # name -> call()


def run_agent(
    opt: ACOOptimizer, client, task: Task, budget: float | None = None, max_steps: int = 8
) -> AgentResult:
    """Run one task to completion, doom or budget; every call goes through the optimizer."""
    run = opt.begin(task.request, task.task_type)
    # Steps never go below the task type's floor, whatever their action suggests.
    steps = PerStepRouter(
        budget if budget is not None else opt.config.max_cost_per_task,
        opt.config,
        min_tier=opt.config.floor_for(run.routing.task_type),
    )
    notes: list[str] = []
    failures, prompt = False, task.request
    for step_num in range(1, max_steps + 1):
        doom = run.check_doom()
        if doom.doomed:
            return AgentResult("aborted", run.end(False, "aborted"), (*notes, doom.reason))
        step = steps.route_step(prompt, step_num, failures, task.risk, **_tokens(prompt))
        if not step.allowed:
            return _out_of_budget(run, notes, step.reason)
        reply, confidence = _ask_with_cascade(run, client, steps, prompt, step)
        if reply.tool:
            failures = not _call_tool(run, task, reply.tool, notes)
            prompt = f"{task.request}\n[tool {reply.tool} {'failed' if failures else 'ok'}]"
            continue
        if reply.done:
            if not run.should_verify(task.risk, confidence).verify:
                return AgentResult("completed", run.end(True), tuple(notes))
            passed, why = _verify(opt, run, client, steps, task, reply)
            if passed is None:
                return _out_of_budget(run, notes, why)
            if passed:
                return AgentResult("completed", run.end(True), tuple(notes))
            failures, prompt = True, f"{task.request}\n[verifier rejected: {reply.text}]"
    return AgentResult("failed", run.end(False, "failed"), (*notes, "max_steps reached"))


def _tokens(prompt: str) -> dict[str, int]:
    """The token counts a call's cost estimate is made for (never below what it is billed)."""
    return {
        "input_tokens": estimate_tokens(prompt) + FRAMING_TOKENS,
        "output_tokens": MAX_OUTPUT_TOKENS,
    }


def _out_of_budget(run: Run, notes: list[str], reason: str) -> AgentResult:
    return AgentResult("budget_exceeded", run.end(False, "budget_exceeded"), (*notes, reason))


def _ask_with_cascade(
    run: Run, client, steps: PerStepRouter, prompt: str, step: StepDecision
) -> tuple[Reply, float]:
    """Ask the step's tier; escalate while the cascade distrusts the answer and budget allows.

    Returns the last answer and the cascade's confidence in it.
    """
    reply = _call(run, client, steps, prompt, step, escalated_from=None)
    tier, confidence = step.adjusted_tier, 1.0
    while not reply.tool:
        decision = run.cascade(reply.logprobs, reply.text, tier)
        confidence = decision.confidence
        if not decision.escalated:
            break
        held = steps.reserve(
            decision.final_tier,
            **_tokens(prompt),
            reason=f"escalation {tier}->{decision.final_tier}",
        )
        if not held.allowed:  # keep the answer we have rather than overspend
            break
        reply = _call(run, client, steps, prompt, held, escalated_from=tier)
        tier = decision.final_tier
    return reply, confidence


def _call(
    run: Run,
    client,
    steps: PerStepRouter,
    prompt: str,
    held: StepDecision,
    escalated_from: int | None,
) -> Reply:
    """One model call whose cost `held` reserved; the hold ends with what it really cost."""
    try:
        reply = client.complete(held.model_id, prompt, MAX_OUTPUT_TOKENS)
    except BaseException:
        steps.release(held)  # the call did not happen: its hold frees the budget again
        raise
    steps.record(reply.cost, held)
    run.record_call(
        held.adjusted_tier,
        reply.cost,
        model_id=held.model_id,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        logprobs=list(reply.logprobs),
        escalated_from=escalated_from,
        output_text=reply.text,
        action=prompt.splitlines()[-1][:200],
    )
    return reply


def _call_tool(run: Run, task: Task, tool: str, notes: list[str]) -> bool:
    gate = run.gate_tool(tool)
    if not gate.allow or tool not in task.tools:
        notes.append(gate.reason if not gate.allow else f"unknown tool {tool}")
        return False
    ok = bool(task.tools[tool]())
    run.record_tool_call(tool, ok)
    return ok


def _verify(
    opt: ACOOptimizer, run: Run, client, steps: PerStepRouter, task: Task, reply: Reply
) -> tuple[bool | None, str]:
    """Ask a verifier about the answer when the budget can pay for it.

    Returns whether it passed (None: the budget left cannot pay for the verifier) and why.
    """
    tier = opt.config.top_tier if task.risk == "high" else 3
    prompt = f"VERIFY: {task.request}\nANSWER: {reply.text}"
    held = steps.reserve(tier, **_tokens(prompt), reason=f"verifier at tier {tier}")
    if not held.allowed:
        return None, held.reason
    check = client.complete(held.model_id, prompt, MAX_OUTPUT_TOKENS)
    steps.record(check.cost, held)
    passed = check.text.strip().upper().startswith("PASS")
    run.record_verification(
        passed,
        tier=tier,
        cost=check.cost,
        model_id=held.model_id,
        input_tokens=check.input_tokens,
        output_tokens=check.output_tokens,
    )
    return passed, check.text


class ScriptedClient:
    """A deterministic stand-in for an LLM API: answers by model tier and prompt.

    Cheap models (tiers 1-2) hedge with low log-probabilities on prompts containing "hard";
    stronger ones answer confidently. A prompt containing "search" makes the first call ask
    for the `web_search` tool; "loop" makes every answer ask for a failing `flaky` tool.
    Verifiers pass unless the answer contains "wrong".
    """

    def __init__(self, config: ACOConfig) -> None:
        self.tiers = {spec.model_id: spec for spec in config.tiers}
        self.calls: list[tuple[str, str]] = []

    def complete(self, model_id: str, prompt: str, max_tokens: int) -> Reply:
        """One call: deterministic text, log-probs, usage and cost for (model, prompt)."""
        self.calls.append((model_id, prompt))
        spec = self.tiers[model_id]
        tokens_in, tokens_out = 40 + len(prompt) // 4, min(30, max_tokens)  # 40: its framing
        cost = spec.cost(tokens_in, tokens_out)
        usage = {"input_tokens": tokens_in, "output_tokens": tokens_out, "cost": cost}
        if prompt.startswith("VERIFY:"):
            return Reply("FAIL" if "wrong" in prompt else "PASS", (-0.05,), **usage)
        if "loop" in prompt:
            return Reply("Trying the flaky tool again.", (-0.1,) * 5, tool="flaky", **usage)
        if "search" in prompt and "[tool" not in prompt:
            return Reply("I need to search the web.", (-0.1,) * 5, tool="web_search", **usage)
        if "hard" in prompt and spec.tier <= 2:
            return Reply("I think it might be 42, not sure.", (-2.0,) * 8, done=True, **usage)
        return Reply("The answer is 42.", (-0.02,) * 8, done=True, **usage)


def main(trace_dir: str) -> None:
    """Run a few tasks and print how each ended and what it cost."""
    opt = ACOOptimizer(ACOConfig(trace_dir=trace_dir))
    client = ScriptedClient(opt.config)
    tasks = [
        Task("What is 6 times 7?", risk="low"),
        Task("Solve this hard scheduling puzzle", risk="medium"),
        Task("Fix the auth bug in production", risk="high"),
        Task(
            "Research and search for the latest release notes", tools={"web_search": lambda: True}
        ),
        Task("Keep trying: loop until the flaky service answers", tools={"flaky": lambda: False}),
    ]
    for task in tasks:
        result = run_agent(opt, client, task, budget=2.0)
        trace = result.trace
        tiers = [s["model_call"]["tier"] for s in trace["steps"] if s["model_call"]]
        print(
            f"{result.outcome:<15} ${trace['total_cost']:.4f} tiers={tiers} {task.request[:45]!r}"
        )
    print(f"traces appended to {opt.trace_log.path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="aco-traces-"))
