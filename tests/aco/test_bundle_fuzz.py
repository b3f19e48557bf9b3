"""Fuzzed bundles: loading either succeeds and `aco route` works, or raises BundleError.

A real payload (the golden bundle's) has one field replaced, removed, truncated, extended or
byte-flipped; or the pickle is random plain data; or the pickle's own bytes are flipped. Each
is written with a truthful manifest (a broken writer, not a tamperer), then loaded and routed
as `aco route --bundle` and described as `aco version --bundle` would. Any exception other
than BundleError fails; hypothesis' deadline bounds each case's time.
"""

import copy
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aco.bundle import FORMAT_VERSION_KEY, load_payload, read_manifest
from aco.bundle_info import describe_bundle, format_description
from aco.errors import BundleError
from aco.optimizer import ACOOptimizer
from aco.router import build_novelty
from aco.scoring import build_knn_model, build_linear_model
from tests.bundle_files import write_raw
from tests.conftest import GOLDEN_BUNDLE

GOLDEN_BYTES = GOLDEN_BUNDLE.read_bytes()
GOLDEN = pickle.loads(GOLDEN_BYTES)


def other_kinds(golden: dict) -> list[dict]:
    """The golden payload with a logistic model and a novelty check, and with a kNN model."""
    rng = np.random.default_rng(0)
    n = len(golden["feature_spec"]["names"])
    logreg = {
        "kind": "logreg",
        "objective": "cheapest",
        "C": 1.0,
        "linear": build_linear_model(rng.normal(size=(6, n)), rng.normal(size=6)),
    }
    task_model = {
        **golden["task_type_model"],
        "novelty": build_novelty(rng.random((3, 256)), n - 256, 0.2, 0.01),
    }
    knn = {
        "kind": "knn",
        "objective": "success",
        "knn": build_knn_model(rng.normal(size=(8, n)), rng.random((8, 5)), k=3),
    }
    return [
        {**golden, "model": logreg, "task_type_model": task_model},
        {**golden, "model": knn, "task_type_model": None},
    ]


