"""ingest_traces: partitioned Parquet written atomically, read back equal, nothing lost."""

import gzip
import hashlib
import json
import re
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from aco.errors import DataError, TraceFormatError
from aco_lab.traces import ingest
from aco_lab.traces import schema as S
from aco_lab.traces.ingest import hive_value, ingest_traces, write_dataset
from aco_lab.traces.reading import read_dataset, read_traces, scan_table

SOURCES = ["runtime", "x/y=z ünï", None, "runtime", "123"]


def trace(i: int, source: str | None) -> dict:
    """A run with two steps and a tool call, from `source`."""
    return {
        "trace_id": f"t{i}",
        "request": f"request {i} 🚀",
        "source": source,
        "timestamp": f"2025-01-{i % 28 + 1:02d}T10:00:00Z",
        "steps": [
            {
                "step_num": 1,
                "model_call": {"model_id": "a", "tier": 1, "cost": 0.01},
                "tool_calls": [{"tool_name": "grep", "success": i % 2 == 0, "cost": 0.001}],
            },
            {
                "step_num": 2,
                "model_call": {"model_id": "b", "tier": 3, "cost": 0.1, "escalated_from": 1},
            },
        ],
        "final_outcome": "completed",
        "task_success": i % 3 == 0,
        "total_cost": 0.111,
        "metadata": {"i": i},
    }


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    """Two input files of traces from several sources (one gzip), plus one bad line."""
    first = tmp_path / "in" / "a.jsonl"
    first.parent.mkdir()
    first.write_text("\n".join(json.dumps(trace(i, s)) for i, s in enumerate(SOURCES)) + "\n")
    second = tmp_path / "in" / "b.jsonl"
    second.write_text(
        json.dumps(trace(10, "other")) + "\n{not json\n" + json.dumps(trace(11, None)) + "\n"
    )
    return [first, second]


def test_dataset_reads_back_equal_to_the_input(tmp_path: Path, inputs: list[Path]) -> None:
    result = ingest_traces(inputs, tmp_path / "ds", on_error="skip")
    direct = read_traces(inputs, on_error="skip")
    back = read_dataset(tmp_path / "ds")
    assert_frame_equal(back.runs, direct.runs)
    assert_frame_equal(back.steps, direct.steps)
    assert_frame_equal(back.tool_calls, direct.tool_calls)
    assert back.rejected == direct.rejected
    assert back.lines_read == direct.lines_read == result.lines_read == 8
    assert (result.accepted, result.rejected) == (7, 1)


def test_read_traces_accepts_a_dataset_directory(tmp_path: Path, inputs: list[Path]) -> None:
    ingest_traces(inputs, tmp_path / "ds", on_error="skip")
    tables = read_traces(tmp_path / "ds", on_error="skip")
    assert tables.runs.height == 7
    assert tables.lines_read == tables.runs.height + len(tables.rejected)
    with pytest.raises(TraceFormatError, match="1 of 8 lines"):
        read_traces(tmp_path / "ds")  # the dataset still carries its rejected line


def test_tables_are_hive_partitioned_by_source(tmp_path: Path, inputs: list[Path]) -> None:
    ingest_traces(inputs, tmp_path / "ds", on_error="skip")
    for table in ("runs", "steps", "tool_calls"):
        parts = sorted(p.name for p in (tmp_path / "ds" / table).iterdir())
        assert parts == [
            "source=123",
            "source=__HIVE_DEFAULT_PARTITION__",
            "source=other",
            "source=runtime",
            "source=x%2Fy%3Dz%20%C3%BCn%C3%AF",
        ]


@pytest.mark.parametrize("source", ["runtime", "x/y=z ünï", None])
def test_partition_pruning_reads_only_one_source(
    tmp_path: Path, inputs: list[Path], source: str | None
) -> None:
    ingest_traces(inputs, tmp_path / "ds", on_error="skip")
    direct = read_traces(inputs, on_error="skip")
    wanted = pl.col(S.SOURCE).is_null() if source is None else pl.col(S.SOURCE) == source
    scan = scan_table(tmp_path / "ds", "runs").filter(wanted)
    # only the wanted partition's files are scanned: the others are pruned by their path
    assert set(re.findall(r"source=([^/]+)/", scan.explain())) == {hive_value(source)}
    back = scan.collect().select(S.RUNS_SCHEMA.names()).sort(S.SOURCE_FILE, S.LINE)
    assert_frame_equal(back, direct.runs.filter(wanted))
    steps = scan_table(tmp_path / "ds", "steps").filter(wanted).collect()
    assert sorted(steps[S.TRACE_ID]) == sorted(direct.runs.filter(wanted)[S.TRACE_ID].to_list() * 2)


