"""The monitoring metrics in pure Python: what `aco stats` prints over the local trace log.

Two steps, so that the formulas are written once: traces are summed into `Totals` (counts and
sums; `aco_lab.report.stats` sums the same from its Polars tables), and `build_metrics` turns totals
into metrics and alerts. Definitions and null handling: docs/metrics.md.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import msgspec

from aco import trace_format as tf
from aco.config import ACOConfig, AlertThresholds
from aco.errors import DataError, TraceFormatError
from aco.formatting import format_count, format_money, format_share
from aco.outcomes import is_outcomes_file
from aco.trace_decode import DECODE_ERRORS, TRACE_DECODER, UTF8_BOM, describe_decode_error

log = logging.getLogger(__name__)

METRIC_KEYS = (
    "runs",
    "labelled_share",
    "successes",
    "success_rate",
    "total_cost",
    "cost_per_success",
    "success_rate_by_tier",
    "escalation_rate",
    "cache_hit_rate",
    "verifier_call_rate",
    "false_done_rate",
    "alerts",
)
# What --by may group on. task_type_from is the trace's metadata.task_type_from, written by
# aco's runtime: whether the run's task type was given (caller) or guessed (classifier,
# rule_cues, none); a rising share of guesses means requests arrive untyped or unlike training.
TASK_TYPE_FROM = "task_type_from"
GROUP_FIELDS = (tf.TASK_TYPE, "tier", tf.SOURCE, TASK_TYPE_FROM)
NULL_GROUP = "(none)"  # the group of runs whose key is null
TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")


@dataclass(frozen=True, slots=True)
class TierTotals:
    """Sums over the runs of one tier (tier = predicted_tier, else the highest tier called)."""

    tier: int
    runs: int
    successes: int  # task_success true
    known: int  # task_success not null
    cost: float  # USD, sum of total_cost
    known_cost: float = 0.0  # USD, sum of total_cost over the runs with task_success not null


@dataclass(frozen=True, slots=True)
class Totals:
    """Counts and sums over a set of runs: everything the metrics are computed from."""

    runs: int
    successes: int  # task_success true
    known: int  # task_success not null
    total_cost: float  # USD
    escalated: int  # runs with any escalated_from, or calls at more than one tier
    input_tokens: int  # summed over calls (null counts 0)
    cached_input_tokens: int  # summed over calls (null counts 0)
    cache_reported: int  # runs where at least one call reported cached_input_tokens
    steps: int
    verifier_steps: int  # steps with verifier_called
    completed_known: int  # final_outcome completed, task_success not null
    false_dones: int  # final_outcome completed, task_success false
    tiers: tuple[TierTotals, ...] = ()  # ascending tier; runs without a tier are left out
    known_cost: float = 0.0  # USD, sum of total_cost over the runs with task_success not null


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert line of the deployment guide that the data crosses."""

    name: str
    metric: str  # the metric key it watches
    value: float  # the metric's value
    threshold: float  # the line it crossed, in the metric's unit
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready data."""
        return {
            "name": self.name,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Metrics:
    """The monitoring metrics of a set of runs (and, with `by`, of each group of it)."""

    runs: int
    labelled_share: float | None  # share of runs whose outcome is known (the rest are left out)
    successes: int
    success_rate: float | None
    total_cost: float
    cost_per_success: float | None
    success_rate_by_tier: Mapping[int, float | None]
    escalation_rate: float | None
    cache_hit_rate: float | None
    verifier_call_rate: float | None
    false_done_rate: float | None
    alerts: tuple[Alert, ...]
    by: str | None = None
    groups: Mapping[str, Metrics] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: exactly METRIC_KEYS, plus `by_<field>` with the groups when grouped."""
        out: dict[str, Any] = {key: getattr(self, key) for key in METRIC_KEYS}
        out["success_rate_by_tier"] = {str(t): r for t, r in self.success_rate_by_tier.items()}
        out["alerts"] = [alert.to_dict() for alert in self.alerts]
        if self.by is not None:
            out[f"by_{self.by}"] = {key: m.to_dict() for key, m in self.groups.items()}
        return out