LOGISTIC = {
    "features": ["log_steps", "failures", "task:*"],
    "weights": [0.5, -1.0, 0.1],
    "bias": 1.0,
}
CONTROLS = {  # small specs of each learned run control, as aco-lab writes them
    "doom": {
        "kind": "doom_logistic",
        "version": 1,
        "model": LOGISTIC,
        "threshold": 0.1,
        "min_steps": 2,
        "typical": {"*/*": {"cost": 0.1, "steps": 5.0}},
    },
    "gate": {
        "kind": "tool_values",
        "version": 1,
        "value_per_success": {"*": 1.0},
        "tools": {
            "*/calculator": {
                "allow": False,
                "runs": 9,
                "lift": -0.1,
                "shrunk_lift": -0.05,
                "cost": 0.01,
                "failure_rate": 0.2,
                "net_value": -0.02,
            }
        },
    },
    "verify": {
        "kind": "false_done_logistic",
        "version": 1,
        "model": LOGISTIC,
        "threshold": {"*": 0.3, "coding": 1.01},
        "false_done_cost": {"*": 0.5},
        "verifier_cost": 0.1,
        "max_call_rate": 0.5,
    },
    "context_budget": {
        "kind": "token_quantiles",
        "version": 1,
        "quantile": 0.9,
        "total_tokens": {"*/*": 400, "*/3": 300},
        "keep_exact": {"*": ["code"]},
        "omit": {"*": ["greetings_and_chit_chat"]},
    },
    "cascade": {
        "kind": "cascade_stages",
        "version": 1,
        "top": "specialist-expert",
        "options": {
            "cheap-cloud-8b": {"tier": 2, "mean_cost": 0.1},
            "specialist-expert": {"tier": 5, "mean_cost": 1.0},
        },
        "policies": {
            "*": {
                "sequence": ["cheap-cloud-8b"],
                "fallback": "specialist-expert",
                "accept_at": [0.6],
                "escalate_below": [0.0],
                "rank": ["specialist-expert", "cheap-cloud-8b"],
                "models": {
                    "cheap-cloud-8b": {"features": ["share"], "weights": [1.0], "bias": 0.0}
                },
            }
        },
    },
}
BASES = [GOLDEN, *other_kinds(GOLDEN), {**GOLDEN, "controls": CONTROLS}]
FUZZ = settings(
    max_examples=100,
    deadline=5000,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
MAX_LIST_PATHS = 3  # list items per list a mutation may reach (the rest are alike)


def field_paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every dict key and the first few list items of the payload, as key paths."""
    out = [path] if path else []
    if type(value) is dict:
        for key, item in value.items():
            out += field_paths(item, (*path, key))
    elif type(value) in (list, tuple):
        for i, item in enumerate(value[:MAX_LIST_PATHS]):
            out += field_paths(item, (*path, i))
    return out


PATHS = [field_paths(base) for base in BASES]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.sampled_from([0, 1, 5, 6, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=24),
    st.sampled_from(
        ["platt", "isotonic", "none", "lgbm", "knn", "logreg", "linear", "success", "cheapest"]
    ),
)
plain = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def mutated_payloads(draw: st.DrawFn) -> Any:
    """The golden payload (or one with another model kind) with one field changed."""
    which = draw(st.integers(0, len(BASES) - 1))
    payload = copy.deepcopy(BASES[which])
    path = draw(st.sampled_from(PATHS[which]))
    parent = payload
    for key in path[:-1]:
        parent = parent[key]
    if type(parent) is tuple:
        return payload  # tuples (options.folds) are left as they are
    key, old = path[-1], parent[path[-1]]
    how = draw(st.sampled_from(["replace", "delete", "shorten", "extend", "flip"]))
    if how == "delete" and type(parent) is dict:
        del parent[key]
    elif how == "shorten" and type(old) in (list, bytes, str):
        parent[key] = old[: draw(st.integers(0, max(0, len(old) - 1)))]
    elif how == "extend" and type(old) in (list, bytes):
        parent[key] = old + old[: draw(st.integers(1, 16))] if old else draw(plain)
    elif how == "flip" and type(old) is bytes and old:
        blob = bytearray(old)
        for _ in range(draw(st.integers(1, 4))):
            blob[draw(st.integers(0, len(blob) - 1))] = draw(st.integers(0, 255))
        parent[key] = bytes(blob)
    else:
        parent[key] = draw(plain)
    return payload


@st.composite
def flipped_pickles(draw: st.DrawFn) -> bytes:
    """The golden pickle with a few of its bytes changed."""
    data = bytearray(GOLDEN_BYTES)
    for _ in range(draw(st.integers(1, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def load_and_route(path: Path) -> None:
    """What `aco version --bundle` and `aco route --bundle` do: BundleError, or it works."""
    try:
        payload = load_payload(path)
    except BundleError:
        return
    format_description(describe_bundle(path, payload, read_manifest(path), False))
    optimizer = ACOOptimizer(None, bundle=path)
    for request, task_type in (
        ("Fix the failing test in auth.py", None),
        ("hi", "coding"),
        ("", None),
    ):
        decision = optimizer.route(request, task_type=task_type)
        assert 1 <= decision.tier <= 5 and decision.model_id
        optimizer.context_budget(request, decision.tier, task_type)
        optimizer.gate_tool("calculator", task_type)
        optimizer.decide_cascade(request, 2, [-0.1, -2.0], "The answer is B.")
    optimizer.check_doom(0.05, 3)
    optimizer.should_verify("medium", 0.5)


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "router_bundle_v1.pkl"


@FUZZ
@given(payload=mutated_payloads())
def test_mutated_payloads_load_and_route_or_are_refused(bundle_file: Path, payload: Any) -> None:
    load_and_route(write_raw(bundle_file, pickle.dumps(payload, protocol=5)))


@FUZZ
@given(
    payload=st.one_of(
        plain,
        st.dictionaries(st.text(max_size=6), plain, max_size=6).map(
            lambda d: {**d, FORMAT_VERSION_KEY: 1}
        ),
    )
)
def test_random_plain_pickles_are_refused(bundle_file: Path, payload: Any) -> None:
    with pytest.raises(BundleError):
        load_payload(write_raw(bundle_file, pickle.dumps(payload, protocol=5)))


def test_the_other_model_kinds_load_and_route(bundle_file: Path) -> None:
    for base in BASES[1:]:
        path = write_raw(bundle_file, pickle.dumps(base, protocol=5))
        assert base["model"]["kind"] == load_payload(path).model.KIND
        load_and_route(path)


@FUZZ
@given(data=flipped_pickles())
def test_flipped_pickle_bytes_load_and_route_or_are_refused(bundle_file: Path, data: bytes) -> None:
    load_and_route(write_raw(bundle_file, data))
