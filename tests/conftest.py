"""Shared test fixtures: paths to the real benchmark traces (skipped when ../shared is absent).

Property tests draw the same examples on every run (derandomize): the suite is deterministic,
and a failure found once is found again. HYPOTHESIS_PROFILE=explore draws new ones.
"""

import os
import pickle
from pathlib import Path

import pytest
from hypothesis import settings

from aco.payload import BundlePayload

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ROUTERBENCH = SHARED_DATA / "routerbench-dev"
TAU_BENCH = SHARED_DATA / "tau-bench-airline"
SWEBENCH = SHARED_DATA / "swebench-dev"
GOLDEN_BUNDLE = REPO / "tests" / "golden" / "router_bundle_v1.pkl"


@pytest.fixture()
def golden_payload() -> dict:
    """The golden bundle's payload as this aco writes it: a real, small, valid one to vary."""
    raw = pickle.loads(GOLDEN_BUNDLE.read_bytes())  # our own committed file
    return BundlePayload.from_dict(raw).to_dict()


@pytest.fixture(scope="session")
def routerbench_dir() -> Path:
    """The real RouterBench traces and config; skips the test when ../shared is absent."""
    if not (ROUTERBENCH / "traces.jsonl.gz").exists():
        pytest.skip("../shared/data/routerbench-dev is absent")
    return ROUTERBENCH


@pytest.fixture(scope="session")
def swebench_dir() -> Path:
    """The real SWE-bench agent traces (24 models in 5 tiers) and config; skips the test when
    ../shared is absent."""
    if not (SWEBENCH / "traces.jsonl.gz").exists():
        pytest.skip("../shared/data/swebench-dev is absent")
    return SWEBENCH


@pytest.fixture(scope="session")
def tau_bench_dir() -> Path:
    """The real tau-bench airline traces; skips the test when ../shared is absent."""
    if not (TAU_BENCH / "traces.jsonl.gz").exists():
        pytest.skip("../shared/data/tau-bench-airline is absent")
    return TAU_BENCH
