"""The learned cascade at run time: which cheap models to call, and when to stop.

A cascade calls cheap models (each serving a tier) in a learned order. After each answer it
scores the *state* (all answers so far): the candidate answer is the one most of them agree
on, and a logistic model fitted on traces gives P(candidate is right) from answer-level
evidence:

- agreement between the cheap answers (the strongest signal where answers are comparable,
  e.g. multiple choice: two cheap models that agree are right far more often than either);
- answer form: a clean option letter, a Python code block that parses, code in another
  language, an empty answer, a refusal, hedging, the length of the answer;
- log-probabilities when the API returned them: the minimum token log-probability (a low
  quantile sees the few guessed tokens; the mean is dominated by easy tokens and biased by
  length) and the mean.

Each task type has its own order of cheap models, thresholds and fallback, chosen on training
traces by expected cost per success (aco_lab/controls/cascade.py). The models are the ones the
counterfactual traces ran (several may serve one tier: a cheap tier with two models gives
two cheap opinions); a decision names the tier and the model to call. This module only
evaluates that plain-data spec; the lab computes its training features with the same
functions (`answer_features`, `state_features`), so training and run time agree.

Spec (plain data, `bundle["controls"]["cascade"]`):

    {"kind": "cascade_stages", "version": 1,
     "options": {"<model_id>": {"tier": 2, "mean_cost": 0.0003}, ...},
     "top": "<model_id of the top tier>",
     "policies": {"<task_type>" | "*": {
         "sequence": ["<model_id>", ...], "fallback": "<model_id>",
         "accept_at": [a1, a2, a3],        # accept the candidate when P >= a_k at stage k
         "escalate_below": [e1, e2, e3],   # jump to the fallback when P < e_k
         "rank": ["<model_id>", ...],      # ties between answers go to the earlier model here
         "models": {"<id>|<id>": {"features": [...], "weights": [...], "bias": b}, ...}}}}
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aco.errors import ACOError, BundleError
from aco.payload_fields import as_float, as_strings
from aco.trace_format import TIERS

KIND = "cascade_stages"
SPEC_VERSION = 1
ANY_TASK = "*"  # the policy of task types without their own
ACCEPT, CALL = "accept", "call"

# Answer form. A multiple-choice answer is an option letter, alone or with a bracket/period.
OPTION_LETTER = re.compile(r"^\W{0,2}([A-Ea-e])(?:\W{0,2}$|[).:]\s)")
CODE_FENCE = re.compile(r"```[ \t]*([\w+#-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
PYTHON_TAGS = ("", "python", "py", "python3")
DEF_LINE = re.compile(r"^\s*(def|class)\s+\w+", re.MULTILINE)
REFUSAL = re.compile(
    r"\b(I can(no|')t (help|assist|answer|do|provide)|I cannot|I am (not able|unable)|"
    r"I'm (not able|unable)|as an AI|I won't|I do not (have|know)|I don't (have|know)|"
    r"sorry, but|I apologi[sz]e)\b|^\s*I do\s*$",
    re.IGNORECASE,
)
HEDGING = re.compile(
    r"\b(I'?m not (sure|certain)|not entirely sure|I think|I believe|I guess|probably|"
    r"possibly|might be|it depends|hard to say|unclear|cannot be determined)\b",
    re.IGNORECASE,
)
MAX_KEY_CHARS = 400  # answers are compared on this many normalized characters
LOG_CHARS_SCALE = 10.0  # log1p(characters) / this keeps the feature near 0..1

CACHED_ANSWERS = 8192  # answers whose text features are kept (the lab reuses each many times)

TEXT_FEATURES = (
    "letter",
    "code",
    "parses",
    "other_language",
    "truncated",
    "empty",
    "refusal",
    "hedging",
    "log_chars",
)
ANSWER_FEATURES = (*TEXT_FEATURES, "has_logprobs", "mean_logprob", "min_logprob")


@dataclass(frozen=True, slots=True)
class Answer:
    """One model's answer in a cascade: its text and log-probability summaries, when known."""

    model_id: str
    tier: int
    text: str | None
    mean_logprob: float | None = None
    min_logprob: float | None = None


