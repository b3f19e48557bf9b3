"""Langfuse exports (traces and observations, as the public API returns them) as runs.

A file holds traces (``{"id", "input", "observations": [...], "scores": [...]}``), bare
observations (``{"id", "traceId", "type", ...}``), either wrapped in ``{"data": [...]}`` as the
API's list endpoints return them, as a JSON array, or as JSON lines. Observations are grouped
into runs by ``traceId`` (or by the trace that holds them). Mapping (docs/integrations.md):

- ``GENERATION`` and ``EMBEDDING`` observations are model calls: ``model``;
  tokens from ``usageDetails`` (``input``, ``output``, cached ``input_cached_tokens`` /
  ``cache_read_input_tokens`` / ``input_cache_read``; else the older ``usage``); cost
  ``costDetails.total``, else ``calculatedTotalCost``/``totalCost``, else priced from the snapshot;
- ``TOOL`` observations are tool calls, failed when their ``level`` is ``ERROR``;
- other observations (``SPAN``, ``EVENT``, ``AGENT``, ``CHAIN``...) are skipped (counted); a
  top-level one at level ``ERROR`` makes the run ``failed``;
- the request is the trace's ``input`` (else the first generation's); a boolean score named
  ``task_success`` (or ``success``) gives ``task_success``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aco_lab.importers.records import (
    ImportedCall,
    ImportedRun,
    ImportedTool,
    Parsed,
    Record,
    RecordError,
    count,
    listed,
    read_records,
    seconds,
    text_of,
    usd,
)

SOURCE = "langfuse"
MODEL_TYPES = ("GENERATION", "EMBEDDING")
TOOL_TYPE = "TOOL"
CACHED_KEYS = ("input_cached_tokens", "cache_read_input_tokens", "input_cache_read")
SUCCESS_SCORES = ("task_success", "success")


@dataclass(slots=True)
class _Trace:
    where: str | None = None
    trace: Mapping[str, Any] | None = None
    observations: list[Record] = field(default_factory=list)


def read_langfuse(files: Iterable[Path]) -> Parsed:
    """Runs from Langfuse export files (grouped by trace id over all files)."""
    parsed = Parsed()
    traces: dict[str, _Trace] = {}
    for path in files:
        for record in read_records(path):
            items = list(listed(record, "data")) if _is_page(record.value) else [record]
            for item in items:
                _add(item, traces, parsed)
    for trace_id, found in traces.items():
        try:
            run = build_run(trace_id, found)
        except RecordError as exc:
            parsed.problems.append(str(exc))
            parsed.bad_runs += 1
            continue
        if run.calls or run.tools:  # the observations that are neither are skipped
            parsed.skipped += (
                run.records - len(run.calls) - len(run.tools) - (found.trace is not None)
            )
            parsed.runs.append(run)
        else:  # a trace without a generation or a tool: nothing to learn from
            parsed.skipped += run.records
    return parsed


def _is_page(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("data"), list)


def _add(record: Record, traces: dict[str, _Trace], parsed: Parsed) -> None:
    """File one record (a trace with its observations, or an observation) under its trace."""
    value = record.value
    parsed.records += 1
    if isinstance(value, RecordError) or not isinstance(value, Mapping):
        why = value if isinstance(value, RecordError) else "expected a trace or an observation"
        parsed.invalid += 1
        parsed.problems.append(f"{record.where}: {why}")
        return
    if "traceId" in value or "type" in value:  # an observation
        trace_id = value.get("traceId")
        if not isinstance(trace_id, str) or not trace_id:
            parsed.invalid += 1
            parsed.problems.append(f"{record.where}: traceId: required, a string")
            return
        traces.setdefault(trace_id, _Trace()).observations.append(record)
        return
    trace_id = value.get("id")
    if not isinstance(trace_id, str) or not trace_id:
        parsed.invalid += 1
        parsed.problems.append(f"{record.where}: id: a trace needs its id")
        return
    entry = traces.setdefault(trace_id, _Trace())
    entry.where, entry.trace = record.where, value
    for item in listed(record, "observations"):
        if isinstance(item.value, Mapping):  # list endpoints give ids only: nothing to read
            parsed.records += 1
            entry.observations.append(item)


def build_run(trace_id: str, found: _Trace) -> ImportedRun:
    """A run from a trace and its observations (RecordError names the bad field)."""
    trace = found.trace or {}
    first = found.where or (found.observations[0].where if found.observations else trace_id)
    records = len(found.observations) + (found.trace is not None)
    run = ImportedRun(trace_id, SOURCE, first, records=records)
    run.request = text_of(trace.get("input"))
    run.task_success = _success_score(trace.get("scores"))
    run.started = _time(trace, "timestamp", first)
    for record in found.observations:
        obs = record.value
        kind, start = obs.get("type"), _time(obs, "startTime", record.where)
        if start is not None and (run.started is None or start < run.started):
            run.started = start
        if kind in MODEL_TYPES:
            run.calls.append(_call(record, start or 0.0))
            run.request = run.request or text_of(obs.get("input"))
        elif kind == TOOL_TYPE:
            run.tools.append(
                ImportedTool(
                    record.where,
                    str(obs.get("name") or "tool"),
                    obs.get("level") != "ERROR",
                    start or 0.0,
                    latency_ms=_latency(obs, record.where),
                )
            )
        elif obs.get("level") == "ERROR" and not obs.get("parentObservationId"):
            run.failed = True
    return run


def _call(record: Record, start: float) -> ImportedCall:
    obs, where = record.value, record.where
    model = obs.get("model")
    if not isinstance(model, str) or not model:
        raise RecordError(f"{where}: model: a generation names no model")
    usage = obs.get("usageDetails") or {}
    legacy = obs.get("usage") or {}
    cost_details = obs.get("costDetails") or {}
    try:
        cost = next(
            (
                usd(v, name)
                for name, v in (
                    ("costDetails.total", cost_details.get("total")),
                    ("calculatedTotalCost", obs.get("calculatedTotalCost")),
                    ("totalCost", obs.get("totalCost")),
                )
                if v is not None
            ),
            None,
        )
        cached = next((usage[k] for k in CACHED_KEYS if usage.get(k) is not None), None)
        return ImportedCall(
            where,
            model,
            start,
            input_tokens=count(_pick(usage, legacy, "input", "promptTokens"), "usageDetails.input"),
            output_tokens=count(
                _pick(usage, legacy, "output", "completionTokens"), "usageDetails.output"
            ),
            cached_input_tokens=count(cached, "usageDetails.input_cached_tokens"),
            cost=cost,
            latency_ms=_latency(obs, where),
        )
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}") from None


def _pick(usage: Mapping[str, Any], legacy: Mapping[str, Any], key: str, old: str) -> Any:
    for value in (usage.get(key), legacy.get(key), legacy.get(old)):
        if value is not None:
            return value
    return None


def _success_score(scores: Any) -> bool | None:
    for score in scores if isinstance(scores, list) else ():
        if isinstance(score, Mapping) and score.get("name") in SUCCESS_SCORES:
            value = score.get("value")
            if isinstance(value, bool):
                return value
            if value in (0, 1):
                return bool(value)
    return None


def _time(value: Mapping[str, Any], key: str, where: str) -> float | None:
    try:
        return seconds(value.get(key), key)
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}") from None


def _latency(obs: Mapping[str, Any], where: str) -> float | None:
    start, end = _time(obs, "startTime", where), _time(obs, "endTime", where)
    return None if start is None or end is None else max(end - start, 0.0) * 1000.0
