"""Learn which tools are worth calling, per task type, from the tool calls in traces.

For each task type and tool: the success rate of runs that called it against runs of the same
task type that called other tools but not this one (the *lift*; comparing with tool-using runs
only keeps out the plain difference between one-step answers and long tool-using runs), shrunk
toward zero for rarely used tools (`lift * n / (n + prior_runs)`: a lift seen in 5 runs is
mostly noise), against what using it costs per run: its calls' cost, plus a wasted step for
each failed call (`calls_per_run * (cost_per_call + failure_rate * step_cost)`). A success is
worth what a successful run of the task type costs at the top tier.

Traces are observational: runs that were going to fail may reach for some tools more often, so
a lift is an association, not a measured effect, and a negative one mostly says "runs in trouble
call this". The gate is therefore one-sided: it denies a tool only when even an optimistic lift
(`shrunk_lift + z * standard error`) is worth less than what the tool costs, after at least
`min_runs` runs used it. A free tool that never fails costs nothing to allow and is never
denied. The point value `shrunk_lift * value - cost` is reported beside each verdict.

A deny is *enforced* at run time only on strong evidence: at least `strong_runs` runs with the
tool and `strong_runs` without it, and the tool's cost per run above the most success it could
add, its lift taken with either sign at the top of its two-sided 95% interval
(`(|shrunk_lift| + strong_z * se) * value - run cost < 0`). So a deny that rests on runs in
trouble calling a tool (a negative lift, which confounding could reverse) is never enforced;
one that rests on the tool costing more than any plausible gain is. Every other deny is
*advisory*: the runtime allows the call and records the advice (aco.learned_controls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from aco.config import ACOConfig
from aco.controls import Controls
from aco.decisions import ADVISORY, ENFORCED
from aco.errors import DataError
from aco.learned_controls import ANY, KINDS, SPEC_VERSION, apply_gate
from aco_lab.traces import schema as S
from aco_lab.traces.reading import TraceTables

RUNS_WITH = "runs_with"
SUCCESS_WITH = "success_with"
RUNS_WITHOUT = "runs_without"
SUCCESS_WITHOUT = "success_without"
CALLS = "calls"
FAILED = "failed_calls"
CALL_COST = "call_cost"


@dataclass(frozen=True, slots=True)
class GateSettings:
    """How the tool gate is learned."""

    prior_runs: float = 20.0  # shrinkage: a lift from n runs counts n / (n + prior_runs)
    min_runs: int = 30  # runs that used a tool before it may be denied
    z: float = 1.645  # one-sided 95%: deny only when the optimistic lift does not pay
    value_multiplier: float = 1.0  # a success is worth this many top-tier successful runs
    strong_runs: int = 200  # runs with the tool, and without it, before a deny is enforced
    strong_z: float = 1.96  # two-sided 95%: the most success an enforced deny's tool could add


def build_tool_table(tables: TraceTables) -> pl.DataFrame:
    """Per task type (and "*" for all) and tool: runs with/without it, their success, calls."""
    runs = tables.runs.filter(pl.col(S.TASK_SUCCESS).is_not_null()).with_columns(
        pl.col(S.TASK_TYPE).fill_null(ANY)
    )
    calls = tables.tool_calls.join(
        runs.select(S.TRACE_ID, S.TASK_TYPE, S.TASK_SUCCESS), on=S.TRACE_ID
    )
    if calls.is_empty():
        raise DataError("tool gate: no tool call in runs with a known task_success")
    parts = []
    for by_type in (True, False):  # per task type, then all task types pooled as "*"
        runs_k = runs if by_type else runs.with_columns(pl.lit(ANY).alias(S.TASK_TYPE))
        calls_k = calls if by_type else calls.with_columns(pl.lit(ANY).alias(S.TASK_TYPE))
        users = runs_k.join(calls.select(S.TRACE_ID).unique(), on=S.TRACE_ID, how="semi")
        totals = users.group_by(S.TASK_TYPE).agg(
            pl.len().alias("_runs"), pl.col(S.TASK_SUCCESS).sum().alias("_ok")
        )
        per_run = calls_k.group_by(S.TASK_TYPE, S.TOOL_NAME, S.TRACE_ID).agg(
            pl.col(S.TASK_SUCCESS).first(),
            pl.len().alias(CALLS),
            (~pl.col(S.TOOL_SUCCESS)).sum().alias(FAILED),
            pl.col(S.COST).sum().alias(CALL_COST),
        )
        tool = per_run.group_by(S.TASK_TYPE, S.TOOL_NAME).agg(
            pl.len().alias(RUNS_WITH),
            pl.col(S.TASK_SUCCESS).sum().alias(SUCCESS_WITH),
            pl.col(CALLS).sum(),
            pl.col(FAILED).sum(),
            pl.col(CALL_COST).sum(),
        )
        parts.append(
            tool.join(totals, on=S.TASK_TYPE)
            .with_columns(
                (pl.col("_runs") - pl.col(RUNS_WITH)).alias(RUNS_WITHOUT),
                (pl.col("_ok") - pl.col(SUCCESS_WITH)).alias(SUCCESS_WITHOUT),
            )
            .select(
                S.TASK_TYPE,
                S.TOOL_NAME,
                RUNS_WITH,
                SUCCESS_WITH,
                RUNS_WITHOUT,
                SUCCESS_WITHOUT,
                CALLS,
                FAILED,
                CALL_COST,
            )
        )
    return pl.concat(parts).sort(S.TASK_TYPE, S.TOOL_NAME)


def build_values(tables: TraceTables, settings: GateSettings) -> tuple[dict, dict]:
    """USD a success is worth, and the mean cost of a step, per task type (and "*")."""
    runs = tables.runs.filter(pl.col(S.TIER).is_not_null()).with_columns(
        pl.col(S.TASK_TYPE).fill_null(ANY)
    )
    top = runs[S.TIER].max()
    value: dict[str, float] = {}
    step_cost: dict[str, float] = {}
    for name, part in [(ANY, runs), *runs.group_by(S.TASK_TYPE)]:
        key = name if isinstance(name, str) else name[0]
        ok = part.filter(pl.col(S.TASK_SUCCESS).fill_null(False))
        at_top = ok.filter(pl.col(S.TIER) == top)
        reference = at_top if at_top.height else ok
        if reference.height:
            value[key] = settings.value_multiplier * float(reference[S.TOTAL_COST].mean())
        steps = float(part[S.N_STEPS].sum())
        step_cost[key] = float(part[S.MODEL_COST].sum()) / steps if steps else 0.0
    # Sorted: group_by's order varies from run to run, and the bundle's bytes must not.
    return dict(sorted(value.items())), dict(sorted(step_cost.items()))


def learn_gate(tables: TraceTables, settings: GateSettings = GateSettings()) -> dict:
    """The learned tool-gate spec (plain data): one verdict with its figures per task/tool."""
    table = build_tool_table(tables)
    value, step_cost = build_values(tables, settings)
    tools = {}
    for rec in table.iter_rows(named=True):
        task = rec[S.TASK_TYPE]
        tools[f"{task}/{rec[S.TOOL_NAME]}"] = _verdict(
            rec, value.get(task, value.get(ANY, 0.0)), step_cost.get(task, 0.0), settings
        )
    return {
        "kind": KINDS["gate"],
        "version": SPEC_VERSION,
        "tools": tools,
        "value_per_success": {k: round(v, 6) for k, v in value.items()},
        "settings": {
            "prior_runs": settings.prior_runs,
            "min_runs": settings.min_runs,
            "z": settings.z,
            "strong_runs": settings.strong_runs,
            "strong_z": settings.strong_z,
        },
    }


def _verdict(rec: dict, value: float, step_cost: float, settings: GateSettings) -> dict:
    n_with, n_without = rec[RUNS_WITH], rec[RUNS_WITHOUT]
    rate_with = rec[SUCCESS_WITH] / n_with
    rate_without = rec[SUCCESS_WITHOUT] / n_without if n_without else rate_with
    # A tool every tool-using run of the type called has no comparison group: no lift.
    lift = rate_with - rate_without
    shrunk = lift * n_with / (n_with + settings.prior_runs)
    se = math.sqrt(
        rate_with * (1 - rate_with) / n_with
        + (rate_without * (1 - rate_without) / n_without if n_without else 0.0)
    )
    calls_per_run = rec[CALLS] / n_with
    cost = rec[CALL_COST] / rec[CALLS]
    failure_rate = rec[FAILED] / rec[CALLS]
    run_cost = calls_per_run * (cost + failure_rate * step_cost)
    net = shrunk * value - run_cost
    optimistic = (shrunk + settings.z * se) * value - run_cost
    judged = n_with >= settings.min_runs and n_without > 0
    allow = not judged or run_cost <= 0 or optimistic >= 0
    # The net value were the association reversed: what the deny must survive to be enforced.
    best_case = (abs(shrunk) + settings.strong_z * se) * value - run_cost
    strong = not allow and min(n_with, n_without) >= settings.strong_runs and best_case < 0
    return {
        "allow": bool(allow),
        "enforcement": ENFORCED if strong else ADVISORY,
        "best_case_net_value": round(best_case, 6),
        "runs": int(n_with),
        "runs_without": int(n_without),
        "success_with": round(rate_with, 4),
        "lift": round(lift, 4),
        "shrunk_lift": round(shrunk, 4),
        "cost": round(cost, 6),
        "failure_rate": round(failure_rate, 4),
        "calls_per_run": round(calls_per_run, 3),
        "run_cost": round(run_cost, 6),
        "net_value": round(net, 6),
        "optimistic_net_value": round(optimistic, 6),
    }


@dataclass(frozen=True, slots=True)
class GateResult:
    """What a gate's denials touch on held-out runs."""

    name: str
    tool_calls: int
    denied_calls: int
    denied_cost: float  # USD of the denied calls
    denied_runs: int  # runs that made a denied call
    denied_runs_success: float  # their success rate
    other_runs_success: float  # success rate of the same task types' runs without one
    denied_pairs: tuple[str, ...]  # task/tool pairs denied that held-out runs called
    enforcement: str = ENFORCED  # ADVISORY: its denials are advice, the calls go ahead
    why: str = ""  # why the gate runs in that mode

    def to_dict(self) -> dict:
        """Plain figures for reports."""
        return {
            "name": self.name,
            "enforcement": self.enforcement,
            "why": self.why,
            "tool_calls": self.tool_calls,
            "denied_calls": self.denied_calls,
            "denied_cost": round(self.denied_cost, 6),
            "denied_runs": self.denied_runs,
            "denied_runs_success": _r(self.denied_runs_success),
            "other_runs_success": _r(self.other_runs_success),
            "denied_pairs": list(self.denied_pairs),
        }


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


