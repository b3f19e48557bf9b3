"""The run controls: cascade, doom check, tool gate, verifier and context budget.

Each control has a rule version (the constants below, each with its reason) and a learned
version from a bundle's ``controls`` section: the cascade in `aco.cascade`, the others in
`aco.learned_controls` (their spec formats are documented there). `Controls` uses the
learned one when the bundle has it and the rule otherwise, control by control; every
decision says which mode decided. Two rules hold in both modes: a run that has spent its
whole budget is stopped, and a high-risk answer is always verified.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aco import learned_controls as learned
from aco.cascade import ACCEPT, HEDGING, REFUSAL, Answer, CascadePolicy
from aco.config import ACOConfig
from aco.decisions import (
    MODE_BUNDLE,
    MODE_RULES,
    CascadeDecision,
    ContextBudget,
    DoomDecision,
    GateDecision,
    VerifyDecision,
)
from aco.errors import ACOError
from aco.formatting import format_money, format_share
from aco.rules import (
    CONTEXT_MARGIN_TOKENS,
    RequestCues,
    build_context_budget,
    nearest_configured_tier,
)

# Cascade rule. The mean log-probability is dominated by the many easy tokens of an answer
# (punctuation, boilerplate), so a long answer looks confident even when the few tokens that
# carry the answer were guesses; a low quantile of the token probabilities sees those guesses.
LOW_QUANTILE = 0.10
NO_LOGPROBS_CONFIDENCE = 0.6  # text cues alone: mildly trusting, cues push it down
VERY_SHORT_CHARS = 8  # an answer this short ("4", "Paris") is often right, so only a mild cue
CUE_FACTORS = {"hedging": 0.6, "very_short": 0.85}  # confidence multipliers
REFUSAL_CONFIDENCE = 0.05  # a refusal or an empty answer is never accepted
# What counts as a refusal or as hedging is written once, in aco.cascade (REFUSAL, HEDGING),
# for the rule cascade here and the learned one there.

# Doom rule: stop a run that has spent its budget, or that keeps failing.
DOOM_STALLED_STEPS = 5  # steps in a row without progress: the agent is looping
DOOM_STALLED_SHARE = 0.5  # ... or this share of the budget spent and
DOOM_STALLED_AFTER_SHARE = 2  # ... this many steps in a row without progress

# Tool gate rule: a quick answer rarely gains from an expensive or slow tool.
EXPENSIVE_TOOLS = re.compile(
    r"search|brows|web|crawl|scrape|fetch|url|code_?exec|execute|"
    r"python|sandbox|shell|sql|retriev",
    re.IGNORECASE,
)
SIDE_EFFECT_TOOLS = re.compile(
    r"delete|remove|drop|send|email|pay|transfer|refund|cancel|book|"
    r"deploy|write|update|create|modify",
    re.IGNORECASE,
)
GATED_TASK_TYPES = ("quick_answer",)

# Verifier rule: verify when the confidence in the answer is below this, by risk.
RISKS = ("low", "medium", "high")
VERIFY_BELOW = {"low": 0.30, "medium": 0.70, "high": math.inf}  # high risk: always verify


@dataclass(frozen=True, slots=True)
class AnswerSignals:
    """What a cheap model's answer says about itself: log-probability summaries and text cues."""

    n_tokens: int
    mean_logprob: float | None
    min_logprob: float | None
    low_prob: float | None  # the LOW_QUANTILE of the token probabilities
    cues: tuple[str, ...]  # of: empty, refusal, hedging, very_short


def read_answer_signals(
    logprobs: Sequence[float] | None, response: str | None, short_expected: bool = False
) -> AnswerSignals:
    """Summarize token log-probabilities robustly and find refusal/hedging/short cues (pure)."""
    values = _check_logprobs(logprobs)
    text = (response or "").strip()
    cues = []
    if not text:
        cues.append("empty")
    elif len(text) < VERY_SHORT_CHARS and not short_expected:
        cues.append("very_short")
    if REFUSAL.search(text):
        cues.append("refusal")
    if HEDGING.search(text):
        cues.append("hedging")
    if not values:
        return AnswerSignals(0, None, None, None, tuple(cues))
    probs = sorted(math.exp(v) for v in values)
    rank = max(0, math.ceil(LOW_QUANTILE * len(probs)) - 1)  # nearest-rank quantile
    return AnswerSignals(
        len(values), math.fsum(values) / len(values), min(values), probs[rank], tuple(cues)
    )


def _check_logprobs(logprobs: Sequence[float] | None) -> list[float]:
    if logprobs is None:
        return []
    if isinstance(logprobs, str | bytes) or not isinstance(logprobs, Sequence):
        raise ACOError(
            f"cheap_logprobs: expected a list of token log-probabilities, "
            f"got {type(logprobs).__name__}"
        )
    values = []
    for i, value in enumerate(logprobs):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value > 1e-6:  # tolerate rounding just above 0
            raise ACOError(
                f"cheap_logprobs[{i}]: expected a finite log-probability <= 0, got {value!r}"
            )
        values.append(min(float(value), 0.0))
    return values


