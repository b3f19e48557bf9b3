"""Hold requests out for evaluation: trace files split by request into train and eval files.

Every run of a request lands in the same file (aco_lab.traces.split's seeded hash of request_id), so
a router trained on `train.jsonl.gz` can be evaluated on `eval.jsonl.gz` without overlap.
Lines are copied verbatim; a line without a request_id is assigned by the id the loader
derives from its request text. Output is deterministic (gzip without a timestamp).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

from aco.errors import DataError
from aco.trace_format import REQUEST, REQUEST_ID, derive_request_id
from aco_lab.files import write_bytes
from aco_lab.traces.split import assign_splits

TRAIN, EVAL = "train", "eval"
GZIP_LEVEL = 6


def _request_id(line: bytes, where: str) -> str:
    try:
        trace = json.loads(line)
    except ValueError:
        raise DataError(
            f"{where}: not a JSON object; fix or drop the line (aco-lab validate lists bad lines)"
        ) from None
    rid = trace.get(REQUEST_ID) if isinstance(trace, dict) else None
    if isinstance(rid, str) and rid:
        return rid
    if isinstance(trace, dict) and isinstance(trace.get(REQUEST), str):
        return derive_request_id(trace[REQUEST])
    raise DataError(f"{where}: {REQUEST_ID}/{REQUEST}: missing; every trace needs a request")


def read_trace_lines(paths: Sequence[str | Path]) -> list[tuple[str, bytes]]:
    """(request_id, line) for every non-blank line of the files, in order."""
    from aco_lab.traces.reading import expand_paths

    out = []
    for path in expand_paths(paths):
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with (gzip.open if gzipped else open)(path, "rb") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    out.append((_request_id(line, f"{path}:{number}"), line.rstrip(b"\n")))
    return out


def split_trace_files(
    paths: Sequence[str | Path], out_dir: str | Path, eval_fraction: float = 0.5, seed: int = 0
) -> tuple[Path, Path]:
    """Write out_dir/train.jsonl.gz and out_dir/eval.jsonl.gz, split by request; return both."""
    if not 0.0 < eval_fraction < 1.0:
        raise DataError(
            f"eval_fraction: expected a number strictly between 0 and 1, got {eval_fraction!r}"
        )
    lines = read_trace_lines(paths)
    if not lines:
        raise DataError(f"{', '.join(map(str, paths))}: no trace lines to split")
    parts = assign_splits(
        [rid for rid, _ in lines], ((TRAIN, 1.0 - eval_fraction), (EVAL, eval_fraction)), seed
    )
    eval_ids = set(parts[EVAL])
    out = Path(out_dir)
    written = []
    for name, keep in ((TRAIN, False), (EVAL, True)):
        body = b"".join(line + b"\n" for rid, line in lines if (rid in eval_ids) == keep)
        written.append(_write_gzip(out / f"{name}.jsonl.gz", body))
    return written[0], written[1]


def _write_gzip(path: Path, data: bytes) -> Path:
    # mtime=0: no timestamp in the header, so the same lines give the same bytes.
    return write_bytes(path, gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))
