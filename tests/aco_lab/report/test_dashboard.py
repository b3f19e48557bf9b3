"""The monitoring dashboard: aco_lab.report.stats numbers, sliced by day, tier and task type."""

import json
import re

import polars as pl
import pytest

from aco.config import ACOConfig, AlertThresholds
from aco_lab.report.dashboard import (
    build_callouts,
    build_dashboard,
    build_dashboard_document,
    build_dashboard_metrics,
    cost_alert_line,
    report_traces,
)
from aco_lab.report.document import figure_names, render_html
from aco_lab.report.stats import compute_stats
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces import schema as S
from aco_lab.traces.reading import read_traces


@pytest.fixture(scope="module")
def logs(tmp_path_factory):  # noqa: ANN001, ANN201
    path = tmp_path_factory.mktemp("dash") / "logs.jsonl"
    write_simulated_traces(path, 150, seed=11, mode="logs")
    return path


@pytest.fixture(scope="module")
def runs(logs):  # noqa: ANN001, ANN201
    return read_traces(logs).runs


def test_overall_and_per_day_come_from_aco_lab_stats(runs) -> None:
    d = build_dashboard(runs, ACOConfig())
    assert d.overall == compute_stats(runs, ACOConfig())
    days = [day for day, _ in d.by_day]
    assert days == sorted(days) and len(days) > 1
    assert sum(m.runs for _, m in d.by_day) + d.n_without_timestamp == runs.height
    first_day = runs.filter(pl.col(S.TIMESTAMP).dt.strftime("%Y-%m-%d") == days[0])
    assert d.by_day[0][1] == compute_stats(first_day, ACOConfig())


STRICT = ACOConfig(alerts=AlertThresholds(min_success_rate=0.99))


@pytest.fixture(scope="module")
def strict_page(runs):  # noqa: ANN001, ANN201
    doc = build_dashboard_document(build_dashboard(runs, STRICT))
    return doc, render_html(doc)


def test_every_slice_has_its_plots(strict_page) -> None:
    doc, page = strict_page
    names = figure_names(doc)
    for expected in ("cost_per_success_by_day", "success_rate_by_day", "escalation_rate_by_day",
                     "verifier_call_rate_by_day", "cache_hit_rate_by_day",
                     "false_done_rate_by_day", "success_rate_by_tier",
                     "cost_per_success_by_tier", "success_rate_by_task_type",
                     "cost_per_success_by_task_type"):
        assert expected in names
    assert len(re.findall(r"<img ", page)) == len(names)


def test_a_crossed_alert_line_is_called_out_and_highlighted(runs, strict_page) -> None:
    _, page = strict_page
    assert "ALERT low_success_rate" in page
    assert '<tr class="highlight"><td>success rate</td>' in page
    relaxed = build_dashboard(runs, ACOConfig(alerts=AlertThresholds(min_success_rate=0.0)))
    assert not any("low_success_rate" in c.text for c in build_callouts(relaxed))


def test_cost_alert_line_is_the_ratio_times_the_top_tiers_cost_per_success(runs) -> None:
    d = build_dashboard(runs, ACOConfig())
    top = runs.filter(pl.col(S.TIER) == runs[S.TIER].max())
    expected = 2.0 * top[S.TOTAL_COST].sum() / top[S.TASK_SUCCESS].sum()
    assert cost_alert_line(d) == pytest.approx(expected)


def test_runs_without_timestamps_get_no_day_plots(runs) -> None:
    undated = runs.with_columns(pl.lit(None, dtype=runs.schema[S.TIMESTAMP]).alias(S.TIMESTAMP))
    d = build_dashboard(undated, ACOConfig())
    assert d.by_day == () and d.n_without_timestamp == runs.height
    doc = build_dashboard_document(d)
    assert not any(name.endswith("_by_day") for name in figure_names(doc))
    assert "No run has a timestamp" in render_html(doc)


def test_report_traces_writes_the_same_bytes_twice(logs, tmp_path) -> None:
    d, written = report_traces([logs], tmp_path / "a")
    report_traces([logs], tmp_path / "b")
    for path in written:
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["overall"]["runs"] == d.overall.runs
    assert metrics["overall"]["success_rate"] == pytest.approx(d.overall.success_rate)
    assert set(metrics["by_tier"]) == set(d.by_tier.groups)


def test_rejected_lines_are_counted_and_called_out(runs) -> None:
    d = build_dashboard(runs, ACOConfig(), files=["x.jsonl"], n_rejected_lines=3)
    assert build_dashboard_metrics(d)["rejected_lines"] == 3
    assert any("3 trace lines were rejected" in c.text for c in build_callouts(d))


def test_runtime_traces_get_a_task_type_source_section(runs, tmp_path) -> None:
    from aco.optimizer import ACOOptimizer

    assert build_dashboard(runs, ACOConfig()).by_task_type_from is None  # simulated: no source
    assert build_dashboard(runs.drop(S.METADATA), ACOConfig()).by_task_type_from is None
    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)))
    for request, task_type in [("Fix the bug in the login code", None), ("hello", None),
                               ("Summarize it", "research"), ("Refactor the parser", "coding")]:
        opt.start_run(request, task_type=task_type)
        opt.record_call(tier=2, cost=0.01)
        opt.end_run(success=True)
    runtime_runs = read_traces(opt.trace_log.path).runs
    d = build_dashboard(runtime_runs, ACOConfig())
    assert d.by_task_type_from == compute_stats(runtime_runs, ACOConfig(), by="task_type_from")
    assert {k: m.runs for k, m in d.by_task_type_from.groups.items()} == {
        "caller": 2, "none": 1, "rule_cues": 1}
    assert build_dashboard_metrics(d)["by_task_type_from"]["caller"]["runs"] == 2
    assert "by_task_type_from" not in build_dashboard_metrics(build_dashboard(runs, ACOConfig()))
    names = figure_names(build_dashboard_document(d))
    assert {"success_rate_by_task_type_source", "cost_per_success_by_task_type_source"} <= set(
        names)
