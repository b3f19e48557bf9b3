"""Load traces into three tables: runs, steps and tool calls (schemas in aco_lab/schema.py).

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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from aco.errors import DataError, TraceFormatError
from aco_lab import schema as S
from aco_lab.trace_parser import build_chunk_tables, decode_lines, raw_text
from aco_lab.validate import Rejection, build_cost_warnings, find_duplicate_trace_ids

log = logging.getLogger(__name__)

OnError = Literal["fail", "skip"]
TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")
CHUNK_BYTES = 32 * 1024 * 1024  # JSONL decoded per chunk: bounds the Python objects alive at once
MAX_LISTED_PROBLEMS = 5  # problems quoted in a TraceFormatError message
_GZIP_MAGIC = b"\x1f\x8b"

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
    if path.is_file():
        return [path]  # an explicit file is read whatever its name
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.name.endswith(TRACE_SUFFIXES)]
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
    paths: Iterable[str | Path] | str | Path, on_error: OnError = "fail"
) -> TraceTables:
    """Load traces from JSONL files, globs, directories or ingested datasets into tables.

    on_error="fail" raises TraceFormatError naming the first bad lines and their count;
    "skip" keeps going and returns every bad line in `rejected`.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    datasets = [_read_dataset_tables(Path(p)) for p in given if is_dataset(p)]
    jsonl = [p for p in given if not is_dataset(p)]
    files = expand_paths(jsonl) if jsonl or not given else []
    tables = concat_tables(datasets + [_read_file(path) for path in files])
    tables = _reject_duplicates(tables, files)
    order = {str(path): i for i, path in enumerate(files)}
    tables = dataclasses.replace(
        tables,
        rejected=tuple(sorted(tables.rejected, key=lambda r: (order.get(r.file, -1), r.line))),
        warnings=tables.warnings + build_cost_warnings(tables.runs),
    )
    log.info("read %d lines: %d accepted, %d rejected, %d warnings",
             tables.lines_read, tables.runs.height, len(tables.rejected), len(tables.warnings))
    if tables.rejected and on_error == "fail":
        raise TraceFormatError(format_problems(tables))
    return tables


def format_problems(tables: TraceTables) -> str:
    """One line: how many lines were bad, the first few problems, and how to go on."""
    shown = "; ".join(r.error for r in tables.rejected[:MAX_LISTED_PROBLEMS])
    more = len(tables.rejected) - MAX_LISTED_PROBLEMS
    tail = f"; and {more} more" if more > 0 else ""
    return (
        f"{len(tables.rejected)} of {tables.lines_read} lines break trace format v1: {shown}{tail}"
        " (fix them, or skip them with on_error='skip' / --on-error skip)"
    )


def _read_file(path: Path) -> TraceTables:
    """Decode one file chunk by chunk, each chunk straight into column tables."""
    name = str(path)
    parts: list[TraceTables] = []
    first_line = 1
    for block in _read_blocks(path):
        lines = block.split(b"\n")
        numbers, traces, rejected = decode_lines(name, lines, first_line)
        runs, steps, tool_calls, late = build_chunk_tables(name, numbers, traces)
        rejected += [
            Rejection(name, line, message, raw_text(lines[line - first_line]))
            for line, message in late
        ]
        read = len(traces) + len(rejected) - len(late)
        parts.append(TraceTables(runs, steps, tool_calls, tuple(rejected), (), read))
        first_line += len(lines) - 1  # a block ends with b"\n", so its last split is empty
    return concat_tables(parts)


def _read_blocks(path: Path) -> Iterator[bytes]:
    """The file's (decompressed) bytes in blocks that each end with a line end."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
    with (gzip.open(path, "rb") if gzipped else path.open("rb")) as stream:
        carry = b""
        while block := stream.read(CHUNK_BYTES):
            block = carry + block
            cut = block.rfind(b"\n") + 1
            carry = block[cut:]
            if cut:
                yield block[:cut]
        if carry:
            yield carry + b"\n"


def _reject_duplicates(tables: TraceTables, files: Sequence[Path]) -> TraceTables:
    """Move runs whose trace_id was already used (in any input) from the tables to rejected."""
    duplicates = find_duplicate_trace_ids(tables.runs)
    if not duplicates:
        return tables
    texts = _texts_of_lines(files, {(file, line) for file, line, _ in duplicates})
    rejected = [Rejection(f, n, message, texts.get((f, n), "")) for f, n, message in duplicates]
    drop = pl.DataFrame(
        {S.SOURCE_FILE: [f for f, _, _ in duplicates], S.LINE: [n for _, n, _ in duplicates]},
        schema={S.SOURCE_FILE: pl.String, S.LINE: pl.Int64},
    )

    def keep(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.join(drop, on=[S.SOURCE_FILE, S.LINE], how="anti", maintain_order="left")

    return dataclasses.replace(
        tables,
        runs=keep(tables.runs),
        steps=keep(tables.steps),
        tool_calls=keep(tables.tool_calls),
        rejected=tables.rejected + tuple(rejected),
    )


def _texts_of_lines(files: Sequence[Path], wanted: set[tuple[str, int]]) -> dict:
    """The text of a few (file, line) pairs, read again from the files (a rare path)."""
    texts = {}
    for path in files:
        lines = {line for file, line in wanted if file == str(path)}
        number = 0
        for block in _read_blocks(path) if lines else ():
            for line in block.split(b"\n")[:-1]:
                number += 1
                if number in lines:
                    texts[(str(path), number)] = raw_text(line)
    return texts


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
