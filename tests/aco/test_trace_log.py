"""The trace log: one valid line per trace, whatever threads and processes write at once."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aco.errors import ACOError, TraceFormatError
from aco.trace_log import TRACE_FILE_NAME, TraceLog, encode_trace
from aco_lab.traces.reading import read_traces


def _trace(trace_id: str, padding: int = 0) -> dict:
    return {
        "trace_id": trace_id,
        "request": "r" + "x" * padding,
        "steps": [],
        "final_outcome": "completed",
        "task_success": True,
        "total_cost": 0.0,
    }


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data.split(b"\n")[:-1]


def test_append_round_trips_unicode(tmp_path: Path) -> None:
    log = TraceLog(tmp_path / "traces")
    trace = _trace("t1") | {"request": 'héllo 🚀 \u2028 "quoted"\nnext line'}
    log.append(trace)
    log.append(_trace("t2"))
    assert log.path == tmp_path / "traces" / TRACE_FILE_NAME
    assert list(log.read()) == [trace, _trace("t2")]
    assert len(_lines(log.path)) == 2


def test_nan_and_objects_are_refused(tmp_path: Path) -> None:
    log = TraceLog(tmp_path)
    with pytest.raises(ACOError, match="trace t1: not JSON-serializable"):
        log.append(_trace("t1") | {"total_cost": float("nan")})
    with pytest.raises(ACOError, match="trace t2"):
        log.append(_trace("t2") | {"metadata": {"x": object()}})
    assert not log.path.exists()


def test_append_line_refuses_embedded_newlines(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="one line"):
        TraceLog(tmp_path).append_line(b'{"a": 1}\n{"b": 2}\n')


def test_lone_surrogate_becomes_valid_utf8() -> None:
    line = encode_trace(_trace("t") | {"request": "bad \udc80 text"})
    assert json.loads(line.decode("utf-8"))["request"] == "bad ? text"


def test_a_torn_tail_is_ended_not_glued(tmp_path: Path) -> None:
    log = TraceLog(tmp_path)
    log.append(_trace("t1"))
    with log.path.open("ab") as handle:  # a writer that died mid-line
        handle.write(b'{"trace_id": "torn", "requ')
    log.append(_trace("t2"))
    lines = _lines(log.path)
    assert lines[1] == b'{"trace_id": "torn", "requ'
    assert json.loads(lines[2])["trace_id"] == "t2"
    assert [t["trace_id"] for t in log.read()] == ["t1", "t2"]  # the torn line is skipped


@pytest.mark.parametrize("fsync", [True, False])
def test_many_threads_lose_nothing(tmp_path: Path, fsync: bool) -> None:
    log = TraceLog(tmp_path, fsync=fsync)
    n_threads, per_thread = 16, 25

    def writer(k: int) -> None:
        for i in range(per_thread):
            log.append(_trace(f"{k}-{i}", padding=(k * 7919 + i * 104729) % 70_000))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [json.loads(line)["trace_id"] for line in _lines(log.path)]
    assert sorted(ids) == sorted(f"{k}-{i}" for k in range(n_threads) for i in range(per_thread))


WRITER = """
import sys, threading
from aco.config import ACOConfig
from aco.optimizer import ACOOptimizer

opt = ACOOptimizer(ACOConfig(trace_dir=sys.argv[1]))
proc = sys.argv[2]

def work(k):
    for i in range(int(sys.argv[3])):
        run = opt.begin(f"Fix bug {proc}-{k}-{i} " + "context " * ((i * 997) % 9000))
        run.record_call(3, 0.01 * (i + 1), input_tokens=100 + i, output_tokens=10)
        run.record_tool_call("grep", i % 2 == 0, 0.001)
        run.end(i % 3 != 0)

threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_processes_and_threads_write_valid_traces(tmp_path: Path) -> None:
    trace_dir, n_procs, per_thread = tmp_path / "traces", 4, 15
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(trace_dir), str(p), str(per_thread)])
        for p in range(n_procs)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * n_procs
    lines = _lines(trace_dir / TRACE_FILE_NAME)
    expected = n_procs * 4 * per_thread
    assert len(lines) == expected
    assert all(isinstance(json.loads(line), dict) for line in lines)  # no torn lines
    tables = read_traces(trace_dir)  # the lab's own loader: raises on any invalid trace
    assert tables.runs.height == expected and not tables.rejected and not tables.warnings
    assert tables.runs["trace_id"].n_unique() == expected
