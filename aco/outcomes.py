"""Outcomes known after a run ended: an append-only log, joined to the traces when they are read.

A run often ends before anyone knows whether it solved its task (the ticket is resolved
tomorrow, the PR merged next week). Its trace is written with ``task_success`` null, and the
outcome is appended later, by ``ACOOptimizer.record_outcome(trace_id, success)`` or
``aco-lab label``, as one line of an outcomes file beside the traces::

    {"trace_id": "9f2c...", "task_success": true, "recorded_at": "2026-12-05T09:12:00.000+00:00"}

Trace files are never rewritten. Readers (``aco stats``, and every ``aco-lab`` command through
``read_traces``) join the outcomes to the runs by trace_id; the latest line for a trace wins,
so a wrong label is corrected by appending another.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from aco import trace_format as tf
from aco.errors import TraceFormatError
from aco.trace_decode import DECODE_ERRORS, UTF8_BOM, describe_decode_error

OUTCOMES_FILE_NAME = "outcomes.jsonl"  # beside traces.jsonl in a trace directory
OUTCOMES_SUFFIX = ".outcomes.jsonl"  # any other file named so is an outcomes file too
RECORDED_AT = "recorded_at"
OUTCOME_KEYS = (tf.TRACE_ID, tf.TASK_SUCCESS, RECORDED_AT)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One outcome line: a run's task_success, and where it was read."""

    trace_id: str
    task_success: bool
    recorded_at: str | None
    file: str
    line: int


def is_outcomes_file(path: str | Path) -> bool:
    """Whether a file holds outcomes rather than traces (by its name)."""
    name = Path(path).name
    return name == OUTCOMES_FILE_NAME or name.endswith(OUTCOMES_SUFFIX)


def build_outcome(
    trace_id: str, success: bool, recorded_at: datetime | None = None
) -> dict[str, Any]:
    """One outcome line as a dict (recorded now unless told when)."""
    if not isinstance(trace_id, str) or not trace_id:
        raise TraceFormatError(f"trace_id: expected a non-empty string, got {trace_id!r}")
    if not isinstance(success, bool):
        raise TraceFormatError(f"success: expected true or false, got {success!r}")
    when = recorded_at or datetime.now(UTC)
    return {
        tf.TRACE_ID: trace_id,
        tf.TASK_SUCCESS: success,
        RECORDED_AT: when.isoformat(timespec="milliseconds"),
    }


def parse_outcome(raw: Any, file: str, line: int) -> Outcome:
    """An Outcome from one decoded line; TraceFormatError names FILE:LINE and the field."""
    where = f"{file}:{line}"
    if not isinstance(raw, Mapping):
        raise TraceFormatError(f"{where}: expected an outcome object, got {type(raw).__name__}")
    trace_id, success = raw.get(tf.TRACE_ID), raw.get(tf.TASK_SUCCESS)
    if not isinstance(trace_id, str) or not trace_id:
        raise TraceFormatError(
            f"{where}: trace_id: expected a non-empty string, got {trace_id!r:.40}"
        )
    if not isinstance(success, bool):
        raise TraceFormatError(
            f"{where}: task_success: expected true or false, got {success!r:.40}"
        )
    recorded = raw.get(RECORDED_AT)
    if recorded is not None and not isinstance(recorded, str):
        raise TraceFormatError(f"{where}: recorded_at: expected an RFC 3339 string or null")
    return Outcome(trace_id, success, recorded, file, line)


def read_outcomes(paths: Iterable[str | Path]) -> tuple[dict[str, Outcome], list[str]]:
    """The latest outcome per trace_id over outcomes files, and the problems of bad lines."""
    latest: dict[str, Outcome] = {}
    problems: list[str] = []
    for path in paths:
        for number, raw in _lines(Path(path)):
            try:
                outcome = parse_outcome(msgspec.json.decode(raw), str(path), number)
            except TraceFormatError as exc:
                problems.append(str(exc))
                continue
            except DECODE_ERRORS as exc:  # not JSON, not UTF-8, or nested too deeply
                problems.append(f"{path}:{number}: {describe_decode_error(raw.rstrip(), exc)}")
                continue
            latest[outcome.trace_id] = outcome
    return latest, problems


def apply_outcomes(
    traces: Iterable[dict[str, Any]], outcomes: Mapping[str, Outcome]
) -> Iterator[dict[str, Any]]:
    """The traces, each with task_success from its latest outcome when one was recorded."""
    for trace in traces:
        outcome = outcomes.get(trace.get(tf.TRACE_ID)) if outcomes else None
        yield trace if outcome is None else {**trace, tf.TASK_SUCCESS: outcome.task_success}


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]
            if raw.strip():
                yield number, raw
