"""The router against its baselines on real data, split by request, over several seeds.

    .venv/bin/python scripts/bench_router_quality.py [--data ../shared/data]
        [--datasets routerbench-dev,swebench-dev] [--seeds 0,1,2,3,4] [--model auto]
        [--margin 1.0]

For each dataset and seed: the requests are split in half as `aco-lab holdout --seed S` splits
them, a router is trained on one half (`aco-lab train --config DATA/config.yaml --model M
--no-controls`, in process) and evaluated on the other (`aco-lab evaluate`, with its knn and
logreg baselines trained on the same half). Printed per run, as shares of the top tier's cost
or success on the evaluated half:

- curve@T: the router's curve at the target success T (95% of the top tier's), and the best
  baseline curve's (random mixing, best tier per task type, knn, logreg);
- point: the bundle's own operating point, replayed (success, cost);
- the goals: curve <= best baseline + 1 point; point success >= 94% and cost <= best
  baseline + 5 points; the router's figures equal a replay of its decisions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from aco.config import load_config
from aco_lab.evaluate.evaluation import build_evaluation
from aco_lab.evaluate.results import BundleInfo, EvalOptions
from aco_lab.report.evaluation_report import build_quality_goal
from aco_lab.traces import schema as S
from aco_lab.traces.holdout import EVAL, TRAIN
from aco_lab.traces.labels import build_outcome_matrix
from aco_lab.traces.reading import read_traces
from aco_lab.traces.split import assign_splits
from aco_lab.train.router import TrainOptions, build_router

CURVE_SLACK = 0.01  # the router's curve may cost this much more than the best baseline's
POINT_SUCCESS = 0.94  # the operating point, replayed, keeps at least this share of the top's
POINT_SLACK = 0.05  # ... at no more than the best baseline's cost plus this


def run_one(runs: pl.DataFrame, config_path: Path, seed: int, model: str, margin: float) -> dict:
    """Split, train, evaluate; the figures of one dataset and seed."""
    config = load_config(config_path)
    parts = assign_splits(runs[S.REQUEST_ID].unique().to_list(), ((TRAIN, 0.5), (EVAL, 0.5)), seed)
    train = runs.filter(pl.col(S.REQUEST_ID).is_in(parts[TRAIN]))
    held = runs.filter(pl.col(S.REQUEST_ID).is_in(parts[EVAL]))
    start = time.perf_counter()
    options = TrainOptions(model=model, seed=seed, controls=False, success_margin=margin)
    payload = build_router(train, config, options).payload
    train_s = time.perf_counter() - start
    info = BundleInfo(
        "v1",
        "bench",
        "",
        payload["model"]["kind"],
        len(payload["training_data"]["request_ids"]),
        _params(payload),
        (),
    )
    ev = build_evaluation(payload, info, config, held, EvalOptions(), training_runs=train)
    goal = build_quality_goal(ev)
    point = goal["operating_point"]
    curve = goal["curve_cost_fraction_at_target"]
    best = goal["best_baseline_cost_fraction_at_target"]
    return {
        "seed": seed,
        "winner": payload["validation"]["selection"]["winner"],
        "curve": curve,
        "best_baseline": goal["best_baseline"],
        "best": best,
        "point_success": point["success_fraction_of_top"],
        "point_cost": point["cost_fraction_of_top"],
        "curve_ok": curve is not None and best is not None and curve <= best + CURVE_SLACK,
        "point_ok": (
            point["success_fraction_of_top"] >= POINT_SUCCESS
            and best is not None
            and point["cost_fraction_of_top"] <= best + POINT_SLACK
        ),
        "replay_ok": _replays(ev, held, config),
        "train_s": round(train_s, 1),
    }


def _params(payload: dict):  # noqa: ANN202 - aco.policy.PolicyParams
    from aco.policy import PolicyParams

    return PolicyParams.from_dict(payload["policy"])


def _replays(ev, runs: pl.DataFrame, config) -> bool:  # noqa: ANN001
    """The router's success and cost equal a plain replay of its decisions on the runs."""
    outcomes = build_outcome_matrix(runs, config)
    row = {rid: i for i, rid in enumerate(outcomes.request_ids)}
    tiers = ev.decisions[S.TIER].to_numpy()
    idx = np.array([row[r] for r in ev.decisions[S.REQUEST_ID].to_list()])
    success = outcomes.success[idx, tiers - 1].mean()
    cost = outcomes.cost[idx, tiers - 1].mean()
    return bool(
        abs(success - ev.router.success_rate) < 1e-12
        and abs(cost - ev.router.cost_per_request) < 1e-12
    )


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{100 * value:5.1f}"


def main() -> None:
    """Print one line per dataset and seed, then the share of runs meeting each goal."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default="routerbench-dev,swebench-dev")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--model", default="auto")
    parser.add_argument(
        "--margin",
        type=float,
        default=TrainOptions().success_margin,
        help="--success-margin of the operating point (standard errors)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    rows = []
    print(
        "dataset          seed  winner    curve@95  best baseline               point success"
        "  cost   curve<=best+1  point ok  replay"
    )
    for name in args.datasets.split(","):
        folder = args.data / name
        runs = read_traces([folder / "traces.jsonl.gz"]).runs
        for seed in (int(s) for s in args.seeds.split(",")):
            r = {
                "dataset": name,
                **run_one(runs, folder / "config.yaml", seed, args.model, args.margin),
            }
            rows.append(r)
            print(
                f"{name:16s} {seed:4d}  {r['winner']:8s}   {_pct(r['curve'])}   "
                f"{(r['best_baseline'] or '-')[:22]:22s} {_pct(r['best'])}   "
                f"{_pct(r['point_success'])}  {_pct(r['point_cost'])}   "
                f"{'yes' if r['curve_ok'] else 'NO':13s}  {'yes' if r['point_ok'] else 'NO':8s}"
                f"  {'yes' if r['replay_ok'] else 'NO'}",
                flush=True,
            )
    for name in args.datasets.split(","):
        mine = [r for r in rows if r["dataset"] == name]
        mean = {
            k: np.mean([r[k] if r[k] is not None else np.nan for r in mine])
            for k in ("curve", "best", "point_success", "point_cost")
        }
        print(
            f"{name}: mean curve {_pct(mean['curve'])}, best baseline {_pct(mean['best'])}, "
            f"point {_pct(mean['point_success'])} at {_pct(mean['point_cost'])}; goals met: "
            f"curve {sum(r['curve_ok'] for r in mine)}/{len(mine)}, point "
            f"{sum(r['point_ok'] for r in mine)}/{len(mine)}, replay "
            f"{sum(r['replay_ok'] for r in mine)}/{len(mine)}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
