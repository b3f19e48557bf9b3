"""JSONL traces -> a Parquet dataset of the three tables, written atomically.

Layout of DIR (read back with `aco_lab.traces.reading.read_dataset` or `read_traces(DIR)`):

    DIR/manifest.json                       counts, inputs with sha256, schemas, versions
    DIR/rejected.jsonl                      {"file", "line", "error", "raw"} per rejected line
    DIR/runs/source=<source>/*.parquet      hive-partitioned by the run's `source`
    DIR/steps/source=<source>/*.parquet     (null source: source=__HIVE_DEFAULT_PARTITION__)
    DIR/tool_calls/source=<source>/*.parquet

Everything is built in a temporary directory beside DIR and renamed into place, so a crash
leaves either the old dataset or the new one, never half of one. Inputs are only read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from aco import __version__
from aco.errors import DataError, TraceFormatError
from aco.trace_format import SCHEMA_VERSION
from aco_lab.files import atomic_file, replace_dir, staging_dir, write_text
from aco_lab.traces import schema as S
from aco_lab.traces.chunk_plan import is_gzip, plan_chunks
from aco_lab.traces.chunks import ChunkTask, read_chunk
from aco_lab.traces.reading import (
    DATASET_KIND,
    DATASET_MANIFEST,
    PARTITION_KEY,
    REJECTED_FILE,
    TABLE_SCHEMAS,
    OnError,
    Rejection,
    TraceTables,
    check_on_error,
    expand_paths,
    format_problems,
    is_dataset,
    read_dataset,
    reject_duplicates,
)
from aco_lab.traces.validate import TraceIdIndex, build_cost_warnings
from aco_lab.traces.workers import ChunkMapper, map_chunks, report_chunks, worker_count

log = logging.getLogger(__name__)

DATASET_VERSION = 1  # layout version of DIR; bump when the layout changes
PARQUET_COMPRESSION = "zstd"
PARQUET_COMPRESSION_LEVEL = 1  # fastest zstd: nearly the ratio of the default level
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # the directory name of a null partition value
HASH_BLOCK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What `ingest_traces` wrote: where, and the counts (read == accepted + rejected)."""

    out_dir: Path
    lines_read: int
    accepted: int
    rejected: int
    warnings: int
    steps: int
    tool_calls: int


def ingest_traces(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    on_error: OnError = "fail",
    force: bool = False,
    workers: int | None = None,
    strict: bool = False,
    mapper: ChunkMapper | None = None,
) -> IngestResult:
    """Read traces and write them as a partitioned Parquet dataset at out_dir, atomically.

    The input streams through chunk by chunk: each chunk is decoded, checked and written as
    Parquet by a worker process (for big inputs), so memory stays bounded whatever the size.
    strict: a line with a key trace format v1 does not define is bad too (default: ignored).
    mapper: runs the chunks instead of the local processes (the Dask engine's map_chunks).
    """
    check_on_error(on_error)
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force)
    inputs = expand_paths(paths)
    datasets = [p for p in inputs if is_dataset(p)]
    files = [p for p in inputs if not is_dataset(p)]
    staging = make_staging(out_dir)
    try:
        # Plain files are hashed from the blocks the chunk planner maps anyway (one pass over
        # each file); datasets, gzip and unreadable files in a thread while the traces load.
        digests = {path: hashlib.sha256() for path in files if _is_plain(path)}
        with ThreadPoolExecutor(max_workers=1) as pool:
            others = [p for p in datasets + files if p not in digests]
            hashes = pool.submit(lambda: {p: describe_input(p) for p in others})
            totals = _write_all(
                datasets,
                files,
                staging,
                worker_count(files, workers),
                on_block=lambda path, block: digests[path].update(block),
                strict=strict,
                on_error=on_error,
                mapper=mapper,
            )
            described = hashes.result()
        inputs = [
            described[p] if p in described else _describe_hashed(p, digests[p])
            for p in datasets + files
        ]
        if totals.rejected and on_error == "fail":
            raise TraceFormatError(format_problems(totals.rejected, totals.lines_read))
        _finish(staging, out_dir, totals, build_manifest(totals, inputs, on_error, strict))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("wrote %s: %d runs, %d rejected", out_dir, totals.runs, len(totals.rejected))
    return IngestResult(
        out_dir=out_dir,
        lines_read=totals.lines_read,
        accepted=totals.runs,
        rejected=len(totals.rejected),
        warnings=totals.warnings,
        steps=totals.steps,
        tool_calls=totals.tool_calls,
    )


