"""Traces built in code for the controls' tests: one dict per run, read back by read_traces."""

import gzip
import json
import random
from pathlib import Path

from aco_lab.traces.reading import TraceTables, read_traces


def step(
    num: int,
    tier: int | None = 1,
    cost: float = 0.01,
    model: str | None = None,
    tools: tuple = (),
    verified: bool | None = None,
    text: str | None = None,
    input_tokens: int | None = 100,
    logprobs: tuple[float, float] | None = None,
) -> dict:
    """One step: a model call (unless tier is None), tool calls (name, success, cost), a check."""
    out: dict = {
        "step_num": num,
        "tool_calls": [{"tool_name": n, "success": ok, "cost": c} for n, ok, c in tools],
    }
    if tier is not None:
        call = {
            "model_id": model or f"model-{tier}",
            "tier": tier,
            "cost": cost,
            "input_tokens": input_tokens,
            "output_tokens": 10,
        }
        if text is not None:
            call["output_text"] = text
        if logprobs is not None:
            call["mean_logprob"], call["min_logprob"] = logprobs
        out["model_call"] = call
    out["verifier_called"] = verified is not None
    if verified is not None:
        out["verifier_passed"] = verified
    return out


def run(
    trace_id: str,
    steps: list[dict],
    success: bool | None,
    request_id: str | None = None,
    task_type: str | None = "qa",
    outcome: str = "completed",
    request: str = "Q?",
) -> dict:
    """One run; total_cost is the sum of its calls."""
    total = sum(
        (s.get("model_call") or {}).get("cost", 0.0) + sum(t["cost"] for t in s["tool_calls"])
        for s in steps
    )
    return {
        "trace_id": trace_id,
        "request_id": request_id or trace_id,
        "request": request,
        "task_type": task_type,
        "steps": steps,
        "final_outcome": outcome,
        "task_success": success,
        "total_cost": total,
    }


def tables_of(tmp_path: Path, runs: list[dict], name: str = "traces.jsonl") -> TraceTables:
    """Write the runs as JSONL and read them back through the real loader."""
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in runs), encoding="utf-8")
    return read_traces([path])


def agreement_world(n: int, seed: int, cheap_accuracy: float = 0.7) -> list[dict]:
    """Multiple-choice requests answered by two cheap models and a top one (counterfactual).

    A cheap model is right with `cheap_accuracy`, else picks a wrong letter at random, so two
    cheap answers that agree are almost always right; the top model is right 95% of the time.
    """
    rng = random.Random(seed)
    models = (
        ("cheap-a", 1, 0.001, cheap_accuracy),
        ("cheap-b", 2, 0.002, cheap_accuracy),
        ("top", 5, 0.02, 0.95),
    )
    runs = []
    for i in range(n):
        truth = rng.choice("ABCD")
        for model, tier, cost, accuracy in models:
            right = rng.random() < accuracy
            letter = truth if right else rng.choice([c for c in "ABCD" if c != truth])
            runs.append(
                run(
                    f"r{i}-{model}",
                    [step(1, tier, cost, model, text=letter + "\n")],
                    right,
                    request_id=f"r{i}",
                    task_type="mc",
                )
            )
    return runs


def replay_decisions_independently(decisions: Path, traces: list[Path]) -> tuple[int, float, int]:
    """Success and cost of decisions.jsonl recomputed with plain json over the raw traces."""
    runs = {}
    for path in traces:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for text in lines:
                t = json.loads(text)
                tiers = [s["model_call"]["tier"] for s in t["steps"] if s.get("model_call")]
                models = [s["model_call"]["model_id"] for s in t["steps"] if s.get("model_call")]
                runs[t["trace_id"]] = (
                    t["request_id"],
                    models[-1],
                    max(tiers),
                    t["total_cost"],
                    t["task_success"],
                )
    successes, cost, calls = 0, 0.0, 0
    with open(decisions, encoding="utf-8") as lines:
        for text in lines:
            d = json.loads(text)
            called = [runs[tid] for tid in d["trace_ids"]]
            assert all(r[0] == d["request_id"] for r in called)
            assert [r[2] for r in called] == d["tiers"]
            assert [r[1] for r in called] == d["models"]
            final = [r for r in called if r[1] == d["final_model"]]
            assert len(final) == 1 and final[0][2] == d["final_tier"]
            successes += bool(final[0][4])
            cost += sum(r[3] for r in called)
            calls += len(called)
    return successes, cost, calls
