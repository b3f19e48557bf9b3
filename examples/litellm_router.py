"""A litellm.Router whose requests ACO routes between model groups, every call traced.

Runs with no network and no key: each deployment answers with litellm's own
``mock_response``, and litellm still reports usage and cost as for a real call. Put real keys
in ``litellm_params`` (and drop ``mock_response``) and nothing else changes.

    pip install 'aco[litellm]'
    python examples/litellm_router.py         # traces in ./traces; then: aco-lab validate traces
"""

from __future__ import annotations

import asyncio
import os

# litellm fetches its price map at import unless told to use the copy it ships: no network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402

from aco.config import ACOConfig  # noqa: E402
from aco.integrations.litellm import route_litellm  # noqa: E402
from aco.optimizer import ACOOptimizer  # noqa: E402


def deployment(group: str, model: str) -> dict:
    """A model-list entry that answers without calling the provider."""
    return {
        "model_name": group,
        "litellm_params": {
            "model": model,
            "api_key": "not-needed",
            "mock_response": f"[{model}] done.",
        },
    }


def ask(text: str) -> list[dict]:
    """OpenAI-style messages for one question."""
    return [{"role": "user", "content": text}]


async def main() -> None:
    """Route a few requests (sync, async, and one run of several calls); traces to ./traces."""
    opt = ACOOptimizer(ACOConfig(trace_dir="traces"))
    router = litellm.Router(
        model_list=[deployment("small", "openai/gpt-4o-mini"), deployment("large", "openai/gpt-4o")]
    )
    routed = route_litellm(router, {1: "small", 4: "large"}, optimizer=opt)

    reply = router.completion(model="aco", messages=ask("What is 2+2?"))
    print(f"What is 2+2? -> {reply.choices[0].message.content}")
    reply = await router.acompletion(model="aco", messages=ask("Fix the auth bug in production"))
    print(f"Fix the auth bug in production -> {reply.choices[0].message.content}")

    async with routed.run("Refactor the billing module", task_type="coding"):  # one run
        for step in ("plan the refactor", "write the patch"):
            await router.acompletion(model="aco", messages=ask(step))
    await routed.adrain()  # litellm logs in the background: let the last records land
    print(f"traces appended to {opt.trace_log.path}")


if __name__ == "__main__":
    asyncio.run(main())
