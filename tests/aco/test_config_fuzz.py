"""Fuzzing the config loader: any file is an ACOConfig or one ConfigError, never another error.

Starts from the documented defaults (docs/config.md), replaces, removes or retypes values,
and also feeds raw bytes; every config that loads is then used to route a request.
"""

import re
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aco.config import load_config
from aco.errors import ConfigError
from aco.rules import read_cues, route_cues

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"
DEFAULTS = yaml.safe_load(re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL).group(1))

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _paths(value, prefix=()):
    """Every (path, value) of a nested mapping."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    yield prefix, value


PATHS = [p for p, _ in _paths(DEFAULTS) if p]


def _mutated(data, path, value, remove):
    out = yaml.safe_load(yaml.safe_dump(data))
    node = out
    for key in path[:-1]:
        node = node[key]
    if remove:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def _load_or_refuse(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(raw)
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    tier = route_cues(read_cues("Fix the auth bug in production"), config).tier
    assert 1 <= tier <= 5


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(PATHS), ODD_VALUES, st.booleans()), min_size=1, max_size=3
    )
)
def test_a_mutated_config_loads_or_is_one_config_error(tmp_path: Path, changes) -> None:
    data = DEFAULTS
    for path, value, remove in changes:
        try:
            data = _mutated(data, path, value, remove)
        except (KeyError, TypeError):  # the path went away with an earlier change
            continue
    _load_or_refuse(tmp_path, yaml.safe_dump(data, allow_unicode=True).encode())


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_load_or_are_one_config_error(tmp_path: Path, raw: bytes) -> None:
    _load_or_refuse(tmp_path, raw)
