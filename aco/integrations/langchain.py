"""LangChain (langchain-core): a routing chat model and a callback handler that records runs.

    model = ACOChatModel(models={1: cheap_chat_model, 4: strong_chat_model}, optimizer=opt)
    chain = prompt | model | StrOutputParser()
    chain.invoke({"question": "What is 2+2?"})            # routed, recorded, traced

`ACOChatModel` is a chat model: ``invoke``, ``ainvoke``, ``batch``, ``abatch``, ``stream`` and
``astream`` route each call to the model of the routed tier (else the next stronger one
given) and delegate to it. `ACOCallbackHandler` records what LangChain reports into ACO runs:
each model call (tokens from ``usage_metadata``, the cost priced from the snapshot), each tool
call (an error, or a ToolMessage with status "error", is a failed call). Pass it in a chain's
``config={"callbacks": [handler]}`` and the whole top-level invocation (an agent's loop of model
and tool calls) is one ACO run; without it, `ACOChatModel` records each of its calls as a run
of its own. Either joins the caller's current run (``opt.start_run``) when one is open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from aco.errors import ACOError
from aco.integrations.calls import CallRun, check_tiers, content_text, open_call_run, pick_tier

try:
    from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from pydantic import ConfigDict, Field
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ACOError(
        "aco.integrations.langchain needs langchain-core: pip install 'aco[langchain]'"
    ) from exc

if TYPE_CHECKING:
    from aco.optimizer import ACOOptimizer
    from aco.run import Run

ROUTER_KEY = "aco_router"  # metadata of ACOChatModel's own calls: not a model call to record
TIER_KEY = "aco_tier"  # metadata ACOChatModel gives the call it delegates: the tier it chose


@dataclass(slots=True)
class _Root:
    """A top-level LangChain run and the ACO run its calls are recorded into."""

    text: str | None = None  # the request, when the root's inputs read as one
    call: CallRun | None = None
    nodes: set[UUID] = field(default_factory=set)


@dataclass(slots=True)
class _Pending:
    """A model or tool call between its start and end events."""

    root: UUID
    started: float
    kind: str  # "model", "router" or "tool"
    name: str | None = None
    tier: int | None = None


class ACOCallbackHandler(BaseCallbackHandler):
    """Records LangChain model and tool calls into ACO runs, one run per top-level invocation."""

    run_inline = True  # in async code too: events arrive in order, before the router reads them

    def __init__(
        self,
        optimizer: ACOOptimizer | None = None,
        *,
        run: Run | None = None,
        task_type: str | None = None,
    ) -> None:
        if optimizer is None and run is None:
            from aco.optimizer import ACOOptimizer

            optimizer = ACOOptimizer()
        self.optimizer = optimizer if run is None else run.optimizer
        self.task_type = task_type
        self._run = run  # given: every call goes into it, and the caller ends it
        self._roots: dict[UUID, _Root] = {}
        self._root_of: dict[UUID, UUID] = {}
        self._pending: dict[UUID, _Pending] = {}
        self._lock = threading.Lock()

    # -- the run of an event ---------------------------------------------------------------
    def run_for(self, run_id: UUID, request: str) -> Run:
        """The ACO run a LangChain run's calls go into (opened on first use with `request`)."""
        if self._run is not None:
            return self._run
        with self._lock:
            root = self._roots[self._root_of[run_id]]
            if root.call is None:
                root.call = open_call_run(self.optimizer, root.text or request, self.task_type)
            return root.call.run

    def _enter(self, run_id: UUID, parent_run_id: UUID | None, text: str | None = None) -> UUID:
        with self._lock:
            root_id = self._root_of.get(parent_run_id) if parent_run_id is not None else None
            if root_id is None:
                root_id = run_id
                self._roots[run_id] = _Root(text)
            self._root_of[run_id] = root_id
            self._roots[root_id].nodes.add(run_id)
            return root_id

    def _exit(self, run_id: UUID, failed: bool = False) -> None:
        """At the end of a top-level run: end the ACO run it opened."""
        with self._lock:
            self._pending.pop(run_id, None)
            root = self._roots.pop(run_id, None) if self._root_of.get(run_id) == run_id else None
            for node in root.nodes if root else ():
                self._root_of.pop(node, None)
        if root is not None and root.call is not None:
            root.call.close(failed)

    # -- chains ----------------------------------------------------------------------------
    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A chain (or a runnable) starts: the top-level one opens a LangChain run."""
        self._enter(run_id, parent_run_id, _input_text(inputs))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """A chain ends: the top-level one ends its ACO run (outcome unknown)."""
        self._exit(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A chain raised: the top-level one ends its ACO run as failed."""
        self._exit(run_id, failed=True)

    # -- model calls -----------------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: Any,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A chat model call starts: remember its tier and model name until it ends."""
        text = request_text(messages[0]) if messages else None
        root = self._enter(run_id, parent_run_id, text)
        meta = metadata or {}
        kind = "router" if meta.get(ROUTER_KEY) else "model"
        with self._lock:
            self._pending[run_id] = _Pending(
                root, time.perf_counter(), kind, meta.get("ls_model_name"), meta.get(TIER_KEY)
            )

    def on_llm_start(
        self,
        serialized: Any,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A completion-style model call starts (same bookkeeping as a chat model)."""
        root = self._enter(run_id, parent_run_id, prompts[0] if prompts else None)
        meta = metadata or {}
        with self._lock:
            self._pending[run_id] = _Pending(
                root, time.perf_counter(), "model", meta.get("ls_model_name"), meta.get(TIER_KEY)
            )

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """A model call ended: record it (tokens, model, priced cost, latency)."""
        with self._lock:
            pending = self._pending.pop(run_id, None)
        if pending is not None and pending.kind == "model":
            self._record_model_call(run_id, pending, response)
        self._exit(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A model call raised: nothing to record; a top-level call ends its run as failed."""
        self._exit(run_id, failed=True)

    def _record_model_call(self, run_id: UUID, pending: _Pending, response: Any) -> None:
        generations = getattr(response, "generations", None) or [[]]
        message = getattr(generations[0][0], "message", None) if generations[0] else None
        usage = getattr(message, "usage_metadata", None) or {}
        meta = getattr(message, "response_metadata", None) or {}
        llm_output = getattr(response, "llm_output", None) or {}
        model = meta.get("model_name") or llm_output.get("model_name") or pending.name
        run = self.run_for(run_id, "")
        tier = pending.tier or self._tier_of(model, run)
        details = usage.get("input_token_details") or {}
        run.record_call(
            tier,
            model_id=model or None,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            cached_input_tokens=details.get("cache_read"),
            latency_ms=(time.perf_counter() - pending.started) * 1000.0,
        )

    def _tier_of(self, model: str | None, run: Run) -> int:
        """A call ACOChatModel did not route: its model's configured tier, else the run's."""
        for spec in self.optimizer.config.tiers:
            if spec.model_id == model:
                return spec.tier
        return run.routing.tier

    # -- tool calls ------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: Any,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A tool call starts."""
        root = self._enter(run_id, parent_run_id, input_str)
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        with self._lock:
            self._pending[run_id] = _Pending(root, time.perf_counter(), "tool", name)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """A tool call ended: recorded as failed when it returned an error ToolMessage."""
        failed = isinstance(output, ToolMessage) and output.status == "error"
        self._record_tool_call(run_id, success=not failed)
        self._exit(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A tool call raised: recorded as failed."""
        self._record_tool_call(run_id, success=False)
        self._exit(run_id, failed=True)

    def _record_tool_call(self, run_id: UUID, success: bool) -> None:
        with self._lock:
            pending = self._pending.pop(run_id, None)
        if pending is None:
            return
        run = self.run_for(run_id, pending.name or "tool")
        run.record_tool_call(
            pending.name or "tool",
            success,
            latency_ms=(time.perf_counter() - pending.started) * 1000.0,
        )


class ACOChatModel(BaseChatModel):
    """A chat model that routes each call to the chat model of the tier ACO chooses."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    models: dict[Any, Any]  # tier 1..5 -> chat model (or any runnable taking messages)
    optimizer: Any = None  # ACOOptimizer; a default one when not given
    task_type: str | None = None
    metadata: dict[str, Any] | None = Field(default_factory=lambda: {ROUTER_KEY: True})

    def model_post_init(self, context: Any) -> None:
        """Check the tier map; make the default optimizer."""
        self.models = check_tiers(self.models)
        if self.optimizer is None:
            from aco.optimizer import ACOOptimizer

            self.optimizer = ACOOptimizer()
        self.metadata = {**(self.metadata or {}), ROUTER_KEY: True}

    @property
    def _llm_type(self) -> str:
        return "aco-router"

    def select(self, messages: Sequence[BaseMessage] | str) -> tuple[int, Any]:
        """The tier and chat model ACO would route these messages to (no run is opened)."""
        text = messages if isinstance(messages, str) else request_text(messages)
        return pick_tier(self.optimizer.route(text, self.task_type).tier, self.models)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ACOChatModel:
        """The router over each tier's model with these tools bound."""
        bound = {tier: model.bind_tools(tools, **kwargs) for tier, model in self.models.items()}
        return self.model_copy(update={"models": bound})

    @contextmanager
    def _routed(self, messages: list[BaseMessage], run_manager: Any) -> Iterator[tuple[Any, dict]]:
        """The chosen model and the config to call it with; an own run ends afterwards."""
        text = request_text(messages)
        handler = next(
            (
                h
                for h in getattr(run_manager, "handlers", ())
                if isinstance(h, ACOCallbackHandler) and h.optimizer is self.optimizer
            ),
            None,
        )
        child = _child_manager(run_manager)
        call = None
        if handler is not None:
            run = handler.run_for(run_manager.run_id, text)
        else:  # nobody records this invocation: record this call as its own run
            call = open_call_run(self.optimizer, text, self.task_type)
            run, handler = call.run, ACOCallbackHandler(run=call.run)
            if child is not None:
                child.add_handler(handler, inherit=True)
        tier, model = pick_tier(run.routing.tier, self.models)
        config = {
            "callbacks": child if child is not None else [handler],
            "metadata": {TIER_KEY: tier},
        }
        try:
            yield model, config
        except BaseException:
            if call is not None:
                call.close(failed=True)
            raise
        if call is not None:
            call.close()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._routed(messages, run_manager) as (model, config):
            message = model.invoke(messages, config=config, stop=stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._routed(messages, run_manager) as (model, config):
            message = await model.ainvoke(messages, config=config, stop=stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with self._routed(messages, run_manager) as (model, config):
            for chunk in model.stream(messages, config=config, stop=stop, **kwargs):
                yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        with self._routed(messages, run_manager) as (model, config):
            async for chunk in model.astream(messages, config=config, stop=stop, **kwargs):
                yield ChatGenerationChunk(message=chunk)


def _child_manager(run_manager: Any) -> CallbackManager | None:
    """Callbacks for the call the router delegates to: what the router's own run passes on."""
    if run_manager is None:
        return None
    child = CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    child.set_handlers(run_manager.inheritable_handlers)
    child.add_tags(run_manager.inheritable_tags)
    child.add_metadata(run_manager.inheritable_metadata)
    return child


def request_text(messages: Sequence[BaseMessage]) -> str:
    """The request of a message list: the last human message's text (else the last message's)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return content_text(message.content)
    return content_text(messages[-1].content) if messages else ""


def _input_text(inputs: Any) -> str | None:
    """A chain input's request text, when it reads as one (a string, or a dict's one string)."""
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, Mapping):
        for key in ("input", "question", "query", "request", "text"):
            if isinstance(inputs.get(key), str):
                return inputs[key]
    if isinstance(inputs, Sequence) and inputs and isinstance(inputs[-1], BaseMessage):
        return request_text(inputs)
    return None
