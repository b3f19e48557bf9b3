"""Reading and ingesting report progress over the inputs' bytes on disk (aco.progress)."""

import gzip
import logging
from pathlib import Path

import pytest

from aco.config import ACOConfig
from aco.progress import LOGGER, RECORD_KEY, Progress
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces.ingest import ingest_traces
from aco_lab.traces.reading import read_traces


@pytest.fixture()
def inputs(tmp_path: Path) -> list[Path]:
    plain = tmp_path / "a.jsonl"
    write_simulated_traces(plain, 30, seed=1, config=ACOConfig())
    packed = tmp_path / "b.jsonl.gz"
    write_simulated_traces(tmp_path / "b.jsonl", 30, seed=2, config=ACOConfig())
    packed.write_bytes(gzip.compress((tmp_path / "b.jsonl").read_bytes(), mtime=0))
    (tmp_path / "b.jsonl").unlink()
    return [plain, packed]


def _reports(caplog: pytest.LogCaptureFixture, name: str) -> list[Progress]:
    found = [getattr(r, RECORD_KEY, None) for r in caplog.records]
    return [p for p in found if p is not None and p.stage == name]


@pytest.mark.parametrize("read", ["read_traces", "ingest_traces"])
def test_the_meter_counts_every_byte_on_disk_once_in_many_steps(
    inputs: list[Path],
    tmp_path: Path,
    monkeypatch,
    caplog: pytest.LogCaptureFixture,
    read: str,
) -> None:
    # Small chunks and gzip pieces: several chunks per file, plain and compressed.
    monkeypatch.setattr("aco_lab.traces.chunk_plan.CHUNK_BYTES", 20_000)
    monkeypatch.setattr("aco_lab.traces.chunk_plan.GZIP_PIECE_BYTES", 2_000)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    if read == "read_traces":
        read_traces(inputs)
        name = "reading traces"
    else:
        ingest_traces(inputs, tmp_path / "ds")
        name = "ingesting traces"
    reports = _reports(caplog, name)
    total = sum(p.stat().st_size for p in inputs)
    assert {(p.total, p.unit) for p in reports} == {(total, "bytes")}
    done = [p.done for p in reports]
    assert done[0] == 0 and done[-1] == total and done == sorted(set(done))
    assert len(done) > 4  # each file's chunks counted as they are read, not the file at once
