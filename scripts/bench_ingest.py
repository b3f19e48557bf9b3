"""Benchmark: validated ingest (JSONL -> partitioned Parquet) against a bare json.loads loop.

    .venv/bin/python scripts/bench_ingest.py --n 1000000          # simulate, then measure
    .venv/bin/python scripts/bench_ingest.py --input traces.jsonl # an existing file
    .venv/bin/python scripts/bench_ingest.py --n 100000 --breakdown   # CPU per chunk, by stage

Each measurement runs in a fresh child process (so one cannot warm another's memory); the
figures are the median wall time of --repeat runs and its ratio to the json.loads loop of the
same run (the bare loop, objects discarded; a second variant keeps them in a list, as a loader
must, and pays the cycle collector's passes over millions of dicts), the CPU time of the
child's process tree (user + system, worker processes included: robust to other load on the
machine, unlike wall time) and the peak resident memory of that tree, sampled from /proc every
20 ms. Goal: ingest <= 0.5x the json.loads loop's wall time, < 4 GB. Every line is decoded by
msgspec; the mode `strict` is ingest with strict reading (unknown keys rejected).

--breakdown instead times the stages of one chunk in this process (CPU, min of 9, interleaved):
the json.loads loop over its lines, msgspec's decoding into frames, read_chunk and write_chunk.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from process_memory import tree_rss_bytes  # scripts/: run as `python scripts/bench_ingest.py`

# What each child runs; it prints its own wall time for the work (no interpreter start-up).
INGEST_CODE = """
import os, sys, time
from aco_lab.traces.ingest import ingest_traces
t = time.perf_counter()
result = ingest_traces([sys.argv[1]], sys.argv[2], on_error="skip", force=True,
                       strict=bool(os.environ.get("BENCH_STRICT")))
print(time.perf_counter() - t)
print(result, file=sys.stderr)
"""
CHILD_CODE = {
    "json.loads loop": """
import json, sys, time
t = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    for line in f:
        if line.strip():
            json.loads(line)
print(time.perf_counter() - t)
""",
    "json.loads, objects kept": """
import json, sys, time
t = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    kept = [json.loads(line) for line in f if line.strip()]
print(time.perf_counter() - t)
""",
    "read_traces (validate)": """
