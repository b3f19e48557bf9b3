"""Load traces into three tables: runs, steps and tool calls (schemas in aco_lab/traces/schema.py).

`read_traces(paths)` reads trace-format-v1 JSONL (files, globs, directories; plain or gzip)
and datasets written by `aco-lab ingest` (Parquet). Nothing is lost: every non-blank line is
either a row of `runs` or a `Rejection`, so lines_read == runs.height + len(rejected). Blank
(empty or whitespace-only) lines are skipped and not counted; line numbers are physical lines.
Format details: docs/trace_format.md.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import polars as pl

from aco.errors import DataError, TraceFormatError
from aco.outcomes import is_outcomes_file
from aco_lab.traces import schema as S
from aco_lab.traces.chunk_plan import SKIP_HINT, plan_chunks
from aco_lab.traces.chunks import ChunkTask, read_chunk
from aco_lab.traces.outcomes import (
    add_outcomes,
    find_outcome_files,
    read_outcome_files,
    unmatched_warnings,
)
from aco_lab.traces.validate import Rejection, TraceIdIndex, build_cost_warnings
from aco_lab.traces.workers import ChunkMapper, map_chunks, report_chunks, worker_count

log = logging.getLogger(__name__)

OnError = Literal["fail", "skip"]
TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")
MAX_LISTED_PROBLEMS = 5  # problems quoted in a TraceFormatError message

# The layout of a dataset written by `aco-lab ingest` (docs/trace_format.md, "Datasets").
DATASET_MANIFEST = "manifest.json"
DATASET_KIND = "aco-trace-dataset"
REJECTED_FILE = "rejected.jsonl"
TABLE_SCHEMAS = {"runs": S.RUNS_SCHEMA, "steps": S.STEPS_SCHEMA, "tool_calls": S.TOOL_CALLS_SCHEMA}
PARTITION_KEY = S.SOURCE  # hive partition key of all three tables: the run's `source`

__all__ = ["Rejection", "TraceTables", "expand_paths", "read_traces", "read_dataset"]


@dataclass(frozen=True, slots=True)
class TraceTables:
    """The loaded traces: runs, steps and tool calls, plus what was rejected and why."""

    runs: pl.DataFrame  # RUNS_SCHEMA, one row per accepted trace
    steps: pl.DataFrame  # STEPS_SCHEMA, one row per step of an accepted trace
    tool_calls: pl.DataFrame  # TOOL_CALLS_SCHEMA, one row per tool call
    rejected: tuple[Rejection, ...] = ()
    warnings: tuple[str, ...] = ()  # `FILE:LINE: field: ...` problems that kept the trace
    lines_read: int = 0  # non-blank lines read == runs.height + len(rejected)


def empty_tables() -> TraceTables:
    """Tables with the right schemas and no rows."""
    return TraceTables(*(pl.DataFrame(schema=schema) for schema in TABLE_SCHEMAS.values()))


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """The inputs to read: files, globs and directories -> trace files and dataset directories.

    A directory written by `aco-lab ingest` is one input (its Parquet, never its
    rejected.jsonl); any other directory is searched recursively for *.jsonl, *.jsonl.gz and
    datasets. Every command that reads traces resolves its paths here.
    """
    found: dict[Path, Path] = {}
    for given in paths:
        for path in _expand_one(str(given)):
            found.setdefault(path.resolve(), path)
    return sorted(found.values(), key=str)


def _expand_one(given: str) -> list[Path]:
    path = Path(given)
    if path.is_file():  # an explicit file is read whatever its name (outcomes: joined, below)
        return [] if is_outcomes_file(path) else [path]
    if is_dataset(path):
        return [path]
    if path.is_dir():
        files = list(_search_dir(path))
        if not files:
            raise DataError(f"{given}: no .jsonl or .jsonl.gz file or dataset under this directory")
        return files
    if path.exists():
        raise DataError(
            f"{given}: not a regular file (a FIFO, socket or device); pass "
            ".jsonl(.gz) files, globs, dirs or datasets"
        )
    if glob.has_magic(given):
        matches = [Path(m) for m in glob.glob(given, recursive=True)]
        files = [f for m in matches for f in (_expand_one(str(m)) if m.is_dir() else [m])]
        if files:
            return files
        raise DataError(f"{given}: no file matches this pattern; check the glob and the folder")
    raise DataError(
        f"{given}: no such file or directory; pass .jsonl(.gz) files, globs, dirs or datasets"
    )


def _search_dir(directory: Path) -> Iterator[Path]:
    """Trace files and datasets under a directory (a dataset's own files are not traces)."""
    for root, dirs, names in os.walk(directory):
        if is_dataset(root):
            dirs.clear()
            yield Path(root)
            continue
        dirs.sort()
        for name in sorted(names):
            path = Path(root, name)
            if name.endswith(TRACE_SUFFIXES) and path.is_file() and not is_outcomes_file(path):
                yield path


def is_dataset(path: str | Path) -> bool:
    """Whether a path is a dataset directory written by `aco-lab ingest`."""
    return (Path(path) / DATASET_MANIFEST).is_file()


def read_traces(
    paths: Iterable[str | Path] | str | Path,
    on_error: OnError = "fail",
    workers: int | None = None,
    strict: bool = False,
    mapper: ChunkMapper | None = None,
) -> TraceTables:
    """Load traces from JSONL files, globs, directories or ingested datasets into tables.

    on_error="fail" raises TraceFormatError naming the first bad lines and their count (and
    DataError naming a file that cannot be read, and why); "skip" keeps going, returns every
    bad line in `rejected` (a file that breaks off: one rejection where it broke) and logs a
    warning with their count. workers: processes that decode chunks (None: up to MAX_WORKERS
    when the input is at least PARALLEL_MIN_BYTES). strict: a line with a key trace format v1
    does not define is bad too (default: ignored). mapper: runs the chunks instead of the
    local processes (the Dask engine's map_chunks).
    """
    check_on_error(on_error)
    tables = collect_traces(paths, workers, strict, on_error, mapper)
    if tables.rejected and on_error == "fail":
        raise TraceFormatError(format_problems(tables.rejected, tables.lines_read))
    if tables.rejected:
        log.warning(
            "skipped %d of %d lines that break trace format v1 (first: %s); "
            "aco-lab validate lists them",
            len(tables.rejected),
            tables.lines_read,
            tables.rejected[0].error,
        )
    return tables


def collect_traces(
    paths: Iterable[str | Path] | str | Path,
    workers: int | None = None,
    strict: bool = False,
    on_error: OnError = "skip",
    mapper: ChunkMapper | None = None,
) -> TraceTables:
    """Every input read into tables, with every bad line in `rejected` (what `validate`
    lists); on_error="fail" stops at a file that cannot be read, "skip" records it."""
    tables = concat_tables(list(iter_trace_tables(paths, workers, strict, on_error, mapper)))
    log.info(
        "read %d lines: %d accepted, %d rejected, %d warnings",
        tables.lines_read,
        tables.runs.height,
        len(tables.rejected),
        len(tables.warnings),
    )
    return tables


def check_on_error(on_error: str) -> None:
    """Refuse an on_error other than "fail" or "skip"."""
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")


def format_problems(rejected: Sequence[Rejection], lines_read: int) -> str:
    """One line: how many lines were bad, the first few problems, and how to go on."""
    shown = "; ".join(r.error for r in rejected[:MAX_LISTED_PROBLEMS])
    more = len(rejected) - MAX_LISTED_PROBLEMS
    tail = f"; and {more} more" if more > 0 else ""
    return (
        f"{len(rejected)} of {lines_read} lines break trace format v1: {shown}{tail}"
        f" (fix them, {SKIP_HINT})"
    )


def iter_trace_tables(
    paths: Iterable[str | Path] | str | Path,
    workers: int | None = None,
    strict: bool = False,
    on_error: OnError = "skip",
    mapper: ChunkMapper | None = None,
) -> Iterator[TraceTables]:
    """The inputs as a stream of checked TraceTables, chunk by chunk, in input order.

    Each part has its own rejected lines (a trace_id seen in an earlier part included) and
    its cost warnings; concatenated, the parts are what read_traces returns. Outcomes files
    among the inputs set task_success of the runs they name (aco_lab.traces.outcomes); a last
    part without rows carries the warnings about them. A file that cannot be read: DataError
    with on_error="fail", else a part with one rejection per such file.
    """
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    inputs = expand_paths(given)
    files = [p for p in inputs if not is_dataset(p)]
    outcomes, outcome_warnings = read_outcome_files(
        find_outcome_files(p for p in given if not is_dataset(p))
    )
    ids = TraceIdIndex()
    seen: set[str] = set()
    for path in inputs:
        if is_dataset(path):
            yield _labelled(check_part(_read_dataset_tables(path), ids), outcomes, seen)
    broken: list[Rejection] | None = None if on_error == "fail" else []
    read = partial(read_chunk, strict=strict)
    chunks = (mapper or map_chunks)(
        read, plan_chunks(files, broken=broken), worker_count(files, workers)
    )
    for task, chunk in report_chunks(chunks, files, "reading traces"):
        part = TraceTables(
            chunk.runs, chunk.steps, chunk.tool_calls, chunk.rejected, lines_read=chunk.lines_read
        )
        yield _labelled(check_part(part, ids, task), outcomes, seen)
    if broken:
        yield dataclasses.replace(empty_tables(), rejected=tuple(broken), lines_read=len(broken))
    if outcomes or outcome_warnings:
        warnings = outcome_warnings + unmatched_warnings(outcomes, seen)
        yield dataclasses.replace(empty_tables(), warnings=tuple(warnings))


def _labelled(part: TraceTables, outcomes: dict, seen: set[str]) -> TraceTables:
    """A part with the recorded outcomes joined (and its trace ids noted when there are any)."""
    if not outcomes:
        return part
    seen.update(part.runs[S.TRACE_ID].to_list())
    return dataclasses.replace(part, runs=add_outcomes(part.runs, outcomes))


def check_part(part: TraceTables, ids: TraceIdIndex, task: ChunkTask | None = None) -> TraceTables:
    """Reject runs whose trace_id was seen before (in any part); add the cost warnings."""
    rejected = reject_duplicates(part.runs, ids, task)
    if rejected:
        drop = pl.DataFrame(
            [(r.file, r.line) for r in rejected],
            orient="row",
            schema={S.SOURCE_FILE: pl.String, S.LINE: pl.Int64},
        )

        def keep(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.join(drop, on=[S.SOURCE_FILE, S.LINE], how="anti", maintain_order="left")

        part = dataclasses.replace(
            part,
            runs=keep(part.runs),
            steps=keep(part.steps),
            tool_calls=keep(part.tool_calls),
            rejected=tuple(sorted(part.rejected + rejected, key=lambda r: (r.file, r.line))),
        )
    return dataclasses.replace(part, warnings=build_cost_warnings(part.runs))


def reject_duplicates(
    runs: pl.DataFrame, ids: TraceIdIndex, task: ChunkTask | None = None
) -> tuple[Rejection, ...]:
    """A Rejection per run whose trace_id was seen on an earlier row (texts from the task)."""
    duplicates = ids.find_duplicates(runs)
    if not duplicates:
        return ()
    texts = task.line_texts(line for _, line, _ in duplicates) if task else {}
    return tuple(
        Rejection(file, line, f"{file}:{line}: {message}", texts.get(line, ""))
        for file, line, message in duplicates
    )


def concat_tables(parts: Sequence[TraceTables]) -> TraceTables:
    """Several TraceTables as one, rows in order."""
    if not parts:
        return empty_tables()
    if len(parts) == 1:
        return parts[0]
    return TraceTables(
        runs=pl.concat([p.runs for p in parts], rechunk=False),
        steps=pl.concat([p.steps for p in parts], rechunk=False),
        tool_calls=pl.concat([p.tool_calls for p in parts], rechunk=False),
        rejected=tuple(r for p in parts for r in p.rejected),
        warnings=tuple(w for p in parts for w in p.warnings),
        lines_read=sum(p.lines_read for p in parts),
    )


def scan_table(directory: str | Path, table: str) -> pl.LazyFrame:
    """A lazy scan of one table of an ingested dataset; filters on `source` prune partitions."""
    if table not in TABLE_SCHEMAS:
        raise DataError(f"{table}: unknown table; expected one of {', '.join(TABLE_SCHEMAS)}")
    return pl.scan_parquet(
        Path(directory) / table,
        hive_partitioning=True,
        hive_schema={PARTITION_KEY: pl.String},
        missing_columns="insert",
    )


def read_dataset(directory: str | Path) -> TraceTables:
    """Read back a dataset written by `aco-lab ingest`: tables, rejected lines and counts."""
    tables = _read_dataset_tables(Path(directory))
    return dataclasses.replace(tables, warnings=build_cost_warnings(tables.runs))


def _read_dataset_tables(directory: Path) -> TraceTables:
    manifest_path = directory / DATASET_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{manifest_path}: not a readable dataset manifest ({exc})") from None
    if manifest.get("kind") != DATASET_KIND:
        raise DataError(f"{manifest_path}: not an {DATASET_KIND} manifest; re-run aco-lab ingest")
    # Partitions come back grouped by source: a stable sort restores the input order.
    frames = [
        scan_table(directory, name)
        .select(schema.names())
        .cast(schema)
        .sort(S.SOURCE_FILE, S.LINE, maintain_order=True)
        .collect()
        if manifest["counts"][name]
        else pl.DataFrame(schema=schema)
        for name, schema in TABLE_SCHEMAS.items()
    ]
    rejected_path = directory / REJECTED_FILE
    rejected = tuple(
        Rejection(**json.loads(line))
        for line in (
            rejected_path.read_text(encoding="utf-8").splitlines() if rejected_path.exists() else ()
        )
    )
    return TraceTables(*frames, rejected=rejected, lines_read=manifest["counts"]["lines_read"])
