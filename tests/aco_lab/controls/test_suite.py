"""All five controls: learned as plain data the runtime accepts, evaluated, reported."""

import json
import pickle

import pytest

from aco import cascade, learned_controls
from aco.config import ACOConfig
from aco_lab.controls.suite import CONTROL_NAMES, evaluate_controls, learn_controls
from aco_lab.report.controls import build_controls_metrics, build_controls_sections
from aco_lab.report.document import Document, render_markdown
from aco_lab.traces.reading import read_traces


@pytest.fixture(scope="module")
def controls(sim) -> dict:  # noqa: ANN001
    return learn_controls(sim.train, ACOConfig(), seed=0)


def test_simulated_traces_teach_all_five_as_plain_data(controls) -> None:
    assert tuple(controls) == CONTROL_NAMES
    cascade.check_spec(controls["cascade"])
    for name in CONTROL_NAMES[1:]:
        learned_controls.check_spec(name, controls[name])
    # Plain values only: the bundle's restricted unpickler refuses every class.
    assert pickle.loads(pickle.dumps(controls)) == controls
    json.dumps(controls)


def test_every_control_has_a_report_section_against_its_rule_version(controls, sim) -> None:
    ev = evaluate_controls(controls, sim.held_out, ACOConfig())
    assert not ev.skipped
    assert ev.cascade[0].name == "learned cascade"
    assert [r.name for r in ev.doom] == ["learned", "rules"]
    assert [r.name for r in ev.verify][:2] == ["learned", "rules"]
    text = render_markdown(Document("controls", build_controls_sections(ev)))
    for title in ("Cascade", "Doom check", "Tool gate", "Verifier budget", "Context budget"):
        assert f"## {title}" in text
    metrics = json.loads(json.dumps(build_controls_metrics(ev)))
    assert metrics["doom"][0]["false_alarm_share"] < 0.58


def test_a_bundle_without_a_control_is_reported_as_such(controls, sim) -> None:
    partial = {k: v for k, v in controls.items() if k != "doom"}
    ev = evaluate_controls(partial, sim.held_out, ACOConfig())
    assert ev.doom == () and "doom" in ev.skipped
    assert "Controls not evaluated" in render_markdown(Document("c", build_controls_sections(ev)))


@pytest.mark.shared_data
def test_real_agent_runs_teach_the_step_controls_but_no_cascade(tau_bench_dir) -> None:
    tables = read_traces([tau_bench_dir / "traces.jsonl.gz"])
    learned = learn_controls(tables, ACOConfig(), seed=0)
    assert "cascade" not in learned  # one model per task: nothing counterfactual
    assert {"doom", "gate", "verify", "context_budget"} <= set(learned)
    assert learned["verify"]["verifier"]["source"].startswith("assumed")


def test_the_same_traces_and_seed_give_the_same_bytes(controls, sim) -> None:
    again = learn_controls(sim.train, ACOConfig(), seed=0)
    assert pickle.dumps(again) == pickle.dumps(controls)  # key order included


def test_the_verifier_cap_is_the_configs_alert_line(sim) -> None:
    from aco.config import AlertThresholds

    config = ACOConfig(alerts=AlertThresholds(max_verifier_call_rate=0.1))
    learned = learn_controls(sim.train, config, seed=0)
    assert learned["verify"]["max_call_rate"] == 0.1
