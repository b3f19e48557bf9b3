"""Simulated traces for the controls' tests, split by request into training and held-out."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from aco.config import ACOConfig
from aco_lab.controls.suite import restrict_tables
from aco_lab.traces.reading import TraceTables, read_traces
from aco_lab.traces.split import assign_splits

SIM_REQUESTS = 1200  # enough runs per task type and tool for the gate's and doom's statistics
SIM_SEED = 11


@dataclass(frozen=True)
class SimSplit:
    """Simulated counterfactual traces: the file, and tables of both halves."""

    path: Path
    train: TraceTables
    held_out: TraceTables


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimSplit:
    """Seeded simulated traces, half of the requests for training, half held out."""
    from aco_lab.simulate.generate import write_simulated_traces

    path = tmp_path_factory.mktemp("controls") / "sim.jsonl.gz"
    write_simulated_traces(path, SIM_REQUESTS, seed=SIM_SEED, config=ACOConfig())
    tables = read_traces([path])
    parts = assign_splits(
        tables.runs["request_id"].unique().to_list(),
        [("train", 0.5), ("held_out", 0.5)],
        seed=SIM_SEED,
    )
    return SimSplit(
        path,
        restrict_tables(tables, set(parts["train"])),
        restrict_tables(tables, set(parts["held_out"])),
    )