@dataclass(frozen=True, slots=True)
class CascadeStep:
    """What the cascade does next: accept the answer of `model_id`, or call `model_id`."""

    action: str  # ACCEPT or CALL
    model_id: str
    tier: int
    confidence: float | None  # P(the candidate answer is right); None when no model scored it
    reason: str


def answer_from_logprobs(
    model_id: str, tier: int, text: str | None, logprobs: Sequence[float] | None = None
) -> Answer:
    """An Answer from a raw list of token log-probabilities (their mean and minimum kept)."""
    values = [float(v) for v in logprobs] if logprobs else []
    for i, value in enumerate(values):
        if not math.isfinite(value) or value > 1e-6:
            raise ACOError(
                f"cheap_logprobs[{i}]: expected a finite log-probability <= 0, got {value!r}"
            )
    if not values:
        return Answer(model_id, tier, text)
    return Answer(model_id, tier, text, math.fsum(values) / len(values), min(values))


@lru_cache(maxsize=CACHED_ANSWERS)
def answer_key(text: str | None) -> str | None:
    """What an answer says, normalized for agreement; None for an empty answer or a refusal."""
    stripped = (text or "").strip()
    if not stripped or REFUSAL.search(stripped[:200]):
        return None
    letter = OPTION_LETTER.match(stripped)
    if letter:
        return "option:" + letter.group(1).upper()
    code = _code_blocks(stripped)
    if code:
        body = "\n".join(b for _, b in code)
        lines = (ln.split("#", 1)[0].strip() for ln in body.splitlines())
        return "code:" + " ".join(ln for ln in lines if ln)[:MAX_KEY_CHARS]
    words = re.sub(r"[^\w\s]", " ", stripped.lower()).split()
    return "text:" + " ".join(words)[:MAX_KEY_CHARS]


def answer_features(answer: Answer) -> dict[str, float]:
    """Answer-form and log-probability features of one answer (pure)."""
    has_lp = answer.mean_logprob is not None and answer.min_logprob is not None
    features = dict(zip(TEXT_FEATURES, _text_features(answer.text), strict=True))
    features["has_logprobs"] = float(has_lp)
    features["mean_logprob"] = float(answer.mean_logprob) if has_lp else 0.0
    features["min_logprob"] = float(answer.min_logprob) if has_lp else 0.0
    return features


@lru_cache(maxsize=CACHED_ANSWERS)
def _text_features(raw: str | None) -> tuple[float, ...]:
    # Cached: the lab scores each answer in many cascade states; a tuple cannot be mutated.
    text = (raw or "").strip()
    blocks = _code_blocks(text)
    python = [b for lang, b in blocks if lang.lower() in PYTHON_TAGS]
    code = python[0] if python else ("" if blocks else _bare_python(text))
    return (
        float(bool(OPTION_LETTER.match(text))),
        float(bool(blocks) or bool(code)),
        float(bool(code) and _parses(code)),
        float(bool(blocks) and not python),
        float(text.count("```") % 2 == 1),
        float(not text),
        float(bool(REFUSAL.search(text[:200]))),
        float(bool(HEDGING.search(text[:400]))),
        math.log1p(len(text)) / LOG_CHARS_SCALE,
    )


def _code_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in CODE_FENCE.finditer(text)]


def _bare_python(text: str) -> str:
    # An answer that is code without fences: from its first def/class line to the end.
    match = DEF_LINE.search(text)
    return text[match.start() :] if match else ""


def _parses(code: str) -> bool:
    try:
        with warnings.catch_warnings():  # a model's "\d" in a string is its business, not ours
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def choose_candidate(answers: Sequence[Answer], rank: Sequence[str]) -> tuple[str, int]:
    """The answer most agree on -> (its model, its votes); ties go to the better-ranked model."""
    if not answers:
        raise ACOError("cascade: no answer yet; call the first model before asking")
    keys = {a.model_id: answer_key(a.text) for a in answers}
    votes = Counter(k for k in keys.values() if k is not None)
    position = {m: i for i, m in enumerate(rank)}

    def order(a: Answer) -> tuple[int, int, int]:
        return (votes.get(keys[a.model_id], 0), -position.get(a.model_id, len(position)), a.tier)

    best = max(answers, key=order)
    return best.model_id, votes.get(keys[best.model_id], 0)