def test_manifest_records_counts_inputs_and_schemas(tmp_path: Path, inputs: list[Path]) -> None:
    ingest_traces(inputs, tmp_path / "ds", on_error="skip")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["counts"] == {
        "lines_read": 8,
        "accepted": 7,
        "rejected": 1,
        "warnings": 0,
        "runs": 7,
        "steps": 14,
        "tool_calls": 7,
    }
    assert [i["path"] for i in manifest["inputs"]] == [str(p) for p in inputs]
    assert manifest["inputs"][0]["sha256"] == hashlib.sha256(inputs[0].read_bytes()).hexdigest()
    assert manifest["trace_schema_version"] == 1
    assert manifest["partitioning"] == {"scheme": "hive", "key": S.SOURCE}
    assert list(manifest["tables"]["runs"]) == S.RUNS_SCHEMA.names()


def test_skip_keeps_every_rejected_line(tmp_path: Path, inputs: list[Path]) -> None:
    result = ingest_traces(inputs, tmp_path / "ds", on_error="skip")
    text = (tmp_path / "ds" / "rejected.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    assert rows == [
        {
            "file": str(inputs[1]),
            "line": 2,
            "raw": "{not json",
            "error": f"{inputs[1]}:2: invalid JSON: object keys must be strings near column 2",
        }
    ]
    assert result.lines_read == result.accepted + result.rejected


def test_fail_mode_writes_nothing(tmp_path: Path, inputs: list[Path]) -> None:
    with pytest.raises(TraceFormatError, match=r"b\.jsonl:2: invalid JSON"):
        ingest_traces(inputs, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_crash_while_writing_leaves_no_dataset_and_no_temp_dir(
    tmp_path: Path, inputs: list[Path], monkeypatch
) -> None:
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest, "_write_rejected", disk_full)
    with pytest.raises(OSError, match="No space"):
        ingest_traces(inputs, tmp_path / "ds", on_error="skip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_crash_during_force_keeps_the_old_dataset(
    tmp_path: Path, inputs: list[Path], monkeypatch
) -> None:
    ingest_traces(inputs[:1], tmp_path / "ds")
    before = read_dataset(tmp_path / "ds")
    monkeypatch.setattr(ingest, "_write_rejected", lambda *a: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        ingest_traces(inputs, tmp_path / "ds", on_error="skip", force=True)
    assert_frame_equal(read_dataset(tmp_path / "ds").runs, before.runs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "in"]


def test_refuses_a_non_empty_out_dir_unless_forced(tmp_path: Path, inputs: list[Path]) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="exists and is not empty; pass --force"):
        ingest_traces(inputs[:1], out)
    assert (out / "keep.txt").read_text() == "mine"
    ingest_traces(inputs[:1], out, force=True)
    assert not (out / "keep.txt").exists()
    assert read_dataset(out).runs.height == len(SOURCES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "in"]


def test_an_empty_out_dir_is_used(tmp_path: Path, inputs: list[Path]) -> None:
    (tmp_path / "ds").mkdir()
    ingest_traces(inputs[:1], tmp_path / "ds")
    assert read_dataset(tmp_path / "ds").runs.height == len(SOURCES)


def test_inputs_are_never_modified(tmp_path: Path, inputs: list[Path]) -> None:
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in inputs]
    ingest_traces(inputs, tmp_path / "ds", on_error="skip")
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in inputs] == before


