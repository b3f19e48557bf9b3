"""The values the runtime's decisions return: frozen, slotted, cheap to build.

Every decision says which mode produced it (`bundle` = learned from traces, `rules` = the
documented rule-based fallback) and why, in `reason`.
"""

from dataclasses import dataclass, field

MODE_BUNDLE = "bundle"
MODE_RULES = "rules"

# Whether a learned tool gate's deny is applied (GateDecision.enforcement): a learned deny is
# enforced only on strong evidence (aco_lab/controls/tool_gate.py); otherwise the call is
# allowed and the deny is recorded as advice.
ENFORCED = "enforced"
ADVISORY = "advisory"
ENFORCEMENTS = (ADVISORY, ENFORCED)

# Where a decision's task type came from (RoutingDecision.task_type_from; the trace's metadata
# keeps it, so a type the runtime guessed is never mistaken for one the agent knew).
FROM_CALLER = "caller"  # passed by the agent
FROM_CLASSIFIER = "classifier"  # predicted by the bundle's task-type classifier
FROM_RULE_CUES = "rule_cues"  # named by the rules' cues in the request
FROM_NONE = "none"  # not known: routed without one


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Which tier a request goes to, and why."""

    tier: int
    model_id: str
    confidence: float  # predicted probability of success at `tier`, 0..1
    cost_estimate: float  # USD expected for one call at `tier`
    task_type: str | None
    reason: str
    mode: str  # MODE_BUNDLE or MODE_RULES
    probabilities: tuple[float, ...] = ()  # P(success) per tier 1..5 (bundle mode), else ()
    task_type_from: str = FROM_CALLER  # FROM_CALLER | FROM_CLASSIFIER | FROM_RULE_CUES | FROM_NONE


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """How many context tokens a run gets, what to keep verbatim and what to drop."""

    total_tokens: int
    keep_exact: tuple[str, ...]
    omit: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CascadeDecision:
    """Accept a cheap model's answer, or escalate (and to which tier)."""

    escalated: bool
    final_tier: int
    model_id: str
    confidence: float
    reason: str
    mode: str = MODE_RULES


@dataclass(frozen=True, slots=True)
class DoomDecision:
    """Whether a run should be stopped because it is unlikely to succeed."""

    doomed: bool
    reason: str
    success_probability: float | None = None
    mode: str = MODE_RULES


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether a tool call is worth making for this task type."""

    allow: bool
    tool_name: str
    reason: str
    mode: str = MODE_RULES
    enforcement: str = ENFORCED  # ADVISORY: `allow` is True whatever the gate's verdict
    advice: str = ""  # "deny" when an advisory gate would have denied the call

    @property
    def recommended_allow(self) -> bool:
        """The gate's verdict, enforced or not."""
        return self.allow and self.advice != "deny"


@dataclass(frozen=True, slots=True)
class VerifyDecision:
    """Whether to call a verifier on an answer before declaring DONE."""

    verify: bool
    reason: str
    mode: str = MODE_RULES


@dataclass(frozen=True, slots=True)
class StepDecision:
    """The tier one agent step runs at under a per-run budget."""

    adjusted_tier: int
    model_id: str
    cost_estimate: float
    reason: str
    allowed: bool = True  # False when no tier fits the remaining budget
    extra: dict = field(default_factory=dict)
    # The PerStepRouter's hold on cost_estimate while the step runs (0: none, as when refused);
    # record(cost, step) or release(step) ends it.
    reservation: int = 0
