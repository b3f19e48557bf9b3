"""The LangChain integration against langchain-core's own fake chat models (no network)."""

import asyncio
import itertools
import json
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import ToolException, tool

from aco.config import ACOConfig
from aco.errors import ACOError
from aco.integrations.langchain import ACOCallbackHandler, ACOChatModel
from aco.optimizer import ACOOptimizer
from aco.prices import load_price_snapshot
from aco_lab.traces.reading import read_traces

USAGE = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
PROMPT = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{question}")])


def fake(name: str, *replies: AIMessage) -> GenericFakeChatModel:
    default = AIMessage(
        f"{name} answers", usage_metadata=USAGE, response_metadata={"model_name": name}
    )
    return GenericFakeChatModel(messages=itertools.cycle(replies or [default]))


@pytest.fixture
def opt(tmp_path: Path) -> ACOOptimizer:
    return ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)))


@pytest.fixture
def model(opt: ACOOptimizer) -> ACOChatModel:
    return ACOChatModel(models={1: fake("gpt-4o-mini"), 4: fake("gpt-4o")}, optimizer=opt)


def _traces(opt: ACOOptimizer) -> list[dict]:
    if not opt.trace_log.path.exists():
        return []
    return [json.loads(t) for t in opt.trace_log.path.read_text().splitlines()]


def _models(trace: dict) -> list[str]:
    return [s["model_call"]["model_id"] for s in trace["steps"] if s["model_call"]]


@pytest.mark.parametrize(
    ("question", "model_id"),
    [("What is 2+2?", "gpt-4o-mini"), ("Fix the auth bug in production", "gpt-4o")],
)
def test_a_chain_used_as_documented_is_routed_and_traced(opt, model, question, model_id) -> None:
    answer = (PROMPT | model | StrOutputParser()).invoke({"question": question})
    assert answer == f"{model_id} answers"
    [trace] = _traces(opt)
    call = trace["steps"][0]["model_call"]
    assert (trace["request"], call["model_id"], call["input_tokens"], call["output_tokens"]) == (
        question,
        model_id,
        100,
        20,
    )
    assert call["cost"] == pytest.approx(load_price_snapshot().find(model_id).cost(100, 20))
    assert trace["metadata"]["cost_sources"] == {"steps[0].model_call.cost": "price_snapshot"}


def test_the_next_stronger_model_serves_a_tier_not_given(opt) -> None:
    model = ACOChatModel(models={3: fake("medium"), 5: fake("top")}, optimizer=opt)
    assert model.select("What is 2+2?")[0] == 3
    assert model.invoke("Fix the auth bug in production").content == "top answers"
    with pytest.raises(ACOError, match="keys are tiers 1..5"):
        ACOChatModel(models={"gpt-4o": fake("x")}, optimizer=opt)


def test_batch_stream_and_async(opt, model) -> None:
    chain = PROMPT | model | StrOutputParser()
    questions = [{"question": "What is 2+2?"}, {"question": "Fix the auth bug in production"}]
    assert chain.batch(questions) == ["gpt-4o-mini answers", "gpt-4o answers"]
    assert "".join(chain.stream(questions[0])) == "gpt-4o-mini answers"

    async def main() -> list:
        answers = await chain.abatch(questions)
        streamed = [c async for c in chain.astream(questions[1])]
        return [*answers, "".join(streamed)]

    assert asyncio.run(main()) == ["gpt-4o-mini answers", "gpt-4o answers", "gpt-4o answers"]
    traces = _traces(opt)
    assert len(traces) == 6
    tiers = sorted((t["request"], t["steps"][0]["model_call"]["tier"]) for t in traces)
    assert tiers == [("Fix the auth bug in production", 4)] * 3 + [("What is 2+2?", 1)] * 3
    # A streamed fake reports no usage: the call is recorded, its cost unpriced.
    sources = [t["metadata"]["cost_sources"]["steps[0].model_call.cost"] for t in traces]
    assert sorted(sources) == ["price_snapshot"] * 4 + ["unpriced"] * 2
    tables = read_traces(opt.config.trace_dir, strict=True)
    assert tables.runs.height == 6 and not tables.rejected and not tables.warnings


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return "found"


@tool
def broken(query: str) -> str:
    """Always fails."""
    raise ToolException("down")


broken.handle_tool_error = True


def _agent(model: ACOChatModel) -> RunnableLambda:
    tools = {"lookup": lookup, "broken": broken}

    def agent(question: str) -> str:
        messages = [HumanMessage(question)]
        while True:
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                return reply.content
            messages += [tools[c["name"]].invoke(c) for c in reply.tool_calls]

    return RunnableLambda(agent)


def _tool_model(name: str) -> GenericFakeChatModel:
    ask = AIMessage(
        "",
        usage_metadata=USAGE,
        response_metadata={"model_name": name},
        tool_calls=[
            {"name": "lookup", "args": {"query": "q"}, "id": "1"},
            {"name": "broken", "args": {"query": "q"}, "id": "2"},
        ],
    )
    return fake(
        name, ask, AIMessage("done", usage_metadata=USAGE, response_metadata={"model_name": name})
    )


def test_the_handler_makes_an_agent_invocation_one_run(opt) -> None:
    model = ACOChatModel(models={1: _tool_model("gpt-4o-mini")}, optimizer=opt)
    handler = ACOCallbackHandler(opt)
    assert _agent(model).invoke("What is 2+2?", config={"callbacks": [handler]}) == "done"
    [trace] = _traces(opt)
    assert _models(trace) == ["gpt-4o-mini", "gpt-4o-mini"]
    assert trace["steps"][0]["tool_calls"][0]["tool_name"] == "lookup"
    assert [(t["tool_name"], t["success"]) for t in trace["steps"][0]["tool_calls"]] == [
        ("lookup", True),
        ("broken", False),
    ]
    assert trace["total_cost"] == pytest.approx(
        sum(s["model_call"]["cost"] for s in trace["steps"])
    )


def test_the_handler_records_plain_models_too(opt) -> None:
    handler = ACOCallbackHandler(opt)
    plain = fake("gpt-4o-mini")
    plain.invoke("What is 2+2?", config={"callbacks": [handler]})
    [trace] = _traces(opt)
    assert _models(trace) == ["gpt-4o-mini"] and trace["steps"][0]["model_call"]["tier"] == 1


def test_a_failing_invocation_ends_its_run_as_failed(opt) -> None:
    def explode(question: str) -> str:
        raise RuntimeError("agent crashed")

    with pytest.raises(RuntimeError):
        RunnableLambda(explode).invoke(
            "What is 2+2?", config={"callbacks": [ACOCallbackHandler(opt)]}
        )
    assert _traces(opt) == []  # nothing was called: no run was opened
    model = ACOChatModel(models={1: fake("gpt-4o-mini")}, optimizer=opt)

    def call_then_explode(question: str) -> str:
        model.invoke(question)
        raise RuntimeError("agent crashed")

    with pytest.raises(RuntimeError):
        RunnableLambda(call_then_explode).invoke(
            "What is 2+2?", config={"callbacks": [ACOCallbackHandler(opt)]}
        )
    [trace] = _traces(opt)
    assert (trace["final_outcome"], trace["task_success"]) == ("failed", False)


def test_calls_join_the_current_run(opt, model) -> None:
    opt.start_run("Fix the auth bug in production")
    model.invoke("look at the logs")
    model.invoke("write the patch")
    trace = opt.end_run(True)
    assert _models(trace) == ["gpt-4o", "gpt-4o"] and len(_traces(opt)) == 1
