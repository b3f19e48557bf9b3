"""A trace file that cannot be read is named with its cause; with on_error="skip" the other
files still load, and the lines before the break are kept (read == accepted + rejected)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from aco.errors import DataError
from aco_lab.traces.ingest import ingest_traces
from aco_lab.traces.reading import collect_traces, read_dataset, read_traces

N = 30


def trace(i: int) -> str:
    return json.dumps(
        {
            "trace_id": f"t{i}",
            "request": f"q{i}",
            "final_outcome": "completed",
            "task_success": True,
            "total_cost": 0.0,
            "steps": [],
        }
    )


def text(first: int = 0, n: int = N) -> bytes:
    return "".join(trace(i) + "\n" for i in range(first, first + n)).encode()


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_bytes(text(1000, 5))
    return path


def broken_files(tmp_path: Path) -> dict[str, tuple[Path, int, str]]:
    """name -> (file, lines kept, what the problem says)."""
    whole = gzip.compress(text(), mtime=0)
    cut = tmp_path / "truncated.jsonl.gz"
    cut.write_bytes(whole[: len(whole) - 20])  # the deflate end and the trailer lost
    trailing = tmp_path / "trailing.jsonl.gz"
    trailing.write_bytes(whole + b"garbage\n")
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(whole[:-8] + b"\0\0\0\0" + whole[-4:])  # a wrong CRC
    return {
        "truncated": (cut, -1, "the gzip data ends early: the file is truncated"),
        "trailing": (trailing, N, "bytes after the gzip data are not gzip"),
        "corrupt": (corrupt, 0, "corrupt gzip data"),
    }


@pytest.mark.parametrize("name", ["truncated", "trailing", "corrupt"])
def test_a_broken_gzip_is_named_with_its_cause(tmp_path: Path, good: Path, name: str) -> None:
    path, kept, cause = broken_files(tmp_path)[name]
    with pytest.raises(DataError, match=f"^{path}:\\d+: {cause}.*--on-error skip"):
        read_traces([path, good])
    tables = read_traces([path, good], on_error="skip")
    (rejection,) = tables.rejected
    assert rejection.file == str(path) and cause in rejection.error
    assert tables.lines_read == tables.runs.height + 1
    kept = tables.runs.height - 5 if kept < 0 else kept
    assert tables.runs.height == kept + 5  # the other file, and the whole lines before the break
    assert rejection.line == kept + 1


def test_gzip_members_and_zero_padding_read_as_one_stream(tmp_path: Path) -> None:
    path = tmp_path / "members.jsonl.gz"
    path.write_bytes(gzip.compress(text(0, 10)) + gzip.compress(text(10, 10)) + b"\0" * 64)
    tables = read_traces(path)
    assert tables.runs.height == 20 and not tables.rejected


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_traces(fifo)


def test_a_directory_in_place_of_a_file_is_named(tmp_path: Path, good: Path) -> None:
    from aco_lab.traces.chunk_plan import plan_chunks  # where an input vanished since listing

    folder = tmp_path / "became-a-dir.jsonl"
    folder.mkdir()
    with pytest.raises(DataError, match=f"^{folder}:1: cannot read the file: Is a directory"):
        list(plan_chunks([folder]))
    broken: list = []
    assert len(list(plan_chunks([folder, good], broken=broken))) == 1
    assert [r.line for r in broken] == [1]


def test_ingest_skip_keeps_a_broken_file_in_rejected_and_the_manifest(
    tmp_path: Path, good: Path
) -> None:
    path, _, cause = broken_files(tmp_path)["trailing"]
    with pytest.raises(DataError, match=cause):
        ingest_traces([path, good], tmp_path / "fail")
    assert not (tmp_path / "fail").exists()
    result = ingest_traces([path, good], tmp_path / "ds", on_error="skip")
    assert (result.lines_read, result.accepted, result.rejected) == (N + 6, N + 5, 1)
    back = read_dataset(tmp_path / "ds")
    assert cause in back.rejected[0].error
    assert collect_traces([tmp_path / "ds"]).runs.height == N + 5


def test_ingest_out_under_a_file_is_one_line(tmp_path: Path, good: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="afile is a file, not a directory"):
        ingest_traces([good], tmp_path / "afile" / "sub")