LEARNED_ADVICE = "learned: every deny it recommends"
LEARNED_ENFORCED = "learned: the denies it enforces"
RULES = "rules"


def describe_enforcement(spec: dict) -> tuple[str, str]:
    """How the learned gate runs ("advisory", "enforced" or "partly enforced") and why."""
    denies = [e for e in spec["tools"].values() if not e["allow"]]
    enforced = sum(e.get("enforcement", ADVISORY) == ENFORCED for e in denies)
    s = spec.get("settings", {})
    strong = (
        f"strong evidence (>= {s['strong_runs']} training runs with the tool and as many "
        "without, and a cost per run above the most success it could add even if its "
        "link with failing runs were reversed)"
        if "strong_runs" in s
        else "strong evidence (the bundle predates enforcement)"
    )
    if not denies:
        return ADVISORY, "it denies no tool on the training runs"
    if enforced == len(denies):
        return ENFORCED, f"all {len(denies)} of its denies have {strong}"
    mode = "partly enforced" if enforced else ADVISORY
    return mode, (
        f"{len(denies) - enforced} of its {len(denies)} denies lack {strong}; "
        "those calls go ahead and the advice is recorded"
    )


def evaluate_gate(spec: dict, tables: TraceTables, config: ACOConfig) -> list[GateResult]:
    """The learned gate (every deny it recommends, then those it enforces) and the rule gate
    applied to every held-out tool call."""
    rules = Controls(config)
    pairs = tables.tool_calls.join(tables.runs.select(S.TRACE_ID, S.TASK_TYPE), on=S.TRACE_ID)
    distinct = pairs.select(S.TASK_TYPE, S.TOOL_NAME).unique()
    verdicts: dict[str, dict] = {LEARNED_ADVICE: {}, LEARNED_ENFORCED: {}, RULES: {}}
    for task, tool in distinct.iter_rows():
        learned = apply_gate(spec, tool, task)
        verdicts[LEARNED_ADVICE][(task, tool)] = learned.recommended_allow
        verdicts[LEARNED_ENFORCED][(task, tool)] = learned.allow
        verdicts[RULES][(task, tool)] = rules.gate(tool, task).allow
    mode, why = describe_enforcement(spec)
    modes = {
        LEARNED_ADVICE: (mode, why),
        LEARNED_ENFORCED: (mode, why),
        RULES: (
            ENFORCED,
            "rules are enforced: a quick answer never calls an expensive tool (aco.controls)",
        ),
    }
    return [_gate_result(name, v, pairs, tables.runs, *modes[name]) for name, v in verdicts.items()]


