"""A router bundle trained in the tests, once per session, from seeded simulated traces."""

from pathlib import Path

import pytest

from aco.config import ACOConfig

SIM_REQUESTS = 300  # enough requests for the three-way split of training
SIM_SEED = 7


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a LightGBM router bundle trained on simulated traces (aco_lab end to end)."""
    from aco_lab.simulate.generate import write_simulated_traces
    from aco_lab.train.router import TrainOptions, train_router

    root = tmp_path_factory.mktemp("bundle")
    traces = root / "sim.jsonl"
    write_simulated_traces(traces, SIM_REQUESTS, seed=SIM_SEED, config=ACOConfig())
    # No learned run controls: the tests here use rule controls unless they add their own.
    info, _ = train_router(
        [traces],
        ACOConfig(),
        TrainOptions(model="lgbm", seed=SIM_SEED, controls=False),
        root / "router_models",
    )
    return info.path
