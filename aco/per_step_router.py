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

Why reservations: a router may be shared by the threads (or tasks) of one run. Checking the
budget at routing time and counting the spend only when the call returns lets every thread
see the same unspent budget, and all of them go ahead. So an allowed step *holds* its
``cost_estimate`` from the moment it is routed, under the lock that checks the budget, until
``record(cost, step)`` replaces the hold by what the call really cost (or ``release(step)``
drops it, when the step was not run). The ledger is kept in exact fractions, so sums of
holds and costs compare exactly whatever the order in which threads add them.

The invariant (tested with hypothesis, sequentially and with threads): as long as each step
costs at most its ``cost_estimate``, ``total_spent`` never exceeds ``max_budget``.
"""

from __future__ import annotations

import itertools
import logging
import numbers
import re
import threading
from fractions import Fraction

from aco.config import ACOConfig
from aco.controls import check_number
from aco.decisions import StepDecision
from aco.errors import ACOError, BudgetExceededError
from aco.formatting import format_money
from aco.rules import nearest_configured_tier
from aco.trace_format import MAX_TIER, MIN_TIER

log = logging.getLogger(__name__)

# Tier an action starts from, by its first matching cue (checked in this order).
ACTION_TIERS: tuple[tuple[int, re.Pattern[str]], ...] = tuple(
    (tier, re.compile(pattern, re.IGNORECASE))
    for tier, pattern in (
        (
            4,
            r"\b(plan\w*|design\w*|architect\w*|diagnos\w*|root cause|debug\w*|decid\w*|"
            r"review\w*|verify|prove)\b",
        ),
        (
            3,
            r"\b(writ\w*|implement\w*|fix\w*|refactor\w*|edit\w*|generat\w*|draft\w*|"
            r"analy[sz]\w*|synthesi[sz]\w*|compar\w*)\b",
        ),
        (
            1,
            r"\b(read\w*|list\w*|search\w*|fetch\w*|get|open\w*|look\w* up|grep|ls|cat|"
            r"format\w*|summari[sz]\w*|extract\w*|classif\w*)\b",
        ),
    )
)
DEFAULT_ACTION_TIER = 2  # an action with no cue: the cheap cloud tier
RISK_STEP = {"low": -1, "medium": 0, "high": +1}  # tiers added for the task's risk
# Tokens one step is assumed to use when the caller does not say: a typical agent step
# re-reads a few thousand tokens of context and writes a few hundred.
STEP_INPUT_TOKENS = 2_000
STEP_OUTPUT_TOKENS = 500
_RESERVATIONS = itertools.count(1)  # ids unique across routers: a step ends only its own hold


class PerStepRouter:
    """Per-step tiers under one run's USD budget: downgrade first, then refuse; thread-safe."""

    def __init__(
        self,
        max_budget: float,
        config: ACOConfig | None = None,
        *,
        min_tier: int = MIN_TIER,
        step_input_tokens: int = STEP_INPUT_TOKENS,
        step_output_tokens: int = STEP_OUTPUT_TOKENS,
    ) -> None:
        check_number(max_budget, "max_budget")
        if not isinstance(min_tier, int) or not MIN_TIER <= min_tier <= MAX_TIER:
            raise ACOError(f"min_tier: expected an int {MIN_TIER}..{MAX_TIER}, got {min_tier!r}")
        self.max_budget = float(max_budget)
        self.config = config or ACOConfig()
        self.min_tier = nearest_configured_tier(min_tier, self.config)
        self.step_input_tokens = _check_tokens(step_input_tokens, "step_input_tokens")
        self.step_output_tokens = _check_tokens(step_output_tokens, "step_output_tokens")
        self._budget = Fraction(self.max_budget)
        self._spent = Fraction(0)  # exact: recorded costs, in any order
        self._held: dict[int, Fraction] = {}  # reservation -> the estimate it holds
        self._lock = threading.Lock()

    @property
    def total_spent(self) -> float:
        """USD recorded so far."""
        return float(self._spent)

    @property
    def reserved(self) -> float:
        """USD held for routed steps whose cost is not recorded yet."""
        with self._lock:
            return float(sum(self._held.values(), Fraction(0)))

    @property
    def budget_remaining(self) -> float:
        """USD neither spent nor held (never negative)."""
        with self._lock:
            return float(max(Fraction(0), self._left()))

    def step_cost(
        self, tier: int, input_tokens: int | None = None, output_tokens: int | None = None
    ) -> float:
        """USD one step at `tier` is expected to cost."""
        return self.config.tier(tier).cost(
            self.step_input_tokens
            if input_tokens is None
            else _check_tokens(input_tokens, "input_tokens"),
            self.step_output_tokens
            if output_tokens is None
            else _check_tokens(output_tokens, "output_tokens"),
        )

    def fits(self, cost: float) -> bool:
        """Whether the budget left (after spends and holds) can pay `cost` USD.

        Only a snapshot: to spend on it, hold the cost with `reserve` or `route_step`.
        """
        check_number(cost, "cost")
        with self._lock:
            return Fraction(cost) <= self._left()

    def route_step(
        self,
        action: str,
        step_num: int,
        has_prior_failures: bool = False,
        task_risk: str = "medium",
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> StepDecision:
        """The tier for one step, fitted to the budget left (allowed=False when none fits).

        An allowed step holds its cost_estimate until record(cost, step) or release(step).
        """
        wanted, why = self._wanted_tier(action, step_num, has_prior_failures, task_risk)
        costs = {
            s.tier: self.step_cost(s.tier, input_tokens, output_tokens)
            for s in self.config.tiers
            if self.min_tier <= s.tier <= wanted
        }
        with self._lock:
            left = self._left()
            tier = next(
                (t for t in sorted(costs, reverse=True) if Fraction(costs[t]) <= left), None
            )
            if tier is None:
                return self._refuse(min(costs), costs[min(costs)], why, left)
            reservation = self._hold(costs[tier])
        if tier < wanted:
            why += f"; downgraded {wanted}->{tier}: {format_money(float(left))} left"
        return StepDecision(
            tier, self.config.tier(tier).model_id, costs[tier], why, reservation=reservation
        )

    def reserve(
        self,
        tier: int,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        reason: str = "",
    ) -> StepDecision:
        """Hold the cost of one call at exactly `tier` (an escalation, a verifier call).

        Never downgrades: allowed=False when that tier does not fit the budget left.
        """
        cost = self.step_cost(tier, input_tokens, output_tokens)
        why = reason or f"a call at tier {tier}"
        with self._lock:
            left = self._left()
            if Fraction(cost) > left:
                return self._refuse(tier, cost, why, left)
            reservation = self._hold(cost)
        return StepDecision(
            tier, self.config.tier(tier).model_id, cost, why, reservation=reservation
        )

    def require_step(
        self,
        action: str,
        step_num: int,
        has_prior_failures: bool = False,
        task_risk: str = "medium",
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> StepDecision:
        """Like route_step, but raises BudgetExceededError instead of returning allowed=False."""
        decision = self.route_step(
            action,
            step_num,
            has_prior_failures,
            task_risk,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        if not decision.allowed:
            raise BudgetExceededError(decision.reason)
        return decision

    def record(self, cost: float, step: StepDecision | None = None) -> None:
        """Record what a call really cost (USD); with its `step`, that step's hold ends.

        Without `step` the cost is an extra charge that no routed step held for.
        """
        check_number(cost, "cost")
        with self._lock:
            if step is not None:
                self._end_hold(step)
            self._spent += Fraction(cost)
            over = self._spent > self._budget
        if over:  # a call cost more than its estimate: later steps get refused
            log.warning("spent $%.4f, past the $%.4f budget", self.total_spent, self.max_budget)

    def release(self, step: StepDecision) -> None:
        """Drop a step's hold without spending (the step was not run)."""
        with self._lock:
            self._end_hold(step)

    def _left(self) -> Fraction:
        return self._budget - self._spent - sum(self._held.values(), Fraction(0))

    def _hold(self, cost: float) -> int:
        reservation = next(_RESERVATIONS)
        self._held[reservation] = Fraction(cost)
        return reservation

    def _end_hold(self, step: StepDecision) -> None:
        if not isinstance(step, StepDecision):
            raise ACOError(
                f"step: expected the StepDecision route_step or reserve returned, "
                f"got {type(step).__name__}"
            )
        if self._held.pop(step.reservation, None) is None:
            raise ACOError(
                f"step: holds no budget here (refused, already recorded or released, "
                f"or from another PerStepRouter): {step.reason}"
            )

    def _wanted_tier(
        self, action: str, step_num: int, failures: bool, risk: str
    ) -> tuple[int, str]:
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

    def _refuse(self, tier: int, cost: float, why: str, left: Fraction) -> StepDecision:
        reason = (
            f"{why}; refused: {format_money(float(max(left, Fraction(0))))} left of "
            f"{format_money(self.max_budget)}, the cheapest allowed tier ({tier}) costs "
            f"{format_money(cost)}: end the run as budget_exceeded"
        )
        return StepDecision(tier, self.config.tier(tier).model_id, cost, reason, allowed=False)


def _check_tokens(value: object, name: str) -> int:
    """A token count: an int >= 0 (a string or a negative count would make a wrong estimate)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ACOError(f"{name}: expected an int >= 0, got {value!r}")
    return int(value)
