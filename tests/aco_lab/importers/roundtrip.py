"""Trace-format-v1 runs to write out as other tools' exports, and what must survive the trip."""

from datetime import UTC, datetime, timedelta

T0 = datetime(2025, 12, 4, 9, 0, tzinfo=UTC)
TIERS = {"gpt-4o-mini": 1, "gpt-4o": 4, "claude-sonnet-4-5": 5}


def call(
    model: str,
    tier: int,
    tokens_in: int,
    tokens_out: int,
    cost: float | None,
    cached: int | None = None,
) -> dict:
    return {
        "model_id": model,
        "tier": tier,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cached_input_tokens": cached,
        "cost": cost,
    }


def tool(name: str, success: bool) -> dict:
    return {"tool_name": name, "success": success, "cost": 0.0}


def step(n: int, model_call: dict, *tools: dict) -> dict:
    return {"step_num": n, "model_call": model_call, "tool_calls": list(tools)}


# cost None: the export has no cost for the call, so the import prices it from the snapshot.
RUNS = [
    {
        "trace_id": "run-ok",
        "request": "Why do users see login errors?",
        "task_success": True,
        "final_outcome": "completed",
        "steps": [
            step(
                1,
                call("gpt-4o-mini", 1, 1200, 85, 0.00025, cached=1024),
                tool("search_docs", True),
                tool("status_page", False),
            ),
            step(2, call("gpt-4o", 4, 1800, 240, 0.0069)),
        ],
    },
    {
        "trace_id": "run-unpriced",
        "request": "Summarize the incident report",
        "task_success": None,
        "final_outcome": "completed",
        "steps": [
            step(1, call("claude-sonnet-4-5", 5, 3000, 400, None), tool("fetch_report", True))
        ],
    },
    {
        "trace_id": "run-failed",
        "request": "Refund order 1234",
        "task_success": False,
        "final_outcome": "failed",
        "steps": [step(1, call("gpt-4o", 4, 900, 60, 0.00285), tool("refund", False))],
    },
]


def events(run: dict):
    """(seconds after T0, kind, step, payload) in the order the run made them."""
    t = 0
    for s in run["steps"]:
        t += 1
        yield t, "call", s, s["model_call"]
        for item in s["tool_calls"]:
            t += 1
            yield t, "tool", s, item


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def comparable(trace: dict) -> tuple:
    """What an import must keep of a run: request, outcome, every call and tool call."""
    steps = tuple(
        (
            s["model_call"]["model_id"],
            s["model_call"]["tier"],
            s["model_call"]["input_tokens"],
            s["model_call"]["output_tokens"],
            s["model_call"]["cached_input_tokens"],
            tuple((t["tool_name"], t["success"]) for t in s["tool_calls"]),
        )
        for s in trace["steps"]
    )
    return trace["trace_id"], trace["request"], trace["final_outcome"], trace["task_success"], steps
