"""The rules of trace format v1 that a type check alone does not cover, and their messages.

Types and ranges are checked while decoding (aco_lab/traces/parser.py, with the types and
words of aco/trace_decode.py); this module adds the
rules that need columns or several lines: timestamps, metadata, unique trace_id across all
inputs (the second occurrence is rejected) and the total_cost == sum of call costs warning.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import msgspec
import polars as pl

from aco import trace_format as tf
from aco.trace_decode import describe_value_error, show_value
from aco_lab.traces import schema as S


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that was not loaded: where it was, why, and its text."""

    file: str
    line: int  # 1-based physical line number
    error: str  # the full message, `FILE:LINE: field.path: what was wrong, what is allowed`
    raw: str  # the line as read (undecodable bytes replaced)


def find_bad_metadata(metadata: pl.Series) -> list[tuple[int, str]]:
    """(row, message) for metadata JSON texts that are not an object (nulls are fine)."""
    bad = metadata.is_not_null() & ~metadata.str.starts_with("{")
    return [
        (row, describe_value_error(tf.METADATA, msgspec.json.decode(metadata[row])))
        for row in bad.arg_true().to_list()
    ]


class TraceIdIndex:
    """Where each trace_id was first seen, over runs read chunk by chunk in input order."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}  # trace_id -> run number (0-based, all chunks)
        self._chunk_starts: list[int] = []
        self._chunk_places: list[pl.DataFrame] = []  # SOURCE_FILE and LINE of each chunk's runs
        self._count = 0

    def find_duplicates(self, runs: pl.DataFrame) -> list[tuple[str, int, str]]:
        """(file, line, message) for runs whose trace_id was seen on an earlier row."""
        ids = runs.get_column(S.TRACE_ID).to_list()
        base = self._count
        self._chunk_starts.append(base)
        self._chunk_places.append(runs.select(S.SOURCE_FILE, S.LINE))
        self._count += len(ids)
        # The common case, all new and distinct, stays in C: no Python loop per run.
        if len(set(ids)) == len(ids) and self._first.keys().isdisjoint(ids):
            self._first.update(zip(ids, range(base, base + len(ids)), strict=True))
            return []
        found = []
        for row, trace_id in enumerate(ids):
            first = self._first.setdefault(trace_id, base + row)
            if first != base + row:
                file, line = self._place(base + row)
                found.append((file, line, _duplicate_message(trace_id, self._place(first))))
        return found

    def _place(self, number: int) -> tuple[str, int]:
        """(source_file, line) of run `number`."""
        chunk = bisect.bisect_right(self._chunk_starts, number) - 1
        return self._chunk_places[chunk].row(number - self._chunk_starts[chunk])


def _duplicate_message(trace_id: str, first: tuple[str, int]) -> str:
    return (
        f"trace_id: {show_value(trace_id)} already used at {first[0]}:{first[1]};"
        " trace_id must be unique across all inputs"
    )


def build_cost_warnings(runs: pl.DataFrame) -> tuple[str, ...]:
    """`FILE:LINE: total_cost: ...` for runs whose total_cost is not the sum of their call costs."""
    calls = pl.col(S.MODEL_COST) + pl.col(S.TOOL_COST)
    gap = (pl.col(S.TOTAL_COST) - calls).abs()
    allowed = tf.COST_SUM_ABS_TOLERANCE + tf.COST_SUM_REL_TOLERANCE * pl.max_horizontal(
        pl.col(S.TOTAL_COST).abs(), calls.abs()
    )
    off = runs.filter(gap > allowed).select(
        pl.format(
            "{}:{}: total_cost: {} differs from the sum of call costs {} (model {} + tools {});"
            " the run is kept",
            S.SOURCE_FILE,
            S.LINE,
            S.TOTAL_COST,
            calls,
            S.MODEL_COST,
            S.TOOL_COST,
        )
    )
    return tuple(off.to_series().to_list())
