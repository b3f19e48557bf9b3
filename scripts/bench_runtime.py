"""Runtime speed: what `import aco` loads, `aco route` as a fresh process, in-process start_run.

    .venv/bin/python scripts/bench_runtime.py [--bundle PATH] [--repeats 9] [--calls 2000]

Baselines are measured in the same run, interleaved with the runtime's figures:
- a fresh `python -c "import lightgbm"` against a fresh `aco route TEXT --bundle B`;
- one `predict_proba` of one row through LightGBM's scikit-learn wrapper (a model with the
  bundle's number of features and trees) against one `ACOOptimizer.start_run` with the bundle
  (distinct simulated requests; `Router.decide` alone is timed too, to show the runtime's own
  overhead).
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
REQUEST = "Fix the auth bug in production"
BIN = Path(sys.executable).parent


def heavy_modules_loaded(module: str) -> list[str]:
    """Heavy libraries in sys.modules after importing `module` in a fresh interpreter."""
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def train_bundle(out_dir: Path, seed: int, model: str) -> Path:
    """A router bundle of the given model (`aco-lab train --model`) trained on simulated
    traces."""
    from aco.config import ACOConfig
    from aco_lab.simulate.generate import write_simulated_traces
    from aco_lab.train.router import TrainOptions, train_router

    traces = out_dir / "sim.jsonl"
    write_simulated_traces(traces, 400, seed=seed, config=ACOConfig())
    info, _ = train_router(
        [traces], ACOConfig(), TrainOptions(seed=seed, model=model), out_dir / "models"
    )
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
        "aco route --bundle": [str(BIN / "aco"), "route", REQUEST, "--bundle", str(bundle)],
        "aco route (rules)": [str(BIN / "aco"), "route", REQUEST],
        "python -c 'pass'": [sys.executable, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, argv in commands.items():
            times[name].append(time_process(argv))
    return times


def bench_in_process(bundle: Path, calls: int, seed: int) -> dict[str, list[float]]:
    """Per-call seconds, interleaved: start_run with the bundle, its Router.decide alone, and
    one-row LGBMClassifier.predict_proba (the bundle's number of features and trees)."""
    import numpy as np
    from lightgbm import LGBMClassifier

    from aco.config import ACOConfig
    from aco.optimizer import ACOOptimizer
    from aco_lab.simulate.generate import build_sim_request

    logging.getLogger("aco.optimizer").setLevel(logging.ERROR)  # start_run drops open runs
    opt = ACOOptimizer(ACOConfig(trace_dir=tempfile.mkdtemp()), bundle=bundle)
    requests = [build_sim_request(seed, i).text for i in range(min(calls, 1000))]
    n_features, n_trees = _model_shape(opt.router)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2_000, n_features))
    y = (X[:, 0] + rng.normal(size=len(X)) > 0).astype(int)
    clf = LGBMClassifier(
        n_estimators=n_trees, num_leaves=31, verbose=-1, random_state=seed, n_jobs=1
    ).fit(X, y)
    steps = {
        "start_run (bundle)": opt.start_run,
        "Router.decide": opt.router.decide,
        "LGBMClassifier.predict_proba (1 row)": None,
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for i in range(calls):
        request, row = requests[i % len(requests)], X[i % len(X)][None, :]
        # Rotate the order: whichever runs right after LightGBM finds colder caches.
        for name in names[i % 3 :] + names[: i % 3]:
            call = steps[name]
            t0 = time.perf_counter()
            call(request) if call is not None else clf.predict_proba(row)
            times[name].append(time.perf_counter() - t0)
    return times


def bench_trace_log(appends: int) -> dict[str, list[float]]:
    """Per-call seconds of end_run (one trace appended), with and without fsync."""
    from aco.config import ACOConfig
    from aco.optimizer import ACOOptimizer
    from aco.trace_log import TraceLog

    times: dict[str, list[float]] = {}
    for fsync in (True, False):
        directory = tempfile.mkdtemp()
        opt = ACOOptimizer(
            ACOConfig(trace_dir=directory), trace_log=TraceLog(directory, fsync=fsync)
        )
        name = f"end_run, fsync={fsync}"
        times[name] = []
        for i in range(appends):
            run = opt.begin(f"Fix bug {i}")
            for step in range(5):
                run.record_call(3, 0.01, input_tokens=1000 + step, output_tokens=200)
            t0 = time.perf_counter()
            run.end(True)
            times[name].append(time.perf_counter() - t0)
    return times


def _model_shape(router) -> tuple[int, int]:
    """(features, trees) of the bundle's LightGBM model (an ensemble's largest LightGBM
    member), for a like-for-like baseline."""
    from aco.scoring import compile_lgbm

    models = router.model.get("members", [router.model])
    shapes = [compile_lgbm(m["booster"]) for m in models if "booster" in m]
    if not shapes:
        raise SystemExit("the bundle has no LightGBM model to size the baseline by")
    trees = max(shapes, key=lambda t: t.num_trees)
    return trees.num_features, trees.num_trees


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
    parser.add_argument(
        "--model", default="lgbm", help="the bundle's model (aco-lab train --model)"
    )
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}"
    )
    for module in ("aco", "aco.optimizer", "aco.cli", "aco.router"):
        print(f"import {module}: heavy modules loaded: {heavy_modules_loaded(module) or 'none'}")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or train_bundle(Path(tmp), args.seed, args.model)
        trained = f"trained on 400 simulated requests ({args.model})"
        print(f"bundle: {bundle if args.bundle else trained}")
        times = bench_processes(bundle, args.repeats)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        for name, median in medians.items():
            print(f"fresh process, median of {args.repeats}: {name:<30} {median * 1000:8.1f} ms")
        ratio = medians["aco route --bundle"] / medians["python -c 'import lightgbm'"]
        print(f"aco route --bundle / import lightgbm: {ratio:.2f}x (target <= 0.35x)")
        times = bench_in_process(bundle, args.calls, args.seed)
    for name, values in times.items():
        p50, p99 = quantile(values, 0.5) * 1e6, quantile(values, 0.99) * 1e6
        print(f"in process, {args.calls} calls: {name:<38} p50 {p50:6.0f} us  p99 {p99:6.0f} us")
    for name, values in bench_trace_log(max(50, args.calls // 10)).items():
        p50, p99 = quantile(values, 0.5) * 1e6, quantile(values, 0.99) * 1e6
        print(f"trace log, 5-step trace: {name:<22} p50 {p50:6.0f} us  p99 {p99:6.0f} us")
    start = quantile(times["start_run (bundle)"], 0.5)
    predict = quantile(times["LGBMClassifier.predict_proba (1 row)"], 0.5)
    print(f"predict_proba p50 / start_run p50: {predict / start:.1f}x (target >= 2x)")


if __name__ == "__main__":
    main()