def build_metrics(
    totals: Totals,
    alerts: AlertThresholds,
    by: str | None = None,
    groups: Mapping[str, Totals] | None = None,
) -> Metrics:
    """The metrics and alerts of `totals` (and of each group's totals, keyed by group)."""
    success_rate_by_tier = {t.tier: _ratio(t.successes, t.known) for t in totals.tiers}
    cache_hit_rate = _ratio(totals.cached_input_tokens, totals.input_tokens)
    metrics = Metrics(
        runs=totals.runs,
        labelled_share=_ratio(totals.known, totals.runs),
        successes=totals.successes,
        success_rate=_ratio(totals.successes, totals.known),
        total_cost=totals.total_cost,
        # Over labelled runs only: an unlabelled run's cost has no outcome to be divided by.
        cost_per_success=_ratio(totals.known_cost, totals.successes),
        success_rate_by_tier=success_rate_by_tier,
        escalation_rate=_ratio(totals.escalated, totals.runs),
        cache_hit_rate=cache_hit_rate if totals.cache_reported else None,
        verifier_call_rate=_ratio(totals.verifier_steps, totals.steps),
        false_done_rate=_ratio(totals.false_dones, totals.completed_known),
        alerts=(),
    )
    built = {key: build_metrics(sub, alerts) for key, sub in sorted_groups(groups or {}).items()}
    return replace(metrics, alerts=build_alerts(metrics, totals, alerts), by=by, groups=built)


def frontier_cost_per_success(totals: Totals) -> float | None:
    """Always-frontier cost per success: that of the runs at the highest tier present."""
    if not totals.tiers:
        return None
    top = totals.tiers[-1]
    return _ratio(top.known_cost, top.successes)


def build_alerts(metrics: Metrics, totals: Totals, lines: AlertThresholds) -> tuple[Alert, ...]:
    """The deployment guide's alerts that `metrics` crosses (strictly), in a fixed order."""
    found = []
    if metrics.success_rate is not None and metrics.success_rate < lines.min_success_rate:
        found.append(
            Alert(
                "low_success_rate",
                "success_rate",
                metrics.success_rate,
                lines.min_success_rate,
                f"success rate {format_share(metrics.success_rate)} is below "
                f"{format_share(lines.min_success_rate)}",
            )
        )
    cost_alert = _cost_alert(metrics, totals, lines.max_cost_ratio_vs_frontier)
    if cost_alert is not None:
        found.append(cost_alert)
    rates = (
        ("high_verifier_call_rate", "verifier_call_rate", lines.max_verifier_call_rate),
        ("high_escalation_rate", "escalation_rate", lines.max_escalation_rate),
    )
    for name, key, line in rates:
        value = getattr(metrics, key)
        if value is not None and value > line:
            message = f"{key.replace('_', ' ')} {format_share(value)} is above {format_share(line)}"
            found.append(Alert(name, key, value, line, message))
    return tuple(found)


def _cost_alert(metrics: Metrics, totals: Totals, ratio: float) -> Alert | None:
    # The reference comes from the same runs, so it exists only when some run succeeded:
    # with no success there is no cost alert (the success-rate alert fires instead).
    frontier = frontier_cost_per_success(totals)
    cost = metrics.cost_per_success
    if frontier is None or cost is None or cost <= ratio * frontier:
        return None
    top = totals.tiers[-1].tier
    return Alert(
        "high_cost_per_success",
        "cost_per_success",
        cost,
        ratio * frontier,
        f"cost per success {format_money(cost)} is above {ratio:g}x always-frontier "
        f"(tier {top}: {format_money(frontier)} per success)",
    )


def sorted_groups(groups: Mapping[str, Any]) -> dict[str, Any]:
    """Groups in key order (tiers numerically), the null group last."""

    def order(key: str) -> tuple:
        """Null group last, numbers before names, numbers by value."""
        return (key == NULL_GROUP, not key.isdigit(), int(key) if key.isdigit() else 0, key)

    return {key: groups[key] for key in sorted(groups, key=order)}


def group_key(value: Any) -> str:
    """The JSON key of a group value (null -> NULL_GROUP)."""
    return NULL_GROUP if value is None else str(value)


# -- pure-Python totals over trace dicts ------------------------------------------------------
# The per-run counts, in the order _run_sums returns them (all Totals fields but cost, tiers).
_RUN_COUNTS = (
    "runs",
    "successes",
    "known",
    "escalated",
    "input_tokens",
    "cached_input_tokens",
    "cache_reported",
    "steps",
    "verifier_steps",
    "completed_known",
    "false_dones",
)