@dataclass(frozen=True, slots=True)
class WrittenPart:
    """What was written for one part of the input, and what later parts are checked against."""

    ids: pl.DataFrame  # SOURCE_FILE, LINE, TRACE_ID of the runs written
    files: tuple[Path, ...]  # the Parquet files written
    rejected: tuple[Rejection, ...]
    warnings: tuple[str, ...]
    lines_read: int
    steps: int
    tool_calls: int


@dataclass(frozen=True, slots=True)
class PartTotals:
    """What was written in all: row counts, the rejected lines and the number of warnings."""

    lines_read: int
    runs: int
    steps: int
    tool_calls: int
    warnings: int
    rejected: tuple[Rejection, ...]


def _write_all(
    datasets: list[Path],
    files: list[Path],
    staging: Path,
    workers: int,
    on_block: Callable[[Path, memoryview], None] | None = None,
    strict: bool = False,
    on_error: OnError = "fail",
    mapper: ChunkMapper | None = None,
) -> PartTotals:
    """Write every part (datasets first, then file chunks); drop runs whose trace_id repeats.

    on_block sees each plain file's bytes as the chunks are planned (see plan_chunks). A file
    that cannot be read stops the ingest (on_error="fail") or is one rejected line ("skip").
    """
    ids = TraceIdIndex()
    from_datasets = [
        (None, write_part(read_dataset(path), staging, f"part-dataset{index}.parquet"))
        for index, path in enumerate(datasets)
    ]
    broken: list[Rejection] | None = None if on_error == "fail" else []
    run = mapper or map_chunks
    chunks = report_chunks(
        run(
            partial(write_chunk, directory=staging, strict=strict),
            plan_chunks(files, on_block, broken),
            workers,
        ),
        files,
        "ingesting traces",
    )
    written: list[WrittenPart] = []
    for task, part in itertools.chain(from_datasets, chunks):
        duplicates = reject_duplicates(part.ids, ids, task)
        written.append(_drop_duplicates(part, duplicates) if duplicates else part)
    broken = broken or []
    return PartTotals(
        lines_read=sum(w.lines_read for w in written) + len(broken),
        runs=sum(w.ids.height for w in written),
        steps=sum(w.steps for w in written),
        tool_calls=sum(w.tool_calls for w in written),
        warnings=sum(len(w.warnings) for w in written),
        rejected=tuple(r for w in written for r in w.rejected) + tuple(broken),
    )


def write_chunk(task: ChunkTask, directory: Path, strict: bool = False) -> WrittenPart:
    """Decode, check and write one chunk (in a worker process for big inputs)."""
    chunk = read_chunk(task, strict)
    tables = TraceTables(
        chunk.runs,
        chunk.steps,
        chunk.tool_calls,
        chunk.rejected,
        build_cost_warnings(chunk.runs),
        chunk.lines_read,
    )
    tag = hashlib.sha256(task.file.encode()).hexdigest()[:12]
    return write_part(tables, directory, f"part-{tag}-{task.first_line:012d}.parquet")


