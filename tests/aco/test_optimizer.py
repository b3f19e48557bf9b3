"""ACOOptimizer in rules mode: the guide's API, traces that close the loop, runs per thread."""

import asyncio
import json
import logging
import threading
from pathlib import Path

import pytest

from aco.config import ACOConfig
from aco.decisions import MODE_RULES
from aco.errors import ACOError
from aco.optimizer import ACOOptimizer
from aco_lab.traces.reading import read_traces


@pytest.fixture
def opt(tmp_path: Path) -> ACOOptimizer:
    return ACOOptimizer(ACOConfig(trace_dir=str(tmp_path / "traces")))


def _logged(opt: ACOOptimizer) -> list[dict]:
    return [json.loads(line) for line in opt.trace_log.path.read_text("utf-8").splitlines()]


def test_start_run_returns_the_guides_dict(opt: ACOOptimizer) -> None:
    plan = opt.start_run("Fix the auth bug in production", task_type="coding")
    assert set(plan) == {"trace_id", "routing", "context_budget"}
    routing = plan["routing"]
    assert set(routing) == {
        "tier",
        "model_id",
        "confidence",
        "cost_estimate",
        "task_type",
        "task_type_from",
        "reason",
        "mode",
    }
    assert routing["tier"] >= 4 and routing["mode"] == MODE_RULES
    assert (routing["task_type"], routing["task_type_from"]) == ("coding", "caller")
    assert set(plan["context_budget"]) == {"total_tokens", "keep_exact", "omit"}
    assert "request" in plan["context_budget"]["keep_exact"]


def test_end_run_writes_a_valid_trace_with_the_summed_cost(opt: ACOOptimizer) -> None:
    plan = opt.start_run("Fix the flaky login test", task_type="coding")
    opt.record_call(
        tier=3,
        cost=0.10,
        input_tokens=1000,
        output_tokens=200,
        action="plan",
        logprobs=[-0.1, -0.5],
        output_text="patch ...",
    )
    opt.record_tool_call("run_tests", success=False, cost=0.02, latency_ms=1500.0)
    opt.record_call(
        tier=4,
        cost=0.30,
        escalated_from=3,
        input_tokens=1200,
        cached_input_tokens=800,
        output_tokens=250,
    )
    opt.record_tool_call("run_tests", success=True, cost=0.02)
    opt.record_verification(True, tier=2, cost=0.005, input_tokens=300, output_tokens=5)
    trace = opt.end_run(success=True)
    assert trace["trace_id"] == plan["trace_id"]
    assert trace["total_cost"] == pytest.approx(0.10 + 0.02 + 0.30 + 0.02 + 0.005)
    assert trace["predicted_tier"] == plan["routing"]["tier"]
    assert (trace["final_outcome"], trace["task_success"]) == ("completed", True)
    assert [s["step_num"] for s in trace["steps"]] == [1, 2, 3]
    assert trace["steps"][0]["model_call"]["mean_logprob"] == pytest.approx(-0.3)
    assert trace["steps"][2]["verifier_called"] and trace["steps"][2]["verifier_passed"]
    assert _logged(opt) == [trace]
    tables = read_traces(opt.trace_log.path)  # the lab reads it back: the loop closes
    assert tables.runs.height == 1 and not tables.warnings
    row = tables.runs.row(0, named=True)
    assert row["escalated"] and row["n_tool_calls"] == 2 and row["n_verifier_calls"] == 1


@pytest.mark.parametrize(
    ("request_text", "task_type", "expected"),
    [
        ("Fix the flaky login test", "coding", ("coding", "caller")),
        ("Fix the bug in the login code", None, ("coding", "rule_cues")),
        ("zqx vbnm wert", None, (None, "none")),
    ],
)
def test_the_trace_says_where_its_task_type_came_from(
    opt: ACOOptimizer, request_text: str, task_type: str | None, expected: tuple
) -> None:
    opt.start_run(request_text, task_type=task_type)
    trace = opt.end_run(success=True)
    assert (trace["task_type"], trace["metadata"]["task_type_from"]) == expected
    assert _logged(opt) == [trace]