@dataclass(slots=True)
class _Sums:
    """Mutable running sums over runs (turned into Totals at the end)."""

    counts: list[int] = field(default_factory=lambda: [0] * len(_RUN_COUNTS))
    total_cost: float = 0.0
    known_cost: float = 0.0
    # tier -> [runs, successes, known, cost, known_cost]
    tiers: dict[int, list] = field(default_factory=dict)

    def add(self, run: tuple, cost: float, tier: int | None, success: bool | None) -> None:
        """Add one run (as _run_sums returns it)."""
        for i, value in enumerate(run):
            self.counts[i] += value
        self.total_cost += cost
        known_cost = cost if success is not None else 0.0
        self.known_cost += known_cost
        if tier is not None:
            sums = self.tiers.setdefault(tier, [0, 0, 0, 0.0, 0.0])
            sums[0] += 1
            sums[1] += success is True
            sums[2] += success is not None
            sums[3] += cost
            sums[4] += known_cost

    def totals(self) -> Totals:
        """The sums so far as Totals."""
        tiers = tuple(TierTotals(t, *self.tiers[t]) for t in sorted(self.tiers))
        counts = dict(zip(_RUN_COUNTS, self.counts, strict=True))
        return Totals(**counts, total_cost=self.total_cost, tiers=tiers, known_cost=self.known_cost)


def compute_totals(
    traces: Iterable[Mapping[str, Any]], by: str | None = None
) -> tuple[Totals, dict[str, Totals]]:
    """Sum traces into overall totals and, with `by`, totals per group."""
    _check_by(by)
    overall, groups = _Sums(), {}
    for number, trace in enumerate(traces, start=1):
        run, cost, tier, success = _run_sums(trace, f"trace #{number}")
        overall.add(run, cost, tier, success)
        if by is not None:
            key = group_key(_group_value(trace, by, tier))
            groups.setdefault(key, _Sums()).add(run, cost, tier, success)
    return overall.totals(), {key: sums.totals() for key, sums in groups.items()}


def compute_metrics(
    traces: Iterable[Mapping[str, Any]], config: ACOConfig | None = None, by: str | None = None
) -> dict[str, Any]:
    """The monitoring metrics of trace dicts as JSON-ready data (see Metrics.to_dict)."""
    config = config or ACOConfig()
    totals, groups = compute_totals(traces, by)
    return build_metrics(totals, config.alerts, by, groups if by else None).to_dict()


def _run_sums(trace: Mapping[str, Any], where: str) -> tuple[tuple, float, int | None, bool | None]:
    """One run's contribution: (counts in _Sums order, cost, tier, task_success)."""
    if not isinstance(trace, Mapping):
        raise TraceFormatError(f"{where}: expected a JSON object, got {type(trace).__name__}")
    where = f"{where} ({trace.get(tf.TRACE_ID, '?')})"
    success = _field(trace, tf.TASK_SUCCESS, (bool, type(None)), "true, false or null", where)
    cost = _field(trace, tf.TOTAL_COST, (int, float), "a number >= 0", where)
    outcome = _field(trace, tf.FINAL_OUTCOME, (str,), "a string", where)
    steps = _field(trace, tf.STEPS, (list,), "a list of steps", where)
    tiers, escalated, tokens, cached, reported, verified = set(), False, 0, 0, False, 0
    for i, step in enumerate(steps):
        if not isinstance(step, Mapping):
            raise TraceFormatError(f"{where}: steps[{i}]: expected an object")
        verified += step.get(tf.VERIFIER_CALLED) is True
        call = step.get(tf.MODEL_CALL)
        if call is None:
            continue
        tier = call.get(tf.TIER) if isinstance(call, Mapping) else None
        if not isinstance(tier, int) or isinstance(tier, bool):
            raise TraceFormatError(f"{where}: steps[{i}].model_call.tier: expected an int 1..5")
        tiers.add(tier)
        escalated = escalated or call.get(tf.ESCALATED_FROM) is not None
        tokens += call.get(tf.INPUT_TOKENS) or 0
        if call.get(tf.CACHED_INPUT_TOKENS) is not None:
            cached += call[tf.CACHED_INPUT_TOKENS]
            reported = True
    predicted = trace.get(tf.PREDICTED_TIER)
    tier = predicted if predicted is not None else max(tiers) if tiers else None
    completed = outcome == tf.OUTCOME_COMPLETED
    run = (
        1,
        success is True,
        success is not None,
        escalated or len(tiers) > 1,
        tokens,
        cached,
        reported,
        len(steps),
        verified,
        completed and success is not None,
        completed and success is False,
    )
    return run, float(cost), tier, success


