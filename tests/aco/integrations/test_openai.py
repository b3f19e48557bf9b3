"""The OpenAI wrapper against the real SDK over an httpx MockTransport (no network)."""

import asyncio
import json
from pathlib import Path

import httpx
import openai
import pytest

from aco.config import ACOConfig
from aco.integrations.openai import RoutedOpenAI
from aco.optimizer import ACOOptimizer
from aco.prices import load_price_snapshot
from aco_lab.traces.reading import read_traces

MODELS = {1: "gpt-4o-mini", 4: "gpt-4o"}
USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 30,
    "total_tokens": 150,
    "prompt_tokens_details": {"cached_tokens": 20},
}


def _reply(body: dict) -> httpx.Response:
    if body.get("stream"):
        chunks = [
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}],
            }
            for w in ("4", ".")
        ]
        chunks.append(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": [],
                "usage": USAGE,
            }
        )
        data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(
            200, content=data.encode(), headers={"content-type": "text/event-stream"}
        )
    if body["messages"][-1]["content"] == "fail":
        return httpx.Response(400, json={"error": {"message": "bad request", "type": "x"}})
    return httpx.Response(
        200,
        json={
            "id": "r",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"answer from {body['model']}"},
                }
            ],
            "usage": USAGE,
        },
    )


class Server:
    """The fake API: records the bodies it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return _reply(self.bodies[-1])

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        return self(request)


@pytest.fixture
def opt(tmp_path: Path) -> ACOOptimizer:
    return ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)))


def _client(server: Server, opt: ACOOptimizer, async_: bool = False) -> RoutedOpenAI:
    if async_:
        http = httpx.AsyncClient(transport=httpx.MockTransport(server.handle_async))
        return RoutedOpenAI(openai.AsyncOpenAI(api_key="test", http_client=http), MODELS, opt)
    http = httpx.Client(transport=httpx.MockTransport(server))
    return RoutedOpenAI(openai.OpenAI(api_key="test", http_client=http, max_retries=0), MODELS, opt)


def _traces(opt: ACOOptimizer) -> list[dict]:
    return [json.loads(t) for t in opt.trace_log.path.read_text().splitlines()]


def _ask(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


@pytest.mark.parametrize(
    ("request_text", "model"),
    [("What is 2+2?", "gpt-4o-mini"), ("Fix the auth bug in production", "gpt-4o")],
)
def test_create_routes_and_records_usage(opt, request_text: str, model: str) -> None:
    server = Server()
    reply = _client(server, opt).chat.completions.create(messages=_ask(request_text))
    assert server.bodies[0]["model"] == model and reply.choices[0].message.content.endswith(model)
    trace = _traces(opt)[0]
    call = trace["steps"][0]["model_call"]
    assert (
        call["model_id"],
        call["input_tokens"],
        call["output_tokens"],
        call["cached_input_tokens"],
    ) == (model, 120, 30, 20)
    assert call["cost"] == pytest.approx(load_price_snapshot().find(model).cost(120, 30, 20))
    assert trace["metadata"]["cost_sources"] == {"steps[0].model_call.cost": "price_snapshot"}
    assert trace["request"] == request_text and trace["task_success"] is None


def test_calls_join_the_current_run(opt) -> None:
    client = _client(Server(), opt)
    opt.start_run("Fix the auth bug in production")
    client.chat.completions.create(messages=_ask("first look"))
    client.chat.completions.create(model="gpt-4o-mini", messages=_ask("summarize the log"))
    trace = opt.end_run(True)
    assert [s["model_call"]["model_id"] for s in trace["steps"]] == ["gpt-4o", "gpt-4o-mini"]
    assert [s["model_call"]["tier"] for s in trace["steps"]] == [4, 1]


def test_streaming_records_when_the_stream_ends(opt) -> None:
    server = Server()
    stream = _client(server, opt).chat.completions.create(
        messages=_ask("What is 2+2?"), stream=True
    )
    assert not opt.trace_log.path.exists()
    assert "".join(c.choices[0].delta.content for c in stream if c.choices) == "4."
    assert server.bodies[0]["stream_options"] == {"include_usage": True}
    assert _traces(opt)[0]["steps"][0]["model_call"]["output_tokens"] == 30


def test_async_client(opt) -> None:
    client = _client(Server(), opt, async_=True)

    async def main() -> None:
        await asyncio.gather(
            *(client.chat.completions.create(messages=_ask(f"What is {i}+1?")) for i in range(3))
        )
        stream = await client.chat.completions.create(messages=_ask("hi"), stream=True)
        assert [c async for c in stream]

    asyncio.run(main())
    tables = read_traces(opt.config.trace_dir, strict=True)
    assert tables.runs.height == 4 and not tables.rejected and not tables.warnings


def test_a_failed_call_ends_its_run_as_failed(opt) -> None:
    with pytest.raises(openai.BadRequestError):
        _client(Server(), opt).chat.completions.create(messages=_ask("fail"))
    trace = _traces(opt)[0]
    assert (trace["final_outcome"], trace["task_success"], trace["steps"]) == ("failed", False, [])


def test_other_attributes_are_the_clients(opt) -> None:
    client = _client(Server(), opt)
    assert client.api_key == "test" and client.chat.completions.with_raw_response is not None
