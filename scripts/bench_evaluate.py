"""Time an evaluation (replay, every baseline, the threshold sweep, the report files).

    .venv/bin/python scripts/bench_evaluate.py [--requests 20000] [--repeats 3]

Simulates counterfactual traces (every request at all 5 tiers), holds half the requests out,
trains a LightGBM bundle on the other half (not timed), then times, median of --repeats:

- baseline: reading the held-out traces alone (`read_traces`);
- evaluate: `evaluate_bundle` without the trained kNN/logistic baselines (they cost one
  `aco-lab train` each, see scripts/bench_train.py), i.e. reading + labels + scoring every
  request with the bundle + replay + baselines + the ~140-point sweep + area metrics;
- write: `write_evaluation` (metrics.json, decisions.jsonl, sweep.csv, report.md, report.html
  with its three PNG plots).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aco.config import ACOConfig
from aco_lab.evaluate.evaluation import evaluate_bundle
from aco_lab.evaluate.results import EvalOptions
from aco_lab.report.evaluation_report import write_evaluation
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces.holdout import split_trace_files
from aco_lab.traces.reading import read_traces
from aco_lab.train.router import TrainOptions, train_router


def _median_s(fn, repeats: int) -> tuple[float, object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    """Simulate, split, train, then time reading, evaluating and writing."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = ACOConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_simulated_traces(root / "sim.jsonl.gz", args.requests, 1, config)
        train, held = split_trace_files([root / "sim.jsonl.gz"], root / "split", 0.5, seed=0)
        info, _ = train_router([train], config, TrainOptions(seed=0), root / "models")
        options = EvalOptions(compare_models=())
        read_s, runs = _median_s(lambda: read_traces(held).runs, args.repeats)
        eval_s, ev = _median_s(
            lambda: evaluate_bundle(info.path, [held], options=options), args.repeats
        )
        write_s, _ = _median_s(lambda: write_evaluation(ev, root / "out"), args.repeats)
    print(
        f"held-out traces: {runs.height} runs, {ev.data.n_requests} requests evaluated, "
        f"{len(ev.sweep)} sweep points, {len(ev.baselines)} baselines"
    )
    print(f"read_traces (baseline): {read_s:.2f} s")
    print(f"evaluate_bundle:        {eval_s:.2f} s ({eval_s / read_s:.1f}x reading)")
    print(f"write_evaluation:       {write_s:.2f} s")
    print(f"python {sys.version.split()[0]}, median of {args.repeats}")


if __name__ == "__main__":
    main()