def state_features(answers: Sequence[Answer], rank: Sequence[str]) -> tuple[str, dict]:
    """The candidate model and the named features of a cascade state (all answers so far)."""
    candidate, votes = choose_candidate(answers, rank)
    keys = {a.model_id: answer_key(a.text) for a in answers}
    distinct = {k for k in keys.values() if k is not None}
    n = len(answers)
    features: dict[str, float] = {
        "share": votes / n,
        "all_agree": float(votes == n),
        "distinct_share": len(distinct) / n,
        f"candidate:{candidate}": 1.0,
    }
    for a in answers:
        key = keys[a.model_id]
        features[f"{a.model_id}:agrees"] = float(key is not None and key == keys[candidate])
        for name, value in answer_features(a).items():
            features[f"{a.model_id}:{name}"] = value
    return candidate, features


def subset_key(model_ids: Sequence[str]) -> str:
    """The key of a set of called models in a spec's models ("a|b|c", sorted)."""
    return "|".join(sorted(set(model_ids)))


def score(model: Mapping[str, Any], features: Mapping[str, float]) -> float:
    """A logistic model's probability from named features (missing features count 0)."""
    z = model["bias"] + math.fsum(
        w * features.get(name, 0.0)
        for name, w in zip(model["features"], model["weights"], strict=True)
    )
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


class CascadePolicy:
    """A learned cascade spec, validated once, applied after each answer."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        check_spec(spec)
        self.spec = spec
        self.options = {m: int(o["tier"]) for m, o in spec["options"].items()}
        self.top = str(spec["top"])

    def policy_for(self, task_type: str | None) -> Mapping[str, Any]:
        """The policy of a task type (the pooled "*" policy for unknown types)."""
        policies = self.spec["policies"]
        return policies.get(task_type) or policies[ANY_TASK]

    def first(self, task_type: str | None) -> tuple[str, int]:
        """(model, tier) a cascade for this task type calls first."""
        policy = self.policy_for(task_type)
        model = policy["sequence"][0] if policy["sequence"] else policy["fallback"]
        return model, self.options[model]

    def option_of(
        self, task_type: str | None, tier: int, model_id: str | None = None
    ) -> str | None:
        """The option an answer came from: its model when known, else its tier's model here."""
        if model_id in self.options:
            return model_id
        policy = self.policy_for(task_type)
        for model in [*policy["sequence"], policy["fallback"], *sorted(self.options)]:
            if self.options[model] == tier:
                return model
        return None

    def step(self, task_type: str | None, answers: Sequence[Answer]) -> CascadeStep:
        """After these answers (in call order): accept one, or the model to call next."""
        policy = self.policy_for(task_type)
        sequence, fallback = list(policy["sequence"]), str(policy["fallback"])
        if not answers:
            model, tier = self.first(task_type)
            return CascadeStep(CALL, model, tier, None, "learned: start")
        called = [a.model_id for a in answers]
        last = answers[-1]
        if fallback in called or self.top in called:
            # The fallback's (or the top model's) answer is final: nothing stronger to ask.
            return CascadeStep(
                ACCEPT,
                last.model_id,
                last.tier,
                None,
                f"learned: {last.model_id} (tier {last.tier}) answers last; accept",
            )
        model = policy["models"].get(subset_key(called))
        if model is None:  # answers from outside the learned order: no evidence model
            return self._call(
                fallback, None, f"learned: no evidence model for {subset_key(called)}; escalate"
            )
        candidate, features = state_features(answers, policy["rank"])
        p = score(model, features)
        stage = _stage(sequence, called)
        accept_at, escalate_below = policy["accept_at"][stage], policy["escalate_below"][stage]
        why = (
            f"learned: P({candidate} answer right) {p:.2f}, "
            f"{features['share']:.0%} of {len(called)} answers agree"
        )
        if p >= accept_at:
            return CascadeStep(
                ACCEPT, candidate, self.options[candidate], p, f"{why}; >= {accept_at:.2f}: accept"
            )
        rest = [m for m in sequence if m not in called]
        if p < escalate_below or not rest:
            return self._call(fallback, p, f"{why}; < {accept_at:.2f}: escalate")
        return self._call(rest[0], p, f"{why}; < {accept_at:.2f}: ask another cheap model")

    def _call(self, model: str, p: float | None, why: str) -> CascadeStep:
        tier = self.options[model]
        return CascadeStep(CALL, model, tier, p, f"{why} to {model} (tier {tier})")