def _gate_result(
    name: str, allowed: dict, pairs: pl.DataFrame, runs: pl.DataFrame, enforcement: str, why: str
) -> GateResult:
    keys = list(allowed)
    verdict = pl.DataFrame(
        {
            S.TASK_TYPE: [k[0] for k in keys],
            S.TOOL_NAME: [k[1] for k in keys],
            "_allow": [allowed[k] for k in keys],
        },
        schema={S.TASK_TYPE: pl.String, S.TOOL_NAME: pl.String, "_allow": pl.Boolean},
    )
    calls = pairs.join(verdict, on=[S.TASK_TYPE, S.TOOL_NAME], how="left", nulls_equal=True)
    denied = calls.filter(~pl.col("_allow"))
    judged = runs.filter(pl.col(S.TASK_SUCCESS).is_not_null())
    hit = judged.join(denied.select(S.TRACE_ID).unique(), on=S.TRACE_ID, how="semi")
    types = hit[S.TASK_TYPE].unique()
    rest = judged.join(hit.select(S.TRACE_ID), on=S.TRACE_ID, how="anti").filter(
        pl.col(S.TASK_TYPE).is_in(types.implode()) if types.len() else pl.lit(False)
    )
    names = (
        denied.select(
            pl.concat_str(pl.col(S.TASK_TYPE).fill_null(ANY), pl.lit("/"), pl.col(S.TOOL_NAME))
        )
        .unique()
        .to_series()
        .sort()
    )
    return GateResult(
        name=name,
        tool_calls=pairs.height,
        denied_calls=denied.height,
        denied_cost=float(denied[S.COST].sum()),
        denied_runs=hit.height,
        denied_runs_success=float(hit[S.TASK_SUCCESS].mean()) if hit.height else math.nan,
        other_runs_success=float(rest[S.TASK_SUCCESS].mean()) if rest.height else math.nan,
        denied_pairs=tuple(names.to_list()),
        enforcement=enforcement,
        why=why,
    )
