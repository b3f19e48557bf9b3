"""`ACOOptimizer`: the runtime an agent imports — route, cascade, gate, verify, stop, log.

    opt = ACOOptimizer(ACOConfig(router_model_path="router_models/router_bundle_v3.pkl"))
    plan = opt.start_run("Fix the auth bug in production", task_type="coding")
    opt.record_call(tier=plan["routing"]["tier"], cost=0.04, input_tokens=900, output_tokens=300)
    trace = opt.end_run(success=True)     # appended to config.trace_dir as trace format v1

Concurrency model (docs/runtime.md): the optimizer itself holds no per-run state. A run is a
`Run` handle (``opt.begin(request)``); ``start_run``/``end_run`` keep one current run per
thread (per asyncio task: a ContextVar), so one optimizer shared by many threads never mixes
runs or budgets. The trace log serializes writers across threads and processes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from aco.cascade import Answer
from aco.config import ACOConfig, load_config
from aco.controls import Controls, read_answer_signals
from aco.decisions import (
    MODE_BUNDLE,
    MODE_RULES,
    CascadeDecision,
    ContextBudget,
    DoomDecision,
    GateDecision,
    RoutingDecision,
    VerifyDecision,
)
from aco.errors import ACOError
from aco.outcomes import OUTCOMES_FILE_NAME, apply_outcomes, build_outcome, read_outcomes
from aco.rules import RequestCues, estimate_tokens, read_cues, route_cues
from aco.run import Run
from aco.trace_log import TraceLog

log = logging.getLogger(__name__)


class ACOOptimizer:
    """Routing and run controls from a bundle (when configured) or the rules, plus trace logging."""

    def __init__(
        self,
        config: ACOConfig | str | Path | None = None,
        *,
        bundle: str | Path | None = None,
        trace_log: TraceLog | None = None,
    ) -> None:
        self.config = config if isinstance(config, ACOConfig) else load_config(config)
        ref = bundle if bundle is not None else self.config.router_model_path
        self.router = load_router(ref, self.config) if ref is not None else None
        self.controls = Controls(self.config, _bundle_controls(self.router))
        self.trace_log = trace_log or TraceLog(self.config.trace_dir)
        # One variable per optimizer: two optimizers in one thread keep separate current runs.
        self._current: ContextVar[Run | None] = ContextVar(f"aco_run_{id(self)}", default=None)

    @property
    def mode(self) -> str:
        """How requests are routed: "bundle" (learned) or "rules"."""
        return MODE_BUNDLE if self.router is not None else MODE_RULES

    # -- routing --------------------------------------------------------------------------
    def route(
        self,
        request: str,
        task_type: str | None = None,
        input_tokens: int | None = None,
        difficulty: int | None = None,
    ) -> RoutingDecision:
        """The tier for a request: the bundle's router when loaded, else the rules."""
        return self.plan(request, task_type, input_tokens, difficulty, with_budget=False)[0]

    def context_budget(
        self, request: str, tier: int, task_type: str | None = None
    ) -> ContextBudget:
        """The context budget of a request run at `tier`."""
        return self.controls.context_budget(read_cues(request, task_type), tier)

    def plan(
        self,
        request: str,
        task_type: str | None = None,
        input_tokens: int | None = None,
        difficulty: int | None = None,
        with_budget: bool = True,
    ) -> tuple[RoutingDecision, ContextBudget | None, RequestCues | None]:
        """Routing decision, context budget and request cues, without opening a run.

        The cues are read once and shared by the rules, the rule context budget and the
        cascade. With a bundle and a learned context budget nothing here needs them: they
        are None then, and a run reads them when its cascade first asks (Run.cues).
        """
        if not isinstance(request, str):
            raise ACOError(f"request: expected a string, got {type(request).__name__}")
        cues = None
        if self.router is None or self.controls.budget_reads_cues:
            cues = read_cues(request, task_type)
        if self.router is None:
            routing = route_cues(cues, self.config, input_tokens, difficulty)
        else:  # without a task type the bundle predicts one (its task-type model)
            routing = self.router.decide(
                request, task_type=task_type, input_tokens=input_tokens, difficulty=difficulty
            )
            if cues is not None and routing.task_type != cues.task_type:
                cues = cues.with_task_type(routing.task_type, routing.task_type_from)
        budget = None
        if with_budget:
            budget = (
                self.controls.context_budget(cues, routing.tier)
                if cues is not None
                else self.controls.learned_context_budget(
                    routing.task_type, routing.tier, estimate_tokens(request)
                )
            )
        return routing, budget, cues

    # -- runs -------------------------------------------------------------------------------
    def begin(
        self,
        request: str,
        task_type: str | None = None,
        *,
        input_tokens: int | None = None,
        difficulty: int | None = None,
    ) -> Run:
        """Open an explicit run handle (use it from any thread; `run.end(success)` logs it)."""
        routing, budget, cues = self.plan(request, task_type, input_tokens, difficulty)
        return Run(self, request, routing, budget, difficulty, cues)

    def start_run(
        self,
        request: str,
        task_type: str | None = None,
        *,
        input_tokens: int | None = None,
        difficulty: int | None = None,
    ) -> dict:
        """Open this thread's current run; returns {trace_id, routing, context_budget}."""
        previous = self._current.get()
        if previous is not None and not previous.ended:
            log.warning("run %s was never ended; starting a new run drops it", previous.trace_id)
        run = self.begin(request, task_type, input_tokens=input_tokens, difficulty=difficulty)
        self._current.set(run)
        return run.start_info()

    def current_run(self) -> Run:
        """This thread's current run (from start_run)."""
        run = self._current.get()
        if run is None:
            raise ACOError(
                "no run in progress in this thread: call start_run(request) first, "
                "or use run = optimizer.begin(request) and its methods"
            )
        return run

    def end_run(self, success: bool | None, final_outcome: str | None = None) -> dict[str, Any]:
        """End this thread's current run; returns its trace (format v1), appended to the log."""
        trace = self.current_run().end(success, final_outcome)
        self._current.set(None)
        return trace

    def record_call(self, tier: int, cost: float | None = None, **fields: Any) -> int:
        """Record a model call in the current run (see Run.record_call); returns its step_num.

        Without a cost the call is priced from its tokens (aco.prices).
        """
        return self.current_run().record_call(tier, cost, **fields)

    def record_tool_call(
        self, tool_name: str, success: bool, cost: float = 0.0, **fields: Any
    ) -> int:
        """Record a tool call in the current run (see Run.record_tool_call)."""
        return self.current_run().record_tool_call(tool_name, success, cost, **fields)

    def record_verification(self, passed: bool, **fields: Any) -> int:
        """Record a verifier call in the current run (see Run.record_verification)."""
        return self.current_run().record_verification(passed, **fields)

    def record_step(self, **step: Any) -> int:
        """Record a whole step in the current run (see Run.record_step)."""
        return self.current_run().record_step(**step)

    def record_outcome(self, trace_id: str, success: bool) -> dict[str, Any]:
        """Append the outcome of an ended run (known later) beside the traces; returns the line.

        The trace itself is not rewritten: readers join the outcome by trace_id (aco.outcomes).
        """
        line = build_outcome(trace_id, success)
        outcomes = TraceLog(self.trace_log.directory, OUTCOMES_FILE_NAME, self.trace_log.fsync)
        try:
            outcomes.append(line)
        except OSError as exc:
            raise ACOError(
                f"{outcomes.path}: cannot append the outcome ({exc.strerror}); "
                f"check trace_dir is writable"
            ) from exc
        return line

    def write_trace(self, trace: Mapping[str, Any]) -> None:
        """Append a finished trace to the trace log (called by Run.end)."""
        try:
            self.trace_log.append(trace)
        except OSError as exc:
            raise ACOError(
                f"{self.trace_log.path}: cannot append the trace ({exc.strerror}); "
                f"check trace_dir is writable"
            ) from exc

    # -- controls ---------------------------------------------------------------------------
    def cascade_step(
        self,
        request: str,
        initial_tier: int,
        cheap_logprobs: Sequence[float] | None,
        cheap_response: str | None,
    ) -> CascadeDecision:
        """Accept a cheap model's answer or escalate (counts against the current run's retries)."""
        run = self._active_run()
        if run is not None:
            return run.cascade(cheap_logprobs, cheap_response, initial_tier, request)
        return self.decide_cascade(request, initial_tier, cheap_logprobs, cheap_response)

    def decide_cascade(
        self,
        request: str,
        initial_tier: int,
        cheap_logprobs: Sequence[float] | None,
        cheap_response: str | None,
        retries_used: int = 0,
    ) -> CascadeDecision:
        """The cascade decision for one answer alone (no run bookkeeping)."""
        return self.cascade_answer(
            request, initial_tier, cheap_logprobs, cheap_response, retries_used
        )[0]

    def cascade_answer(
        self,
        request: str,
        initial_tier: int,
        cheap_logprobs: Sequence[float] | None,
        cheap_response: str | None,
        retries_used: int = 0,
        cues: RequestCues | None = None,
        earlier: Sequence[Answer] = (),
    ) -> tuple[CascadeDecision, Answer | None]:
        """The cascade decision and the answer as the learned cascade sees it (or None).

        `cues` are the request's when already read; `earlier` are the answers this cascade
        collected before, which the learned cascade compares.
        """
        cues = cues or read_cues(request)
        # A short answer to a trivial question ("4" to "What is 2+2?") is no warning sign.
        signals = read_answer_signals(cheap_logprobs, cheap_response, short_expected=cues.trivial)
        answer = self.controls.answer(signals, cheap_response, initial_tier, cues.task_type)
        answers = (*earlier, answer) if answer is not None else ()
        decision = self.controls.cascade(
            signals, initial_tier, retries_used, answers, cues.task_type
        )
        return decision, answer

    def check_doom(
        self, total_spent: float, steps_without_progress: int | None = None
    ) -> DoomDecision:
        """Whether to stop the run: budget share spent, steps without progress."""
        run = self._active_run()
        if run is not None:
            return run.check_doom(total_spent, steps_without_progress)
        stalled = steps_without_progress or 0  # outside a run: all we know are these steps
        return self.controls.doom(total_spent, stalled, stalled)

    def gate_tool(self, tool_name: str, task_type: str | None = None) -> GateDecision:
        """Whether a tool call is worth making (task type defaults to the current run's)."""
        run = self._active_run()
        if task_type is None and run is not None:
            return run.gate_tool(tool_name)
        return self.controls.gate(tool_name, task_type)

    def should_verify(self, risk: str, confidence: float) -> VerifyDecision:
        """Whether to call a verifier before declaring DONE (in the current run, if any)."""
        run = self._active_run()
        if run is not None:
            return run.should_verify(risk, confidence)
        return self.controls.verify(risk, confidence)

    def active_run(self) -> Run | None:
        """This thread's (asyncio task's) current run while it is open, else None."""
        return self._active_run()

    def _active_run(self) -> Run | None:
        run = self._current.get()
        return run if run is not None and not run.ended else None

    # -- monitoring -------------------------------------------------------------------------
    def stats(self, by: str | None = None) -> dict[str, Any]:
        """The monitoring metrics over the local trace log (same as `aco-lab stats`)."""
        from aco.monitoring import compute_metrics

        path = self.trace_log.directory / OUTCOMES_FILE_NAME
        outcomes, problems = read_outcomes([path]) if path.exists() else ({}, [])
        for problem in problems:
            log.warning("%s; the line is ignored", problem)
        return compute_metrics(apply_outcomes(self.trace_log.read(), outcomes), self.config, by)


def load_router(ref: str | Path, config: ACOConfig) -> Any:
    """Load a bundle Router from a path or a version name like "v3" (integrity-checked)."""
    from aco.bundle import resolve_bundle_path
    from aco.router import Router  # numpy and the scorer load only with a bundle

    return Router.load(resolve_bundle_path(ref), config)


def _bundle_controls(router: Any) -> Mapping[str, Any] | None:
    bundle = getattr(router, "bundle", None) if router is not None else None
    return bundle.get("controls") if isinstance(bundle, Mapping) else None
