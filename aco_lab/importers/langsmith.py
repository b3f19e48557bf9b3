"""LangSmith run exports (runs as the SDK's ``list_runs`` and the API return them) as runs.

A file holds LangSmith runs (``{"id", "trace_id", "parent_run_id", "run_type", ...}``) as a
JSON array, JSON lines, ``{"runs": [...]}``, or one root run with nested ``child_runs``. Runs
are grouped into ACO runs by ``trace_id``. Mapping (docs/integrations.md):

- ``run_type: "llm"`` runs are model calls: the model from ``extra.metadata.ls_model_name``,
  else ``extra.invocation_params`` (``model``, ``model_name``); tokens ``prompt_tokens``,
  ``completion_tokens``, cached ``prompt_token_details.cache_read``; cost ``total_cost``
  (else ``prompt_cost + completion_cost``), else priced from the snapshot;
- ``run_type: "tool"`` runs are tool calls, failed when they have an ``error`` (or
  ``status: "error"``);
- other runs (``chain``, ``retriever``, ``prompt``, ``parser``...) are skipped (counted); the
  root run (no ``parent_run_id``) gives the request (``inputs``) and, when it has an error,
  makes the run ``failed``; ``feedback_stats`` key ``task_success`` (avg 1 or 0) its outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
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

SOURCE = "langsmith"


def read_langsmith(files: Iterable[Path]) -> Parsed:
    """ACO runs from LangSmith run exports (grouped by trace_id over all files)."""
    parsed = Parsed()
    traces: dict[str, list[Record]] = {}
    for path in files:
        for record in read_records(path):
            for item in _runs(record):
                parsed.records += 1
                value = item.value
                trace_id = (
                    value.get("trace_id") or value.get("id") if isinstance(value, Mapping) else None
                )
                if not isinstance(trace_id, str) or not trace_id:
                    why = (
                        value
                        if isinstance(value, RecordError)
                        else "trace_id: a run needs its trace_id (or id)"
                    )
                    parsed.invalid += 1
                    parsed.problems.append(f"{item.where}: {why}")
                    continue
                traces.setdefault(trace_id, []).append(item)
    for trace_id, records in traces.items():
        try:
            run = build_run(trace_id, records)
        except RecordError as exc:
            parsed.problems.append(str(exc))
            parsed.bad_runs += 1
            continue
        used = len(run.calls) + len(run.tools)
        if used:
            parsed.skipped += len(records) - used - _has_root(records)
            parsed.runs.append(run)
        else:
            parsed.skipped += len(records)
    return parsed


def _runs(record: Record) -> Iterator[Record]:
    """The runs of a record: a list page, or a run and its nested child runs."""
    if isinstance(record.value, Mapping) and isinstance(record.value.get("runs"), list):
        for item in listed(record, "runs"):
            yield from _runs(item)
        return
    yield record
    for child in listed(record, "child_runs"):
        yield from _runs(child)


def _has_root(records: list[Record]) -> int:
    return int(any(not r.value.get("parent_run_id") for r in records))


def build_run(trace_id: str, records: list[Record]) -> ImportedRun:
    """One ACO run from the LangSmith runs of one trace."""
    records = sorted(records, key=lambda r: _start(r) or 0.0)
    run = ImportedRun(
        trace_id, SOURCE, records[0].where, started=_start(records[0]), records=len(records)
    )
    for record in records:
        value, start = record.value, _start(record) or 0.0
        kind = value.get("run_type")
        failed = bool(value.get("error")) or value.get("status") == "error"
        if not value.get("parent_run_id"):
            run.request = text_of(value.get("inputs"))
            run.failed = run.failed or failed
            run.task_success = _success(value.get("feedback_stats"))
        if kind == "llm":
            run.calls.append(_call(record, start))
        elif kind == "tool":
            run.tools.append(
                ImportedTool(
                    record.where,
                    str(value.get("name") or "tool"),
                    not failed,
                    start,
                    latency_ms=_latency(record),
                )
            )
    if not run.request and run.calls:
        run.request = text_of(records[0].value.get("inputs"))
    return run


def _call(record: Record, start: float) -> ImportedCall:
    value, where = record.value, record.where
    extra = value.get("extra") or {}
    params = extra.get("invocation_params") or {}
    model = (
        (extra.get("metadata") or {}).get("ls_model_name")
        or params.get("model")
        or params.get("model_name")
    )
    if not isinstance(model, str) or not model:
        raise RecordError(f"{where}: extra.metadata.ls_model_name: an llm run names no model")
    details = value.get("prompt_token_details") or {}
    try:
        cost = usd(value.get("total_cost"), "total_cost")
        if cost is None and value.get("prompt_cost") is not None:
            cost = (usd(value.get("prompt_cost"), "prompt_cost") or 0.0) + (
                usd(value.get("completion_cost"), "completion_cost") or 0.0
            )
        return ImportedCall(
            where,
            model,
            start,
            provider=(extra.get("metadata") or {}).get("ls_provider"),
            input_tokens=count(value.get("prompt_tokens"), "prompt_tokens"),
            output_tokens=count(value.get("completion_tokens"), "completion_tokens"),
            cached_input_tokens=count(details.get("cache_read"), "prompt_token_details.cache_read"),
            cost=cost,
            latency_ms=_latency(record),
        )
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}") from None


def _success(stats: Any) -> bool | None:
    entry = stats.get("task_success") if isinstance(stats, Mapping) else None
    avg = entry.get("avg") if isinstance(entry, Mapping) else None
    return bool(avg) if avg in (0, 1) else None


def _start(record: Record) -> float | None:
    try:
        return seconds(record.value.get("start_time"), "start_time")
    except RecordError as exc:
        raise RecordError(f"{record.where}: {exc}") from None


def _latency(record: Record) -> float | None:
    start = _start(record)
    try:
        end = seconds(record.value.get("end_time"), "end_time")
    except RecordError as exc:
        raise RecordError(f"{record.where}: {exc}") from None
    return None if start is None or end is None else max(end - start, 0.0) * 1000.0