@pytest.mark.parametrize(
    ("success", "outcome", "expected"),
    [
        (False, None, ("failed", False)),
        (False, "completed", ("completed", False)),
        (None, None, ("completed", None)),
        (False, "aborted", ("aborted", False)),
        (False, "budget_exceeded", ("budget_exceeded", False)),
    ],
)
def test_end_run_outcomes(
    opt: ACOOptimizer, success: bool | None, outcome: str | None, expected: tuple
) -> None:
    opt.start_run("hello")
    trace = opt.end_run(success, outcome)
    assert (trace["final_outcome"], trace["task_success"]) == expected


def test_misuse_is_explained(opt: ACOOptimizer) -> None:
    with pytest.raises(ACOError, match="no run in progress"):
        opt.end_run(True)
    with pytest.raises(ACOError, match="no run in progress"):
        opt.record_call(tier=1, cost=0.0)
    opt.start_run("hello")
    with pytest.raises(ACOError, match=r"model_call\.tier: expected an int 1\.\.5, got 7"):
        opt.record_call(tier=7, cost=0.1)
    with pytest.raises(ACOError, match=r"model_call\.cost"):
        opt.record_call(tier=1, cost=-1.0)
    with pytest.raises(ACOError, match="cost without tier"):
        opt.record_verification(True, cost=0.1)
    with pytest.raises(ACOError, match="final_outcome"):
        opt.end_run(True, "done")
    run = opt.current_run()
    opt.end_run(True)
    with pytest.raises(ACOError, match="already ended"):
        run.end(True)


def test_a_second_start_run_drops_the_first_with_a_warning(opt: ACOOptimizer, caplog) -> None:
    first = opt.start_run("first")
    with caplog.at_level(logging.WARNING, logger="aco.optimizer"):
        opt.start_run("second")
    assert first["trace_id"] in caplog.text
    assert opt.end_run(True)["request"] == "second"


def test_cascade_counts_escalations_against_max_retries(tmp_path: Path) -> None:
    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path), max_retries=2))
    opt.start_run("Explain the bug")
    shaky = [-3.0] * 5
    decisions = [opt.cascade_step("Explain the bug", t, shaky, "maybe") for t in (1, 2, 3)]
    assert [d.escalated for d in decisions] == [True, True, False]
    assert "max_retries 2" in decisions[2].reason
    assert opt.end_run(False)["metadata"]["escalations"] == 2
    # Outside a run nothing is counted.
    assert all(opt.cascade_step("x", 1, shaky, "maybe").escalated for _ in range(3))


def test_cascade_on_a_trivial_question_accepts_a_short_answer(opt: ACOOptimizer) -> None:
    decision = opt.cascade_step("What is 2+2?", 1, [-0.01, -0.02], "4")
    assert not decision.escalated and "very_short" not in decision.reason


def test_check_doom_uses_the_runs_stalled_steps(opt: ACOOptimizer) -> None:
    opt.start_run("Fix the build")
    assert not opt.check_doom(2.6).doomed
    for _ in range(2):
        opt.record_call(tier=3, cost=0.1)
        opt.record_tool_call("compile", success=False)
    assert opt.current_run().steps_without_progress == 2
    assert opt.check_doom(2.6).doomed  # half the budget and stalling
    assert not opt.check_doom(2.6, steps_without_progress=0).doomed
    opt.record_tool_call("compile", success=True)  # joins the last step: it progressed
    assert opt.current_run().steps_without_progress == 0


def test_gate_defaults_to_the_runs_task_type(opt: ACOOptimizer) -> None:
    assert opt.gate_tool("web_search").allow
    opt.start_run("What is the capital of France?")
    assert not opt.gate_tool("web_search").allow
    assert opt.gate_tool("web_search", task_type="research").allow


def test_should_verify(opt: ACOOptimizer) -> None:
    assert opt.should_verify("high", 0.99).verify
    assert not opt.should_verify("low", 0.9).verify


