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
import gzip
import json
import logging
import mmap
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import polars as pl

from aco.errors import DataError, TraceFormatError
from aco.outcomes import is_outcomes_file
from aco_lab.traces import schema as S
from aco_lab.traces.chunks import ChunkTask, read_chunk
from aco_lab.traces.outcomes import (
    add_outcomes,
    find_outcome_files,
    read_outcome_files,
    unmatched_warnings,
)
from aco_lab.traces.validate import Rejection, TraceIdIndex, build_cost_warnings

log = logging.getLogger(__name__)

OnError = Literal["fail", "skip"]
T = TypeVar("T")
# What runs a per-chunk function over the chunks: map_chunks below (local processes), or an
# engine's (aco_lab/traces/dask_engine.py); (function, tasks, workers) -> (task, result) in order.
ChunkMapper = Callable[[Callable[[ChunkTask], T], Iterator[ChunkTask], int],
                       Iterator[tuple[ChunkTask, T]]]
TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")
CHUNK_BYTES = 16 * 1024 * 1024  # JSONL per chunk: bounds the Python objects alive at once
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # smaller inputs are read in-process (no worker start-up)
MAX_WORKERS = 4  # worker processes for big inputs (each holds ~2 chunks' objects)
GZIP_RATIO = 5  # rough JSONL bytes per gzip byte, to judge an input's size
MAX_LISTED_PROBLEMS = 5  # problems quoted in a TraceFormatError message
_GZIP_MAGIC = b"\x1f\x8b"
_NEWLINE = ord("\n")
_POLARS_THREADS = "POLARS_MAX_THREADS"

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
    """Files, globs and directories (searched recursively for *.jsonl, *.jsonl.gz) -> files."""
    found: dict[Path, Path] = {}
    for given in paths:
        for path in _expand_one(str(given)):
            found.setdefault(path.resolve(), path)
    return sorted(found.values(), key=str)


def _expand_one(given: str) -> list[Path]:
    path = Path(given)
    if path.is_file():  # an explicit file is read whatever its name (outcomes: joined, below)
        return [] if is_outcomes_file(path) else [path]
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.name.endswith(TRACE_SUFFIXES)
                 and not is_outcomes_file(p)]
        if not files:
            raise DataError(f"{given}: no .jsonl or .jsonl.gz file under this directory")
        return files
    if glob.has_magic(given):
        matches = [Path(m) for m in glob.glob(given, recursive=True)]
        files = [f for m in matches for f in (_expand_one(str(m)) if m.is_dir() else [m])]
        if files:
            return files
        raise DataError(f"{given}: no file matches this pattern; check the glob and the folder")
    raise DataError(f"{given}: no such file or directory; pass .jsonl(.gz) files, globs or dirs")


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

    on_error="fail" raises TraceFormatError naming the first bad lines and their count;
    "skip" keeps going and returns every bad line in `rejected`. workers: processes that
    decode chunks (None: up to MAX_WORKERS when the input is at least PARALLEL_MIN_BYTES).
    strict: a line with a key trace format v1 does not define is bad too (default: ignored).
    mapper: runs the chunks instead of the local processes (the Dask engine's map_chunks).
    """
    check_on_error(on_error)
    tables = concat_tables(list(iter_trace_tables(paths, workers, strict, mapper)))
    log.info("read %d lines: %d accepted, %d rejected, %d warnings",
             tables.lines_read, tables.runs.height, len(tables.rejected), len(tables.warnings))
    if tables.rejected and on_error == "fail":
        raise TraceFormatError(format_problems(tables.rejected, tables.lines_read))
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
        " (fix them, or skip them with on_error='skip' / --on-error skip)"
    )


def iter_trace_tables(
    paths: Iterable[str | Path] | str | Path, workers: int | None = None, strict: bool = False,
    mapper: ChunkMapper | None = None,
) -> Iterator[TraceTables]:
    """The inputs as a stream of checked TraceTables, chunk by chunk, in input order.

    Each part has its own rejected lines (a trace_id seen in an earlier part included) and
    its cost warnings; concatenated, the parts are what read_traces returns. Outcomes files
    among the inputs set task_success of the runs they name (aco_lab.traces.outcomes); a last
    part without rows carries the warnings about them.
    """
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    jsonl = [p for p in given if not is_dataset(p)]
    outcomes, outcome_warnings = read_outcome_files(find_outcome_files(jsonl))
    files = expand_paths(jsonl) if jsonl else []
    ids = TraceIdIndex()
    seen: set[str] = set()
    for path in given:
        if is_dataset(path):
            yield _labelled(check_part(_read_dataset_tables(Path(path)), ids), outcomes, seen)
    read = partial(read_chunk, strict=strict)
    for task, chunk in (mapper or map_chunks)(read, plan_chunks(files),
                                              worker_count(files, workers)):
        part = TraceTables(chunk.runs, chunk.steps, chunk.tool_calls, chunk.rejected,
                           lines_read=chunk.lines_read)
        yield _labelled(check_part(part, ids, task), outcomes, seen)
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
        drop = pl.DataFrame([(r.file, r.line) for r in rejected], orient="row",
                            schema={S.SOURCE_FILE: pl.String, S.LINE: pl.Int64})

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
    return tuple(Rejection(file, line, f"{file}:{line}: {message}", texts.get(line, ""))
                 for file, line, message in duplicates)


def plan_chunks(
    files: Sequence[Path], on_block: Callable[[Path, memoryview], None] | None = None
) -> Iterator[ChunkTask]:
    """Chunks of about CHUNK_BYTES of whole lines: byte ranges of plain files, bytes of gzip.

    Counting each chunk's lines here gives every worker its first line number up front.
    on_block, if given, sees each plain file's bytes once, block by block in order (to hash
    them without reading the file again); the view is valid only during the call.
    """
    for path in files:
        if is_gzip(path):
            first_line = 1
            for data in _read_gzip_blocks(path):
                yield ChunkTask(str(path), first_line, data=data)
                first_line += _count_lines(data)
        else:
            yield from _plan_plain_file(path, on_block)


def is_gzip(path: Path) -> bool:
    """Whether a file is gzip-compressed (by its first bytes, not its name)."""
    with path.open("rb") as stream:
        return stream.read(2) == _GZIP_MAGIC


def _plan_plain_file(
    path: Path, on_block: Callable[[Path, memoryview], None] | None
) -> Iterator[ChunkTask]:
    """Byte ranges of whole lines of a plain file, read through a memory map (no copies)."""
    size = path.stat().st_size
    if not size:
        return
    with path.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        start, first_line = 0, 1
        while start < size:
            end = mm.find(b"\n", min(start + CHUNK_BYTES, size) - 1) + 1 or size
            with memoryview(mm)[start:end] as block:
                lines = _count_lines(block)
                if on_block is not None:
                    on_block(path, block)
            _unmap_pages(mm, start, end)
            yield ChunkTask(str(path), first_line, start, end)
            start, first_line = end, first_line + lines


def _unmap_pages(mm: mmap.mmap, start: int, end: int) -> None:
    """Let the pages of a read range go (the OS page cache keeps the file; memory stays flat)."""
    if hasattr(mmap, "MADV_DONTNEED"):
        page = start - start % mmap.PAGESIZE
        mm.madvise(mmap.MADV_DONTNEED, page, end - page)


def _count_lines(block: bytes | memoryview) -> int:
    """Lines in a block of whole lines (the last may lack its line end)."""
    ends = int(np.count_nonzero(np.frombuffer(block, np.uint8) == _NEWLINE))
    return ends + (len(block) > 0 and block[-1] != _NEWLINE)


def _read_gzip_blocks(path: Path) -> Iterator[bytes]:
    """A gzip file's decompressed bytes in blocks of whole lines."""
    with gzip.open(path, "rb") as stream:
        carry = b""
        while block := stream.read(CHUNK_BYTES):
            block = carry + block
            cut = block.rfind(b"\n") + 1
            carry = block[cut:]
            if cut:
                yield block[:cut]
        if carry:
            yield carry


