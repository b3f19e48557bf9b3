"""Train a router on a million simulated traces and report time and peak memory.

    .venv/bin/python scripts/bench_train.py [--requests 200000] [--mode counterfactual]

Counterfactual mode runs every request on all 5 tiers: 200,000 requests = 1,000,000 traces.
Simulating the file is not part of the figure; reading it is (`read_traces`), then training
(`build_router`: labels, features, folds, LightGBM, calibration, operating point) and writing
the bundle. Baseline in the same run: reading the file alone. Peak memory: the largest
resident set of this process and of its largest worker (ru_maxrss), and the peak of their
sum, sampled from /proc while they run (what the machine must hold).
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

from process_memory import TreePeak  # scripts/: run as `python scripts/bench_train.py`

from aco.config import ACOConfig
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces.reading import read_traces
from aco_lab.train.bundle_writer import write_bundle
from aco_lab.train.router import TrainOptions, build_router, validation_headline


def peak_mb(who: int) -> float:
    """Peak resident set size in MB (Linux reports KB)."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def main() -> None:
    """Simulate, then time reading and training."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--mode", choices=["counterfactual", "logs"], default="counterfactual")
    parser.add_argument("--model", default="lgbm")
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the traces file here")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(relativeCreated)8.0f ms %(name)s: %(message)s",
    )
    config = ACOConfig()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench.jsonl.gz"
        if not path.exists():
            start = time.perf_counter()
            summary = write_simulated_traces(path, args.requests, 1, config, args.mode)
            print(
                f"simulated {summary.traces if hasattr(summary, 'traces') else ''} traces "
                f"in {time.perf_counter() - start:.1f} s ({path.stat().st_size / 1e6:.0f} MB)"
            )
        with TreePeak() as tree:  # this process and its workers, summed while they run
            start, cpu_start = time.perf_counter(), time.process_time()
            runs = read_traces(path).runs
            read_s, read_cpu = time.perf_counter() - start, time.process_time() - cpu_start
            start = time.perf_counter()
            trained = build_router(runs, config, TrainOptions(model=args.model, seed=1))
            train_s = time.perf_counter() - start
            info = write_bundle(trained.payload, Path(tmp) / "models")
        total_s = read_s + train_s
    headline = validation_headline(trained.payload)
    print(f"traces: {runs.height:,} ({args.mode}, {args.requests:,} requests), model {args.model}")
    print(f"read_traces (baseline): {read_s:7.1f} s  (CPU {read_cpu:.1f} s in this process)")
    print(f"build_router:           {train_s:7.1f} s")
    print(f"read + train:           {total_s:7.1f} s   ({total_s / read_s:.1f}x reading alone)")
    cpu = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    print(
        f"CPU time: this process {cpu[0].ru_utime + cpu[0].ru_stime:,.0f} s, workers "
        f"{cpu[1].ru_utime + cpu[1].ru_stime:,.0f} s (on a shared machine, CPU time is the "
        f"figure that carries over)"
    )
    print(
        f"peak RSS: this process {peak_mb(resource.RUSAGE_SELF):,.0f} MB, "
        f"largest worker {peak_mb(resource.RUSAGE_CHILDREN):,.0f} MB, "
        f"process tree (sampled sum) {tree.peak / 2**20:,.0f} MB"
    )
    print(
        f"bundle {info.size / 1e3:.0f} KB; validation success {headline['success_vs_top']:.3f}, "
        f"cost {headline['cost_vs_top']:.3f} of the top tier"
    )


if __name__ == "__main__":
    main()
