"""Route one request in-process (features + model + decision) and compare with LightGBM's own
single-row predict, measured in the same run.

    .venv/bin/python scripts/bench_route.py [--requests 2000] [--train-requests 400]

Trains a LightGBM router on seeded simulated traces, then times, per request:
`Router.decide` end to end (and, task type predicted, with and without the task-type novelty
check, interleaved request by request), and its parts (aco.features.request_features, the
model on the 5 tier rows, calibration + decision rule), against `Booster.predict` on the same
5 rows.
Prints p50/p99 in microseconds and the ratios of the medians.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np

from aco.config import ACOConfig
from aco.features import FeatureSpec, request_features
from aco.policy import calibrate, choose_tier
from aco.router import Router, predict_success
from aco_lab.simulate.generate import build_sim_request, write_simulated_traces
from aco_lab.traces.reading import read_traces
from aco_lab.train.bundle_writer import write_bundle
from aco_lab.train.router import TrainOptions, build_router


def timed(fn, items) -> np.ndarray:  # noqa: ANN001
    """Microseconds per call of fn(item), one timing per item."""
    out = np.empty(len(items))
    for i, item in enumerate(items):
        start = time.perf_counter_ns()
        fn(item)
        out[i] = (time.perf_counter_ns() - start) / 1000.0
    return out


def timed_pair(fn_a, fn_b, items) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """timed for two functions, interleaved item by item (both see the same machine load)."""
    out_a, out_b = np.empty(len(items)), np.empty(len(items))
    for i, item in enumerate(items):
        start = time.perf_counter_ns()
        fn_a(item)
        middle = time.perf_counter_ns()
        fn_b(item)
        out_a[i], out_b[i] = (middle - start) / 1000.0, (time.perf_counter_ns() - middle) / 1000.0
    return out_a, out_b


def main() -> None:
    """Train, load, time, print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--train-requests", type=int, default=400)
    args = parser.parse_args()
    config = ACOConfig()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.jsonl"
        write_simulated_traces(path, args.train_requests, seed=1, config=config)
        trained = build_router(read_traces(path).runs, config, TrainOptions(seed=1))
        router = Router.load(write_bundle(trained.payload, Path(tmp) / "m").path, config)
    # The same bundle without the task-type novelty check: what the check costs.
    unchecked = copy.deepcopy(trained.payload)
    del unchecked["task_type_model"]["novelty"]
    unchecked_router = Router(unchecked, config)
    booster = trained.booster
    spec = FeatureSpec.from_dict(trained.payload["feature_spec"])
    reqs = [build_sim_request(99, i) for i in range(args.requests)]
    cases = [(r.text, r.task_type, r.tokens) for r in reqs]
    for case in cases[:200]:  # warm-up: caches, compiled tree tables
        router.decide(case[0], task_type=case[1], input_tokens=case[2])
    feats = [request_features(spec, t, k, None, n) for t, k, n in cases]
    rows = [np.column_stack([np.repeat(x[None], 5, axis=0), np.arange(1, 6)]) for x in feats]
    params, cal = router.params, router.calibration
    probs = [
        np.maximum.accumulate(calibrate(predict_success(router.model, x)[0], cal)).tolist()
        for x in feats
    ]
    allowed = [True] * 5
    costs = [0.0, 0.001, 0.01, 0.05, 0.1]
    results = {
        "decide (end to end)": timed(
            lambda c: router.decide(c[0], task_type=c[1], input_tokens=c[2]), cases
        ),
        **dict(
            zip(
                ("decide, task type predicted", "  the same, no novelty check"),
                timed_pair(
                    lambda c: router.decide(c[0], input_tokens=c[2]),
                    lambda c: unchecked_router.decide(c[0], input_tokens=c[2]),
                    cases,
                ),
                strict=True,
            )
        ),
        "features": timed(lambda c: request_features(spec, c[0], c[1], None, c[2]), cases),
        "model (5 tier rows)": timed(lambda x: predict_success(router.model, x), feats),
        "calibrate + rule": timed(
            lambda p: choose_tier(
                np.maximum.accumulate(calibrate(np.asarray(p), cal)).tolist(),
                costs,
                allowed,
                params,
            ),
            probs,
        ),
        "lightgbm Booster.predict (5 rows)": timed(lambda r: booster.predict(r), rows),
    }
    print(
        f"{args.requests} requests, model: {booster.num_trees()} trees, "
        f"{spec.n_features} features, depth {router.model['booster']['max_depth']}"
    )
    print(f"{'what':36s} {'p50 us':>9s} {'p99 us':>9s}")
    for name, us in results.items():
        print(f"{name:36s} {np.percentile(us, 50):9.1f} {np.percentile(us, 99):9.1f}")
    base = np.percentile(results["lightgbm Booster.predict (5 rows)"], 50)
    print(
        f"decide p50 / Booster.predict p50: "
        f"{np.percentile(results['decide (end to end)'], 50) / base:.2f}"
    )
    print(
        f"model p50 / Booster.predict p50: "
        f"{np.percentile(results['model (5 tier rows)'], 50) / base:.2f}"
    )


if __name__ == "__main__":
    main()
