"""`Run`: one agent run — its routing, every call recorded through it, its spend, its trace.

A `Run` is the explicit per-run handle (``run = optimizer.begin(request)``); the optimizer's
``start_run``/``end_run`` pair keeps one as the current run of the calling thread. A run is
safe to record into from several threads (parallel tool calls): a lock guards its steps.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aco import __version__
from aco import trace_format as tf
from aco.cascade import Answer
from aco.config import ACOConfig
from aco.controls import Controls
from aco.decisions import (
    CascadeDecision,
    ContextBudget,
    DoomDecision,
    GateDecision,
    RoutingDecision,
    VerifyDecision,
)
from aco.errors import ACOError
from aco.prices import COST_REPORTED, cost_metadata, cost_path, price_call
from aco.rules import RequestCues, read_cues
from aco.run_steps import (
    build_model_call,
    build_tool_call,
    check_flag,
    check_model_call,
    check_text,
    check_tier,
    check_tool_call,
    copy_step,
    progressed,
)
from aco.trace_format import FINAL_OUTCOMES

SOURCE_RUNTIME = "runtime"  # the `source` of every trace this runtime writes


class RunOwner(Protocol):
    """What a run needs from the optimizer that started it (aco.optimizer.ACOOptimizer)."""

    config: ACOConfig
    controls: Controls

    def cascade_answer(
        self,
        request: str,
        initial_tier: int,
        cheap_logprobs: Sequence[float] | None,
        cheap_response: str | None,
        retries_used: int = 0,
        cues: RequestCues | None = None,
        earlier: Sequence[Answer] = (),
    ) -> tuple[CascadeDecision, Answer | None]: ...

    def write_trace(self, trace: Mapping[str, Any]) -> None: ...


class Run:
    """One agent run: routing decision, recorded steps, spend; `end` writes its trace."""

    def __init__(
        self,
        optimizer: RunOwner,
        request: str,
        routing: RoutingDecision,
        context_budget: ContextBudget,
        difficulty: int | None = None,
        cues: RequestCues | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.trace_id = os.urandom(16).hex()  # 128 random bits, like uuid4().hex, faster
        self.request = request
        self.routing = routing
        self.context_budget = context_budget
        self.difficulty = difficulty
        self._cues = cues  # None until read (see the cues property)
        self._started = time.time()  # formatted when read: start_run stays microseconds
        self._steps: list[dict[str, Any]] = []
        self._progress: list[bool] = []  # per step: did it move the task forward
        self._costs: list[float] = []
        self._cost_sources: dict[str, str] = {}  # model call cost path -> aco.prices source
        self._escalations = 0
        self._gate_advice: list[str] = []  # tools an advisory gate would have denied, in order
        self._answers_for: str | None = None  # the request of the cascade in progress
        self._answers: list[Answer] = []  # its answers so far
        self._ended = False
        self._lock = threading.Lock()

    # -- what the run knows -------------------------------------------------------------
    @property
    def cues(self) -> RequestCues:
        """What the rules read in the request, under the run's task type (the cascade reuses
        them); read on first use when start_run did not need them."""
        if self._cues is None:
            task_type = self.routing.task_type
            self._cues = read_cues(self.request, task_type).with_task_type(
                task_type, self.routing.task_type_from
            )
        return self._cues

    @property
    def started_at(self) -> str:
        """When the run started (UTC, ISO 8601 to the millisecond): the trace's timestamp."""
        return datetime.fromtimestamp(self._started, UTC).isoformat(timespec="milliseconds")

    @property
    def total_cost(self) -> float:
        """USD recorded so far (model calls, tool calls, verifier calls)."""
        with self._lock:
            return math.fsum(self._costs)

    @property
    def steps_without_progress(self) -> int:
        """Steps in a row, counting back from the last, that made no progress."""
        with self._lock:
            streak = 0
            for progressed in reversed(self._progress):
                if progressed:
                    break
                streak += 1
            return streak

    @property
    def failures(self) -> int:
        """Steps so far that made no progress (all tool calls failed, or the verifier did)."""
        with self._lock:
            return self._progress.count(False)

    @property
    def n_steps(self) -> int:
        """Steps recorded so far."""
        return len(self._steps)

    @property
    def escalations(self) -> int:
        """Cascade escalations decided in this run."""
        return self._escalations

    def start_info(self) -> dict[str, Any]:
        """The guide's start_run dict: routing, context budget and the trace id."""
        r, b = self.routing, self.context_budget
        info = {
            "trace_id": self.trace_id,
            "routing": {
                "tier": r.tier,
                "model_id": r.model_id,
                "confidence": r.confidence,
                "cost_estimate": r.cost_estimate,
                "task_type": r.task_type,
                "task_type_from": r.task_type_from,
                "reason": r.reason,
                "mode": r.mode,
            },
            "context_budget": {
                "total_tokens": b.total_tokens,
                "keep_exact": list(b.keep_exact),
                "omit": list(b.omit),
            },
        }
        start = self.optimizer.controls.cascade_start(r.task_type)
        if start is not None:  # a learned cascade: the model its learned order asks first
            info["cascade"] = {"tier": start[0], "model_id": start[1]}
        return info

    # -- recording ----------------------------------------------------------------------
    def record_call(
        self,
        tier: int,
        cost: float | None = None,
        *,
        model_id: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_input_tokens: int | None = None,
        latency_ms: float | None = None,
        escalated_from: int | None = None,
        logprobs: Sequence[float] | None = None,
        output_text: str | None = None,
        action: str | None = None,
        progress: bool | None = None,
        cost_source: str = COST_REPORTED,
    ) -> int:
        """Record one model call as a new step; returns its step_num.

        Without a cost, the call is priced from its tokens (aco.prices: the snapshot, else the
        tier's configured prices); the trace's metadata.cost_sources says which.
        """
        if cost is None:
            check_tier(tier, "model_call.tier")
            spec = self.optimizer.config.tier(tier)
            model = model_id or spec.model_id
            priced = price_call(
                model,
                input_tokens,
                output_tokens,
                cached_input_tokens,
                tier_prices=spec if model == spec.model_id else None,
            )
            cost, cost_source = priced.cost, priced.source
        call = self._model_call(
            tier,
            cost,
            model_id,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached=cached_input_tokens,
            latency_ms=latency_ms,
            escalated_from=escalated_from,
            logprobs=logprobs,
        )
        if output_text is not None:
            call[tf.OUTPUT_TEXT] = output_text
        step_num = self.record_step(action=action, model_call=call, progress=progress)
        with self._lock:
            self._cost_sources[cost_path(step_num - 1)] = cost_source
        return step_num

    def record_tool_call(
        self,
        tool_name: str,
        success: bool,
        cost: float = 0.0,
        *,
        latency_ms: float | None = None,
        new_step: bool = False,
    ) -> int:
        """Record a tool call: it joins the latest step (the call that asked for it)."""
        tool = build_tool_call(tool_name, success, cost, latency_ms)
        with self._lock:
            self._check_open()
            last = self._steps[-1] if self._steps else None
            if last is None or new_step or last[tf.VERIFIER_CALLED]:
                return self._append_step(None, None, [tool], False, None, None)
            last[tf.TOOL_CALLS].append(tool)
            self._costs.append(tool[tf.COST])
            self._progress[-1] = progressed(last)
            return last[tf.STEP_NUM]

    def record_verification(
        self,
        passed: bool,
        *,
        tier: int | None = None,
        cost: float = 0.0,
        model_id: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        latency_ms: float | None = None,
    ) -> int:
        """Record a verifier call as a new step (with its model call when it used a model)."""
        call = None
        if tier is not None:
            call = self._model_call(
                tier,
                cost,
                model_id,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                latency_ms=latency_ms,
            )
        elif cost:
            raise ACOError(
                "record_verification: cost without tier: a verifier's cost is "
                "recorded as its model call; pass tier= (and model_id=)"
            )
        return self.record_step(model_call=call, verifier_called=True, verifier_passed=passed)

    def record_step(
        self,
        *,
        action: str | None = None,
        model_call: Mapping[str, Any] | None = None,
        tool_calls: Iterable[Mapping[str, Any]] = (),
        verifier_called: bool = False,
        verifier_passed: bool | None = None,
        progress: bool | None = None,
    ) -> int:
        """Record one step in trace-format-v1 shape; returns its step_num."""
        call = dict(model_call) if model_call is not None else None
        if call is not None:
            check_model_call(call)
        tools = [dict(t) for t in tool_calls]
        for tool in tools:
            check_tool_call(tool)
        if action is not None:
            check_text(action, "action", allow_empty=True)
        if verifier_passed is not None:
            check_flag(verifier_passed, "verifier_passed")
        with self._lock:
            self._check_open()
            return self._append_step(
                action, call, tools, bool(verifier_called), verifier_passed, progress
            )

    def _append_step(
        self,
        action: str | None,
        call: dict[str, Any] | None,
        tools: list,
        verifier_called: bool,
        verifier_passed: bool | None,
        progress: bool | None,
    ) -> int:
        step = {
            tf.STEP_NUM: len(self._steps) + 1,
            tf.ACTION: action,
            tf.MODEL_CALL: call,
            tf.TOOL_CALLS: tools,
            tf.VERIFIER_CALLED: verifier_called,
            tf.VERIFIER_PASSED: verifier_passed,
        }
        self._steps.append(step)
        self._progress.append(progressed(step) if progress is None else bool(progress))
        self._costs.extend([call[tf.COST]] if call else [])
        if call:
            self._cost_sources[cost_path(len(self._steps) - 1)] = COST_REPORTED
        self._costs.extend(t[tf.COST] for t in tools)
        return step[tf.STEP_NUM]

    def _model_call(
        self, tier: int, cost: float, model_id: str | None, **fields: Any
    ) -> dict[str, Any]:
        """A validated model_call object; the model id defaults to the tier's."""
        if not model_id:
            model_id = self.optimizer.config.tier(check_tier(tier, "model_call.tier")).model_id
        return build_model_call(tier, cost, model_id, **fields)

    # -- decisions about this run -------------------------------------------------------
    def cascade(
        self,
        cheap_logprobs: Sequence[float] | None,
        cheap_response: str | None,
        initial_tier: int | None = None,
        request: str | None = None,
    ) -> CascadeDecision:
        """Accept the cheap answer or escalate; counts escalations against max_retries."""
        tier = self.routing.tier if initial_tier is None else initial_tier
        own = request is None or request == self.request  # else a sub-question of the run
        text = self.request if own else request
        with self._lock:  # check and count together: two threads cannot both take the last retry
            earlier = self._answers if self._answers_for == text else []
            decision, answer = self.optimizer.cascade_answer(
                text,
                tier,
                cheap_logprobs,
                cheap_response,
                self._escalations,
                self.cues if own else None,
                earlier,
            )
            self._escalations += decision.escalated
            # A cascade lasts while it calls on; its answers are what the learned one compares.
            keep = decision.escalated and answer is not None
            self._answers_for, self._answers = (text, [*earlier, answer]) if keep else (None, [])
        return decision

    def check_doom(
        self, total_spent: float | None = None, steps_without_progress: int | None = None
    ) -> DoomDecision:
        """Whether to stop this run (budget share spent, steps without progress)."""
        spent = self.total_cost if total_spent is None else total_spent
        stalled = (
            self.steps_without_progress
            if steps_without_progress is None
            else steps_without_progress
        )
        return self.optimizer.controls.doom(
            spent,
            stalled,
            self.n_steps,
            failures=self.failures,
            task_type=self.routing.task_type,
            tier=self.routing.tier,
        )

    def gate_tool(self, tool_name: str) -> GateDecision:
        """Whether a tool call is worth making for this run's task type; an advisory gate's
        deny allows the call and is recorded in the trace's metadata.gate_advice."""
        decision = self.optimizer.controls.gate(tool_name, self.routing.task_type)
        if decision.advice:
            with self._lock:
                self._gate_advice.append(f"{decision.advice} {tool_name}")
        return decision

    def should_verify(self, risk: str, confidence: float) -> VerifyDecision:
        """Whether to call a verifier before declaring this run's answer DONE."""
        return self.optimizer.controls.verify(
            risk,
            confidence,
            task_type=self.routing.task_type,
            tier=self.routing.tier,
            n_steps=self.n_steps,
            failures=self.failures,
        )

    # -- the end --------------------------------------------------------------------------
    def end(self, success: bool | None, final_outcome: str | None = None) -> dict[str, Any]:
        """Close the run, append its trace (format v1) to the trace log and return it."""
        if success is not None:
            check_flag(success, "success")
        outcome = final_outcome or ("completed" if success or success is None else "failed")
        if outcome not in FINAL_OUTCOMES:
            raise ACOError(
                f"final_outcome: expected one of {', '.join(FINAL_OUTCOMES)}, got {outcome!r}"
            )
        with self._lock:
            self._check_open()
            trace = self._trace(success, outcome)
            self.optimizer.write_trace(trace)  # raises before the run counts as ended
            self._ended = True
        return trace

    def _trace(self, success: bool | None, outcome: str) -> dict[str, Any]:
        return {
            tf.SCHEMA_VERSION_FIELD: tf.SCHEMA_VERSION,
            tf.TRACE_ID: self.trace_id,
            tf.REQUEST_ID: tf.derive_request_id(self.request),
            tf.REQUEST: self.request,
            tf.TASK_TYPE: self.routing.task_type,
            tf.DIFFICULTY: self.difficulty,
            tf.PREDICTED_TIER: self.routing.tier,
            tf.TIMESTAMP: self.started_at,
            tf.SOURCE: SOURCE_RUNTIME,
            tf.STEPS: [copy_step(s) for s in self._steps],
            tf.FINAL_OUTCOME: outcome,
            tf.TASK_SUCCESS: success,
            tf.TOTAL_COST: math.fsum(self._costs),
            tf.METADATA: {
                "aco_version": __version__,
                "router_mode": self.routing.mode,
                "task_type_from": self.routing.task_type_from,
                "escalations": self._escalations,
                **({"gate_advice": list(self._gate_advice)} if self._gate_advice else {}),
                **cost_metadata(self._cost_sources),
            },
        }

    @property
    def ended(self) -> bool:
        """Whether `end` has written this run's trace."""
        return self._ended

    def _check_open(self) -> None:
        if self._ended:
            raise ACOError(f"run {self.trace_id}: already ended; start a new run")

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # An exception inside `with` ends the run as failed; a clean exit the caller did not
        # end records "completed" with an unknown outcome (task_success null).
        if not self._ended:
            self.end(False if exc_type else None)