def worker_count(files: Sequence[Path], workers: int | None) -> int:
    """Processes to decode with: `workers` if given, else by input size and cores."""
    if workers is not None:
        return max(1, workers)
    size = sum(p.stat().st_size * (GZIP_RATIO if p.name.endswith(".gz") else 1) for p in files)
    return min(MAX_WORKERS, os.cpu_count() or 1) if size >= PARALLEL_MIN_BYTES else 1


def map_chunks(
    function: Callable[[ChunkTask], T], tasks: Iterator[ChunkTask], workers: int
) -> Iterator[tuple[ChunkTask, T]]:
    """(task, function(task)) in task order; in worker processes when workers > 1.

    At most 2 x workers chunks are in flight, so memory stays bounded whatever the input.
    """
    if workers <= 1:
        yield from ((task, function(task)) for task in tasks)
        return
    # spawn, not fork: forking a process that runs Polars' thread pool can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        _start_workers(pool, workers)
        in_flight: deque = deque()
        for task in tasks:
            in_flight.append((task, pool.submit(function, task)))
            if len(in_flight) >= 2 * workers:
                task_done, future = in_flight.popleft()
                yield task_done, future.result()
        while in_flight:
            task_done, future = in_flight.popleft()
            yield task_done, future.result()


def _start_workers(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start every worker now, without the caller's main module.

    A spawned worker normally re-runs the caller's script (to find functions defined there);
    a script that reads traces at top level, without `if __name__ == "__main__":`, would
    then start workers from inside a worker and crash. Ours need only aco_lab's functions,
    so main is hidden while the workers start (submitting one task per worker starts them
    all; the pool starts no others later). Each worker also runs Polars on one thread: the
    workers already use the cores, and Polars' own pool would only compete with them.
    """
    main = sys.modules["__main__"]
    saved = {name: main.__dict__.pop(name) for name in ("__file__", "__spec__")
             if name in main.__dict__}
    main.__spec__ = None
    polars_threads = os.environ.get(_POLARS_THREADS)
    os.environ[_POLARS_THREADS] = "1"  # read by Polars when a worker imports it
    try:
        started = [pool.submit(os.getpid) for _ in range(workers)]
    finally:
        del main.__spec__
        main.__dict__.update(saved)
        if polars_threads is None:
            del os.environ[_POLARS_THREADS]
        else:
            os.environ[_POLARS_THREADS] = polars_threads
    for future in started:
        future.result()


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
        scan_table(directory, name).select(schema.names()).cast(schema)
        .sort(S.SOURCE_FILE, S.LINE, maintain_order=True).collect()
        if manifest["counts"][name] else pl.DataFrame(schema=schema)
        for name, schema in TABLE_SCHEMAS.items()
    ]
    rejected_path = directory / REJECTED_FILE
    rejected = tuple(
        Rejection(**json.loads(line))
        for line in (rejected_path.read_text(encoding="utf-8").splitlines()
                     if rejected_path.exists() else ())
    )
    return TraceTables(*frames, rejected=rejected, lines_read=manifest["counts"]["lines_read"])
