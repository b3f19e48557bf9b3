"""The LiteLLM integration against the real litellm.Router with mock_response (no network)."""

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no fetch at import
litellm = pytest.importorskip("litellm")

from aco.config import ACOConfig  # noqa: E402
from aco.errors import ACOError  # noqa: E402
from aco.integrations.litellm import ACOLogger, route_litellm  # noqa: E402
from aco.optimizer import ACOOptimizer  # noqa: E402
from aco_lab.traces.reading import read_traces  # noqa: E402


def _deployment(group: str, model: str, reply: object = "ok") -> dict:
    return {
        "model_name": group,
        "litellm_params": {"model": model, "api_key": "test", "mock_response": reply},
    }


@pytest.fixture
def opt(tmp_path: Path) -> ACOOptimizer:
    return ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)))


@pytest.fixture(autouse=True)
def no_callbacks_left():
    """Each test starts and ends with litellm's callback lists empty."""
    lists = (
        "callbacks",
        "input_callback",
        "success_callback",
        "failure_callback",
        "_async_success_callback",
        "_async_failure_callback",
    )
    for name in lists:
        setattr(litellm, name, [])
    yield
    for name in lists:
        setattr(litellm, name, [])


@pytest.fixture
def router():
    return litellm.Router(
        model_list=[
            _deployment("small", "openai/gpt-4o-mini"),
            _deployment("large", "openai/gpt-4o"),
        ]
    )


def _ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _traces(opt: ACOOptimizer) -> list[dict]:
    return [json.loads(t) for t in opt.trace_log.path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("question", "model"),
    [("What is 2+2?", "gpt-4o-mini"), ("Fix the auth bug in production", "gpt-4o")],
)
def test_sync_completion_is_routed_and_logged(opt, router, question: str, model: str) -> None:
    routed = route_litellm(router, {1: "small", 4: "large"}, optimizer=opt)
    reply = router.completion(model="aco", messages=_ask(question))
    assert reply.model == model
    assert routed.drain()
    [trace] = _traces(opt)
    call = trace["steps"][0]["model_call"]
    assert (call["model_id"], call["input_tokens"], call["output_tokens"]) == (
        model,
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    assert call["cost"] == pytest.approx(reply._hidden_params["response_cost"])
    assert trace["metadata"]["cost_sources"] == {"steps[0].model_call.cost": "reported"}


def test_async_calls_and_a_run_of_several_calls(opt, router) -> None:
    routed = route_litellm(router, {1: "small", 4: "large"}, optimizer=opt)

    async def main() -> None:
        await asyncio.gather(
            *(router.acompletion(model="aco", messages=_ask(f"What is {i}+1?")) for i in range(3))
        )
        async with routed.run("Fix the auth bug in production") as run:
            for step in ("read the logs", "write the patch"):
                await router.acompletion(model="aco", messages=_ask(step))
            assert routed.strategy.open_calls.pending(run) <= 2
        await routed.adrain()

    asyncio.run(main())
    traces = _traces(opt)
    several = [t for t in traces if t["request"] == "Fix the auth bug in production"]
    assert len(traces) == 4 and len(several) == 1
    assert [s["model_call"]["model_id"] for s in several[0]["steps"]] == ["gpt-4o", "gpt-4o"]
    tables = read_traces(opt.config.trace_dir, strict=True)
    assert tables.runs.height == 4 and not tables.rejected and not tables.warnings


def test_a_failed_call_ends_its_run_as_failed(opt) -> None:
    router = litellm.Router(
        model_list=[_deployment("small", "openai/gpt-4o-mini", Exception("provider down"))],
        num_retries=0,
    )
    routed = route_litellm(router, {1: "small"}, optimizer=opt)
    with pytest.raises(Exception, match="provider down"):
        router.completion(model="aco", messages=_ask("What is 2+2?"))
    assert routed.drain()
    [trace] = _traces(opt)
    assert (trace["final_outcome"], trace["task_success"], trace["steps"]) == ("failed", False, [])


def test_the_logger_alone_records_calls_it_did_not_route(opt) -> None:
    litellm.callbacks = [ACOLogger(opt)]
    litellm.completion(
        model="openai/gpt-4o-mini", api_key="test", mock_response="4", messages=_ask("What is 2+2?")
    )
    for _ in range(500):  # litellm logs sync calls from a thread
        if opt.trace_log.path.exists():
            break
        time.sleep(0.01)
    [trace] = _traces(opt)
    assert trace["steps"][0]["model_call"]["model_id"] == "gpt-4o-mini"


def test_an_unknown_model_group_is_refused(opt, router) -> None:
    with pytest.raises(ACOError, match="model group 'huge' is not in the router's model list"):
        route_litellm(router, {1: "small", 5: "huge"}, optimizer=opt)