def write_part(tables: TraceTables, directory: Path, name: str) -> WrittenPart:
    """Write a part's tables as directory/<table>/source=<value>/<name>."""
    sources = tables.runs.get_column(PARTITION_KEY)
    if tables.runs.height and sources.n_unique() == 1:
        # One source (the usual case): each table is one file (none without rows), no split.
        files = [
            _write_parquet_in(frame, directory / table, sources[0], name)
            for table, frame in _frames(tables, runs_source=False).items()
            if frame.height
        ]
    else:
        files = [
            path
            for table, frame in _frames(tables, runs_source=True).items()
            for path in _write_partitioned(frame, directory / table, name)
        ]
    return WrittenPart(
        ids=tables.runs.select(S.SOURCE_FILE, S.LINE, S.TRACE_ID),
        files=tuple(files),
        rejected=tables.rejected,
        warnings=tables.warnings,
        lines_read=tables.lines_read,
        steps=tables.steps.height,
        tool_calls=tables.tool_calls.height,
    )


def _frames(tables: TraceTables, runs_source: bool) -> dict[str, pl.DataFrame]:
    """The three tables to write; with runs_source, each row carries its run's `source`."""
    if not runs_source:
        return {
            "runs": tables.runs.drop(PARTITION_KEY),
            "steps": tables.steps,
            "tool_calls": tables.tool_calls,
        }
    source_of_run = tables.runs.select(S.SOURCE_FILE, S.LINE, PARTITION_KEY)
    return {
        "runs": tables.runs,
        "steps": with_run_source(tables.steps, source_of_run),
        "tool_calls": with_run_source(tables.tool_calls, source_of_run),
    }


def _drop_duplicates(part: WrittenPart, duplicates: tuple[Rejection, ...]) -> WrittenPart:
    """Rewrite a part's files without the runs whose trace_id repeats (a rare path)."""
    drop = pl.DataFrame(
        [(r.file, r.line) for r in duplicates],
        orient="row",
        schema={S.SOURCE_FILE: pl.String, S.LINE: pl.Int64},
    )
    removed = {"steps": 0, "tool_calls": 0}
    for path in part.files:
        frame = pl.read_parquet(path, hive_partitioning=False)
        kept = frame.join(drop, on=[S.SOURCE_FILE, S.LINE], how="anti", maintain_order="left")
        removed[path.parent.parent.name] = removed.get(path.parent.parent.name, 0) + (
            frame.height - kept.height
        )
        _write_parquet(kept, path)
    places = {f"{r.file}:{r.line}: " for r in duplicates}
    return dataclasses.replace(
        part,
        ids=part.ids.join(drop, on=[S.SOURCE_FILE, S.LINE], how="anti", maintain_order="left"),
        rejected=tuple(sorted(part.rejected + duplicates, key=lambda r: (r.file, r.line))),
        warnings=tuple(w for w in part.warnings if not any(w.startswith(p) for p in places)),
        steps=part.steps - removed["steps"],
        tool_calls=part.tool_calls - removed["tool_calls"],
    )


def _write_partitioned(frame: pl.DataFrame, table_dir: Path, name: str) -> list[Path]:
    """One Parquet file per partition value, hive-style: source=<percent-encoded value>."""
    return [
        _write_parquet_in(rows, table_dir, value, name)
        for (value,), rows in frame.partition_by(
            PARTITION_KEY, as_dict=True, include_key=False
        ).items()
    ]


def _write_parquet_in(frame: pl.DataFrame, table_dir: Path, value: str | None, name: str) -> Path:
    """Write table_dir/source=<value>/name (the frame without its partition column)."""
    folder = table_dir / f"{PARTITION_KEY}={hive_value(value)}"
    folder.mkdir(parents=True, exist_ok=True)
    _write_parquet(frame, folder / name)
    return folder / name


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    frame.write_parquet(
        path, compression=PARQUET_COMPRESSION, compression_level=PARQUET_COMPRESSION_LEVEL
    )


