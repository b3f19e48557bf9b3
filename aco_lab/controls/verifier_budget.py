"""Learn when a DONE is worth verifying: when a false DONE is likelier than the check is dear.

At DONE the runtime knows the task type, the tier, the final answer (its text and, when the
API gave them, log-probabilities), the steps so far and how many failed. A logistic model of
P(false DONE) is fitted on completed training runs (a false DONE: completed, task_success
false). Verifying pays when

    p * catch_rate * false_done_cost  >=  verifier_cost + (1 - p) * false_reject_rate * redo_cost

where `catch_rate` and `false_reject_rate` are the verifier's verdicts on false and true DONEs
in the traces (final steps with verifier_called; assumed when the traces have none), a false
DONE costs `false_done_multiplier` successes' worth, rejecting a good answer costs a redo (one
success's worth) and the verifier costs about one final model call. Solving for p gives one
threshold per task type. The verifier call rate is then capped (the guide alerts above 50%):
when more completed training runs than `max_call_rate` would be verified, the thresholds are
raised to the quantile that keeps the rate under the cap.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from aco.cascade import Answer
from aco.config import ACOConfig
from aco.controls import Controls, read_answer_signals, rule_confidence
from aco.errors import DataError
from aco.learned_controls import ANY, KINDS, SPEC_VERSION, verify_features
from aco.rules import read_cues
from aco.trace_format import OUTCOME_COMPLETED
from aco_lab.controls.logistic import DEFAULT_C, build_matrix, fit_logistic, predict_logistic
from aco_lab.controls.tool_gate import GateSettings, build_values
from aco_lab.traces import schema as S
from aco_lab.traces.reading import TraceTables

log = logging.getLogger(__name__)

FALSE_DONE = "false_done"
FAILURES = "failures_before_done"
FINAL_COST = "final_call_cost"
FINAL_VERIFIED = "final_verified"
FINAL_PASSED = "final_passed"


@dataclass(frozen=True, slots=True)
class VerifierSettings:
    """How the verifier budget is learned."""

    max_call_rate: float = 0.50  # share of DONEs verified at most (learn_controls passes the
    # config's alerts.max_verifier_call_rate: the guide's monitoring alerts above it)
    false_done_multiplier: float = 2.0  # a wrong answer delivered as done costs 2 successes
    verifier_cost_multiplier: float = 1.0  # a check costs this many final model calls
    assumed_catch_rate: float = 0.7  # when no final step was verified in the traces
    assumed_false_reject_rate: float = 0.1
    min_verified: int = 20  # verified DONEs needed to measure the verifier's rates
    C: float = DEFAULT_C


def build_done_table(tables: TraceTables) -> pl.DataFrame:
    """One row per completed run with a known outcome: what the runtime knows at DONE (pure)."""
    done = tables.runs.filter(
        (pl.col(S.FINAL_OUTCOME) == OUTCOME_COMPLETED) & pl.col(S.TASK_SUCCESS).is_not_null()
    )
    no_progress = (
        (pl.col(S.N_TOOL_CALLS) > 0) & (pl.col(S.N_TOOL_FAILURES) >= pl.col(S.N_TOOL_CALLS))
    ) | (pl.col(S.VERIFIER_CALLED) & (pl.col(S.VERIFIER_PASSED) == False))  # noqa: E712
    steps = (
        tables.steps.join(done.select(S.TRACE_ID), on=S.TRACE_ID, how="semi")
        .sort(S.TRACE_ID, S.STEP_INDEX)
        .with_columns(no_progress.fill_null(False).alias("_failed"))
    )
    per_run = steps.group_by(S.TRACE_ID).agg(
        # Failed steps before the answer: the final step's own check is what is being decided.
        pl.col("_failed").slice(0, pl.len() - 1).sum().alias(FAILURES),
        pl.col(S.OUTPUT_TEXT).drop_nulls().last(),
        pl.col(S.MEAN_LOGPROB).filter(pl.col(S.TIER).is_not_null()).last(),
        pl.col(S.MIN_LOGPROB).filter(pl.col(S.TIER).is_not_null()).last(),
        pl.col(S.COST).filter(pl.col(S.TIER).is_not_null()).last().alias(FINAL_COST),
        pl.col(S.VERIFIER_CALLED).last().alias(FINAL_VERIFIED),
        pl.col(S.VERIFIER_PASSED).last().alias(FINAL_PASSED),
    )
    return (
        done.select(
            S.TRACE_ID,
            S.REQUEST_ID,
            S.REQUEST,
            S.TASK_TYPE,
            S.TIER,
            S.N_STEPS,
            S.MODEL_ID,
            (~pl.col(S.TASK_SUCCESS)).alias(FALSE_DONE),
        )
        .join(per_run, on=S.TRACE_ID, how="left")
        .sort(S.TRACE_ID)
    )


def done_features(done: pl.DataFrame) -> list[dict]:
    """Feature dicts of every DONE, through the runtime's verify_features."""
    return [
        verify_features(
            Answer(
                r[S.MODEL_ID] or "",
                r[S.TIER] or 0,
                r[S.OUTPUT_TEXT],
                r[S.MEAN_LOGPROB],
                r[S.MIN_LOGPROB],
            ),
            r[S.TASK_TYPE],
            r[S.TIER],
            r[S.N_STEPS] or 0,
            r[FAILURES] or 0,
        )
        for r in done.iter_rows(named=True)
    ]


