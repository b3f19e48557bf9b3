"""A small evaluation case shared by the evaluation tests: simulated traces and a trained bundle.

Training traces, disjoint counterfactual evaluation traces, ordinary logs (with routing
propensities) and one LightGBM bundle trained on the training traces. Built once per test
session and worker (cached under the session's base temp directory), in a few seconds.
Test modules import the `eval_case` fixture from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from aco.config import ACOConfig

TRAIN_REQUESTS, TRAIN_SEED = 160, 3
EVAL_REQUESTS, EVAL_SEED = 80, 4
LOG_REQUESTS, LOG_SEED = 200, 5


@dataclass(frozen=True)
class EvalCase:
    """Paths of the case's files."""

    root: Path
    train: Path  # counterfactual, the bundle trained on it
    eval: Path  # counterfactual, disjoint requests
    logs: Path  # ordinary logs with metadata.routing_propensity
    models_dir: Path
    bundle: Path  # models_dir / router_bundle_v1.pkl


def build_eval_case(root: Path) -> EvalCase:
    """Simulate the traces and train the bundle into `root` (reused when already there)."""
    from aco_lab.simulate.generate import write_simulated_traces
    from aco_lab.train.router import TrainOptions, train_router

    case = EvalCase(
        root,
        root / "train.jsonl",
        root / "eval.jsonl",
        root / "logs.jsonl",
        root / "router_models",
        root / "router_models" / "router_bundle_v1.pkl",
    )
    if case.bundle.exists():
        return case
    root.mkdir(parents=True, exist_ok=True)
    config = ACOConfig()
    write_simulated_traces(case.train, TRAIN_REQUESTS, seed=TRAIN_SEED, config=config)
    write_simulated_traces(case.eval, EVAL_REQUESTS, seed=EVAL_SEED, config=config)
    write_simulated_traces(case.logs, LOG_REQUESTS, seed=LOG_SEED, config=config, mode="logs")
    train_router([case.train], config, TrainOptions(seed=TRAIN_SEED), case.models_dir)
    return case


@pytest.fixture(scope="session")
def eval_case(tmp_path_factory: pytest.TempPathFactory) -> EvalCase:
    """The shared evaluation case (see the module docstring)."""
    return build_eval_case(tmp_path_factory.getbasetemp() / "eval_case")


def read_jsonl(path: Path) -> list[dict]:
    """Every JSON object of a JSONL file, with plain json (independent of the library)."""
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
