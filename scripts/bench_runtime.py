"""Runtime speed: what `import aco` loads, `aco route` as a fresh process, in-process start_run.

    .venv/bin/python scripts/bench_runtime.py [--bundle PATH] [--repeats 9] [--calls 2000]

Baselines are measured in the same run, interleaved with the runtime's figures:
- a fresh `python -c "import lightgbm"` against a fresh `aco route TEXT --bundle B`;
- one `predict_proba` of one row through LightGBM's scikit-learn wrapper (a model with the
  bundle's number of features and trees) against one `ACOOptimizer.start_run` with the bundle.
Without --bundle, one is trained on simulated traces (seeded) in a temporary directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("polars", "pyarrow", "sklearn", "lightgbm", "matplotlib", "pandas")
REQUESTS = ("Fix the auth bug in production", "What is 2+2?",
            "Summarize recent papers on retrieval-augmented generation",
            "Review this vendor contract for GDPR liability clauses")
BIN = Path(sys.executable).parent


def heavy_modules_loaded(module: str) -> list[str]:
    """Heavy libraries in sys.modules after importing `module` in a fresh interpreter."""
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def train_bundle(out_dir: Path, seed: int) -> Path:
    """A LightGBM router bundle trained on simulated traces."""
    from aco.config import ACOConfig
    from aco_lab.simulate import write_simulated_traces
    from aco_lab.train import TrainOptions, train_router

    traces = out_dir / "sim.jsonl"
    write_simulated_traces(traces, 400, seed=seed, config=ACOConfig())
    info, _ = train_router([traces], ACOConfig(), TrainOptions(seed=seed), out_dir / "models")
    return info.path


def time_process(argv: list[str]) -> float:
    """Wall seconds of one fresh process (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def bench_processes(bundle: Path, repeats: int) -> dict[str, list[float]]:
    """Interleaved fresh-process timings: import lightgbm, aco route with and without bundle."""
    commands = {
        "python -c 'import lightgbm'": [sys.executable, "-c", "import lightgbm"],
        "aco route --bundle": [str(BIN / "aco"), "route", REQUESTS[0], "--bundle", str(bundle)],
        "aco route (rules)": [str(BIN / "aco"), "route", REQUESTS[0]],
        "python -c 'pass'": [sys.executable, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, argv in commands.items():
            times[name].append(time_process(argv))
    return times


def bench_in_process(bundle: Path, calls: int, seed: int) -> tuple[list[float], list[float]]:
    """Per-call seconds: start_run with the bundle, and one-row LGBMClassifier.predict_proba."""
    import numpy as np
    from lightgbm import LGBMClassifier

    from aco.config import ACOConfig
    from aco.optimizer import ACOOptimizer

    logging.getLogger("aco.optimizer").setLevel(logging.ERROR)  # start_run drops open runs
    opt = ACOOptimizer(ACOConfig(trace_dir=tempfile.mkdtemp()), bundle=bundle)
    n_features, n_trees = _model_shape(opt.router)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2_000, n_features))
    y = (X[:, 0] + rng.normal(size=len(X)) > 0).astype(int)
    clf = LGBMClassifier(n_estimators=n_trees, num_leaves=31, verbose=-1, random_state=seed,
                         n_jobs=1).fit(X, y)
    start_times, predict_times = [], []
    for i in range(calls):
        request = REQUESTS[i % len(REQUESTS)]
        row = X[i % len(X)][None, :]
        t0 = time.perf_counter()
        opt.start_run(request)
        t1 = time.perf_counter()
        clf.predict_proba(row)
        t2 = time.perf_counter()
        start_times.append(t1 - t0)
        predict_times.append(t2 - t1)
    return start_times, predict_times


def _model_shape(router) -> tuple[int, int]:
    """(features, trees) of the bundle's model, for a like-for-like LightGBM baseline."""
    model = router.bundle["model"]
    n_features = len(router.spec.names) if hasattr(router.spec, "names") else 300
    booster = model.get("booster") if isinstance(model, dict) else None
    trees = booster.get("trees") if isinstance(booster, dict) else None
    return n_features, len(trees) if isinstance(trees, list) and trees else 100


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of a list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Measure and print every figure of docs/benchmarks.md's runtime section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}")
    for module in ("aco", "aco.optimizer", "aco.cli", "aco.router"):
        print(f"import {module}: heavy modules loaded: {heavy_modules_loaded(module) or 'none'}")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or train_bundle(Path(tmp), args.seed)
        print(f"bundle: {bundle if args.bundle else 'trained on 400 simulated requests (lgbm)'}")
        times = bench_processes(bundle, args.repeats)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        for name, median in medians.items():
            print(f"fresh process, median of {args.repeats}: {name:<30} {median * 1000:8.1f} ms")
        ratio = medians["aco route --bundle"] / medians["python -c 'import lightgbm'"]
        print(f"aco route --bundle / import lightgbm: {ratio:.2f}x (target <= 0.35x)")
        start, predict = bench_in_process(bundle, args.calls, args.seed)
    p50_start, p50_predict = quantile(start, 0.5), quantile(predict, 0.5)
    print(f"in process, {args.calls} calls: start_run (bundle) p50 {p50_start * 1e6:.0f} us, "
          f"p99 {quantile(start, 0.99) * 1e6:.0f} us")
    print(f"in process, {args.calls} calls: LGBMClassifier.predict_proba (1 row) p50 "
          f"{p50_predict * 1e6:.0f} us, p99 {quantile(predict, 0.99) * 1e6:.0f} us")
    print(f"predict_proba p50 / start_run p50: {p50_predict / p50_start:.1f}x "
          f"(target >= 5x)")


if __name__ == "__main__":
    main()
