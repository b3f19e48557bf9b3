"""What every integration does around one model call: find its run, pick the model, record it.

A call joins the optimizer's current run (``opt.start_run`` in this thread or asyncio task)
when one is open; otherwise it opens a run of its own and ends it after the call, with an
unknown outcome, or as failed when the call raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aco.errors import ACOError

if TYPE_CHECKING:
    from aco.optimizer import ACOOptimizer
    from aco.run import Run

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallRun:
    """The run a call is recorded into, and whether the call opened it (and so ends it)."""

    run: Run
    owned: bool

    def close(self, failed: bool = False) -> None:
        """End the run when the call opened it: failed when the call raised, else unknown."""
        if self.owned and not self.run.ended:
            self.run.end(False, "failed") if failed else self.run.end(None)


def open_call_run(optimizer: ACOOptimizer, request: str, task_type: str | None = None) -> CallRun:
    """The current run when one is open, else a new run for this call."""
    run = optimizer.active_run()
    if run is not None:
        return CallRun(run, owned=False)
    return CallRun(optimizer.begin(request, task_type), owned=True)


def pick_tier(routed: int, served: Mapping[int, T]) -> tuple[int, T]:
    """The routed tier's entry, else the next stronger tier served, else the strongest one."""
    if not served:
        raise ACOError("models: expected at least one tier, e.g. {1: 'gpt-4o-mini', 4: 'gpt-4o'}")
    for tier in sorted(served):
        if tier >= routed:
            return tier, served[tier]
    top = max(served)
    return top, served[top]


def check_tiers(models: Mapping[int, Any]) -> dict[int, Any]:
    """The tier map as a dict, keys checked (tiers 1..5)."""
    out = dict(models)
    for tier in out:
        if not isinstance(tier, int) or isinstance(tier, bool) or not 1 <= tier <= 5:
            raise ACOError(f"models: keys are tiers 1..5, got {tier!r}")
    if not out:
        pick_tier(1, out)  # raises the message for an empty map
    return out


def message_text(messages: Any) -> str:
    """The request of OpenAI-style messages: the last user message's text."""
    if isinstance(messages, str):
        return messages
    if isinstance(messages, Sequence):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return content_text(message.get("content"))
    raise ACOError(f"messages: expected a list with a user message, got {type(messages).__name__}")


def content_text(content: Any) -> str:
    """Text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""
