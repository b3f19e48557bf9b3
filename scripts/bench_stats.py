"""Benchmark: the monitoring metrics over Polars tables against the pure-Python runtime path.

    .venv/bin/python scripts/bench_stats.py --n 20000 --repeat 3     # 100,000 simulated traces
    .venv/bin/python scripts/bench_stats.py --input traces.jsonl      # an existing file
    .venv/bin/python scripts/bench_stats.py --input 1m.jsonl.gz --repeat 1 --stream-only

Figures are median wall seconds of --repeat runs, with the ratio to the baseline measured in
the same run: `aco.monitoring.compute_metrics` over already-parsed trace dicts (what the
runtime does per trace, without the JSON parsing). End to end, `aco stats` parses and sums in
one pass (`compute_metrics(read_trace_lines(path))`) and `aco-lab stats` loads the tables
(`read_traces`) then sums them (`compute_stats`). --stream-only skips the cases that hold
every trace dict in memory (about 10 GB for 1M traces); the baseline is then the `aco stats`
path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aco.monitoring import compute_metrics, read_trace_lines  # noqa: E402
from aco_lab.report.stats import compute_stats  # noqa: E402
from aco_lab.simulate.generate import write_simulated_traces  # noqa: E402
from aco_lab.traces.reading import read_traces  # noqa: E402


def median_wall(work: Callable[[], object], repeat: int) -> float:
    """Median wall seconds of `repeat` runs of `work`."""
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="simulated requests (x5 traces)")
    parser.add_argument("--input", type=Path, help="an existing trace file instead")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stream-only", action="store_true", help="no in-memory dict cases")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.input
        if path is None:
            path = Path(tmp) / "sim.jsonl"
            write_simulated_traces(path, args.n, seed=1)
        tables = read_traces(path)
        traces = [] if args.stream_only else list(read_trace_lines(path))
        runs = tables.runs.height
        cases = {
            "baseline: compute_metrics(dicts)": lambda: compute_metrics(traces),
            "compute_stats(tables)": lambda: compute_stats(tables),
            "compute_stats(tables, by=task_type)": lambda: compute_stats(tables, by="task_type"),
            "compute_metrics(dicts, by=task_type)": lambda: compute_metrics(traces, by="task_type"),
            "end to end: aco stats path": lambda: compute_metrics(read_trace_lines(path)),
            "end to end: aco-lab stats path": lambda: compute_stats(read_traces(path)),
        }
        if args.stream_only:
            held = ("baseline: compute_metrics(dicts)", "compute_metrics(dicts, by=task_type)")
            for name in held:
                del cases[name]
            cases = {"baseline: aco stats path": cases.pop("end to end: aco stats path"), **cases}
        print(
            f"{runs:,} runs, {tables.steps.height:,} steps from {path.name} "
            f"({path.stat().st_size / 1e6:.0f} MB); median of {args.repeat}; "
            f"{os.cpu_count()} cores; Python {sys.version.split()[0]}"
        )
        print(f"{'case':<40}{'wall s':>9}{'runs/s':>13}{'x baseline':>12}")
        baseline = None
        for name, work in cases.items():
            wall = median_wall(work, args.repeat)
            baseline = baseline or wall
            print(f"{name:<40}{wall:>9.3f}{runs / wall:>13,.0f}{wall / baseline:>12.2f}")


if __name__ == "__main__":
    main()
