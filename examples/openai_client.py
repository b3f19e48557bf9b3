"""The OpenAI SDK with ACO choosing the model of each chat completion, every call traced.

Runs with no network and no key: the real ``openai`` client talks to an ``httpx.MockTransport``
that answers like the Chat Completions API (usage included). Drop ``http_client=`` (and set
OPENAI_API_KEY) to talk to the real API; nothing else changes.

    pip install 'aco[openai]'
    python examples/openai_client.py          # traces in ./traces; then: aco-lab validate traces
"""

from __future__ import annotations

import json

import httpx
import openai

from aco.config import ACOConfig
from aco.integrations.openai import RoutedOpenAI
from aco.optimizer import ACOOptimizer


def fake_api(request: httpx.Request) -> httpx.Response:
    """A Chat Completions endpoint that names the model it was asked for."""
    body = json.loads(request.content)
    prompt_tokens = sum(len(str(m.get("content", ""))) // 4 + 4 for m in body["messages"])
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-local",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"[{body['model']}] done."},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 40,
                "total_tokens": prompt_tokens + 40,
            },
        },
    )


def main() -> None:
    """Route a few requests, and one run of two calls; traces go to ./traces."""
    opt = ACOOptimizer(ACOConfig(trace_dir="traces"))
    http = httpx.Client(transport=httpx.MockTransport(fake_api))
    client = RoutedOpenAI(
        openai.OpenAI(api_key="not-needed", http_client=http),
        {1: "gpt-4o-mini", 4: "gpt-4o"},
        optimizer=opt,
    )
    for question in ("What is 2+2?", "Fix the auth bug in production"):
        reply = client.chat.completions.create(messages=[{"role": "user", "content": question}])
        print(f"{question} -> {reply.choices[0].message.content}")

    opt.start_run("Refactor the billing module", task_type="coding")  # one run, two calls
    for step in ("plan the refactor", "write the patch"):
        client.chat.completions.create(messages=[{"role": "user", "content": step}])
    opt.end_run(success=None)  # the outcome comes later: opt.record_outcome(trace_id, True)
    print(f"traces appended to {opt.trace_log.path}")


if __name__ == "__main__":
    main()