def rule_confidence(signals: AnswerSignals) -> float:
    """Rule confidence that a cheap answer is right: low-quantile probability times cue factors."""
    if "empty" in signals.cues or "refusal" in signals.cues:
        return REFUSAL_CONFIDENCE
    confidence = signals.low_prob if signals.low_prob is not None else NO_LOGPROBS_CONFIDENCE
    for cue in signals.cues:
        confidence *= CUE_FACTORS.get(cue, 1.0)
    return confidence


class Controls:
    """The five run controls, learned where the bundle has them and rule-based otherwise."""

    def __init__(self, config: ACOConfig, specs: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.specs = dict(specs or {})
        for name, spec in self.specs.items():
            if name != "cascade":  # CascadePolicy validates the cascade below
                learned.check_spec(name, spec)  # BundleError naming the field
        cascade = self.specs.get("cascade")
        self._cascade_policy = CascadePolicy(cascade) if cascade is not None else None

    def mode(self, control: str) -> str:
        """Which mode decides this control: "bundle" when the bundle learned it, else "rules"."""
        return MODE_BUNDLE if control in self.specs else MODE_RULES

    def cascade(
        self,
        signals: AnswerSignals,
        initial_tier: int,
        retries_used: int = 0,
        answers: Sequence[Answer] = (),
        task_type: str | None = None,
    ) -> CascadeDecision:
        """Accept the cheap answer or call another model (`escalated`, at `final_tier`).

        `answers` (aco.cascade.Answer, this one last) feed the learned cascade, which weighs
        the agreement between the answers of one cascade; the rules use `signals` alone.
        """
        if self._cascade_policy is not None and answers:
            return self._learned_cascade(signals, initial_tier, retries_used, answers, task_type)
        confidence, bar = rule_confidence(signals), self.config.safety_threshold
        up = nearest_configured_tier(initial_tier + 1, self.config)
        cues = f", cues: {', '.join(signals.cues)}" if signals.cues else ""
        why = f"rules: confidence {confidence:.2f} vs threshold {bar:.2f}{cues}"
        if confidence >= bar:
            return self._cascade(False, initial_tier, confidence, f"{why}: accept")
        if up <= initial_tier:
            return self._cascade(False, initial_tier, confidence, f"{why}: already top tier")
        if retries_used >= self.config.max_retries:
            return self._cascade(
                False,
                initial_tier,
                confidence,
                f"{why}: max_retries {self.config.max_retries} used",
            )
        return self._cascade(True, up, confidence, f"{why}: escalate {initial_tier}->{up}")

    def _learned_cascade(
        self,
        signals: AnswerSignals,
        initial_tier: int,
        retries_used: int,
        answers: Sequence[Answer],
        task_type: str | None,
    ) -> CascadeDecision:
        step = self._cascade_policy.step(task_type, answers)
        # The fallback's answer is final and carries no score: the text cues still speak.
        confidence = step.confidence if step.confidence is not None else rule_confidence(signals)
        # The learned cascade names the model it learned from the traces: a tier may have
        # several (two cheap opinions), and it is that model's answers its thresholds trust.
        tier, model = step.tier, step.model_id
        if step.action == ACCEPT:
            return CascadeDecision(
                False, tier, model, round(confidence, 4), step.reason, MODE_BUNDLE
            )
        if retries_used >= self.config.max_retries:
            return CascadeDecision(
                False,
                initial_tier,
                self.config.tier(initial_tier).model_id,
                round(confidence, 4),
                f"{step.reason}; but max_retries {self.config.max_retries} used: accept",
                MODE_BUNDLE,
            )
        return CascadeDecision(True, tier, model, round(confidence, 4), step.reason, MODE_BUNDLE)

    def cascade_start(self, task_type: str | None) -> tuple[int, str] | None:
        """(tier, model) the learned cascade asks first for this task type; None by the rules."""
        if self._cascade_policy is None:
            return None
        model, tier = self._cascade_policy.first(task_type)
        return tier, model

    def answer(
        self, signals: AnswerSignals, text: str | None, tier: int, task_type: str | None
    ) -> Answer | None:
        """The Answer of one reply as the learned cascade sees it (None without one)."""
        if self._cascade_policy is None:
            return None
        model = self._cascade_policy.option_of(task_type, tier, self.config.tier(tier).model_id)
        if model is None:  # the learned cascade knows no model at this tier
            return None
        return Answer(model, tier, text, signals.mean_logprob, signals.min_logprob)

    def _cascade(
        self, escalated: bool, tier: int, confidence: float, reason: str
    ) -> CascadeDecision:
        return CascadeDecision(
            escalated,
            tier,
            self.config.tier(tier).model_id,
            round(confidence, 4),
            reason,
            MODE_RULES,
        )

    def doom(
        self,
        total_spent: float,
        stalled_steps: int,
        n_steps: int,
        *,
        failures: int | None = None,
        task_type: str | None = None,
        tier: int | None = None,
    ) -> DoomDecision:
        """Whether to stop the run: budget spent, or unlikely to succeed / no progress.

        `failures` (steps without progress in all), `task_type` and `tier` inform the learned
        check; the rule needs the spend and the steps without progress in a row.
        """
        check_number(total_spent, "total_spent")
        cap = self.config.max_cost_per_task
        share = total_spent / cap if cap > 0 else (math.inf if total_spent > 0 else 0.0)
        state = (
            f"spent {format_money(total_spent)} of {format_money(cap)} "
            f"({format_share(share)}), {stalled_steps} stalled"
        )
        spec = self.specs.get("doom")
        if share >= 1.0:  # past the budget no model can help: a hard stop in both modes
            return DoomDecision(True, f"{state}: budget spent", 0.0, self.mode("doom"))
        if spec is not None:
            failed = stalled_steps if failures is None else failures
            return learned.apply_doom(
                spec, task_type, tier, n_steps, total_spent, failed, stalled_steps
            )
        doomed = stalled_steps >= DOOM_STALLED_STEPS or (
            share >= DOOM_STALLED_SHARE and stalled_steps >= DOOM_STALLED_AFTER_SHARE
        )
        verdict = "stop: no progress" if doomed else "continue"
        return DoomDecision(doomed, f"rules: {state}: {verdict}", None, MODE_RULES)

    def gate(self, tool_name: str, task_type: str | None) -> GateDecision:
        """Whether a tool call is worth making for this task type."""
        if not isinstance(tool_name, str) or not tool_name:
            raise ACOError(f"tool_name: expected a non-empty string, got {tool_name!r}")
        spec = self.specs.get("gate")
        if spec is not None:
            return learned.apply_gate(spec, tool_name, task_type)
        if task_type in GATED_TASK_TYPES and EXPENSIVE_TOOLS.search(tool_name):
            return GateDecision(
                False,
                tool_name,
                f"rules: {tool_name} is expensive and a {task_type} rarely gains from it",
                MODE_RULES,
            )
        why = (
            "side effects: check its arguments first"
            if SIDE_EFFECT_TOOLS.search(tool_name)
            else "no rule against it"
        )
        return GateDecision(True, tool_name, f"rules: allow ({why})", MODE_RULES)

    def verify(
        self,
        risk: str,
        confidence: float,
        *,
        task_type: str | None = None,
        tier: int | None = None,
        n_steps: int = 1,
        failures: int = 0,
    ) -> VerifyDecision:
        """Whether to call a verifier before declaring DONE, by risk and confidence."""
        if risk not in RISKS:
            raise ACOError(f"risk: expected one of {', '.join(RISKS)}, got {risk!r}")
        check_number(confidence, "confidence", upper=1.0)
        spec = self.specs.get("verify")
        if spec is not None and risk != "high":  # the caller's "high" is not second-guessed
            return learned.apply_verify(spec, task_type, tier, None, n_steps, failures, confidence)
        below = VERIFY_BELOW[risk]
        bar = "always" if math.isinf(below) else f"below {below:.2f}"
        return VerifyDecision(
            confidence < below,
            f"rules: {risk} risk verifies {bar}; confidence {confidence:.2f}",
            MODE_RULES,
        )

    def context_budget(self, cues: RequestCues, tier: int) -> ContextBudget:
        """How many context tokens a run at `tier` gets, what to keep verbatim, what to drop."""
        if self.budget_reads_cues:
            return build_context_budget(cues, tier)
        return self.learned_context_budget(cues.task_type, tier, cues.tokens)

    @property
    def budget_reads_cues(self) -> bool:
        """Whether context_budget reads the request's cues (the rules) or only its task type
        and size (the learned budget, see learned_context_budget)."""
        return "context_budget" not in self.specs

    def learned_context_budget(
        self, task_type: str | None, tier: int, request_tokens: int
    ) -> ContextBudget:
        """The learned context budget (the bundle has one: budget_reads_cues is False)."""
        return learned.apply_context_budget(
            self.specs["context_budget"], task_type, tier, request_tokens, CONTEXT_MARGIN_TOKENS
        )


def check_number(value: Any, name: str, upper: float = math.inf) -> float:
    """A finite number in 0..upper (USD, ms, a probability) as a float, else ACOError."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0.0 <= value <= upper:
        allowed = "a finite number >= 0" if math.isinf(upper) else f"a number in 0..{upper:g}"
        raise ACOError(f"{name}: expected {allowed}, got {value!r}")
    return float(value)
