"""Kill parallel `aco-lab ingest` runs mid-work and count what they leave behind.

    python scripts/kill_ingest.py [--kills 11]

Each run ingests ~6 MB of traces with two workers (64 KiB chunks, so the workers are busy),
is killed once the workers have written parts (SIGKILL and SIGTERM in turn), and after a
bounded wait the processes it started that are still running and its staging folders are
counted. A last ingest to the same --out then shows whether stale staging folders go. Linux.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.aco_lab.traces.test_workers import (  # noqa: E402
    INGEST,
    alive,
    descendants,
    staging_of,
    start_ingest,
)

SETTLE_SECONDS = 5  # how long the killed run's processes get to end


def write_traces(path: Path, n: int = 12_000) -> None:
    import json

    line = {
        "request": "fix the failing test " * 20,
        "final_outcome": "completed",
        "task_success": True,
        "total_cost": 0.01,
        "steps": [{"step_num": 1, "model_call": {"model_id": "m", "tier": 1, "cost": 0.01}}],
    }
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"trace_id": f"t{i}", **line}) + "\n")


def kill_once(traces: Path, out: Path, sig: signal.Signals) -> set[int]:
    """Start, kill mid-work, wait; the pids of the run's processes still running."""
    proc = start_ingest(traces, out)
    deadline = time.monotonic() + 60
    while not (
        len(descendants(proc.pid)) >= 2 and any(p.rglob("*.parquet") for p in staging_of(out))
    ):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the ingest did not reach its workers' first parts")
        time.sleep(0.05)
    started = descendants(proc.pid)
    os.kill(proc.pid, sig)
    proc.wait()
    proc.stderr.close()
    time.sleep(SETTLE_SECONDS)
    return {pid for pid in started if alive(pid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        traces, out = Path(tmp) / "traces.jsonl", Path(tmp) / "dataset"
        write_traces(traces)
        left: set[int] = set()
        for i in range(args.kills):
            left |= kill_once(traces, out, (signal.SIGKILL, signal.SIGTERM)[i % 2])
        stale = len(staging_of(out))
        subprocess.run(
            [sys.executable, "-c", INGEST, "ingest", str(traces), "--out", str(out)],
            check=True,
            capture_output=True,
        )
        print(
            f"kills: {args.kills}; processes left running: {len(left)}; staging folders "
            f"left: {stale}; after the next ingest: {len(staging_of(out))}"
        )
        for pid in left:  # ours: end them so the benchmark itself leaves nothing
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