def _field(trace: Mapping[str, Any], key: str, types: tuple, expected: str, where: str) -> Any:
    if key not in trace:
        raise TraceFormatError(f"{where}: {key}: required field missing; see trace format v1")
    value = trace[key]
    wrong = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
    if wrong or (isinstance(value, float | int) and not isinstance(value, bool) and value < 0):
        raise TraceFormatError(f"{where}: {key}: expected {expected}, got {value!r:.40}")
    return value


def _group_value(trace: Mapping[str, Any], by: str, tier: int | None) -> Any:
    if by == "tier":
        return tier
    if by == TASK_TYPE_FROM:
        metadata = trace.get(tf.METADATA)
        return metadata.get(TASK_TYPE_FROM) if isinstance(metadata, Mapping) else None
    return trace.get(by)


def _check_by(by: str | None) -> None:
    if by is not None and by not in GROUP_FIELDS:
        raise DataError(f"--by: expected one of {', '.join(GROUP_FIELDS)}, got {by!r}")


# -- reading trace files ------------------------------------------------------------------------
def read_trace_lines(
    paths: Iterable[str | Path] | str | Path, on_error: Literal["fail", "skip"] = "fail"
) -> Iterator[dict[str, Any]]:
    """Trace dicts from .jsonl / .jsonl.gz files or directories of them, in order.

    Each line is checked against trace format v1 (the types of aco/trace_decode.py, as the
    lab's loader checks it); a bad line raises TraceFormatError with FILE:LINE
    (on_error="fail") or is logged and skipped (on_error="skip"). Blank lines are skipped; a
    UTF-8 byte order mark at the start of a file is dropped.
    """
    check = TRACE_DECODER.decode
    decode = msgspec.json.Decoder().decode  # strict JSON, several times faster than json.loads
    for path in _trace_files([paths] if isinstance(paths, str | Path) else paths):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number == 1 and raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM) :]
                if not raw.strip():
                    continue
                try:
                    check(raw)  # types, ranges, required fields: compute_totals relies on them
                    trace = decode(raw)
                except DECODE_ERRORS as exc:
                    problem = f"{path}:{number}: {describe_decode_error(raw.rstrip(), exc)}"
                    if on_error == "fail":
                        raise TraceFormatError(
                            problem + "; fix the line or pass on_error='skip'"
                        ) from None
                    log.warning("%s; skipped", problem)
                    continue
                yield trace


def _trace_files(paths: Iterable[str | Path]) -> list[Path]:
    files = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.name.endswith(TRACE_SUFFIXES) and not is_outcomes_file(p)
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{given}: no such file or directory; pass .jsonl(.gz) files or dirs")
    return files


# -- text output -----------------------------------------------------------------------------
def format_metrics(metrics: Mapping[str, Any]) -> str:
    """The metrics (Metrics.to_dict() / compute_metrics output) as a readable table."""
    lines = [f"{key:<22}{_show(key, metrics[key])}" for key in METRIC_KEYS if key != "alerts"]
    lines.append(f"{'alerts':<22}{len(metrics['alerts']) or 'none'}")
    lines += [f"  ALERT {a['name']}: {a['message']}" for a in metrics["alerts"]]
    for key, groups in metrics.items():
        if key.startswith("by_"):
            lines += ["", _group_table(key[3:], groups)]
    return "\n".join(lines)


_TABLE = (
    ("runs", "runs"),
    ("labelled", "labelled_share"),
    ("success", "success_rate"),
    ("cost/success", "cost_per_success"),
    ("total cost", "total_cost"),
    ("escalation", "escalation_rate"),
    ("cache hit", "cache_hit_rate"),
    ("verifier", "verifier_call_rate"),
    ("false DONE", "false_done_rate"),
)


def _group_table(by: str, groups: Mapping[str, Mapping[str, Any]]) -> str:
    width = max([len(by), *map(len, groups)]) + 2
    head = f"{by:<{width}}" + "".join(f"{title:>14}" for title, _ in _TABLE) + "  alerts"
    rows = [
        f"{key:<{width}}"
        + "".join(f"{_show(k, m[k]):>14}" for _, k in _TABLE)
        + "  "
        + (",".join(a["name"] for a in m["alerts"]) or "-")
        for key, m in groups.items()
    ]
    return "\n".join([head, *rows])


def _show(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key == "success_rate_by_tier":
        return "  ".join(f"{t}: {_show('rate', r)}" for t, r in value.items()) or "n/a"
    if key in ("total_cost", "cost_per_success"):
        return format_money(value)
    if key in ("runs", "successes"):
        return format_count(value)
    return format_share(value)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None