import sys, time
from aco_lab.traces.reading import read_traces
t = time.perf_counter()
tables = read_traces(sys.argv[1], on_error="skip")
print(time.perf_counter() - t)
print(tables.lines_read, tables.runs.height, len(tables.rejected), file=sys.stderr)
""",
    "ingest (validate + Parquet)": INGEST_CODE,
    "ingest --strict": INGEST_CODE,
}
MODE_ENV = {"ingest --strict": {"BENCH_STRICT": "1"}}


KEPT = "json.loads, objects kept"
MODE_KEYS = {
    "json": "json.loads loop",
    "kept": KEPT,
    "read": "read_traces (validate)",
    "ingest": "ingest (validate + Parquet)",
    "strict": "ingest --strict",
}


def run_child(
    code: str, args: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """(wall s reported by the child, CPU s of its process tree, peak RSS of the tree in bytes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(child.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"child failed ({child.returncode}):\n{err}")
    print(f"    {err.strip()}", file=sys.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers included: the child joined them
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(out.strip().splitlines()[-1]), cpu, peak


def make_input(n: int, seed: int, cache_dir: Path) -> Path:
    """Simulated traces (one run per request, ~4 steps each), cached by n and seed."""
    path = cache_dir / f"sim-logs-{n}-{seed}.jsonl"
    if not path.exists():
        from aco_lab.simulate.generate import write_simulated_traces

        print(f"simulating {n} traces into {path} ...", file=sys.stderr)
        started = time.perf_counter()
        write_simulated_traces(path, n, seed, mode="logs")
        print(f"  done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def main() -> None:
    """Parse options, measure each mode --repeat times, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="simulated traces")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--input", type=Path, help="an existing JSONL file instead")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--skip-kept",
        action="store_true",
        help="skip the json.loads variant that keeps every object (~10x the "
        "file size in memory: too much for 1M traces on a small machine)",
    )
    parser.add_argument(
        "--modes",
        default="json,kept,read,ingest",
        help="comma-separated modes to run, of "
        + ", ".join(MODE_KEYS)
        + " (json, the baseline, always runs)",
    )
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "aco-bench")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time the stages of one chunk in this process instead",
    )
    options = parser.parse_args()
    wanted = {MODE_KEYS[key] for key in options.modes.split(",")} | {MODE_KEYS["json"]}
    if options.skip_kept:
        wanted.discard(KEPT)
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    path = options.input or make_input(options.n, options.seed, options.cache_dir)
    if options.breakdown:
        chunk_breakdown(path)
        return
    out_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=options.cache_dir)) / "dataset"
    size = path.stat().st_size
    print(
        f"input {path} ({size / 1e6:.0f} MB), {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, median of {options.repeat}"
    )
    results: dict[str, list[tuple[float, float, int]]] = {mode: [] for mode in CHILD_CODE}
    for _ in range(options.repeat):  # interleaved, so background load hits every mode alike
        for mode, code in CHILD_CODE.items():
            if mode in wanted:
                results[mode].append(run_child(code, [str(path), str(out_dir)], MODE_ENV.get(mode)))
    base_wall = statistics.median(t for t, _, _ in results["json.loads loop"])
    base_cpu = statistics.median(c for _, c, _ in results["json.loads loop"])
    print(
        f"{'mode':30s} {'wall s':>8s} {'x json':>7s} {'MB/s':>6s} {'CPU s':>7s} {'x json':>7s}"
        f" {'peak RSS MB':>12s}"
    )
    for mode, runs in results.items():
        if not runs:
            continue
        wall = statistics.median(t for t, _, _ in runs)
        cpu = statistics.median(c for _, c, _ in runs)
        peak = max(p for _, _, p in runs)
        print(
            f"{mode:30s} {wall:8.2f} {wall / base_wall:7.2f} {size / 1e6 / wall:6.0f} "
            f"{cpu:7.2f} {cpu / base_cpu:7.2f} {peak / 2**20:12.0f}"
        )
    shutil.rmtree(out_dir.parent, ignore_errors=True)


def chunk_breakdown(path: Path, repeat: int = 9) -> None:
    """CPU per stage on the file's first chunk, min of `repeat`, stages interleaved."""
    import json

    os.environ.setdefault("POLARS_MAX_THREADS", "1")  # as in a worker: one core each
    import polars as pl

    from aco_lab.traces.chunk_plan import plan_chunks
    from aco_lab.traces.chunks import _cycle_collector_paused, read_chunk
    from aco_lab.traces.ingest import write_chunk
    from aco_lab.traces.parser import decode_chunk, split_lines

    task = next(plan_chunks([path]))
    data = task.read()
    out = Path(tempfile.mkdtemp(prefix="bench-chunk-"))

    def json_loop() -> None:
        for line in data.split(b"\n"):
            if line.strip():
                json.loads(line)

    def msgspec_decode() -> None:
        with _cycle_collector_paused():
            decode_chunk(split_lines(data), task.first_line)

    stages = {
        "json.loads loop over its lines": json_loop,
        "msgspec into frames (decode_chunk)": msgspec_decode,
        "read_chunk (decode, check, provenance, run aggregates)": lambda: read_chunk(task),
        "write_chunk (read_chunk + warnings + Parquet)": lambda: write_chunk(task, out),
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(repeat):
        for name, stage in stages.items():
            started = time.process_time()
            stage()
            times[name].append(time.process_time() - started)
    shutil.rmtree(out, ignore_errors=True)
    base = min(times["json.loads loop over its lines"])
    lines = data.count(b"\n")
    print(
        f"one chunk of {path}: {len(data) / 1e6:.1f} MB, {lines} lines; "
        f"CPU ms, min of {repeat}; Polars threads {pl.thread_pool_size()}"
    )
    for name, values in times.items():
        print(f"  {name:48s} {min(values) * 1e3:9.1f}  {min(values) / base:5.2f}x")


if __name__ == "__main__":
    main()
