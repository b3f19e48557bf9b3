"""Replay a cascade on held-out counterfactual traces, every call paid, one decision per request.

The learned cascade is replayed through the runtime's own `aco.cascade.CascadePolicy`: for
each request the policy asks for a tier, the tier's recorded answer is handed back, and so
on until it accepts one. Each request gives one decision line (`decisions.jsonl`):

    {"request_id": ..., "task_type": ..., "tiers": [1, 2, 5], "models": [...],
     "trace_ids": [...], "final_tier": 5, "final_model": ..., "success": true,
     "cost": 0.0061, "reason": "..."}

`tiers` lists every tier called, in order (`models` and `trace_ids` name each call's model
and run); `cost` is the sum of those runs' total_cost and `success` the task_success of the
run of `final_model`, so anyone can recompute the figures from the raw traces. The
baselines (rule cascade, agreement cascade, single models) are replayed the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aco.cascade import ACCEPT, Answer, CascadePolicy, answer_key
from aco.config import ACOConfig
from aco.controls import read_answer_signals
from aco.errors import ACOError
from aco_lab.controls.cascade_data import CascadeData
from aco_lab.files import atomic_file

MAX_STEPS = 10  # a cascade asking for more tiers than this is a bug, not a policy


@dataclass(frozen=True, slots=True)
class CascadeDecisionLine:
    """What a cascade did with one request: tiers called in order, the tier accepted, outcome."""

    request_id: str
    task_type: str | None
    tiers: tuple[int, ...]  # every tier called, in order
    models: tuple[str, ...]  # the model of each call
    trace_ids: tuple[str, ...]  # the run of each call in the traces
    final_tier: int
    final_model: str
    success: bool
    cost: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The decisions.jsonl object of this line."""
        return {
            "request_id": self.request_id,
            "task_type": self.task_type,
            "tiers": list(self.tiers),
            "models": list(self.models),
            "trace_ids": list(self.trace_ids),
            "final_tier": self.final_tier,
            "final_model": self.final_model,
            "success": self.success,
            "cost": self.cost,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class CascadeSummary:
    """A replayed cascade's totals, and the top model's on the same requests."""

    name: str
    requests: int
    successes: int
    cost: float  # USD, every call paid
    top_successes: int
    top_cost: float
    calls_per_request: float
    escalation_rate: float  # share of requests that called more than one tier

    @property
    def success_ratio(self) -> float:
        """Successes as a share of the top tier's on the same requests."""
        return self.successes / self.top_successes if self.top_successes else math.nan

    @property
    def cost_ratio(self) -> float:
        """Cost as a share of the top tier's on the same requests."""
        return self.cost / self.top_cost if self.top_cost else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain figures (for --json and reports)."""
        return {
            "name": self.name,
            "requests": self.requests,
            "successes": self.successes,
            "cost": round(self.cost, 6),
            "top_successes": self.top_successes,
            "top_cost": round(self.top_cost, 6),
            "success_ratio": round(self.success_ratio, 4),
            "cost_ratio": round(self.cost_ratio, 4),
            "calls_per_request": round(self.calls_per_request, 3),
            "escalation_rate": round(self.escalation_rate, 4),
        }


# A cascade under replay: (data, row, answers so far) -> (accept?, model, reason).
Chooser = Callable[[CascadeData, int, Sequence[Answer]], tuple[bool, str, str]]


def replay(
    name: str, data: CascadeData, choose: Chooser
) -> tuple[list[CascadeDecisionLine], CascadeSummary]:
    """Run a cascade over every request whose answers it asks for were recorded."""
    lines = []
    for row in range(data.n_requests):
        line = _replay_one(data, row, choose)
        if line is not None:
            lines.append(line)
    return lines, summarize(name, data, lines)


def _replay_one(data: CascadeData, row: int, choose: Chooser) -> CascadeDecisionLine | None:
    answers: list[Answer] = []
    models: list[str] = []
    traces, cost = [], 0.0
    for _ in range(MAX_STEPS):
        accept, model, reason = choose(data, row, answers)
        j = data.col(model)
        if accept:
            return CascadeDecisionLine(
                data.request_ids[row],
                data.task_types[row],
                tuple(data.tier_of(m) for m in models),
                tuple(models),
                tuple(traces),
                data.option_tiers[j],
                model,
                bool(data.success[row, j] == 1.0),
                cost,
                reason,
            )
        if np.isnan(data.success[row, j]) or model in models:
            return None  # asks for an answer this request has no run of (or again)
        models.append(model)
        traces.append(data.trace_ids[row][j])
        cost += float(data.cost[row, j])
        answers.append(data.answer(row, model))
    raise ACOError(
        f"cascade replay: request {data.request_ids[row]}: more than {MAX_STEPS} "
        f"calls; the cascade does not stop"
    )


def summarize(name: str, data: CascadeData, lines: Sequence[CascadeDecisionLine]) -> CascadeSummary:
    """Totals of replayed decisions against the top model on the same requests."""
    rows = {rid: i for i, rid in enumerate(data.request_ids)}
    idx = np.array([rows[line.request_id] for line in lines], dtype=int)
    top = data.col(data.top)
    n = len(lines)
    return CascadeSummary(
        name=name,
        requests=n,
        successes=sum(line.success for line in lines),
        cost=math.fsum(line.cost for line in lines),
        top_successes=int(np.nansum(data.success[idx, top])) if n else 0,
        top_cost=float(np.nansum(data.cost[idx, top])) if n else 0.0,
        calls_per_request=sum(len(line.tiers) for line in lines) / n if n else 0.0,
        escalation_rate=sum(len(line.tiers) > 1 for line in lines) / n if n else 0.0,
    )


def learned_chooser(spec: Mapping[str, Any]) -> Chooser:
    """The learned cascade, through the runtime's CascadePolicy."""
    policy = CascadePolicy(spec)

    def choose(data: CascadeData, row: int, answers: Sequence[Answer]) -> tuple[bool, str, str]:
        step = policy.step(data.task_types[row], answers)
        return step.action == ACCEPT, step.model_id, step.reason

    return choose


def tier_models(data: CascadeData, config: ACOConfig) -> dict[int, str]:
    """The option standing for each tier: the config's model when it ran, else the first."""
    out: dict[int, str] = {}
    for model, tier in zip(data.options, data.option_tiers, strict=True):
        configured = next((s.model_id for s in config.tiers if s.tier == tier), None)
        if model == configured or tier not in out:
            out[tier] = model
    return out


def rules_chooser(data: CascadeData, config: ACOConfig, first_tier: int = 1) -> Chooser:
    """The runtime's rule cascade: start cheap, escalate a tier while its confidence is low."""
    from aco.controls import Controls

    controls = Controls(config)
    models = tier_models(data, config)

    def choose(data: CascadeData, row: int, answers: Sequence[Answer]) -> tuple[bool, str, str]:
        if not answers:
            tier = min((t for t in models if t >= first_tier), default=max(models))
            return False, models[tier], "rules: start"
        last = answers[-1]
        decision = controls.cascade(
            read_answer_signals(None, last.text), last.tier, retries_used=len(answers) - 1
        )
        tier = decision.final_tier if decision.final_tier in models else last.tier
        return not decision.escalated or tier == last.tier, models[tier], decision.reason

    return choose


def agreement_chooser(cheap: Sequence[str], fallback: str) -> Chooser:
    """A crude agreement cascade, blind to task type: accept when all cheap answers agree."""

    def choose(data: CascadeData, row: int, answers: Sequence[Answer]) -> tuple[bool, str, str]:
        called = [a.model_id for a in answers]
        if fallback in called:
            return True, fallback, "agreement: fallback answer"
        if len(answers) < len(cheap):
            return False, cheap[len(answers)], "agreement: ask the next cheap model"
        keys = {answer_key(a.text) for a in answers}
        if len(keys) == 1 and None not in keys:
            return True, called[-1], "agreement: cheap answers agree"
        return False, fallback, "agreement: cheap answers disagree"

    return choose


def per_task_type_chooser(choice: Mapping[str, str]) -> Chooser:
    """One model per task type (the "*" entry for others), no cascade: the baseline to beat."""

    def choose(data: CascadeData, row: int, answers: Sequence[Answer]) -> tuple[bool, str, str]:
        model = choice.get(data.task_types[row] or "") or choice["*"]
        return (True, model, "per task type") if answers else (False, model, "per task type")

    return choose


def single_chooser(model: str) -> Chooser:
    """Every request answered by one model."""

    def choose(data: CascadeData, row: int, answers: Sequence[Answer]) -> tuple[bool, str, str]:
        return (True, model, f"{model} only") if answers else (False, model, "single model")

    return choose


def write_decisions(lines: Sequence[CascadeDecisionLine], path: str | Path) -> Path:
    """Write decisions.jsonl atomically (temp file + rename)."""
    with atomic_file(path) as out:
        for line in lines:
            out.write((json.dumps(line.to_json(), ensure_ascii=False) + "\n").encode())
    return Path(path)
