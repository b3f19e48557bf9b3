"""The OpenAI SDK: a thin client wrapper whose ``chat.completions.create`` routes through ACO.

    client = RoutedOpenAI(OpenAI(), {1: "gpt-4o-mini", 4: "gpt-4o"}, optimizer=opt)
    reply = client.chat.completions.create(messages=[{"role": "user", "content": "2+2?"}])

Leave out ``model`` (or pass ``model="aco"``) and ACO picks it: the routed tier's model, else the
next stronger one given. A ``model`` of your own is used as given and recorded at the tier the
map names for it (else the routed tier). Usage (prompt, completion and cached tokens) is
recorded and the call priced from the price snapshot (aco.prices). Works with ``AsyncOpenAI``
(``await client.chat.completions.create(...)``) and with ``stream=True`` (usage is asked for
with ``stream_options``, the call recorded when the stream ends). Everything else is the
wrapped client's (``client.models.list()``, ``client.embeddings``...).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from aco.integrations.calls import CallRun, check_tiers, message_text, open_call_run, pick_tier

if TYPE_CHECKING:
    from aco.optimizer import ACOOptimizer

ROUTE = "aco"  # the model name that asks ACO to choose


class RoutedOpenAI:
    """An OpenAI or AsyncOpenAI client whose chat completions ACO routes and records."""

    def __init__(
        self,
        client: Any,
        models: Mapping[int, str],
        optimizer: ACOOptimizer | None = None,
        task_type: str | None = None,
    ) -> None:
        import openai  # the SDK loads only when a client is wrapped

        from aco.optimizer import ACOOptimizer

        self.client = client
        self.models = check_tiers(models)  # tier -> model name at the provider
        self.optimizer = optimizer or ACOOptimizer()
        self.task_type = task_type
        self.is_async = isinstance(client, openai.AsyncOpenAI)
        self.chat = _Chat(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def prepare(self, kwargs: dict[str, Any]) -> tuple[CallRun, int, dict[str, Any]]:
        """Open the call's run and choose its model: (run, tier, arguments for the SDK)."""
        call = open_call_run(self.optimizer, message_text(kwargs.get("messages")), self.task_type)
        model = kwargs.get("model")
        if model in (None, ROUTE):
            tier, model = pick_tier(call.run.routing.tier, self.models)
        else:
            named = [t for t, m in self.models.items() if m == model]
            tier = named[0] if named else call.run.routing.tier
        args = {**kwargs, "model": model}
        if args.get("stream"):  # the last chunk then carries the usage
            args["stream_options"] = {**(args.get("stream_options") or {}), "include_usage": True}
        return call, tier, args

    def record(self, call: CallRun, tier: int, model: str, usage: Any, started: float) -> None:
        """Record one completed call (usage as the SDK returns it) and close an own run."""
        details = getattr(usage, "prompt_tokens_details", None)
        call.run.record_call(
            tier,
            model_id=model,
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=getattr(usage, "completion_tokens", None),
            cached_input_tokens=getattr(details, "cached_tokens", None),
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )
        call.close()


class _Chat:
    def __init__(self, owner: RoutedOpenAI) -> None:
        self.completions = _AsyncCompletions(owner) if owner.is_async else _Completions(owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.completions.owner.client.chat, name)


class _Completions:
    def __init__(self, owner: RoutedOpenAI) -> None:
        self.owner = owner

    def create(self, **kwargs: Any) -> Any:
        """chat.completions.create, routed and recorded."""
        call, tier, args = self.owner.prepare(kwargs)
        started = time.perf_counter()
        try:
            response = self.owner.client.chat.completions.create(**args)
        except BaseException:
            call.close(failed=True)
            raise
        if args.get("stream"):
            return self._stream(response, call, tier, args["model"], started)
        self.owner.record(call, tier, args["model"], response.usage, started)
        return response

    def _stream(
        self, chunks: Any, call: CallRun, tier: int, model: str, started: float
    ) -> Iterator[Any]:
        usage = None
        try:
            for chunk in chunks:
                usage = chunk.usage or usage
                yield chunk
        except BaseException:
            call.close(failed=True)
            raise
        self.owner.record(call, tier, model, usage, started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.owner.client.chat.completions, name)


class _AsyncCompletions(_Completions):
    async def create(self, **kwargs: Any) -> Any:  # type: ignore[override]
        """chat.completions.create of AsyncOpenAI, routed and recorded."""
        call, tier, args = self.owner.prepare(kwargs)
        started = time.perf_counter()
        try:
            response = await self.owner.client.chat.completions.create(**args)
        except BaseException:
            call.close(failed=True)
            raise
        if args.get("stream"):
            return self._astream(response, call, tier, args["model"], started)
        self.owner.record(call, tier, args["model"], response.usage, started)
        return response

    async def _astream(
        self, chunks: Any, call: CallRun, tier: int, model: str, started: float
    ) -> AsyncIterator[Any]:
        usage = None
        try:
            async for chunk in chunks:
                usage = chunk.usage or usage
                yield chunk
        except BaseException:
            call.close(failed=True)
            raise
        self.owner.record(call, tier, model, usage, started)
