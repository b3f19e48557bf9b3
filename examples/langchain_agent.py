"""A LangChain tool-calling agent whose chat model ACO routes, with every call traced.

Runs anywhere, with no network and no key: the chat models are langchain-core's own
GenericFakeChatModel, scripted to ask for a tool and then answer, and report usage as a real
provider would. Swap them for ChatOpenAI(model="gpt-4o-mini") and ChatOpenAI(model="gpt-4o")
(or any chat models) and nothing else changes.

    pip install 'aco[langchain]'
    python examples/langchain_agent.py        # traces in ./traces; then: aco-lab validate traces

The agent is one runnable; passing ACOCallbackHandler in its config makes each invocation one
ACO run: the routed model calls (tokens, priced cost) and the tool calls (a failure included).
"""

from __future__ import annotations

import itertools

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import ToolException, tool

from aco.config import ACOConfig
from aco.integrations.langchain import ACOCallbackHandler, ACOChatModel
from aco.optimizer import ACOOptimizer


@tool
def search_docs(query: str) -> str:
    """Search the product documentation."""
    return f"3 pages match {query!r}"


@tool
def status_page(service: str) -> str:
    """Read a service's status page."""
    raise ToolException(f"{service}: status page timed out")


status_page.handle_tool_error = True  # the error goes back to the model as a ToolMessage


def scripted_model(model_name: str) -> GenericFakeChatModel:
    """A fake chat model: asks for both tools, then answers; usage as a provider reports it."""
    usage = {"input_tokens": 420, "output_tokens": 60, "total_tokens": 480}
    meta = {"model_name": model_name}
    ask = AIMessage(
        "",
        usage_metadata=usage,
        response_metadata=meta,
        tool_calls=[
            {"name": "search_docs", "args": {"query": "login errors"}, "id": "call_1"},
            {"name": "status_page", "args": {"service": "auth"}, "id": "call_2"},
        ],
    )
    answer = AIMessage(
        f"[{model_name}] Here is what I found.", usage_metadata=usage, response_metadata=meta
    )
    return GenericFakeChatModel(messages=itertools.cycle([ask, answer]))


TOOLS = {t.name: t for t in (search_docs, status_page)}


def build_agent(model: ACOChatModel) -> RunnableLambda:
    """A minimal tool-calling loop: call the model, run the tools it asks for, until it answers."""

    def agent(question: str) -> str:
        messages: list[BaseMessage] = [HumanMessage(question)]
        for _ in range(5):
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                return reply.content
            messages += [TOOLS[call["name"]].invoke(call) for call in reply.tool_calls]
        return "gave up"

    return RunnableLambda(agent, name="support_agent")


def main() -> None:
    """Answer three questions with the routed agent; traces go to ./traces."""
    opt = ACOOptimizer(ACOConfig(trace_dir="traces"))
    model = ACOChatModel(
        models={1: scripted_model("gpt-4o-mini"), 4: scripted_model("gpt-4o")}, optimizer=opt
    )
    agent = build_agent(model)
    handler = ACOCallbackHandler(opt)
    for question in (
        "What is 2+2?",
        "Why do users see login errors? Fix the auth bug",
        "Summarize the login docs",
    ):
        print(f"{question} -> {agent.invoke(question, config={'callbacks': [handler]})}")
    print(f"traces appended to {opt.trace_log.path}")


if __name__ == "__main__":
    main()
