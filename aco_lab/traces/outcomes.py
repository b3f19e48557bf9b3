"""Outcomes recorded after the runs ended (aco.outcomes), joined to the runs when traces are read.

An outcomes file (``outcomes.jsonl`` or ``*.outcomes.jsonl``) beside the traces, written by
``ACOOptimizer.record_outcome`` or ``aco-lab label``, sets ``task_success`` of the runs it
names; the latest line for a trace wins. Reading a directory picks its outcomes files up; an
outcomes file can also be named as an input. A bad outcomes line, or one naming a trace that
was not read, is a warning (FILE:LINE), never a rejected trace line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

from aco.outcomes import Outcome, is_outcomes_file, read_outcomes
from aco_lab.traces import schema as S


def find_outcome_files(given: Iterable[str | Path]) -> list[Path]:
    """The outcomes files among the inputs and under the input directories, sorted."""
    found = set()
    for item in given:
        path = Path(item)
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and is_outcomes_file(p))
        elif path.is_file() and is_outcomes_file(path):
            found.add(path)
    return sorted(found, key=str)


def read_outcome_files(files: Iterable[Path]) -> tuple[dict[str, Outcome], list[str]]:
    """The latest outcome per trace_id, and warnings for the lines that were ignored."""
    latest, problems = read_outcomes(files)
    return latest, [f"{p}; the outcome line is ignored" for p in problems]


def add_outcomes(runs: pl.DataFrame, latest: Mapping[str, Outcome]) -> pl.DataFrame:
    """The runs with task_success set from their latest recorded outcome, where there is one."""
    if not latest or runs.is_empty():
        return runs
    ids = list(latest)
    values = [latest[i].task_success for i in ids]
    success = pl.col(S.TRACE_ID).replace_strict(
        ids, values, default=pl.col(S.TASK_SUCCESS), return_dtype=pl.Boolean
    )
    return runs.with_columns(success.alias(S.TASK_SUCCESS))


def unmatched_warnings(latest: Mapping[str, Outcome], seen: set[str]) -> list[str]:
    """A warning per outcome naming a trace_id that none of the inputs has."""
    return [
        f"{o.file}:{o.line}: trace_id: {o.trace_id!r} is in no trace read; the outcome is "
        f"ignored (check the trace files given)"
        for o in latest.values()
        if o.trace_id not in seen
    ]