def hive_value(value: str | None) -> str:
    """A partition value as a hive directory name part (as Polars and Arrow read it)."""
    return HIVE_NULL if value is None else quote(value, safe="")


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse an existing non-empty out_dir unless force; refuse a file in its place or in
    place of one of its parents."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a directory; choose another --out")
    for parent in out_dir.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise DataError(f"{out_dir}: {parent} is a file, not a directory; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise DataError(f"{out_dir}: exists and is not empty; pass --force to replace it")


def make_staging(out_dir: Path) -> Path:
    """The staging directory beside out_dir (files.staging_dir); a one-line DataError when
    it cannot be made there (no permission, a read-only or full file system)."""
    try:
        return staging_dir(out_dir)
    except OSError as exc:
        raise DataError(
            f"{out_dir}: cannot create the dataset there: "
            f"{exc.strerror or exc}; choose another --out"
        ) from None


def _is_plain(path: Path) -> bool:
    """Whether a file reads as plain JSONL (not gzip); False when it cannot be opened."""
    try:
        return not is_gzip(path)
    except OSError:
        return False


def _describe_hashed(path: Path, digest: Any, target: Path | None = None) -> dict[str, Any]:
    """An input's manifest entry: its path, and the size and sha256 of what was hashed (the
    file itself, or a dataset's manifest)."""
    return {
        "path": str(path),
        "bytes": (target or path).stat().st_size,
        "sha256": digest.hexdigest(),
    }


def describe_input(path: Path) -> dict[str, Any]:
    """An input file (or an ingested dataset's manifest) with its size and sha256; for a file
    that cannot be read, its path and why (the chunk planner reports it too)."""
    target = path / DATASET_MANIFEST if path.is_dir() else path
    digest = hashlib.sha256()
    try:
        with target.open("rb") as stream:
            while block := stream.read(HASH_BLOCK_BYTES):
                digest.update(block)
        return _describe_hashed(path, digest, target)
    except OSError as exc:
        return {"path": str(path), "error": str(exc.strerror or exc)}


def build_manifest(
    totals: PartTotals, inputs: list[dict], on_error: str, strict: bool = False
) -> dict[str, Any]:
    """The manifest of a dataset: versions, counts, inputs, partitioning and schemas."""
    return {
        "kind": DATASET_KIND,
        "dataset_version": DATASET_VERSION,
        "trace_schema_version": SCHEMA_VERSION,
        "aco_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "on_error": on_error,
        "strict": strict,
        "counts": {
            "lines_read": totals.lines_read,
            "accepted": totals.runs,
            "rejected": len(totals.rejected),
            "warnings": totals.warnings,
            "runs": totals.runs,
            "steps": totals.steps,
            "tool_calls": totals.tool_calls,
        },
        "inputs": inputs,
        "partitioning": {"scheme": "hive", "key": PARTITION_KEY},
        "tables": {
            name: {column: str(dtype) for column, dtype in schema.items()}
            for name, schema in TABLE_SCHEMAS.items()
        },
        "rejected_file": REJECTED_FILE,
    }


def write_dataset(tables: TraceTables, out_dir: str | Path, force: bool = False) -> None:
    """Write loaded tables as a dataset at out_dir (same layout as ingest), atomically."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force)
    staging = make_staging(out_dir)
    try:
        part = write_part(tables, staging, "part-0.parquet")
        totals = PartTotals(
            tables.lines_read,
            tables.runs.height,
            part.steps,
            part.tool_calls,
            len(tables.warnings),
            tables.rejected,
        )
        _finish(staging, out_dir, totals, build_manifest(totals, [], "skip"))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _finish(staging: Path, out_dir: Path, totals: PartTotals, manifest: dict) -> None:
    """Add rejected.jsonl and the manifest (last), then move the dataset into place."""
    for table in TABLE_SCHEMAS:
        (staging / table).mkdir(exist_ok=True)
    _write_rejected(totals.rejected, staging / REJECTED_FILE)
    write_text(staging / DATASET_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    replace_dir(staging, out_dir)


def with_run_source(frame: pl.DataFrame, source_of_run: pl.DataFrame) -> pl.DataFrame:
    """A steps or tool-calls frame with its run's `source` added (the partition key)."""
    return frame.join(source_of_run, on=[S.SOURCE_FILE, S.LINE], how="left", maintain_order="left")


def _write_rejected(rejected: Sequence[Rejection], path: Path) -> None:
    with atomic_file(path) as out:
        for rejection in rejected:
            out.write((json.dumps(asdict(rejection), ensure_ascii=False) + "\n").encode())
