"""A killed parallel ingest leaves nothing running, and the next run removes its staging folder.

Real processes: `aco-lab ingest` runs in a subprocess with two worker processes (chunks made
small so a few MB of traces keep them busy), is killed once its workers are writing, and
/proc is watched until every process it started is gone (bounded wait). Linux only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aco_lab.files import remove_stale_staging, staging_dir

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

WAIT_SECONDS = 30  # bound on every wait below (the events take well under a second)
# The CLI, with 64 KiB chunks instead of 16 MiB: a small input becomes many chunks.
INGEST = (
    "import aco_lab.traces.chunk_plan as r; r.CHUNK_BYTES = 1 << 16; "
    "from aco_lab.cli import main; main()"
)


def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after "(comm)": state, ppid, ...
    return int(fields[1]), fields[0]


def descendants(root: int) -> set[int]:
    """Every live process below `root` in the process tree."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _ppid_and_state(int(entry.name))):
            parents[int(entry.name)] = info[0]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    info = _ppid_and_state(pid)
    return info is not None and info[1] != "Z"  # a zombie has ended (only not yet reaped)


def wait_for(condition, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {WAIT_SECONDS} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def big_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 6 MB of valid traces (about 100 chunks of 64 KiB)."""
    path = tmp_path_factory.mktemp("kill") / "traces.jsonl"
    line = {
        "request": "fix the failing test " * 20,
        "final_outcome": "completed",
        "task_success": True,
        "total_cost": 0.01,
        "steps": [{"step_num": 1, "model_call": {"model_id": "m", "tier": 1, "cost": 0.01}}],
    }
    with path.open("w") as out:
        for i in range(12_000):
            out.write(json.dumps({"trace_id": f"t{i}", **line}) + "\n")
    return path


def start_ingest(traces: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", INGEST, "ingest", str(traces), "--out", str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def staging_of(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_parallel_ingest_leaves_no_process(
    big_traces: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "dataset"
    proc = start_ingest(big_traces, out)
    try:
        # Killed mid-work: two workers up and Parquet parts already in the staging folder.
        wait_for(
            lambda: (
                len(descendants(proc.pid)) >= 2
                and any(p.rglob("*.parquet") for p in staging_of(out))
            ),
            "the workers to write their first parts",
        )
        started = descendants(proc.pid)  # workers and multiprocessing's resource tracker
        assert proc.poll() is None, "the ingest ended before it could be killed"
        os.kill(proc.pid, sig)
        proc.wait(WAIT_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    wait_for(
        lambda: not any(alive(pid) for pid in started),
        f"the {len(started)} processes the killed ingest started to end",
    )
    assert not out.exists()
    if sig == signal.SIGTERM:  # handled: the staging folder is removed on the way out
        assert proc.returncode == 128 + signal.SIGTERM
        assert staging_of(out) == []
    else:  # nothing runs after SIGKILL: the folder stays until the next run
        assert len(staging_of(out)) == 1
        rerun = subprocess.run(
            [sys.executable, "-c", INGEST, "ingest", str(big_traces), "--out", str(out)],
            capture_output=True,
            text=True,
        )
        assert rerun.returncode == 0, rerun.stderr
        assert staging_of(out) == []
        assert json.loads((out / "manifest.json").read_text())["counts"]["accepted"] == 12_000


def test_only_staging_folders_of_ended_processes_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "data"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f".data.{dead.stdout.strip()}.abcd1234.tmp"
    live = tmp_path / f".data.{os.getpid()}.abcd1234.tmp"  # ours: a run in progress
    other = tmp_path / f".data.v2.{dead.stdout.strip()}.abcd1234.tmp"  # target "data.v2"
    unknown = tmp_path / ".data.abcd1234.tmp"  # no pid: cannot tell, kept
    for folder in (stale, live, other, unknown):
        folder.mkdir()
    assert remove_stale_staging(target) == [stale]
    made = staging_dir(target)
    assert made.name.startswith(f".data.{os.getpid()}.")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, other, unknown, made)
    )
