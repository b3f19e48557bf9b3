"""ACO inside the stacks agents already use: LangChain, LiteLLM and the OpenAI SDK.

Each module imports its library only when one of its classes is used, so `import aco` stays
thin; install the library with its extra (``pip install aco[langchain]``, ``aco[litellm]``,
``aco[openai]``). Every integration routes each request to a tier, records the calls (tokens,
cost, tool calls) into an ACO run and leaves a trace-format-v1 trace in the optimizer's trace
directory. Calls join the caller's current run (``opt.start_run`` in this thread or asyncio
task) when one is open; otherwise each top-level call is a run of its own, ended with an
unknown outcome (label it later: ``opt.record_outcome``). docs/integrations.md.
"""