def _stage(sequence: Sequence[str], called: Sequence[str]) -> int:
    # How far along the learned order the calls are (clamped to the order's length).
    done = sum(1 for m in sequence if m in called)
    return max(0, min(done, len(sequence)) - 1)


def check_spec(spec: Any, where: str = "bundle controls.cascade") -> None:
    """Raise BundleError unless `spec` is a cascade spec this runtime can apply."""
    if not isinstance(spec, Mapping) or spec.get("kind") != KIND:
        raise BundleError(f"{where}.kind: expected {KIND!r}; rebuild the bundle with aco-lab train")
    if spec.get("version") != SPEC_VERSION:
        raise BundleError(
            f"{where}.version: expected {SPEC_VERSION}, got {spec.get('version')!r};"
            f" rebuild the bundle with this version of aco-lab"
        )
    options = spec.get("options")
    if (
        not isinstance(options, Mapping)
        or not options
        or any(
            not isinstance(o, Mapping) or type(o.get("tier")) is not int or o["tier"] not in TIERS
            for o in options.values()
        )
    ):
        raise BundleError(f"{where}.options: expected a mapping model_id -> {{tier: 1..5}}")
    if spec.get("top") not in options:
        raise BundleError(f"{where}.top: expected one of the options, got {spec.get('top')!r}")
    policies = spec.get("policies")
    if not isinstance(policies, Mapping) or ANY_TASK not in policies:
        raise BundleError(f"{where}.policies: expected a mapping with a {ANY_TASK!r} policy")
    for name, policy in policies.items():
        _check_policy(policy, options, f"{where}.policies.{name}")


def _check_policy(policy: Any, options: Mapping[str, Any], where: str) -> None:
    if not isinstance(policy, Mapping):
        raise BundleError(f"{where}: expected a mapping")
    sequence = policy.get("sequence")
    if not isinstance(sequence, list) or any(m not in options for m in sequence):
        raise BundleError(f"{where}.sequence: expected a list of option model ids")
    if policy.get("fallback") not in options:
        raise BundleError(f"{where}.fallback: expected an option model id")
    if not isinstance(policy.get("rank"), list):
        raise BundleError(f"{where}.rank: expected a list of option model ids")
    as_strings(policy["rank"], f"{where}.rank")
    for key in ("accept_at", "escalate_below"):
        values = policy.get(key)
        if (
            not isinstance(values, list)
            or len(values) != max(1, len(sequence))
            or any(not isinstance(v, int | float) or math.isnan(v) for v in values)
        ):
            raise BundleError(f"{where}.{key}: expected one number per stage")
    models = policy.get("models")
    if not isinstance(models, Mapping):
        raise BundleError(f"{where}.models: expected a mapping of called models -> model")
    for key, model in models.items():
        feats = model.get("features") if isinstance(model, Mapping) else None
        weights = model.get("weights") if isinstance(model, Mapping) else None
        if not (
            isinstance(feats, list)
            and isinstance(weights, list)
            and len(feats) == len(weights)
            and isinstance(model.get("bias"), int | float)
        ):
            raise BundleError(
                f"{where}.models.{key}: expected features, weights (same length) and bias"
            )
        as_strings(feats, f"{where}.models.{key}.features")
        for i, weight in enumerate(weights):
            as_float(weight, f"{where}.models.{key}.weights[{i}]")
        as_float(model["bias"], f"{where}.models.{key}.bias")