def test_run_handle_as_context_manager(opt: ACOOptimizer) -> None:
    with pytest.raises(RuntimeError), opt.begin("Fix it") as run:
        run.record_call(tier=2, cost=0.01)
        raise RuntimeError("agent crashed")
    with opt.begin("What is 2+2?") as run2:
        run2.record_call(tier=1, cost=0.0)
    outcomes = [(t["final_outcome"], t["task_success"]) for t in _logged(opt)]
    assert outcomes == [("failed", False), ("completed", None)]


def test_threads_sharing_one_optimizer_never_mix_runs(opt: ACOOptimizer) -> None:
    n_threads, runs_each = 12, 10
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def agent(k: int) -> None:
        try:
            barrier.wait()
            for i in range(runs_each):
                opt.start_run(f"request {k}-{i}")
                for _ in range(k + 1):  # a different spend per thread
                    opt.record_call(tier=2, cost=0.01 * (k + 1))
                trace = opt.end_run(success=i % 2 == 0)
                assert trace["request"] == f"request {k}-{i}"
                assert len(trace["steps"]) == k + 1
                assert trace["total_cost"] == pytest.approx(0.01 * (k + 1) ** 2)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    logged = _logged(opt)
    assert len(logged) == n_threads * runs_each
    for trace in logged:
        k = int(trace["request"].split()[1].split("-")[0])
        assert trace["total_cost"] == pytest.approx(0.01 * (k + 1) ** 2)


def test_one_run_handle_records_from_many_threads(opt: ACOOptimizer) -> None:
    run = opt.begin("Research three vendors")
    run.record_call(tier=3, cost=0.05)
    threads = [
        threading.Thread(target=run.record_tool_call, args=(f"fetch_{i}", True, 0.001))
        for i in range(50)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trace = run.end(True)
    assert len(trace["steps"][0]["tool_calls"]) == 50
    assert trace["total_cost"] == pytest.approx(0.05 + 50 * 0.001)


def test_asyncio_tasks_each_have_their_own_current_run(opt: ACOOptimizer) -> None:
    async def agent(k: int) -> dict:
        opt.start_run(f"task {k}")
        await asyncio.sleep(0)  # let the other tasks start their runs
        opt.record_call(tier=1, cost=float(k))
        await asyncio.sleep(0)
        return opt.end_run(True)

    async def main() -> list[dict]:
        return await asyncio.gather(*(agent(k) for k in range(8)))

    for k, trace in enumerate(asyncio.run(main())):
        assert trace["request"] == f"task {k}" and trace["total_cost"] == float(k)


def test_two_optimizers_in_one_thread_keep_separate_runs(tmp_path: Path) -> None:
    a = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path / "a")))
    b = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path / "b")))
    a.start_run("for a")
    b.start_run("for b")
    assert a.end_run(True)["request"] == "for a"
    assert b.end_run(True)["request"] == "for b"


def test_config_from_a_yaml_path(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"runtime:\n  trace_dir: {tmp_path / 'tr'}\ntask_floors:\n  coding: 5\n")
    opt = ACOOptimizer(str(path))
    assert opt.route("Fix the bug", task_type="coding").tier == 5
    assert opt.mode == MODE_RULES


def test_trace_log_failure_is_an_aco_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    opt = ACOOptimizer(ACOConfig(trace_dir=str(blocker)))
    opt.start_run("hello")
    with pytest.raises(ACOError, match="cannot append the trace"):
        opt.end_run(True)
    assert not opt.current_run().ended  # the caller may retry after fixing trace_dir


# -- bundle mode -------------------------------------------------------------------------------
def _rewrite(bundle: Path, out_dir: Path, checked: bool = True, **changes) -> Path:
    """A copy of a trained bundle with some payload keys changed, written as a new bundle
    (past the writer's checks when not `checked`)."""
    from aco.bundle import load_bundle
    from aco_lab.train.bundle_writer import write_bundle
    from tests.bundle_files import write_unchecked

    payload = {**load_bundle(bundle), **changes}
    return write_bundle(payload, out_dir).path if checked else write_unchecked(payload, out_dir)


