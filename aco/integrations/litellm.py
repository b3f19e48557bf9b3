"""LiteLLM: a routing strategy for ``litellm.Router`` (tiers to model groups) and a cost logger.

    router = litellm.Router(model_list=[...])            # model groups "small", "large", ...
    route_litellm(router, {1: "small", 4: "large"}, optimizer=opt)
    router.completion(model="aco", messages=[{"role": "user", "content": "2+2?"}])

`ACORoutingStrategy` picks, for each request, a deployment of the model group the routed tier
maps to (else of the next stronger tier mapped), whatever ``model`` the call names. `ACOLogger`
(a litellm ``CustomLogger``) records each call, sync or async: tokens from the response's usage,
the cost litellm computed (``response_cost``; priced from ACO's snapshot when litellm has none)
and the latency. A routed call joins the caller's current run (``opt.start_run``) when one is
open, else it is a run of its own; the strategy tags the request's metadata so the logger,
which litellm may call from another thread, finds the run. `route_litellm` installs both; its
``run(request)`` is a run of several calls that ends once litellm has logged them (litellm logs
after it returns a response, so a run ended right after its last call would miss it):

    routed = route_litellm(router, {1: "small", 4: "large"}, optimizer=opt)
    async with routed.run("Refactor the billing module", task_type="coding"):
        await router.acompletion(model="aco", messages=plan)
        await router.acompletion(model="aco", messages=patch)

Importing litellm fetches its price map from the network unless ``LITELLM_LOCAL_MODEL_COST_MAP``
is ``True``; ACO never needs that map (docs/integrations.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aco.errors import ACOError
from aco.integrations.calls import CallRun, check_tiers, message_text, open_call_run, pick_tier
from aco.prices import COST_REPORTED

try:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.types.router import CustomRoutingStrategyBase
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ACOError("aco.integrations.litellm needs litellm: pip install 'aco[litellm]'") from exc

if TYPE_CHECKING:
    from aco.optimizer import ACOOptimizer
    from aco.run import Run

log = logging.getLogger(__name__)

CALL_KEY = "aco_call"  # request metadata: the key of the call's run in the open calls
LOG_WAIT_SECONDS = 10.0  # how long a run waits for litellm to log its calls before it ends


class _OpenCalls:
    """Runs of routed calls between the routing decision and the logged result.

    litellm logs a call after returning it (in a thread, or an asyncio task), so a run of
    several calls waits here for its calls' records before it ends (RoutedLiteLLM.run).
    """

    def __init__(self) -> None:
        self._calls: dict[str, tuple[CallRun, int]] = {}
        self._changed = threading.Condition()
        self._next = 0

    def add(self, call: CallRun, tier: int) -> str:
        """Keep a routed call's run until its result is logged; returns its key."""
        with self._changed:
            self._next += 1
            key = f"{call.run.trace_id}:{self._next}"
            self._calls[key] = (call, tier)
            return key

    def get(self, key: Any) -> tuple[CallRun, int] | None:
        """The run and tier of a routed call (None: not a call routed here)."""
        with self._changed:
            return self._calls.get(key) if isinstance(key, str) else None

    def done(self, key: Any) -> None:
        """The call's result is recorded (and its own run ended): waiters may go on."""
        with self._changed:
            if isinstance(key, str) and self._calls.pop(key, None) is not None:
                self._changed.notify_all()

    def pending(self, run: Run | None = None) -> int:
        """Calls of `run` (of any run: None) routed but not logged yet."""
        with self._changed:
            return sum(run is None or call.run is run for call, _ in self._calls.values())

    def wait(self, run: Run | None, timeout: float) -> bool:
        """Block until every routed call of `run` (None: all) is logged (False: timed out)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending(run), timeout)

    async def wait_async(self, run: Run | None, timeout: float) -> bool:
        """As wait, letting the event loop run litellm's logging tasks meanwhile."""
        deadline = time.monotonic() + timeout
        while self.pending(run):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def _pending(self, run: Run | None) -> bool:
        return any(run is None or call.run is run for call, _ in self._calls.values())


