"""`PerStepRouter`: a tier for every step of one agent run, never past the run's budget.

Each step starts from a tier its action suggests (planning and diagnosis high, edits in the
middle, look-ups low), moves up after failures or for risky tasks, and is then fitted to
the budget: when the remaining budget cannot pay for the step's tier, the router downgrades
to the highest cheaper tier that fits; when even the cheapest allowed tier does not fit it
refuses with ``allowed=False`` and a reason.

Why ``allowed=False`` rather than raising BudgetExceededError: running out of budget is an
expected end of an agent run (it ends as ``budget_exceeded``), not a programming error, and
the decision carries what the caller needs to say so. ``require_step`` is the raising form
for loops that prefer an exception.

The invariant (tested with hypothesis): as long as each step costs at most its
``cost_estimate``, ``total_spent`` never exceeds ``max_budget``.
"""

from __future__ import annotations

import logging
import re
import threading

from aco.config import ACOConfig
from aco.controls import check_number
from aco.decisions import StepDecision
from aco.errors import ACOError, BudgetExceededError
from aco.rules import nearest_configured_tier
from aco.trace_format import MAX_TIER, MIN_TIER

log = logging.getLogger(__name__)

# Tier an action starts from, by its first matching cue (checked in this order).
ACTION_TIERS: tuple[tuple[int, re.Pattern[str]], ...] = tuple(
    (tier, re.compile(pattern, re.IGNORECASE))
    for tier, pattern in (
        (4, r"\b(plan\w*|design\w*|architect\w*|diagnos\w*|root cause|debug\w*|decid\w*|"
            r"review\w*|verify|prove)\b"),
        (3, r"\b(writ\w*|implement\w*|fix\w*|refactor\w*|edit\w*|generat\w*|draft\w*|"
            r"analy[sz]\w*|synthesi[sz]\w*|compar\w*)\b"),
        (1, r"\b(read\w*|list\w*|search\w*|fetch\w*|get|open\w*|look\w* up|grep|ls|cat|"
            r"format\w*|summari[sz]\w*|extract\w*|classif\w*)\b"),
    )
)
DEFAULT_ACTION_TIER = 2  # an action with no cue: the cheap cloud tier
RISK_STEP = {"low": -1, "medium": 0, "high": +1}  # tiers added for the task's risk
# Tokens one step is assumed to use when the caller does not say: a typical agent step
# re-reads a few thousand tokens of context and writes a few hundred.
STEP_INPUT_TOKENS = 2_000
STEP_OUTPUT_TOKENS = 500


class PerStepRouter:
    """Per-step tiers under one run's USD budget: downgrade first, then refuse."""

    def __init__(self, max_budget: float, config: ACOConfig | None = None, *,
                 min_tier: int = MIN_TIER, step_input_tokens: int = STEP_INPUT_TOKENS,
                 step_output_tokens: int = STEP_OUTPUT_TOKENS) -> None:
        check_number(max_budget, "max_budget")
        if not isinstance(min_tier, int) or not MIN_TIER <= min_tier <= MAX_TIER:
            raise ACOError(f"min_tier: expected an int {MIN_TIER}..{MAX_TIER}, got {min_tier!r}")
        self.max_budget = float(max_budget)
        self.config = config or ACOConfig()
        self.min_tier = nearest_configured_tier(min_tier, self.config)
        self.step_input_tokens = step_input_tokens
        self.step_output_tokens = step_output_tokens
        self._spent = 0.0  # a plain running sum: planning checks use the same additions
        self._lock = threading.Lock()

    @property
    def total_spent(self) -> float:
        """USD recorded so far."""
        return self._spent

    @property
    def budget_remaining(self) -> float:
        """USD left (never negative)."""
        return max(0.0, self.max_budget - self._spent)

    def step_cost(self, tier: int, input_tokens: int | None = None,
                  output_tokens: int | None = None) -> float:
        """USD one step at `tier` is expected to cost."""
        return self.config.tier(tier).cost(
            self.step_input_tokens if input_tokens is None else input_tokens,
            self.step_output_tokens if output_tokens is None else output_tokens)

    def fits(self, cost: float) -> bool:
        """Whether the remaining budget can pay `cost` USD."""
        return self._spent + cost <= self.max_budget  # exactly the addition record() does

    def route_step(self, action: str, step_num: int, has_prior_failures: bool = False,
                   task_risk: str = "medium", *, input_tokens: int | None = None,
                   output_tokens: int | None = None) -> StepDecision:
        """The tier for one step, fitted to the remaining budget (allowed=False when none fits)."""
        wanted, why = self._wanted_tier(action, step_num, has_prior_failures, task_risk)
        with self._lock:
            tier = wanted
            while True:
                cost = self.step_cost(tier, input_tokens, output_tokens)
                if self.fits(cost):
                    break
                lower = [s.tier for s in self.config.tiers if self.min_tier <= s.tier < tier]
                if not lower:
                    return self._refuse(tier, cost, why)
                tier = max(lower)
        if tier < wanted:
            why += f"; downgraded {wanted}->{tier}: ${self.budget_remaining:.4f} left"
        return StepDecision(tier, self.config.tier(tier).model_id, cost, why)

    def require_step(self, action: str, step_num: int, has_prior_failures: bool = False,
                     task_risk: str = "medium") -> StepDecision:
        """Like route_step, but raises BudgetExceededError instead of returning allowed=False."""
        decision = self.route_step(action, step_num, has_prior_failures, task_risk)
        if not decision.allowed:
            raise BudgetExceededError(decision.reason)
        return decision

    def record(self, cost: float) -> None:
        """Record what a step really cost (USD)."""
        check_number(cost, "cost")
        with self._lock:
            self._spent += float(cost)
            over = self._spent > self.max_budget
        if over:  # the step cost more than its estimate: later steps get refused
            log.warning("spent $%.4f, past the $%.4f budget", self._spent, self.max_budget)

    def _wanted_tier(self, action: str, step_num: int, failures: bool,
                     risk: str) -> tuple[int, str]:
        if not isinstance(action, str):
            raise ACOError(f"action: expected a string, got {type(action).__name__}")
        if not isinstance(step_num, int) or isinstance(step_num, bool) or step_num < 1:
            raise ACOError(f"step_num: expected an int >= 1, got {step_num!r}")
        if risk not in RISK_STEP:
            raise ACOError(f"task_risk: expected one of {', '.join(RISK_STEP)}, got {risk!r}")
        tier, cue = DEFAULT_ACTION_TIER, "no action cue"
        for cue_tier, pattern in ACTION_TIERS:
            match = pattern.search(action)
            if match:
                tier, cue = cue_tier, f"'{match.group(0).lower()}'"
                break
        why = [f"step {step_num}: {cue} base {tier}"]
        if failures:
            tier += 1
            why.append("prior failures +1")
        if RISK_STEP[risk]:
            tier += RISK_STEP[risk]
            why.append(f"{risk} risk {RISK_STEP[risk]:+d}")
        tier = nearest_configured_tier(max(self.min_tier, min(tier, MAX_TIER)), self.config)
        return tier, "; ".join(why) + f" -> tier {tier}"

    def _refuse(self, tier: int, cost: float, why: str) -> StepDecision:
        reason = (f"{why}; refused: ${self.budget_remaining:.4f} left of ${self.max_budget:.4f}, "
                  f"the cheapest allowed tier ({tier}) costs ${cost:.4f}: end the run as "
                  f"budget_exceeded")
        return StepDecision(tier, self.config.tier(tier).model_id, cost, reason, allowed=False)
