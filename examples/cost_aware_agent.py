"""A cost-aware agent harness: per-step routing under a budget, cascade, tool gate, verifier,
doom check, and a trace per run that `aco-lab` can read back.

    python examples/cost_aware_agent.py [TRACE_DIR]

Plug in a real model client by giving `run_agent` any object with
``complete(model_id, prompt) -> Reply``; the `ScriptedClient` below is a deterministic
stand-in so that the example runs (and is tested) without an LLM or a network.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aco.config import ACOConfig
from aco.optimizer import ACOOptimizer
from aco.per_step_router import PerStepRouter
from aco.run import Run


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


def run_agent(opt: ACOOptimizer, client, task: Task, budget: float | None = None,
              max_steps: int = 8) -> AgentResult:
    """Run one task to completion, doom or budget; every call goes through the optimizer."""
    run = opt.begin(task.request, task.task_type)
    # Steps never go below the task type's floor, whatever their action suggests.
    steps = PerStepRouter(budget if budget is not None else opt.config.max_cost_per_task,
                          opt.config, min_tier=opt.config.floor_for(run.routing.task_type))
    notes: list[str] = []
    failures, prompt = False, task.request
    for step_num in range(1, max_steps + 1):
        doom = run.check_doom()
        if doom.doomed:
            return AgentResult("aborted", run.end(False, "aborted"), (*notes, doom.reason))
        step = steps.route_step(prompt, step_num, failures, task.risk)
        if not step.allowed:
            return AgentResult("budget_exceeded", run.end(False, "budget_exceeded"),
                               (*notes, step.reason))
        reply, confidence = _ask_with_cascade(opt, run, client, steps, prompt,
                                              step.adjusted_tier)
        if reply.tool:
            failures = not _call_tool(run, task, reply.tool, notes)
            prompt = f"{task.request}\n[tool {reply.tool} {'failed' if failures else 'ok'}]"
            continue
        if reply.done:
            passed = _verify_if_needed(opt, run, client, steps, task, reply, confidence)
            if passed:
                return AgentResult("completed", run.end(True), tuple(notes))
            failures, prompt = True, f"{task.request}\n[verifier rejected: {reply.text}]"
    return AgentResult("failed", run.end(False, "failed"), (*notes, "max_steps reached"))


def _ask_with_cascade(opt: ACOOptimizer, run: Run, client, steps: PerStepRouter, prompt: str,
                      tier: int) -> tuple[Reply, float]:
    """Ask the step's tier; escalate while the cascade distrusts the answer and budget allows.

    Returns the last answer and the cascade's confidence in it.
    """
    reply = _call(opt, run, client, steps, prompt, tier, escalated_from=None)
    confidence = 1.0
    while not reply.tool:
        decision = run.cascade(reply.logprobs, reply.text, tier)
        confidence = decision.confidence
        if not decision.escalated or not steps.fits(steps.step_cost(decision.final_tier)):
            break
        reply = _call(opt, run, client, steps, prompt, decision.final_tier, escalated_from=tier)
        tier = decision.final_tier
    return reply, confidence


def _call(opt: ACOOptimizer, run: Run, client, steps: PerStepRouter, prompt: str, tier: int,
          escalated_from: int | None) -> Reply:
    model_id = opt.config.tier(tier).model_id
    reply = client.complete(model_id, prompt)
    run.record_call(tier, reply.cost, model_id=model_id, input_tokens=reply.input_tokens,
                    output_tokens=reply.output_tokens, logprobs=list(reply.logprobs),
                    escalated_from=escalated_from, output_text=reply.text,
                    action=prompt.splitlines()[-1][:200])
    steps.record(reply.cost)
    return reply


def _call_tool(run: Run, task: Task, tool: str, notes: list[str]) -> bool:
    gate = run.gate_tool(tool)
    if not gate.allow or tool not in task.tools:
        notes.append(gate.reason if not gate.allow else f"unknown tool {tool}")
        return False
    ok = bool(task.tools[tool]())
    run.record_tool_call(tool, ok)
    return ok


def _verify_if_needed(opt: ACOOptimizer, run: Run, client, steps: PerStepRouter, task: Task,
                      reply: Reply, confidence: float) -> bool:
    if not run.should_verify(task.risk, confidence).verify:
        return True
    tier = opt.config.top_tier if task.risk == "high" else 3
    model_id = opt.config.tier(tier).model_id
    check = client.complete(model_id, f"VERIFY: {task.request}\nANSWER: {reply.text}")
    passed = check.text.strip().upper().startswith("PASS")
    run.record_verification(passed, tier=tier, cost=check.cost, model_id=model_id,
                            input_tokens=check.input_tokens, output_tokens=check.output_tokens)
    steps.record(check.cost)
    return passed


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

    def complete(self, model_id: str, prompt: str) -> Reply:
        """One call: deterministic text, log-probs, usage and cost for (model, prompt)."""
        self.calls.append((model_id, prompt))
        spec = self.tiers[model_id]
        tokens_in, tokens_out = 40 + len(prompt) // 4, 30
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
        Task("Research and search for the latest release notes",
             tools={"web_search": lambda: True}),
        Task("Keep trying: loop until the flaky service answers", tools={"flaky": lambda: False}),
    ]
    for task in tasks:
        result = run_agent(opt, client, task, budget=2.0)
        trace = result.trace
        tiers = [s["model_call"]["tier"] for s in trace["steps"] if s["model_call"]]
        print(f"{result.outcome:<15} ${trace['total_cost']:.4f} tiers={tiers} "
              f"{task.request[:45]!r}")
    print(f"traces appended to {opt.trace_log.path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="aco-traces-"))
