"""The Dask engine reads and ingests exactly what the local engine does: rows, rejected lines,
counts, files."""

import gzip
import json
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from aco.errors import TraceFormatError
from aco_lab.traces import chunk_plan
from aco_lab.traces.ingest import ingest_traces
from aco_lab.traces.reading import read_dataset, read_traces
from tests.aco_lab.traces.test_ingest import trace
from tests.dask_cluster import dask_cluster  # noqa: F401 - the fixture

SOURCES = ["runtime", "batch", None]


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    """A plain file of several chunks, a gzip file, bad lines and a trace_id repeated across
    files (rejected by the cross-chunk check)."""
    folder = tmp_path / "in"
    folder.mkdir()
    lines = [json.dumps(trace(i, SOURCES[i % 3])) for i in range(40)]
    lines[7] = "{not json"
    lines[21] = json.dumps({**trace(21, "runtime"), "steps": "nope"})
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n\n")
    repeated = [json.dumps(trace(i, "batch")) for i in (100, 101, 5, 102)]  # t5: seen in a.jsonl
    with gzip.open(folder / "b.jsonl.gz", "wt") as out:
        out.write("\n".join(repeated) + "\n")
    return [folder / "a.jsonl", folder / "b.jsonl.gz"]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of ~2 KB, so every file is several chunks spread over the workers."""
    monkeypatch.setattr(chunk_plan, "CHUNK_BYTES", 2048)


def test_read_traces_on_dask_equals_local(inputs, small_chunks, dask_cluster) -> None:  # noqa: F811
    local = read_traces(inputs, on_error="skip")
    on_dask = read_traces(inputs, on_error="skip", mapper=dask_cluster.map_chunks)
    for table in ("runs", "steps", "tool_calls"):
        assert_frame_equal(getattr(on_dask, table), getattr(local, table))
    assert on_dask.rejected == local.rejected and len(local.rejected) == 3
    assert (
        (on_dask.warnings, on_dask.lines_read)
        == (local.warnings, local.lines_read)
        == (local.warnings, 44)
    )
    with pytest.raises(TraceFormatError, match="3 of 44 lines"):
        read_traces(inputs, mapper=dask_cluster.map_chunks)


def test_ingest_on_dask_writes_the_local_dataset(
    tmp_path,
    inputs,
    small_chunks,
    dask_cluster,  # noqa: F811
) -> None:
    local = ingest_traces(inputs, tmp_path / "local", on_error="skip")
    on_dask = ingest_traces(
        inputs, tmp_path / "dask", on_error="skip", mapper=dask_cluster.map_chunks
    )
    assert on_dask.accepted == local.accepted == 41 and on_dask.rejected == local.rejected == 3
    assert {f: getattr(on_dask, f) for f in ("lines_read", "warnings", "steps", "tool_calls")} == {
        f: getattr(local, f) for f in ("lines_read", "warnings", "steps", "tool_calls")
    }
    a, b = read_dataset(tmp_path / "local"), read_dataset(tmp_path / "dask")
    for table in ("runs", "steps", "tool_calls"):
        assert_frame_equal(getattr(b, table), getattr(a, table))
    assert (tmp_path / "dask" / "rejected.jsonl").read_bytes() == (
        tmp_path / "local" / "rejected.jsonl"
    ).read_bytes()
    manifests = [
        json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("local", "dask")
    ]
    for manifest in manifests:
        del manifest["created_at"]
    assert manifests[0] == manifests[1]
    assert _files(tmp_path / "dask") == _files(tmp_path / "local")


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