def test_bundle_mode_routes_like_the_router(trained_bundle: Path, tmp_path: Path) -> None:
    from aco.router import Router

    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)), bundle=trained_bundle)
    router = Router.load(trained_bundle, opt.config)
    assert opt.mode == "bundle"
    for request in ("Fix the auth bug in production", "What is 2+2?"):
        plan = opt.start_run(request)
        expected = router.decide(request)
        assert plan["routing"]["mode"] == "bundle"
        assert (plan["routing"]["tier"], plan["routing"]["task_type"]) == (
            expected.tier,
            expected.task_type,
        )
        assert plan["routing"]["confidence"] == pytest.approx(expected.confidence)
        trace = opt.end_run(True)
        assert trace["metadata"]["router_mode"] == "bundle"
    assert read_traces(opt.trace_log.path).runs.height == 2


def test_config_router_model_path_selects_bundle_mode(trained_bundle: Path, tmp_path: Path) -> None:
    opt = ACOOptimizer(ACOConfig(router_model_path=str(trained_bundle), trace_dir=str(tmp_path)))
    assert opt.route("Fix the auth bug in production").mode == "bundle"
    assert opt.controls.mode("gate") == "rules"  # a bundle without controls: rule controls


def test_bundle_controls_are_used_when_present(trained_bundle: Path, tmp_path: Path) -> None:
    from tests.aco.test_controls import LEARNED, TOOL

    gate = {
        **LEARNED["gate"],
        "tools": {"*/web_search": {**TOOL, "allow": False, "enforcement": "enforced"}},
    }
    path = _rewrite(
        trained_bundle,
        tmp_path / "models",
        controls={"gate": gate, "doom": LEARNED["doom"], "verify": LEARNED["verify"]},
    )
    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)), bundle=path)
    blocked = opt.gate_tool("web_search", task_type="research")  # the rules would allow it
    assert (blocked.allow, blocked.mode) == (False, "bundle")
    assert opt.should_verify("high", 0.5).mode == "rules"  # high risk: always verified
    assert opt.should_verify("low", 0.5).verify  # learned: P(false DONE) 0.5 >= 0.3
    run = opt.begin("Fix the flaky build")
    for _ in range(3):  # three steps whose only tool call failed: stalled and spending
        run.record_call(tier=3, cost=0.8)
        run.record_tool_call("compile", success=False)
    assert run.failures == 3 and run.steps_without_progress == 3
    doom = run.check_doom()
    assert doom.mode == "bundle" and doom.doomed and "3 failed steps" in doom.reason
    assert not run.gate_tool("web_search").allow
    run.end(False, "aborted")


def test_tampered_bundle_is_refused(trained_bundle: Path, tmp_path: Path) -> None:
    import shutil

    from aco.bundle import manifest_path
    from aco.errors import BundleError

    copy = tmp_path / trained_bundle.name
    shutil.copy(trained_bundle, copy)
    shutil.copy(manifest_path(trained_bundle), manifest_path(copy))
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="tampered"):
        ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)), bundle=copy)


def test_bundle_of_another_feature_version_is_refused(trained_bundle: Path, tmp_path: Path) -> None:
    from aco.bundle import load_bundle
    from aco.errors import FeatureVersionError
    from aco.features import FEATURE_VERSION

    spec = dict(load_bundle(trained_bundle)["feature_spec"], version=FEATURE_VERSION + 1)
    path = _rewrite(
        trained_bundle,
        tmp_path / "models",
        checked=False,
        feature_version=FEATURE_VERSION + 1,
        feature_spec=spec,
    )
    with pytest.raises(FeatureVersionError):
        ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)), bundle=path)


def test_a_pickle_with_code_never_runs(tmp_path: Path) -> None:
    import hashlib
    import pickle

    from aco.bundle import MANIFEST_KIND, manifest_path
    from aco.errors import BundleError

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "router_bundle_v1.pkl"
    data = pickle.dumps({"bundle_format_version": 1, "model": Exploit()})
    path.write_bytes(data)
    manifest_path(path).write_text(
        json.dumps(
            {  # a manifest that truthfully matches the bytes
                "kind": MANIFEST_KIND,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "feature_version": None,
            }
        )
    )
    with pytest.raises(BundleError, match="unsafe"):
        ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)), bundle=path)
    assert not marker.exists()