def verifier_rates(done: pl.DataFrame, settings: VerifierSettings) -> dict:
    """The verifier's catch and false-reject rates on final steps, or the assumed ones."""
    checked = done.filter(
        pl.col(FINAL_VERIFIED).fill_null(False) & pl.col(FINAL_PASSED).is_not_null()
    )
    bad, good = checked.filter(pl.col(FALSE_DONE)), checked.filter(~pl.col(FALSE_DONE))
    if bad.height >= settings.min_verified and good.height >= settings.min_verified:
        return {
            "catch_rate": round(float((~bad[FINAL_PASSED]).mean()), 4),
            "false_reject_rate": round(float((~good[FINAL_PASSED]).mean()), 4),
            "source": f"traces ({bad.height} false and {good.height} true DONEs verified)",
        }
    return {
        "catch_rate": settings.assumed_catch_rate,
        "false_reject_rate": settings.assumed_false_reject_rate,
        "source": "assumed (too few verified DONEs in the traces)",
    }


def learn_verifier(tables: TraceTables, settings: VerifierSettings = VerifierSettings()) -> dict:
    """The learned verifier-budget spec (plain data)."""
    done = build_done_table(tables)
    if done.is_empty() or done[FALSE_DONE].n_unique() < 2:
        raise DataError(
            "verifier budget: needs completed runs with known task_success, some "
            "false DONEs (completed, task_success false) and some true"
        )
    X, names = build_matrix(done_features(done))
    y = done[FALSE_DONE].to_numpy().astype(float)
    model = fit_logistic(X, y, names, settings.C)
    p = predict_logistic(model, X, names)
    rates = verifier_rates(done, settings)
    value, _ = build_values(tables, GateSettings())
    verifier_cost = settings.verifier_cost_multiplier * float(done[FINAL_COST].fill_null(0).mean())
    cost_fd = {k: settings.false_done_multiplier * v for k, v in value.items()}
    threshold = {k: _break_even(cost_fd[k], value[k], verifier_cost, rates) for k in value}
    threshold = _cap(threshold, p, done[S.TASK_TYPE].to_list(), settings.max_call_rate)
    return {
        "kind": KINDS["verify"],
        "version": SPEC_VERSION,
        "model": model,
        "threshold": {k: round(v, 6) for k, v in threshold.items()},
        "false_done_cost": {k: round(v, 6) for k, v in cost_fd.items()},
        "verifier_cost": round(verifier_cost, 6),
        "max_call_rate": settings.max_call_rate,
        "verifier": rates,
    }


def _break_even(
    false_done_cost: float, redo_cost: float, verifier_cost: float, rates: dict
) -> float:
    # p * catch * F >= V + (1 - p) * r * R   <=>   p >= (V + r R) / (catch F + r R)
    catch, reject = rates["catch_rate"], rates["false_reject_rate"]
    denominator = catch * false_done_cost + reject * redo_cost
    if denominator <= 0:
        return 1.01  # the verifier never catches anything: never worth calling
    return min(1.01, (verifier_cost + reject * redo_cost) / denominator)


