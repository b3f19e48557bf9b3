"""aco_lab.files: atomic writes, and the modes of what the lab writes (as open() and mkdir()
would create them: 0o666 / 0o777 less the umask), checked on the real writers."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aco_lab.files import DIR_MODE, FILE_MODE, atomic_file, staging_dir, write_bytes, write_text
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces.holdout import split_trace_files
from aco_lab.traces.ingest import ingest_traces
from aco_lab.train.bundle_writer import write_bundle

UMASK = os.umask(0)
os.umask(UMASK)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_are_what_open_and_mkdir_give() -> None:
    assert FILE_MODE == 0o666 & ~UMASK
    assert DIR_MODE == 0o777 & ~UMASK


def test_a_written_file_replaces_the_old_one_whole(tmp_path: Path) -> None:
    path = write_text(tmp_path / "sub" / "a.txt", "old")
    assert mode(path) == FILE_MODE
    write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and os.listdir(path.parent) == ["a.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_file(path) as out:
        out.write(b"half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_a_staging_directory_has_the_directory_mode(tmp_path: Path) -> None:
    assert mode(staging_dir(tmp_path / "dataset")) == DIR_MODE


def test_the_modes_follow_the_umask(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from aco_lab.files import staging_dir, "
        "write_text; write_text(Path(sys.argv[1]) / 'f', 'x'); "
        "staging_dir(Path(sys.argv[1]) / 'd').rename(Path(sys.argv[1]) / 'd')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, umask=0o027)
    assert mode(tmp_path / "f") == 0o640 and mode(tmp_path / "d") == 0o750


def test_what_the_lab_writes_has_the_usual_modes(tmp_path: Path, golden_payload: dict) -> None:
    traces = tmp_path / "traces.jsonl.gz"
    write_simulated_traces(traces, 30, seed=1)
    train, held = split_trace_files([traces], tmp_path / "split")
    ingest_traces([traces], tmp_path / "dataset")
    bundle = write_bundle(golden_payload, tmp_path / "models")
    files = [
        traces,
        train,
        held,
        bundle.path,
        bundle.manifest_path,
        *(p for p in (tmp_path / "dataset").rglob("*") if p.is_file()),
    ]
    dirs = [tmp_path / "dataset", *(p for p in (tmp_path / "dataset").rglob("*") if p.is_dir())]
    assert {str(p): oct(mode(p)) for p in files} == {str(p): oct(FILE_MODE) for p in files}
    assert {str(p): oct(mode(p)) for p in dirs} == {str(p): oct(DIR_MODE) for p in dirs}
    assert not [p for p in tmp_path.rglob("*.tmp")]
