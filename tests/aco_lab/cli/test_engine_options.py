"""`--engine dask [--scheduler ADDRESS]` on ingest and train: the local engine's counts, a
bundle `aco route` loads, one-line errors, and no dask import without it."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.config import ACOConfig
from aco_lab.cli import main
from aco_lab.simulate.generate import write_simulated_traces
from tests.dask_cluster import dask_cluster  # noqa: F401 - the fixture

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engine") / "sim.jsonl"
    write_simulated_traces(path, 80, seed=4, config=ACOConfig())
    with path.open("a") as out:
        out.write("{not json\n")
    return path


def _ingest(args: list[str]) -> dict:
    result = CliRunner().invoke(main, ["ingest", *args, "--on-error", "skip", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ingest_on_a_scheduler_counts_what_the_local_engine_does(
    traces: Path,
    tmp_path: Path,
    dask_cluster,  # noqa: F811
) -> None:
    address = dask_cluster.client.scheduler.address
    local = _ingest([str(traces), "--out", str(tmp_path / "local")])
    on_dask = _ingest(
        [str(traces), "--out", str(tmp_path / "dask"), "--engine", "dask", "--scheduler", address]
    )
    assert on_dask | {"out_dir": local["out_dir"]} == local
    assert (local["accepted"], local["rejected"]) == (400, 1)


def test_train_on_a_scheduler_writes_a_bundle_aco_route_loads(
    traces: Path,
    tmp_path: Path,
    dask_cluster,  # noqa: F811
) -> None:
    address = dask_cluster.client.scheduler.address
    args = [
        "--no-controls",
        "--model",
        "lgbm",
        "--engine",
        "dask",
        "--scheduler",
        address,
        "--json",
        "--out",
        str(tmp_path / "models"),
    ]
    result = CliRunner().invoke(main, ["train", str(traces), *args])
    assert result.exit_code == 1 and "1 of 401 lines break trace format v1" in result.stderr
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(traces.read_text().splitlines(keepends=True)[:-1]))
    result = CliRunner().invoke(main, ["train", str(clean), *args])
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)["path"]
    routed = subprocess.run(
        [str(BIN / "aco"), "route", "fix the failing parser test", "--bundle", bundle, "--json"],
        capture_output=True,
        text=True,
    )
    assert routed.returncode == 0, routed.stderr
    assert json.loads(routed.stdout)["tier"] in range(1, 6)


def test_scheduler_needs_the_dask_engine(traces: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "ingest",
            str(traces),
            "--out",
            str(tmp_path / "d"),
            "--scheduler",
            "tcp://127.0.0.1:8786",
        ],
    )
    assert result.exit_code == 2 and "--scheduler needs --engine dask" in result.output


def test_an_unreachable_scheduler_is_one_line(
    traces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    from aco_lab.traces import dask_engine

    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT_S", 1)
    result = CliRunner().invoke(
        main,
        [
            "ingest",
            str(traces),
            "--out",
            str(tmp_path / "d"),
            "--engine",
            "dask",
            "--scheduler",
            "tcp://127.0.0.1:9",
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: --scheduler tcp://127.0.0.1:9: cannot connect to a Dask scheduler there"
    )
    assert not (tmp_path / "d").exists()


def test_engine_dask_alone_starts_a_local_cluster(traces: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    done = subprocess.run(
        [
            str(BIN / "aco-lab"),
            "ingest",
            str(traces),
            "--out",
            str(tmp_path / "ds"),
            "--on-error",
            "skip",
            "--engine",
            "dask",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accepted"] == 400  # stdout holds the JSON alone


def test_the_local_engine_never_imports_dask(traces: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from aco_lab.cli import main\n"
        f"main(['ingest', {str(traces)!r}, '--out', {str(tmp_path / 'ds')!r}, "
        "'--on-error', 'skip'], standalone_mode=False)\n"
        "print(' '.join(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == ""


# The dask extra missing: importing dask or distributed fails as it does when not installed.
WITHOUT_DASK = """
import sys


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("dask", "distributed"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NotInstalled())
sys.argv = ["aco-lab", *sys.argv[1:]]
from aco_lab.launcher import main

main()
"""


def test_the_lab_works_without_the_dask_extra(traces: Path, tmp_path: Path) -> None:
    def lab(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_DASK, *args], capture_output=True, text=True
        )

    local = lab(
        "ingest", str(traces), "--out", str(tmp_path / "ds"), "--on-error", "skip", "--json"
    )
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["accepted"] == 400
    for command in ("ingest", "train"):
        done = lab(command, str(traces), "--out", str(tmp_path / command), "--engine", "dask")
        assert done.returncode == 1
        [line] = done.stderr.splitlines()  # one line naming what to install
        assert re.fullmatch(
            r"error: --engine dask: (dask|distributed) is not installed; "
            r"install it with: pip install 'aco\[dask\]' \(from a checkout: "
            r"pip install '\.\[dask\]'\)",
            line,
        ), line
        assert not (tmp_path / command).exists()