class ACORoutingStrategy(CustomRoutingStrategyBase):
    """Routes each request of a litellm.Router to the model group of the tier ACO chooses."""

    def __init__(
        self,
        router: Any,
        tiers: Mapping[int, str],
        optimizer: ACOOptimizer | None = None,
        task_type: str | None = None,
    ) -> None:
        from aco.optimizer import ACOOptimizer

        self.router = router
        self.tiers = check_tiers(tiers)  # tier -> model group (model_name in the model list)
        self.optimizer = optimizer or ACOOptimizer()
        self.task_type = task_type
        self.open_calls = _OpenCalls()
        groups = {d.get("model_name") for d in _deployments(router)}
        missing = sorted(set(self.tiers.values()) - groups)
        if missing:
            raise ACOError(
                f"tiers: model group {missing[0]!r} is not in the router's model "
                f"list; expected one of {', '.join(sorted(map(str, groups)))}"
            )

    def get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: Any = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict | None = None,
    ) -> dict:
        """The deployment for one request: open (or join) its run, route, tag the request."""
        call = open_call_run(self.optimizer, message_text(messages or input or ""), self.task_type)
        tier, group = pick_tier(call.run.routing.tier, self.tiers)
        if request_kwargs is not None:
            metadata = request_kwargs.setdefault("metadata", {})
            metadata[CALL_KEY] = self.open_calls.add(call, tier)
        return next(d for d in _deployments(self.router) if d.get("model_name") == group)

    async def async_get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: Any = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict | None = None,
    ) -> dict:
        """As get_available_deployment (routing reads no I/O)."""
        return self.get_available_deployment(
            model, messages, input, specific_deployment, request_kwargs
        )


