"""Hold requests out for evaluation: traces split by request into train and eval parts.

Every run of a request lands on the same side (aco_lab.traces.split's seeded hash of
request_id), so a router trained on one part can be evaluated on the other without overlap.
Traces are read as every command reads them (`read_traces`: files, globs, dirs, datasets;
bad lines fail or are skipped by on_error). From trace files, the accepted lines are copied
verbatim into `train.jsonl.gz` and `eval.jsonl.gz` (deterministic: gzip without a
timestamp); when an input is an ingested dataset, the parts are written as the datasets
`train/` and `eval/` instead (a dataset keeps tables, not lines).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl

from aco.errors import DataError
from aco.progress import stage
from aco_lab.files import write_bytes
from aco_lab.traces import schema as S
from aco_lab.traces.chunk_plan import is_gzip
from aco_lab.traces.reading import (
    OnError,
    TraceTables,
    expand_paths,
    is_dataset,
    read_traces,
)
from aco_lab.traces.split import assign_splits

TRAIN, EVAL = "train", "eval"
GZIP_LEVEL = 6


def split_trace_files(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    eval_fraction: float = 0.5,
    seed: int = 0,
    on_error: OnError = "fail",
) -> tuple[Path, Path]:
    """Write the train and eval parts into out_dir, split by request; return both paths."""
    if not 0.0 < eval_fraction < 1.0:
        raise DataError(
            f"eval_fraction: expected a number strictly between 0 and 1, got {eval_fraction!r}"
        )
    tables = read_traces(paths, on_error=on_error)
    if not tables.runs.height:
        raise DataError(f"{', '.join(map(str, paths))}: no trace lines to split")
    rids = tables.runs.get_column(S.REQUEST_ID)
    parts = assign_splits(
        rids.to_list(), ((TRAIN, 1.0 - eval_fraction), (EVAL, eval_fraction)), seed
    )
    in_eval = rids.is_in(parts[EVAL])
    out = Path(out_dir)
    stage("writing the train and eval parts")
    if any(is_dataset(p) for p in expand_paths(paths)):
        return _write_datasets(tables, in_eval, out)
    eval_lines = set(_places(tables.runs.filter(in_eval)))
    bodies: dict[bool, list[bytes]] = {False: [], True: []}
    files = tables.runs.get_column(S.SOURCE_FILE).unique(maintain_order=True).to_list()
    for place, line in _lines(files, set(_places(tables.runs))):
        bodies[place in eval_lines].append(line + b"\n")
    return (
        _write_gzip(out / f"{TRAIN}.jsonl.gz", b"".join(bodies[False])),
        _write_gzip(out / f"{EVAL}.jsonl.gz", b"".join(bodies[True])),
    )


def _places(runs: pl.DataFrame) -> Iterator[tuple[str, int]]:
    return zip(runs.get_column(S.SOURCE_FILE), runs.get_column(S.LINE), strict=True)


def _lines(
    files: list[str], wanted: set[tuple[str, int]]
) -> Iterator[tuple[tuple[str, int], bytes]]:
    """((file, line), the line's bytes) of the wanted lines of the files, in order."""
    for file in files:
        path = Path(file)
        with (gzip.open if is_gzip(path) else open)(path, "rb") as lines:
            for number, line in enumerate(lines, start=1):
                if (file, number) in wanted:
                    yield (file, number), line.rstrip(b"\n")


def _write_datasets(tables: TraceTables, in_eval: pl.Series, out: Path) -> tuple[Path, Path]:
    """The two parts as datasets out/train and out/eval (the ingest layout)."""
    from aco_lab.traces.ingest import write_dataset

    written = []
    for name, keep in ((TRAIN, ~in_eval), (EVAL, in_eval)):
        places = tables.runs.filter(keep).select(S.SOURCE_FILE, S.LINE)

        def rows(frame: pl.DataFrame, places: pl.DataFrame = places) -> pl.DataFrame:
            return frame.join(places, on=[S.SOURCE_FILE, S.LINE], how="semi", maintain_order="left")

        part = TraceTables(
            rows(tables.runs), rows(tables.steps), rows(tables.tool_calls), lines_read=places.height
        )
        write_dataset(part, out / name, force=True)
        written.append(out / name)
    return written[0], written[1]


def _write_gzip(path: Path, data: bytes) -> Path:
    # mtime=0: no timestamp in the header, so the same lines give the same bytes.
    return write_bytes(path, gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))