def test_all_lines_rejected_gives_empty_tables_with_schemas(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n[]\n")
    result = ingest_traces([bad], tmp_path / "ds", on_error="skip")
    back = read_dataset(tmp_path / "ds")
    assert (result.accepted, result.rejected, back.lines_read) == (0, 2, 2)
    assert back.runs.schema == S.RUNS_SCHEMA and back.steps.height == 0


@pytest.mark.shared_data
def test_real_traces_round_trip(tmp_path: Path, routerbench_dir: Path, tau_bench_dir: Path) -> None:
    paths = [routerbench_dir / "traces.jsonl.gz", tau_bench_dir / "traces.jsonl.gz"]
    result = ingest_traces(paths, tmp_path / "ds")
    assert (result.accepted, result.rejected) == (17_578 + 200, 0)
    back = read_dataset(tmp_path / "ds")
    direct = read_traces(paths)
    assert_frame_equal(back.runs, direct.runs)
    assert_frame_equal(back.tool_calls, direct.tool_calls)


@pytest.mark.parametrize("workers", [1, 2])
def test_many_chunks_stream_into_the_same_dataset(
    tmp_path: Path, inputs: list[Path], monkeypatch, workers: int
) -> None:
    monkeypatch.setattr("aco_lab.traces.chunk_plan.CHUNK_BYTES", 1500)  # about two traces per chunk
    dup = json.dumps(trace(3, "runtime"))  # t3 again, several chunks later
    (tmp_path / "in" / "c.jsonl").write_text(
        "\n".join([json.dumps(trace(i, SOURCES[i % 5])) for i in range(20, 40)] + [dup]) + "\n"
    )
    paths = [*inputs, tmp_path / "in" / "c.jsonl"]
    result = ingest_traces(paths, tmp_path / "ds", on_error="skip", workers=workers)
    direct = read_traces(paths, on_error="skip", workers=1)
    back = read_dataset(tmp_path / "ds")
    assert len(list((tmp_path / "ds" / "runs" / "source=runtime").iterdir())) > 2
    assert_frame_equal(back.runs, direct.runs)
    assert_frame_equal(back.steps, direct.steps)
    assert_frame_equal(back.tool_calls, direct.tool_calls)
    assert back.rejected == direct.rejected
    assert [r.line for r in back.rejected] == [2, 21]
    assert result.lines_read == result.accepted + result.rejected == 8 + 21


def test_write_dataset_writes_loaded_tables(tmp_path: Path, inputs: list[Path]) -> None:
    tables = read_traces(inputs, on_error="skip")
    write_dataset(tables, tmp_path / "ds")
    back = read_dataset(tmp_path / "ds")
    assert_frame_equal(back.runs, tables.runs)
    assert back.rejected == tables.rejected and back.lines_read == tables.lines_read


def test_a_dataset_ingested_again_with_more_files(tmp_path: Path, inputs: list[Path]) -> None:
    ingest_traces(inputs, tmp_path / "ds", on_error="skip")
    more = tmp_path / "in" / "more.jsonl"
    more.write_text(json.dumps(trace(50, "new")) + "\n" + json.dumps(trace(0, "runtime")) + "\n")
    result = ingest_traces([tmp_path / "ds", more], tmp_path / "ds2", on_error="skip")
    back = read_dataset(tmp_path / "ds2")
    assert (result.accepted, result.rejected, result.lines_read) == (8, 2, 10)
    assert back.rejected[-1].error.startswith(f'{more}:2: trace_id: "t0" already used at')
    assert sorted(back.runs[S.TRACE_ID]) == sorted(
        [f"t{i}" for i in range(5)] + ["t10", "t11", "t50"]
    )
    assert back.steps.height == 16 and back.tool_calls.height == 8


@pytest.mark.parametrize("source", ["runtime", None])
def test_one_source_is_written_as_one_file_per_table(tmp_path: Path, source: str | None) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text("".join(json.dumps(trace(i, source)) + "\n" for i in range(6)))
    ingest_traces([path], tmp_path / "ds")
    for table in ("runs", "steps", "tool_calls"):
        files = list((tmp_path / "ds" / table).rglob("*.parquet"))
        assert [f.parent.name for f in files] == [f"source={hive_value(source)}"]
        assert S.SOURCE not in pl.read_parquet(files[0], hive_partitioning=False).columns
    back, direct = read_dataset(tmp_path / "ds"), read_traces(path)
    for table in ("runs", "steps", "tool_calls"):
        assert_frame_equal(getattr(back, table), getattr(direct, table))


def test_manifest_hashes_every_input_whole(tmp_path: Path, inputs: list[Path], monkeypatch) -> None:
    # plain files hashed chunk by chunk
    monkeypatch.setattr("aco_lab.traces.chunk_plan.CHUNK_BYTES", 700)
    packed = tmp_path / "in" / "c.jsonl.gz"
    packed.write_bytes(gzip.compress(json.dumps(trace(30, "runtime")).encode()))
    empty = tmp_path / "in" / "d.jsonl"
    empty.write_bytes(b"")
    paths = [*inputs, packed, empty]
    ingest_traces(paths, tmp_path / "ds", on_error="skip", workers=1)
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["inputs"] == [
        {
            "path": str(p),
            "bytes": p.stat().st_size,
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
        }
        for p in paths
    ]
    assert manifest["counts"]["lines_read"] == 9


def test_a_table_without_rows_gets_no_file(tmp_path: Path) -> None:
    path = tmp_path / "no_tools.jsonl"
    runs = [dict(trace(i, "runtime"), steps=[{"step_num": 1}]) for i in range(3)]
    path.write_text("".join(json.dumps(run) + "\n" for run in runs))
    ingest_traces([path], tmp_path / "ds")
    assert list((tmp_path / "ds" / "tool_calls").rglob("*")) == []
    assert len(list((tmp_path / "ds" / "steps").rglob("*.parquet"))) == 1
    assert read_dataset(tmp_path / "ds").tool_calls.height == 0
