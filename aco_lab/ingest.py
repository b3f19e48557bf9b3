"""JSONL traces -> a Parquet dataset of the three tables, written atomically.

Layout of DIR (read back with `aco_lab.traces.read_dataset` or `read_traces(DIR)`):

    DIR/manifest.json                       counts, inputs with sha256, schemas, versions
    DIR/rejected.jsonl                      {"file", "line", "error", "raw"} per rejected line
    DIR/runs/source=<source>/*.parquet      hive-partitioned by the run's `source`
    DIR/steps/source=<source>/*.parquet     (null source: source=__HIVE_DEFAULT_PARTITION__)
    DIR/tool_calls/source=<source>/*.parquet

Everything is built in a temporary directory beside DIR and renamed into place, so a crash
leaves either the old dataset or the new one, never half of one. Inputs are only read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from aco import __version__
from aco.errors import DataError
from aco.trace_format import SCHEMA_VERSION
from aco_lab import schema as S
from aco_lab.traces import (
    DATASET_KIND,
    DATASET_MANIFEST,
    PARTITION_KEY,
    REJECTED_FILE,
    TABLE_SCHEMAS,
    OnError,
    TraceTables,
    expand_paths,
    is_dataset,
    read_traces,
)

log = logging.getLogger(__name__)

DATASET_VERSION = 1  # layout version of DIR; bump when the layout changes
PARQUET_COMPRESSION = "zstd"
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
    paths: list[str | Path], out_dir: str | Path, on_error: OnError = "fail", force: bool = False
) -> IngestResult:
    """Read traces, then write them as a partitioned Parquet dataset at out_dir, atomically."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force)
    datasets = [Path(p) for p in paths if is_dataset(p)]
    files = datasets + expand_paths(p for p in paths if not is_dataset(p))
    # Hashing runs in a thread while the traces load (hashlib releases the GIL on big blocks).
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashes = pool.submit(lambda: [describe_input(Path(p)) for p in files])
        tables = read_traces(paths, on_error=on_error)
        inputs = hashes.result()
    write_dataset(tables, out_dir, build_manifest(tables, inputs, on_error), force=force)
    log.info("wrote %s: %d runs, %d rejected", out_dir, tables.runs.height, len(tables.rejected))
    return IngestResult(
        out_dir=out_dir,
        lines_read=tables.lines_read,
        accepted=tables.runs.height,
        rejected=len(tables.rejected),
        warnings=len(tables.warnings),
        steps=tables.steps.height,
        tool_calls=tables.tool_calls.height,
    )


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse an existing non-empty out_dir unless force; refuse a file in its place."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a directory; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise DataError(f"{out_dir}: exists and is not empty; pass --force to replace it")


def describe_input(path: Path) -> dict[str, Any]:
    """An input file (or an ingested dataset's manifest) with its size and sha256."""
    target = path / DATASET_MANIFEST if path.is_dir() else path
    digest = hashlib.sha256()
    with target.open("rb") as stream:
        while block := stream.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return {"path": str(path), "bytes": target.stat().st_size, "sha256": digest.hexdigest()}


def build_manifest(tables: TraceTables, inputs: list[dict], on_error: str) -> dict[str, Any]:
    """The manifest of a dataset: versions, counts, inputs, partitioning and schemas."""
    return {
        "kind": DATASET_KIND,
        "dataset_version": DATASET_VERSION,
        "trace_schema_version": SCHEMA_VERSION,
        "aco_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "on_error": on_error,
        "counts": {
            "lines_read": tables.lines_read,
            "accepted": tables.runs.height,
            "rejected": len(tables.rejected),
            "warnings": len(tables.warnings),
            "runs": tables.runs.height,
            "steps": tables.steps.height,
            "tool_calls": tables.tool_calls.height,
        },
        "inputs": inputs,
        "partitioning": {"scheme": "hive", "key": PARTITION_KEY},
        "tables": {
            name: {column: str(dtype) for column, dtype in schema.items()}
            for name, schema in TABLE_SCHEMAS.items()
        },
        "rejected_file": REJECTED_FILE,
    }


def write_dataset(tables: TraceTables, out_dir: Path, manifest: dict, force: bool = False) -> None:
    """Write tables, rejected lines and manifest to out_dir via a temp dir and a rename."""
    check_out_dir(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        _write_tables(tables, staging)
        _write_rejected(tables, staging / REJECTED_FILE)
        (staging / DATASET_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_tables(tables: TraceTables, staging: Path) -> None:
    """Each table under staging/<table>/source=<value>/, partitioned by the run's source."""
    source_of_run = tables.runs.select(S.SOURCE_FILE, S.LINE, PARTITION_KEY)
    frames = {
        "runs": tables.runs,
        "steps": with_run_source(tables.steps, source_of_run),
        "tool_calls": with_run_source(tables.tool_calls, source_of_run),
    }
    for name, frame in frames.items():
        if frame.height:
            frame.write_parquet(
                staging / name, partition_by=PARTITION_KEY, compression=PARQUET_COMPRESSION,
                mkdir=True,
            )
        else:
            (staging / name).mkdir()


def with_run_source(frame: pl.DataFrame, source_of_run: pl.DataFrame) -> pl.DataFrame:
    """A steps or tool-calls frame with its run's `source` added (the partition key)."""
    return frame.join(source_of_run, on=[S.SOURCE_FILE, S.LINE], how="left",
                      maintain_order="left")


def _write_rejected(tables: TraceTables, path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for rejection in tables.rejected:
            out.write(json.dumps(asdict(rejection), ensure_ascii=False) + "\n")


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename staging to out_dir; an existing out_dir is renamed aside first, then removed.

    Each rename is atomic. Between the two (a moment) out_dir is absent and the old
    dataset is kept beside it as .<name>.*.old; a crash never leaves a partial dataset.
    """
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
