"""Benchmark: how fast `aco-lab simulate` writes traces, against gzip alone on the same bytes.

    .venv/bin/python scripts/bench_simulate.py --n 20000 --repeat 3   # 100,000 traces
    .venv/bin/python scripts/bench_simulate.py --n 200000 --repeat 1  # 1,000,000 traces

Counterfactual mode (5 traces per request). Each figure is the median wall time of --repeat
runs plus the CPU time (this process and its worker processes), the rate in traces per second,
the time that rate gives for 1M traces, and the ratio to the baseline measured in the same
run: gzip-compressing the same JSONL bytes to a file, the floor any .jsonl.gz writer pays.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aco_lab.simulate.generate import GZIP_LEVEL, generate_traces, write_simulated_traces  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of `repeat` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, wall = cpu_seconds(), time.perf_counter()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="requests (x5 traces)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n_traces = 5 * args.n
    with tempfile.TemporaryDirectory() as tmp:
        plain, packed = Path(tmp) / "sim.jsonl", Path(tmp) / "sim.jsonl.gz"
        write_simulated_traces(plain, args.n, args.seed)
        data = plain.read_bytes()

        def gzip_only() -> None:
            with (
                open(Path(tmp) / "floor.gz", "wb") as raw,
                gzip.GzipFile("", "wb", GZIP_LEVEL, raw, mtime=0) as out,
            ):
                out.write(data)

        cases = {
            "baseline: gzip the same bytes": gzip_only,
            "generate trace dicts only": lambda: sum(1 for _ in generate_traces(args.n, args.seed)),
            "write .jsonl": lambda: write_simulated_traces(plain, args.n, args.seed),
            "write .jsonl.gz": lambda: write_simulated_traces(packed, args.n, args.seed),
            "write .jsonl.gz, 2 workers": lambda: write_simulated_traces(
                packed, args.n, args.seed, workers=2
            ),
        }
        rows, floor = [], None
        for name, work in cases.items():
            wall, cpu = measure(work, args.repeat)
            floor = floor or wall
            rows.append(
                f"{name:<32}{wall:>9.2f}{cpu:>9.2f}{n_traces / wall:>11,.0f}"
                f"{1e6 * wall / n_traces:>10.0f}s{wall / floor:>8.1f}"
            )
        size = packed.stat().st_size
        print(
            f"{args.n:,} requests x 5 tiers = {n_traces:,} traces; JSONL {len(data) / 1e6:.0f} "
            f"MB ({len(data) / n_traces:.0f} B/trace), gzip {size / 1e6:.1f} MB; median of "
            f"{args.repeat}; {os.cpu_count()} cores; Python {sys.version.split()[0]}"
        )
        print(
            f"{'case':<32}{'wall s':>9}{'cpu s':>9}{'traces/s':>11}{'1M traces':>11}{'x gzip':>8}"
        )
        print("\n".join(rows))


if __name__ == "__main__":
    main()