class ACOLogger(CustomLogger):
    """Records litellm calls into ACO runs: tokens, cost, latency (sync and async calls)."""

    def __init__(
        self, optimizer: ACOOptimizer | None = None, strategy: ACORoutingStrategy | None = None
    ) -> None:
        from aco.optimizer import ACOOptimizer

        super().__init__()
        self.optimizer = optimizer or (strategy.optimizer if strategy else ACOOptimizer())
        self.strategy = strategy
        # litellm keeps one logger per class and public str/int attributes: this makes each
        # ACOLogger its own (two routers, or two optimizers, each keep theirs).
        self.aco_logger = f"{self.optimizer.trace_log.path}#{id(self):x}"

    def log_success_event(
        self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """A call succeeded: record it."""
        key, found = self._call_of(kwargs)
        if found is None:
            return
        call, tier = found
        usage = getattr(response_obj, "usage", None)
        details = getattr(usage, "prompt_tokens_details", None)
        cost = kwargs.get("response_cost")
        try:
            call.run.record_call(
                tier,
                cost if isinstance(cost, int | float) else None,
                model_id=kwargs.get("model") or None,
                input_tokens=getattr(usage, "prompt_tokens", None),
                output_tokens=getattr(usage, "completion_tokens", None),
                cached_input_tokens=getattr(details, "cached_tokens", None),
                latency_ms=_latency_ms(start_time, end_time),
                cost_source=COST_REPORTED,
            )
            call.close()
        finally:
            self._done(key)

    def log_failure_event(
        self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """A call failed: a run of its own ends as failed."""
        key, found = self._call_of(kwargs)
        if found is None:
            return
        try:
            found[0].close(failed=True)
        finally:
            self._done(key)

    async def async_log_success_event(
        self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """An async call succeeded: record it."""
        self.log_success_event(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(
        self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """An async call failed."""
        self.log_failure_event(kwargs, response_obj, start_time, end_time)

    def _call_of(self, kwargs: dict) -> tuple[Any, tuple[CallRun, int] | None]:
        """(key, (run, tier)) of a call this logger's strategy routed; a run of its own for a
        call no ACO strategy routed; None for another ACO router's call."""
        key = ((kwargs.get("litellm_params") or {}).get("metadata") or {}).get(CALL_KEY)
        if key is not None:
            return key, self.strategy.open_calls.get(key) if self.strategy else None
        call = open_call_run(self.optimizer, message_text(kwargs.get("messages") or ""))
        model = kwargs.get("model")
        tiers = [s.tier for s in self.optimizer.config.tiers if s.model_id == model]
        return None, (call, tiers[0] if tiers else call.run.routing.tier)

    def _done(self, key: Any) -> None:
        if self.strategy is not None:
            self.strategy.open_calls.done(key)


class RoutedLiteLLM:
    """The strategy and logger installed on a router, and runs of several calls over it."""

    def __init__(self, strategy: ACORoutingStrategy, logger: ACOLogger) -> None:
        self.strategy = strategy
        self.logger = logger

    def run(self, request: str, task_type: str | None = None) -> _LoggedRun:
        """A run of several calls (``with`` or ``async with``): its calls join it, and it ends
        once litellm has logged them all (outcome unknown; failed when the block raised)."""
        return _LoggedRun(self.strategy, request, task_type)

    def drain(self, timeout: float = LOG_WAIT_SECONDS) -> bool:
        """Wait until litellm has logged every routed call (before a process exits)."""
        return self.strategy.open_calls.wait(None, timeout)

    async def adrain(self, timeout: float = LOG_WAIT_SECONDS) -> bool:
        """As drain, in async code (litellm's logging tasks run meanwhile)."""
        return await self.strategy.open_calls.wait_async(None, timeout)


class _LoggedRun:
    def __init__(self, strategy: ACORoutingStrategy, request: str, task_type: str | None) -> None:
        self.strategy, self.request, self.task_type = strategy, request, task_type
        self.run: Run | None = None

    def __enter__(self) -> Run:
        opt = self.strategy.optimizer
        opt.start_run(self.request, self.task_type)
        self.run = opt.current_run()
        return self.run

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.strategy.open_calls.wait(self.run, LOG_WAIT_SECONDS):
            log.warning(
                "run %s: litellm did not log every call within %gs; ending it without them",
                self.run.trace_id,
                LOG_WAIT_SECONDS,
            )
        self._end(exc_type)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not await self.strategy.open_calls.wait_async(self.run, LOG_WAIT_SECONDS):
            log.warning(
                "run %s: litellm did not log every call within %gs; ending it without them",
                self.run.trace_id,
                LOG_WAIT_SECONDS,
            )
        self._end(exc_type)

    def _end(self, exc_type: Any) -> None:
        self.strategy.optimizer.end_run(False if exc_type else None, "failed" if exc_type else None)


def route_litellm(
    router: Any,
    tiers: Mapping[int, str],
    optimizer: ACOOptimizer | None = None,
    task_type: str | None = None,
) -> RoutedLiteLLM:
    """Route `router`'s requests with ACO and log its calls: installs the strategy and logger."""
    strategy = ACORoutingStrategy(router, tiers, optimizer, task_type)
    logger = ACOLogger(strategy=strategy)
    register = getattr(router, "register_plugin", None) or router.set_custom_routing_strategy
    register(strategy)
    litellm.callbacks = [*(litellm.callbacks or []), logger]
    return RoutedLiteLLM(strategy, logger)


def _deployments(router: Any) -> list[Mapping[str, Any]]:
    """The router's deployments (model list entries)."""
    registry = getattr(router, "registry", None)
    return list(registry().all() if registry is not None else router.model_list)


def _latency_ms(start: Any, end: Any) -> float | None:
    try:
        return max((end - start).total_seconds() * 1000.0, 0.0)
    except (TypeError, AttributeError):
        return None
