"""Per-request latency of the runtime's features and tree scoring, against LightGBM's own.

    .venv/bin/python scripts/bench_scoring.py [--requests 2000] [--trees 200] [--json]

Requests: the RouterBench prompts in ../shared/data/routerbench-dev when present (long
few-shot preambles), else seeded RouterBench-like prompts built here. The model: LightGBM
binary, 15 leaves, `--trees` rounds, on request features + the tier as last column
(monotone), as the router scores one request x 5 tiers. Every figure is measured in this run:
p50/p99 of per-call wall time over the requests, and ratios against LightGBM's predict.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# One thread everywhere: a single request gains nothing from more, and idle OpenMP workers
# spinning after a LightGBM call would steal the core from every other measurement.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from aco.features import build_feature_spec, request_features  # noqa: E402
from aco.scoring import compile_lgbm, predict_lgbm_raw, sigmoid  # noqa: E402

ROUTERBENCH = Path(__file__).resolve().parents[2] / "shared/data/routerbench-dev/traces.jsonl.gz"
N_TIERS = 5
LGBM_PARAMS = {
    "objective": "binary",
    "num_leaves": 15,
    "learning_rate": 0.05,
    "max_bin": 63,
    "min_data_in_leaf": 20,
    "verbosity": -1,
    "seed": 0,
    "num_threads": 1,
}


def load_requests(limit: int, seed: int) -> tuple[list[tuple[str, str]], np.ndarray, str]:
    """(request, task_type) pairs and a (requests, 5) success matrix; real data when present."""
    if ROUTERBENCH.exists():
        return _routerbench(limit) + ("routerbench-dev",)
    return _synthetic(limit, seed) + ("synthetic RouterBench-like",)


def _routerbench(limit: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    by_request: dict[str, dict] = {}
    with gzip.open(ROUTERBENCH, "rt", encoding="utf-8") as fh:
        for line in fh:
            run = json.loads(line)
            entry = by_request.setdefault(run["request_id"], {"run": run, "tiers": {}})
            tier = run["steps"][0]["model_call"]["tier"] if run["steps"] else None
            if tier is not None and run["task_success"] is not None:
                entry["tiers"][tier] = float(run["task_success"])
    entries = list(by_request.values())[:limit]
    requests = [(e["run"]["request"], e["run"]["task_type"]) for e in entries]
    success = np.array([[e["tiers"].get(t, np.nan) for t in range(1, 6)] for e in entries])
    return requests, success


def _synthetic(limit: int, seed: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    rng = np.random.default_rng(seed)
    words = [
        "the",
        "of",
        "water",
        "energy",
        "boat",
        "sun",
        "force",
        "plant",
        "cell",
        "rock",
        "heat",
        "light",
        "magnet",
        "wind",
    ]
    requests, success = [], []
    for i in range(limit):
        blocks = []
        for _ in range(int(rng.integers(3, 6))):
            question = " ".join(rng.choice(words, int(rng.integers(12, 30))))
            options = "\n".join(f"{c}) {' '.join(rng.choice(words, 3))}" for c in "ABCD")
            blocks.append(f"{question}?\n{options}\nAnswer:\n{rng.choice(list('ABCD'))}")
        final = (
            " ".join(rng.choice(words, int(rng.integers(12, 40)))) + f" #{i}?\nA) x\nB) y\nAnswer:"
        )
        requests.append(("\n\n".join([*blocks, final]), ("science_qa", "coding")[i % 2]))
        hardness = rng.random()
        success.append([float(rng.random() < 1 - hardness / t) for t in range(1, 6)])
    return requests, np.array(success)


def timed(fns: dict[str, Callable[[int], object]], n: int) -> dict[str, np.ndarray]:
    """Per-call wall microseconds of each fn(i), i in 0..n-1, after a warm-up pass.

    The functions take turns on each request, so a shared machine's changing load falls on
    all of them alike (the np.add row shows what one trivial numpy call cost meanwhile).
    """
    for i in range(min(n, 200)):
        for fn in fns.values():
            fn(i)
    out = {name: np.empty(n) for name in fns}
    clock = time.perf_counter_ns  # ~0.1 us; a CPU-time clock is a syscall here (~3 us)
    for i in range(n):
        for name, fn in fns.items():
            start = clock()
            fn(i)
            out[name][i] = (clock() - start) / 1000.0
    return out


def tier_rows(x: np.ndarray) -> np.ndarray:
    """One request's features x the 5 tiers (the tier is the model's last column)."""
    rows = np.empty((N_TIERS, len(x) + 1))
    rows[:, :-1] = x
    rows[:, -1] = np.arange(1, N_TIERS + 1)
    return rows


def train(X: np.ndarray, success: np.ndarray, trees: int):  # noqa: ANN201 (lightgbm types)
    import lightgbm as lgb

    req, tier = np.nonzero(~np.isnan(success))
    rows = np.column_stack([X[req], tier + 1.0])
    params = {**LGBM_PARAMS, "monotone_constraints": [0] * X.shape[1] + [1]}
    booster = lgb.train(params, lgb.Dataset(rows, success[req, tier]), num_boost_round=trees)
    sklearn_params = {k: v for k, v in params.items() if k not in ("objective", "num_threads")}
    classifier = lgb.LGBMClassifier(n_estimators=trees, n_jobs=1, **sklearn_params)
    classifier.fit(rows, success[req, tier].astype(int))
    return booster, classifier


def run(n_requests: int, trees: int, seed: int) -> dict:
    """Measure everything; return the figures (microseconds)."""
    from aco_lab.train.plain_models import lgbm_model_to_plain

    requests, success, source = load_requests(n_requests, seed)
    spec = build_feature_spec([t for _, t in requests])
    X = np.stack([request_features(spec, r, t) for r, t in requests])
    booster, classifier = train(X, success, trees)
    plain = lgbm_model_to_plain(booster)
    compiled = compile_lgbm(plain)
    rows = [tier_rows(x) for x in X]
    n = len(requests)
    worst = max(
        np.abs(predict_lgbm_raw(compiled, r) - booster.predict(r, raw_score=True)).max()
        for r in rows[:200]
    )

    def route(i: int) -> int:
        x = request_features(spec, *requests[i])
        return int(np.argmax(sigmoid(predict_lgbm_raw(compiled, tier_rows(x)))))

    times = timed(
        {
            "np.add(1.0, 2.0): one numpy call": lambda i: np.add(1.0, 2.0),
            "request_features": lambda i: request_features(spec, *requests[i]),
            "predict_lgbm_raw (1 request x 5 tiers)": lambda i: predict_lgbm_raw(compiled, rows[i]),
            "predict_lgbm_raw (1 row)": lambda i: predict_lgbm_raw(compiled, rows[i][:1]),
            "features + scoring + argmax": route,
            "Booster.predict raw (1 request x 5 tiers)": lambda i: booster.predict(
                rows[i], raw_score=True, num_threads=1
            ),
            "Booster.predict raw (1 row)": lambda i: booster.predict(
                rows[i][:1], raw_score=True, num_threads=1
            ),
            "LGBMClassifier.predict_proba (1 row)": lambda i: classifier.predict_proba(rows[i][:1]),
        },
        n,
    )
    return {
        "source": source,
        "requests": n,
        "trees": booster.num_trees(),
        "max_depth": plain["max_depth"],
        "features": spec.n_features,
        "median_request_chars": float(np.median([len(r) for r, _ in requests])),
        "max_abs_diff_vs_lightgbm": float(worst),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "us": {
            name: {"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99))}
            for name, t in times.items()
        },
    }


def time_build_features(requests: list[tuple[str, str]], n_rows: int) -> dict[str, float]:
    """Seconds of aco_lab.build_features on n_rows distinct requests, 1 and 2 processes."""
    import polars as pl

    from aco_lab.traces import schema as S
    from aco_lab.train.features import build_features

    texts = [f"{requests[i % len(requests)][0]} #{i}" for i in range(n_rows)]  # all distinct
    types = [requests[i % len(requests)][1] for i in range(n_rows)]
    runs = pl.DataFrame({S.REQUEST: texts, S.TASK_TYPE: types})
    spec = build_feature_spec(types)
    out = {}
    for workers in (1, 2):
        start, cpu = time.perf_counter(), _cpu_seconds()
        build_features(runs, spec, workers=workers)
        name = f"{workers} process{'es' if workers > 1 else ''}"
        out[name] = {"wall": time.perf_counter() - start, "cpu": _cpu_seconds() - cpu}
    return out


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the feature workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def print_table(result: dict) -> None:
    """A human-readable table with ratios against LightGBM's own predict."""
    us = result["us"]
    base = us["Booster.predict raw (1 request x 5 tiers)"]["p50"]
    r = result
    print(
        f"{r['source']}: {r['requests']} requests (median {r['median_request_chars']:.0f} chars), "
        f"{r['features']} features, {r['trees']} trees (depth <= {r['max_depth']}), "
        f"max |ours - lightgbm| = {r['max_abs_diff_vs_lightgbm']:.1e}"
    )
    print(f"{'per request':44s}{'p50 us':>9s}{'p99 us':>9s}{'p50 / Booster 5 rows':>22s}")
    for name, row in us.items():
        print(f"{name:44s}{row['p50']:9.1f}{row['p99']:9.1f}{row['p50'] / base:21.2f}x")
    rows = result.get("lab_rows")
    for name, t in result.get("build_features_s", {}).items():
        print(
            f"build_features, {rows} distinct requests, {name}: {t['wall']:.1f} s wall, "
            f"{t['cpu']:.1f} s CPU ({t['cpu'] / rows * 1e6:.0f} us CPU per row; 1M rows: "
            f"{t['cpu'] / rows * 1e6 / 2:.0f} s on 2 free cores)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lab-rows", type=int, default=0, help="also time build_features")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = run(args.requests, args.trees, args.seed)
    if args.lab_rows:
        requests = load_requests(args.requests, args.seed)[0]
        result["lab_rows"] = args.lab_rows
        result["build_features_s"] = time_build_features(requests, args.lab_rows)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
