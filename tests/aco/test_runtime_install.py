"""The runtime works with only its declared dependencies; `aco-lab` without the lab says so.

Each test runs a console script's entry point (read from pyproject.toml) in a real subprocess
whose only importable packages are this repository and pyproject's `dependencies` (and their
own requirements), linked from this interpreter's site-packages into a fresh directory. So the
lab stack (polars, pyarrow, scikit-learn, lightgbm, matplotlib, ...) is absent as in a
`pip install aco`, and a runtime import missing from `dependencies` fails here.
scripts/check_runtime_install.sh makes the same check with a real install in a new venv.
"""

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
GOLDEN = REPO / "tests" / "golden"
LAB = ("polars", "pyarrow", "sklearn", "lightgbm", "matplotlib", "threadpoolctl", "pandas")


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables for `python -S` that sees only the repo and the runtime's deps."""
    site = tmp_path_factory.mktemp("runtime-site-packages")
    todo, seen = list(PROJECT["dependencies"]), set()
    while todo:
        requirement = Requirement(todo.pop())
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        dist = importlib.metadata.distribution(name)
        todo += dist.requires or []
        for top in {f.parts[0] for f in dist.files or ()} - {"..", "__pycache__"}:
            if not (site / top).exists():
                (site / top).symlink_to(Path(dist.locate_file(top)))
    # -S (in _run) drops the interpreter's site-packages; only these two remain on the path.
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(site)]),
        "PYTHONNOUSERSITE": "1",
    }


def _run(env: dict[str, str] | None, script: str, *args: str) -> subprocess.CompletedProcess:
    """Run console script `script` as its installed wrapper would (env None: with the lab)."""
    module, _, function = PROJECT["scripts"][script].partition(":")
    code = (
        f"import sys; from {module} import {function}; sys.argv[0] = {script!r}; "
        f"sys.exit({function}())"
    )
    python = [sys.executable, "-c"] if env is None else [sys.executable, "-S", "-c"]
    return subprocess.run(
        [*python, code, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_the_lab_stack_is_absent(runtime_env: dict[str, str]) -> None:
    code = f"import importlib.util as u; print([m for m in {LAB!r} if u.find_spec(m)])"
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env=runtime_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_route_with_rules(runtime_env: dict[str, str]) -> None:
    out = _run(runtime_env, "aco", "route", "Fix the auth bug in production", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mode"] == "rules" and data["tier"] >= 4 and data["model_id"]


@pytest.fixture(scope="module")
def golden_tiers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config with the tier table the golden bundle was recorded with (the bundle's own).

    `aco route` names and prices tiers from its config; the default table has changed since
    the golden decisions were recorded. No task floors: as Router.load without a config.
    """
    import yaml

    from aco.bundle import load_payload

    tiers = load_payload(GOLDEN / "router_bundle_v1.pkl").tiers
    models = {
        f"tier{t.tier}": {
            "model_id": t.model_id,
            "provider": t.provider,
            "cost_per_1k_input": t.cost_per_1k_input,
            "cost_per_1k_output": t.cost_per_1k_output,
        }
        for t in tiers
    }
    path = tmp_path_factory.mktemp("golden") / "golden_tiers.yaml"
    path.write_text(yaml.safe_dump({"models": models}), encoding="utf-8")
    return path


def test_route_with_the_golden_bundle(runtime_env: dict[str, str], golden_tiers: Path) -> None:
    lines = (GOLDEN / "expected_decisions.jsonl").read_text(encoding="utf-8").splitlines()
    for case in map(json.loads, lines[:4]):
        args = [
            "route",
            case["request"],
            "--bundle",
            str(GOLDEN / "router_bundle_v1.pkl"),
            "--config",
            str(golden_tiers),
            "--json",
        ]
        args += ["--task-type", case["task_type"]] if case["task_type"] else []
        args += ["--input-tokens", str(case["input_tokens"])] if case["input_tokens"] else []
        out = _run(runtime_env, "aco", *args)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["mode"] == "bundle"
        assert (data["tier"], data["model_id"], data["task_type"]) == (
            case["tier"],
            case["model_id"],
            case["decided_task_type"],
        )
        assert data["confidence"] == pytest.approx(case["confidence"], abs=1e-9)


def test_stats_and_version(runtime_env: dict[str, str], tmp_path: Path) -> None:
    assert _run(runtime_env, "aco", "version").returncode == 0
    out = _run(runtime_env, "aco", "stats", "--trace-dir", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["runs"] == 0


@pytest.mark.parametrize("args", [(), ("train", "traces.jsonl"), ("--help",)])
def test_aco_lab_without_the_lab_says_how_to_install_it(
    runtime_env: dict[str, str], args: tuple[str, ...]
) -> None:
    out = _run(runtime_env, "aco-lab", *args)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "error: aco-lab needs the lab packages (polars, pyarrow, sklearn, lightgbm, matplotlib, "
        "threadpoolctl, altair, vl_convert not installed); install them with: "
        "pip install 'aco[lab]' "
        "(from a checkout: pip install '.[lab]')"
    ]


def test_aco_lab_with_the_lab_runs() -> None:
    out = _run(None, "aco-lab", "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("aco-lab, version ")
