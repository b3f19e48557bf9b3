"""`aco` CLI: wiring through click's CliRunner, plus real runs of the console script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco import __version__
from aco.cli import main
from aco.config import ACOConfig
from aco.optimizer import ACOOptimizer

ACO = Path(sys.executable).with_name("aco")  # the console script installed beside python


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_route_prints_tier_model_cost_and_mode() -> None:
    out = _invoke("route", "Fix the auth bug in production")
    first, reason = out.splitlines()
    assert first.startswith("tier=4, model=claude-sonnet-4-5, cost=$")
    assert first.endswith("mode=rules")
    assert reason.startswith("reason: rules: ")


def test_route_json_has_the_documented_keys() -> None:
    data = json.loads(_invoke("route", "What is 2+2?", "--json"))
    assert set(data) == {
        "tier",
        "model_id",
        "confidence",
        "cost_estimate",
        "task_type",
        "task_type_from",
        "reason",
        "mode",
    }
    assert (data["task_type"], data["task_type_from"]) == ("quick_answer", "rule_cues")
    assert data["tier"] <= 2 and data["mode"] == "rules"


def test_route_options_reach_the_router(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("task_floors:\n  coding: 5\n")
    data = json.loads(
        _invoke("route", "hello", "--task-type", "coding", "--config", str(config), "--json")
    )
    assert data["tier"] == 5 and data["task_type"] == "coding"
    assert json.loads(_invoke("route", "hello", "--difficulty", "4", "--json"))["tier"] == 4
    long = json.loads(_invoke("route", "Summarize it", "--input-tokens", "50000", "--json"))
    assert long["tier"] > json.loads(_invoke("route", "Summarize it", "--json"))["tier"]


def test_route_reads_stdin() -> None:
    result = CliRunner().invoke(main, ["route", "-", "--json"], input="What is 2+2?")
    assert json.loads(result.output)["task_type"] == "quick_answer"


def test_budget() -> None:
    data = json.loads(_invoke("budget", "Fix the TypeError in parse():\n```\nx = 1\n```", "--json"))
    assert {"code", "error_messages"} <= set(data["keep_exact"])
    assert data["total_tokens"] > 0 and data["mode"] == "rules"
    small = json.loads(_invoke("budget", "Fix it", "--tier", "1", "--json"))
    assert small["tier"] == 1 and small["total_tokens"] < data["total_tokens"]
    assert (small["routing_mode"], data["routing_mode"]) == ("given", "rules")
    assert _invoke("budget", "Fix it").startswith("total_tokens=")


@pytest.mark.parametrize(
    ("tool", "task_type", "allow"),
    [("web_search", "quick_answer", False), ("web_search", "research", True)],
)
def test_gate(tool: str, task_type: str, allow: bool) -> None:
    data = json.loads(_invoke("gate", tool, "--task-type", task_type, "--json"))
    assert data["allow"] is allow and data["tool_name"] == tool and data["mode"] == "rules"
    assert _invoke("gate", tool, "--task-type", task_type).startswith(f"allow={str(allow).lower()}")


@pytest.mark.parametrize(
    ("risk", "confidence", "verify"),
    [("high", "0.99", True), ("low", "0.9", False), ("medium", "0.5", True)],
)
def test_verify(risk: str, confidence: str, verify: bool) -> None:
    data = json.loads(_invoke("verify", "--risk", risk, "--confidence", confidence, "--json"))
    assert data["verify"] is verify


def test_verify_refuses_a_bad_confidence() -> None:
    result = CliRunner().invoke(main, ["verify", "--risk", "low", "--confidence", "1.5"])
    assert result.exit_code == 2 and "confidence" in result.output


@pytest.mark.parametrize("by", [None, "task_type", "tier"])
def test_stats_match_aco_lab_stats(tmp_path: Path, by: str | None) -> None:
    from aco_lab.cli import main as lab_main

    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)))
    for i, request in enumerate(
        [
            "What is 2+2?",
            "Fix the auth bug in production",
            "Summarize these papers",
            "Fix the login test",
        ]
        * 2
    ):
        run = opt.begin(request)
        run.record_call(tier=1 + i % 3, cost=0.01 * i, input_tokens=100, cached_input_tokens=10 * i)
        if i % 3 == 0:
            run.record_call(tier=4, cost=0.2, escalated_from=1 + i % 3)
            run.record_verification(i % 2 == 0)
        run.end(i % 4 != 3, "completed" if i % 5 else "failed")
    args = ["--json"] + (["--by", by] if by else [])
    ours = json.loads(_invoke("stats", "--trace-dir", str(tmp_path), *args))
    lab = CliRunner().invoke(lab_main, ["stats", str(tmp_path), *args])
    assert lab.exit_code == 0, lab.output
    assert ours == json.loads(lab.output)
    assert ours == json.loads(json.dumps(opt.stats(by)))
    assert ours["runs"] == 8 and 0 < ours["escalation_rate"] < 1
    assert _invoke("stats", "--trace-dir", str(tmp_path)).startswith("runs")


def test_stats_of_an_empty_log(tmp_path: Path) -> None:
    empty = json.loads(_invoke("stats", "--trace-dir", str(tmp_path), "--json"))
    assert empty["runs"] == 0 and empty["cost_per_success"] is None


def test_stats_of_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"runtime:\n  trace_dir: {tmp_path / 'from-config'}\n")
    for args in (["--trace-dir", str(tmp_path / "none")], ["--config", str(config)]):
        result = CliRunner().invoke(main, ["stats", *args])
        assert result.exit_code == 1
        missing = args[1] if args[0] == "--trace-dir" else str(tmp_path / "from-config")
        assert result.output.strip().splitlines() == [
            f"error: {missing}: no such trace directory; pass --trace-dir with the directory "
            f"runs are logged to (runtime.trace_dir)"
        ]


def test_bad_config_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("routing:\n  safety_threshold: 7\n")
    result = CliRunner().invoke(main, ["route", "x", "--config", str(bad)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {bad}: routing.safety_threshold: expected a number in 0..1, got 7"
    ]


def test_version() -> None:
    assert _invoke("version").startswith(f"aco {__version__} (trace format v1, feature version ")


# -- the installed console script, as a user runs it ----------------------------------------
def _script(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ACO), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_console_script_route() -> None:
    out = _script("route", "Fix the auth bug in production", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["tier"] >= 4 and data["mode"] == "rules"


def test_console_script_version() -> None:
    out = _script("version")
    assert out.returncode == 0 and out.stdout.startswith(f"aco {__version__}")


def test_console_script_missing_bundle_is_one_line(tmp_path: Path) -> None:
    out = _script("route", "hello", "--bundle", "v999", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "router_bundle_v999.pkl: no such router bundle" in lines[0]


# -- with a bundle -------------------------------------------------------------------------------
def test_route_with_a_bundle_matches_the_optimizer(trained_bundle: Path) -> None:
    data = json.loads(
        _invoke(
            "route", "Fix the auth bug in production", "--bundle", str(trained_bundle), "--json"
        )
    )
    expected = ACOOptimizer(bundle=trained_bundle).route("Fix the auth bug in production")
    assert data["mode"] == "bundle"
    assert (data["tier"], data["model_id"], data["task_type"]) == (
        expected.tier,
        expected.model_id,
        expected.task_type,
    )
    assert data["confidence"] == pytest.approx(expected.confidence)


def test_bundle_version_resolves_under_router_models(
    trained_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from aco.bundle import manifest_path

    models = tmp_path / "router_models"
    models.mkdir()
    for source, name in (
        (trained_bundle, "router_bundle_v3.pkl"),
        (manifest_path(trained_bundle), "router_bundle_v3.manifest.json"),
    ):
        shutil.copy(source, models / name)
    monkeypatch.chdir(tmp_path)
    assert json.loads(_invoke("route", "hello", "--bundle", "v3", "--json"))["mode"] == "bundle"
    budget = json.loads(_invoke("budget", "hello", "--bundle", "v3", "--json"))
    assert (budget["routing_mode"], budget["mode"]) == ("bundle", "rules")  # no learned budget
    assert "mode=rules" in _invoke("gate", "web_search", "--bundle", "latest")


def test_console_script_route_with_a_bundle(trained_bundle: Path) -> None:
    out = _script("route", "What is 2+2?", "--bundle", str(trained_bundle))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("tier=") and "mode=bundle" in out.stdout.splitlines()[0]


def test_console_script_tampered_bundle_is_one_line(trained_bundle: Path, tmp_path: Path) -> None:
    import shutil

    from aco.bundle import manifest_path

    copy = tmp_path / trained_bundle.name
    shutil.copy(trained_bundle, copy)
    shutil.copy(manifest_path(trained_bundle), manifest_path(copy))
    with copy.open("ab") as handle:
        handle.write(b"\x00")
    out = _script("route", "hello", "--bundle", str(copy))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "tampered or truncated" in out.stderr


# -- aco version --bundle: what a bundle holds ---------------------------------------------
def test_version_describes_a_bundle_after_checking_it(
    trained_bundle: Path, tmp_path: Path, monkeypatch
) -> None:
    from aco.bundle import KEY_ENV, load_bundle, read_manifest

    monkeypatch.delenv(KEY_ENV, raising=False)
    payload, manifest = load_bundle(trained_bundle), read_manifest(trained_bundle)
    out = _script("version", "--bundle", str(trained_bundle), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)["bundle"]
    assert (info["sha256"], info["size"], info["hmac"]) == (
        manifest["sha256"],
        manifest["size"],
        "none",
    )
    assert info["training"]["requests"] == payload["training_data"]["n_requests"]
    assert info["task_types"] == payload["feature_spec"]["task_types"]
    threshold = payload["task_type_model"]["novelty"]["threshold"]
    assert info["task_type_predictor"]["novelty_threshold"] == threshold
    assert info["controls"] == []  # the fixture's bundle has none: its runs use the rules
    text = _script("version", "--bundle", str(trained_bundle)).stdout.splitlines()
    assert text[1].startswith(f"bundle v{manifest['version']}: {trained_bundle} (")
    assert f"less similar than {threshold:.2f}" in out.stdout + "\n".join(text)
    assert text[-1] == "learned run controls: none (rules)"
    # Which candidate the cross-validation chose, why, and every candidate's figures.
    selection = payload["validation"]["selection"]
    assert info["selection"] == selection
    assert f"chosen: {selection['winner']}: {selection['why']}" in text
    assert sum(line.startswith("  candidate ") for line in text) == len(selection["candidates"])
    # A tampered copy is refused, as loading it to route would be.
    copy = tmp_path / trained_bundle.name
    copy.write_bytes(trained_bundle.read_bytes()[:-1] + b"\x00")
    (tmp_path / trained_bundle.name.replace(".pkl", ".manifest.json")).write_text(
        json.dumps(manifest)
    )
    bad = _script("version", "--bundle", str(copy))
    assert bad.returncode == 1 and "tampered" in bad.stderr and bad.stdout == ""


def test_version_reports_whether_the_hmac_was_verified(tmp_path: Path, monkeypatch) -> None:
    from aco.bundle import KEY_ENV, load_bundle
    from aco_lab.train.bundle_writer import write_bundle

    monkeypatch.delenv(KEY_ENV, raising=False)
    golden = load_bundle(Path(__file__).parents[1] / "golden" / "router_bundle_v1.pkl")
    monkeypatch.setenv(KEY_ENV, "team key")
    path = write_bundle(golden, tmp_path).path
    verified = json.loads(_invoke("version", "--bundle", str(path), "--json"))["bundle"]
    assert verified["hmac"] == "verified"
    monkeypatch.delenv(KEY_ENV)
    unverified = json.loads(_invoke("version", "--bundle", str(path), "--json"))["bundle"]
    assert unverified["hmac"] == "not verified (no ACO_BUNDLE_KEY)"
    # The golden bundle predates the novelty check: it says so.
    assert "no novelty check (trained before it)" in _invoke("version", "--bundle", str(path))
