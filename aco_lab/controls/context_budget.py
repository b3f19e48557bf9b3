"""Learn the context budget: input tokens per task type and tier, what to keep, what to drop.

- **Budget**: per task type and tier, the `quantile` of the largest input (prompt) of any call
  in *successful* runs: what a run that succeeded needed. Cells with fewer than `min_runs`
  successful runs fall back to the tier over all task types, then to all runs.
- **Keep exact** (per task type): the final question always; code, error messages,
  identifiers and numbers, and constraints ("must", "at most", "under 200 words") when at
  least `min_prevalence` of the task type's requests contain them — rewording any of these
  changes the task.
- **Omit**: few-shot preambles where they are a large share of the prompt (`few_shot_share`
  measured per task type; the examples repeat the same instruction the final question
  carries), and old tool output where the prompt grows with the steps of a run (the growth per
  step is measured: a run carrying every earlier tool result pays for it at every later call).

The evidence behind each choice is stored in the spec beside it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from aco.config import ACOConfig
from aco.errors import DataError
from aco.features import split_few_shot
from aco.learned_controls import ANY, KINDS, SPEC_VERSION, apply_context_budget, group_key
from aco.rules import build_context_budget, read_cues
from aco_lab.traces import schema as S
from aco_lab.traces.reading import TraceTables

CONSTRAINT_CUES = re.compile(
    r"\b(must|must not|should not|never|always|at (most|least)|no more than|under \d+|"
    r"within \d+|exactly|only|do not|don't|keep (it|the answer))\b",
    re.IGNORECASE,
)
NUMBER_CUES = re.compile(r"\b\d+(\.\d+)?\b")
MAX_INPUT = "max_input_tokens"


@dataclass(frozen=True, slots=True)
class ContextSettings:
    """How the context budget is learned."""

    quantile: float = 0.90  # of successful runs' largest prompt
    min_runs: int = 20  # successful runs a (task, tier) cell needs for its own budget
    min_prevalence: float = 0.10  # share of requests carrying an item before it is kept exact
    few_shot_omit_share: float = 0.30  # omit few-shot preambles above this share of the prompt
    growth_omit_tokens: float = 50.0  # omit old tool output when prompts grow this much per step


def build_run_inputs(tables: TraceTables) -> pl.DataFrame:
    """Per run with a tier: its largest prompt, prompt growth per step, outcome, request."""
    calls = tables.steps.filter(pl.col(S.INPUT_TOKENS).is_not_null())
    per_run = calls.group_by(S.TRACE_ID).agg(
        pl.col(S.INPUT_TOKENS).max().alias(MAX_INPUT),
        pl.col(S.INPUT_TOKENS).first().alias("_first"),
        pl.col(S.INPUT_TOKENS).last().alias("_last"),
        pl.len().alias("_calls"),
    )
    return (
        tables.runs.filter(pl.col(S.TIER).is_not_null())
        .select(S.TRACE_ID, S.REQUEST_ID, S.REQUEST, S.TASK_TYPE, S.TIER, S.TASK_SUCCESS)
        .join(per_run, on=S.TRACE_ID)
        .with_columns(
            ((pl.col("_last") - pl.col("_first")) / (pl.col("_calls") - 1).clip(1)).alias(
                "growth_per_step"
            )
        )
    )


def learn_context_budget(
    tables: TraceTables, settings: ContextSettings = ContextSettings()
) -> dict:
    """The learned context-budget spec (plain data) with the evidence for each choice."""
    runs = build_run_inputs(tables)
    ok = runs.filter(pl.col(S.TASK_SUCCESS).fill_null(False))
    if ok.is_empty():
        raise DataError("context budget: no successful run with input_tokens recorded")
    totals: dict[str, int] = {}
    for keys in ([S.TASK_TYPE, S.TIER], [S.TIER], []):
        grouped = ok.group_by(keys) if keys else ok.group_by(pl.lit(1))
        cells = grouped.agg(
            pl.col(MAX_INPUT).quantile(settings.quantile, "higher").alias("q"), pl.len().alias("n")
        )
        cells = cells.sort(keys) if keys else cells  # same data, same bytes: a stable order
        for rec in cells.iter_rows(named=True):
            if keys and rec["n"] < settings.min_runs:
                continue
            key = group_key(
                rec.get(S.TASK_TYPE) if S.TASK_TYPE in keys else None,
                rec.get(S.TIER) if S.TIER in keys else None,
            )
            totals[key] = int(math.ceil(rec["q"]))
    keep, omit, evidence = {}, {}, {}
    requests = runs.unique(S.REQUEST_ID).with_columns(pl.col(S.TASK_TYPE).fill_null(ANY))
    for name in sorted(set(requests[S.TASK_TYPE].to_list())) + [ANY]:
        part = requests if name == ANY else requests.filter(pl.col(S.TASK_TYPE) == name)
        steps = runs if name == ANY else runs.filter(pl.col(S.TASK_TYPE).fill_null(ANY) == name)
        ev = _evidence(part[S.REQUEST].to_list(), steps)
        evidence[name] = ev
        keep[name], omit[name] = _choose(ev, settings)
    return {
        "kind": KINDS["context_budget"],
        "version": SPEC_VERSION,
        "quantile": settings.quantile,
        "total_tokens": totals,
        "keep_exact": keep,
        "omit": omit,
        "evidence": evidence,
    }


def _evidence(requests: list[str], runs: pl.DataFrame) -> dict:
    items = {"code": 0, "error_messages": 0, "identifiers_and_numbers": 0, "constraints": 0}
    few_shot_chars, chars = 0, 0
    for text in requests:
        cues = read_cues(text)
        items["code"] += cues.has_code
        items["error_messages"] += cues.has_errors
        items["identifiers_and_numbers"] += cues.has_identifiers or bool(NUMBER_CUES.search(text))
        items["constraints"] += bool(CONSTRAINT_CUES.search(text))
        shots, start = split_few_shot(text.lower())
        few_shot_chars += start if shots else 0
        chars += len(text)
    n = max(len(requests), 1)
    multi = runs.filter(pl.col("_calls") > 1)
    growth = float(multi["growth_per_step"].median()) if multi.height else 0.0
    return {
        "requests": len(requests),
        "prevalence": {k: round(v / n, 4) for k, v in items.items()},
        "few_shot_share": round(few_shot_chars / chars, 4) if chars else 0.0,
        "multi_step_runs": multi.height,
        "growth_per_step": round(growth, 1),
    }


def _choose(ev: dict, settings: ContextSettings) -> tuple[list[str], list[str]]:
    keep = ["final_question"] + [
        k for k, v in ev["prevalence"].items() if v >= settings.min_prevalence
    ]
    omit = []
    if ev["few_shot_share"] >= settings.few_shot_omit_share:
        omit.append("few_shot_preamble")
    if ev["growth_per_step"] >= settings.growth_omit_tokens:
        omit.append("stale_tool_outputs")
    omit.append("greetings_and_chit_chat")  # never part of what a task needs
    return keep, omit


@dataclass(frozen=True, slots=True)
class ContextResult:
    """How a budget fits held-out runs."""

    name: str
    runs: int
    successful_runs: int
    covered_successes: int  # successful runs whose largest prompt fits the budget
    mean_allowance: float  # tokens per run
    mean_largest_prompt: float  # tokens per run, what runs used
    trimmed_share: float  # share of successful runs' prompt tokens above the budget

    def to_dict(self) -> dict:
        """Plain figures for reports."""
        return {
            "name": self.name,
            "runs": self.runs,
            "successful_runs": self.successful_runs,
            "coverage": round(self.covered_successes / self.successful_runs, 4)
            if self.successful_runs
            else None,
            "mean_allowance": round(self.mean_allowance, 1),
            "mean_largest_prompt": round(self.mean_largest_prompt, 1),
            "trimmed_share": round(self.trimmed_share, 5),
        }


def evaluate_context_budget(
    spec: dict, tables: TraceTables, config: ACOConfig
) -> list[ContextResult]:
    """The learned budgets and the rule budgets against held-out runs' prompts."""
    runs = build_run_inputs(tables)
    if runs.is_empty():
        raise DataError("context budget: the evaluation traces have no run with input_tokens")
    learned, rules = [], []
    for rec in runs.iter_rows(named=True):
        learned.append(apply_context_budget(spec, rec[S.TASK_TYPE], rec[S.TIER]).total_tokens)
        cues = read_cues(rec[S.REQUEST] or "", rec[S.TASK_TYPE])
        rules.append(build_context_budget(cues, rec[S.TIER]).total_tokens)
    largest = runs[MAX_INPUT].to_numpy().astype(float)
    ok = runs[S.TASK_SUCCESS].fill_null(False).to_numpy()
    return [
        _fit(name, np.array(allow, dtype=float), largest, ok)
        for name, allow in (("learned", learned), ("rules", rules))
    ]


def _fit(name: str, allowance: np.ndarray, largest: np.ndarray, ok: np.ndarray) -> ContextResult:
    over = np.clip(largest - allowance, 0, None)
    used = largest[ok].sum()
    return ContextResult(
        name=name,
        runs=len(largest),
        successful_runs=int(ok.sum()),
        covered_successes=int((largest[ok] <= allowance[ok]).sum()),
        mean_allowance=float(allowance.mean()),
        mean_largest_prompt=float(largest.mean()),
        trimmed_share=float(over[ok].sum() / used) if used else 0.0,
    )