def _cap(threshold: dict, p: np.ndarray, task_types: list, max_rate: float) -> dict:
    chosen = np.array([threshold.get(t or ANY, threshold[ANY]) for t in task_types])
    rate = float((p >= chosen).mean()) if len(p) else 0.0
    if rate <= max_rate:
        return threshold
    floor = float(np.quantile(p, 1.0 - max_rate)) + 1e-9  # the top max_rate of P(false DONE)
    log.info(
        "verifier: %.0f%% of DONEs would be verified; raising thresholds to %.3f "
        "for the %.0f%% cap",
        100 * rate,
        floor,
        100 * max_rate,
    )
    return {k: max(v, floor) for k, v in threshold.items()}


@dataclass(frozen=True, slots=True)
class VerifierResult:
    """Expected effect of a verification policy on held-out DONEs."""

    name: str
    dones: int
    false_dones: int
    verified: int
    caught: float  # expected false DONEs the verifier rejects
    rejected_good: float  # expected true DONEs it rejects
    verifier_cost: float  # USD

    @property
    def call_rate(self) -> float:
        """Share of DONEs verified."""
        return self.verified / self.dones if self.dones else math.nan

    @property
    def false_done_rate_without(self) -> float:
        """False DONEs / DONEs with no verifier."""
        return self.false_dones / self.dones if self.dones else math.nan

    @property
    def false_done_rate_with(self) -> float:
        """False DONEs still declared / DONEs still declared, with the policy's checks."""
        declared = self.dones - self.caught - self.rejected_good
        return (self.false_dones - self.caught) / declared if declared > 0 else math.nan

    def to_dict(self) -> dict:
        """Plain figures for reports."""
        return {
            "name": self.name,
            "dones": self.dones,
            "false_dones": self.false_dones,
            "verified": self.verified,
            "call_rate": round(self.call_rate, 4),
            "false_done_rate_without": round(self.false_done_rate_without, 4),
            "false_done_rate_with": round(self.false_done_rate_with, 4),
            "caught": round(self.caught, 2),
            "rejected_good": round(self.rejected_good, 2),
            "verifier_cost": round(self.verifier_cost, 6),
        }


def evaluate_verifier(spec: dict, tables: TraceTables, config: ACOConfig) -> list[VerifierResult]:
    """Learned, rule, always and never verification on held-out DONEs (expected effects)."""
    done = build_done_table(tables)
    if done.is_empty():
        raise DataError(
            "verifier budget: the evaluation traces have no completed run with a known outcome"
        )
    X, names = build_matrix(done_features(done))
    p = predict_logistic(spec["model"], X, names)
    types = done[S.TASK_TYPE].to_list()
    learned = p >= np.array(
        [spec["threshold"].get(t or ANY, spec["threshold"][ANY]) for t in types]
    )
    rules = Controls(config)
    rule = np.array([_rule_verifies(rules, r) for r in done.iter_rows(named=True)], dtype=bool)
    bad = done[FALSE_DONE].to_numpy()
    rates, cost = spec["verifier"], spec["verifier_cost"]
    return [
        _effect(name, mask, bad, rates, cost)
        for name, mask in (
            ("learned", learned),
            ("rules", rule),
            ("always", np.ones(len(bad), dtype=bool)),
            ("never", np.zeros(len(bad), dtype=bool)),
        )
    ]


def _rule_verifies(rules: Controls, rec: dict) -> bool:
    # The rule verifier: risk from the request's cues, confidence from the answer's text cues.
    risk = "high" if read_cues(rec[S.REQUEST] or "").risk else "medium"
    signals = read_answer_signals(None, rec[S.OUTPUT_TEXT])
    return rules.verify(risk, rule_confidence(signals)).verify


def _effect(
    name: str, verified: np.ndarray, bad: np.ndarray, rates: dict, cost: float
) -> VerifierResult:
    return VerifierResult(
        name=name,
        dones=len(bad),
        false_dones=int(bad.sum()),
        verified=int(verified.sum()),
        caught=float(rates["catch_rate"] * (verified & bad).sum()),
        rejected_good=float(rates["false_reject_rate"] * (verified & ~bad).sum()),
        verifier_cost=float(cost * verified.sum()),
    )