def test_aco_lab_validate_accepts_the_trace_dir(opt: ACOOptimizer) -> None:
    from click.testing import CliRunner

    from aco_lab.cli import main as lab_main

    for i in range(3):
        opt.start_run(f"Fix bug {i}", task_type="coding")
        opt.record_call(tier=3, cost=0.02, input_tokens=500, output_tokens=100)
        opt.record_tool_call("run_tests", success=bool(i % 2), cost=0.001)
        opt.end_run(bool(i % 2))
    result = CliRunner().invoke(lab_main, ["validate", opt.config.trace_dir])
    assert result.exit_code == 0, result.output
    assert "read=3 accepted=3 rejected=0" in result.output
    assert "warning" not in result.output


def test_stats_over_the_local_log(opt: ACOOptimizer) -> None:
    assert opt.stats()["runs"] == 0
    for success in (True, True, False):
        opt.start_run("What is 2+2?")
        opt.record_call(tier=1, cost=0.5)
        opt.end_run(success)
    metrics = opt.stats()
    assert (metrics["runs"], metrics["successes"]) == (3, 2)
    assert metrics["cost_per_success"] == pytest.approx(1.5 / 2)


def test_bundle_mode_is_consistent_across_threads(trained_bundle: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)), bundle=trained_bundle)
    requests = [
        f"Fix bug #{i} in the {w} service" for i in range(40) for w in ("billing", "search")
    ]
    alone = [opt.route(r) for r in requests]

    def run_one(request: str) -> tuple[dict, dict]:
        plan = opt.start_run(request)
        opt.record_call(tier=plan["routing"]["tier"], cost=0.01)
        return plan, opt.end_run(True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run_one, requests))
    for decision, (plan, trace) in zip(alone, results, strict=True):
        assert (plan["routing"]["tier"], plan["routing"]["task_type"]) == (
            decision.tier,
            decision.task_type,
        )
        assert trace["trace_id"] == plan["trace_id"] and trace["predicted_tier"] == decision.tier
    assert read_traces(opt.trace_log.path).runs.height == len(requests)


def test_learned_cascade_through_a_run(trained_bundle: Path, tmp_path: Path) -> None:
    from tests.aco.test_controls import CASCADE

    path = _rewrite(trained_bundle, tmp_path / "models", controls={"cascade": CASCADE})
    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)), bundle=path)
    request, shaky = "Which city is the capital of France?", [-3.0] * 5
    opt.start_run(request)
    first = opt.cascade_step(request, 1, shaky, "Paris")
    agreed = opt.cascade_step(request, 2, shaky, "Paris")  # the run keeps the first answer
    assert (first.escalated, first.final_tier, first.mode) == (True, 2, "bundle")
    assert (agreed.escalated, agreed.final_tier) == (False, 2)
    opt.cascade_step(request, 1, shaky, "Paris")  # a new cascade: the answers start over
    split = opt.cascade_step(request, 2, shaky, "Lyon")
    assert (split.escalated, split.model_id) == (True, "specialist-expert")
    assert opt.end_run(True)["metadata"]["escalations"] == 3
    # Without a run there is no history: a lone second answer is scored on its own.
    lone = opt.cascade_step(request, 2, shaky, "Paris")
    assert lone.mode == "bundle" and lone.escalated


def test_a_learned_context_budget_defers_reading_the_cues(
    trained_bundle: Path, tmp_path: Path
) -> None:
    from aco.rules import read_cues
    from tests.aco.test_learned_controls import context_spec

    path = _rewrite(
        trained_bundle, tmp_path / "models", controls={"context_budget": context_spec()}
    )
    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)), bundle=path)
    eager = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)), bundle=trained_bundle)
    request = "Fix the failing payment test in billing_v2.py; it is urgent"
    for task_type in (None, "coding"):
        routing, budget, cues = opt.plan(request, task_type)
        assert cues is None and budget.total_tokens > 0  # the learned budget needs no cues
        run = opt.begin(request, task_type)
        # Read on first use: the same cues start_run reads when the rule budget needs them.
        assert run.cues == eager.begin(request, task_type).cues
        assert run.cues.task_type == routing.task_type
        assert run.cues.has_code == read_cues(request).has_code
