"""A LangChain-style router: ACO picks the model for each request; no langchain dependency.

LangChain composes *runnables*: objects with ``invoke(input)`` and ``batch(inputs)``. An
`ACORouter` is one, duck-typed, so it drops into a chain where a chat model would go:

    from langchain_openai import ChatOpenAI
    from langchain_ollama import ChatOllama
    router = ACORouter({"tiny-local-3b": ChatOllama(model="llama3.2:3b"),
                        "frontier-latest": ChatOpenAI(model="gpt-4o"), ...})
    chain = prompt | router | StrOutputParser()

Calling the router (``router(input)``) returns the chosen model itself, which is what
``RunnableLambda(router)`` needs to route inside a chain. Every ``invoke`` is one ACO run:
routed, recorded (tokens from ``usage_metadata``, log-probabilities from
``response_metadata["logprobs"]`` when the model returns them) and appended to the trace log
with an unknown outcome (``task_success`` null) until the application labels it.

    python examples/langchain_router.py [TRACE_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aco.config import ACOConfig, TierSpec
from aco.decisions import RoutingDecision
from aco.errors import ACOError
from aco.optimizer import ACOOptimizer


class ACORouter:
    """A runnable that routes each request to the cheapest adequate chat model."""

    def __init__(self, models: Mapping[str, Any], optimizer: ACOOptimizer | None = None) -> None:
        self.optimizer = optimizer or ACOOptimizer()
        self.models = dict(models)  # model_id (as in the config's tier table) -> chat model

    def select(self, input: Any, task_type: str | None = None) -> tuple[Any, RoutingDecision]:
        """The chat model for an input and the routing decision behind it."""
        decision = self.optimizer.route(request_text(input), task_type)
        return self.models[self._tier_for(decision).model_id], decision

    def _tier_for(self, decision: RoutingDecision) -> TierSpec:
        for spec in sorted(self.optimizer.config.tiers, key=lambda s: s.tier):
            # The routed tier's model, else the next stronger one this application provides.
            if spec.tier >= decision.tier and spec.model_id in self.models:
                return spec
        raise ACOError(f"models: no model for tier {decision.tier} or above; give one of "
                       f"{', '.join(s.model_id for s in self.optimizer.config.tiers)}")

    def __call__(self, input: Any) -> Any:
        """The chosen model (for RunnableLambda(router) inside a chain)."""
        return self.select(input)[0]

    def invoke(self, input: Any, config: Mapping[str, Any] | None = None) -> Any:
        """Route, call the chosen model, record the call, log the run; returns its message."""
        task_type = (config or {}).get("metadata", {}).get("task_type")
        run = self.optimizer.begin(request_text(input), task_type)
        spec = self._tier_for(run.routing)
        try:
            message = self.models[spec.model_id].invoke(input)
        except Exception:
            run.end(False, "failed")
            raise
        usage = getattr(message, "usage_metadata", None) or {}
        tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
        run.record_call(spec.tier, spec.cost(tokens_in or 0, tokens_out or 0),
                        model_id=spec.model_id, input_tokens=tokens_in, output_tokens=tokens_out,
                        logprobs=message_logprobs(message))
        run.end(None)  # the outcome is unknown here; the application labels it later
        return message

    def batch(self, inputs: Sequence[Any], config: Mapping[str, Any] | None = None) -> list[Any]:
        """invoke over several inputs, in order."""
        return [self.invoke(i, config) for i in inputs]


def request_text(input: Any) -> str:
    """The request text of a runnable input: a string, a prompt value, a dict or messages."""
    if isinstance(input, str):
        return input
    if hasattr(input, "to_string"):  # a LangChain PromptValue
        return input.to_string()
    if isinstance(input, Mapping):
        for key in ("input", "question", "query", "text"):
            if isinstance(input.get(key), str):
                return input[key]
    if isinstance(input, Sequence) and input:
        last = input[-1]  # the latest message is the request
        content = last[1] if isinstance(last, tuple) else getattr(last, "content", last)
        if isinstance(content, str):
            return content
    raise ACOError(f"input: expected text, a prompt, a dict with 'input' or messages, got "
                   f"{type(input).__name__}")


def message_logprobs(message: Any) -> list[float] | None:
    """Token log-probabilities from an OpenAI-style response_metadata, when present."""
    meta = getattr(message, "response_metadata", None) or {}
    content = (meta.get("logprobs") or {}).get("content") or []
    values = [item.get("logprob") for item in content if isinstance(item, Mapping)]
    return [float(v) for v in values if isinstance(v, int | float)] or None


@dataclass
class FakeMessage:
    """The fields of a LangChain AIMessage that the router reads."""

    content: str
    usage_metadata: dict = field(default_factory=dict)
    response_metadata: dict = field(default_factory=dict)


class FakeChatModel:
    """A deterministic chat model with LangChain's invoke(); answers name the model."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.prompts: list[str] = []

    def invoke(self, input: Any, config: Any = None) -> FakeMessage:
        """Answer deterministically, with usage and OpenAI-style log-probabilities."""
        text = request_text(input)
        self.prompts.append(text)
        return FakeMessage(
            content=f"[{self.name}] answer to: {text[:40]}",
            usage_metadata={"input_tokens": 20 + len(text) // 4, "output_tokens": 50},
            response_metadata={"logprobs": {"content": [{"logprob": -0.05}] * 5}},
        )


def main(trace_dir: str) -> None:
    """Route a few requests through fake models and print which model answered each."""
    opt = ACOOptimizer(ACOConfig(trace_dir=trace_dir))
    router = ACORouter({spec.model_id: FakeChatModel(spec.model_id) for spec in opt.config.tiers},
                       opt)
    for request in ("What is 2+2?", "Fix the auth bug in production",
                    {"input": "Summarize recent papers on prompt caching"},
                    [("system", "You are terse."), ("user", "Translate 'merci' to English")]):
        print(router.invoke(request).content)
    print(f"traces appended to {opt.trace_log.path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="aco-traces-"))
