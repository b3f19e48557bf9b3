"""The monitoring dashboard: aco_lab.report.stats numbers sliced by day, tier, task type and model;
the usage cells behind its charts; the page it writes and the metrics.json beside it."""

import dataclasses
import json
import re

import polars as pl
import pytest

from aco.config import ACOConfig, AlertThresholds
from aco.monitoring import TierTotals, Totals, build_metrics
from aco_lab.report import dashboard_data as D
from aco_lab.report import usage as U
from aco_lab.report.charts import DATA_ID
from aco_lab.report.dashboard import (
    build_callouts,
    build_dashboard,
    build_dashboard_document,
    build_dashboard_metrics,
    cost_alert_line,
    report_traces,
)
from aco_lab.report.document import chart_names, figure_names, render_html, render_markdown
from aco_lab.report.stats import compute_stats
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces import schema as S
from aco_lab.traces.reading import TraceTables, read_traces

DAILY_CHARTS = ("spend_by_day", "outcomes_by_day", "rates_by_day")
CHARTS = (
    "overview",
    "spend_breakdown",
    "savings",
    "tokens",
    "latency",
    "success_by_group",
    *DAILY_CHARTS,
)
SECTIONS = (
    "Overview",
    "Spend",
    "Savings against the top tier (tier 5)",
    "Tokens",
    "Latency",
    "Outcomes",
    "Monitoring rates by day",
    "Alerts",
    "By model",
    "By tier",
    "By task type",
    "Data",
)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):  # noqa: ANN001, ANN201
    path = tmp_path_factory.mktemp("dash") / "logs.jsonl"
    write_simulated_traces(path, 150, seed=11, mode="logs")
    return path


@pytest.fixture(scope="module")
def tables(logs):  # noqa: ANN001, ANN201
    return read_traces(logs)


@pytest.fixture(scope="module")
def runs(tables):  # noqa: ANN001, ANN201
    return tables.runs


@pytest.fixture(scope="module")
def written(logs, tmp_path_factory):  # noqa: ANN001, ANN201
    out = tmp_path_factory.mktemp("written")
    d, paths = report_traces([logs], out)
    return d, {p.name: p for p in paths}


def with_runs(tables: TraceTables, runs: pl.DataFrame) -> TraceTables:
    """The tables with the runs replaced (and the steps of dropped runs dropped)."""
    steps = tables.steps.filter(pl.col(S.TRACE_ID).is_in(runs[S.TRACE_ID].implode()))
    return dataclasses.replace(tables, runs=runs, steps=steps)


def page_datasets(page: str) -> dict[str, pl.DataFrame]:
    """The datasets the page carries, as frames, without their zero rows."""
    found = re.search(f'<script type="application/json" id="{DATA_ID}">(.*?)</script>', page, re.S)
    data = json.loads(found.group(1).replace("<\\/", "</"))
    return {
        name: pl.DataFrame(columns).filter(pl.col(D.ZERO) == 0).drop(D.ZERO)
        for name, columns in data.items()
    }


def test_overall_and_per_day_come_from_aco_lab_stats(tables, runs) -> None:
    d = build_dashboard(tables, ACOConfig())
    assert d.overall == compute_stats(runs, ACOConfig())
    days = [day for day, _ in d.by_day]
    assert days == sorted(days) and len(days) > 1
    assert sum(m.runs for _, m in d.by_day) + d.n_without_timestamp == runs.height
    first_day = runs.filter(pl.col(S.TIMESTAMP).dt.strftime("%Y-%m-%d") == days[0])
    assert d.by_day[0][1] == compute_stats(first_day, ACOConfig())
    model, metrics = d.by_model[0]
    assert metrics == compute_stats(runs.filter(pl.col(S.MODEL_ID) == model), ACOConfig())


STRICT = ACOConfig(alerts=AlertThresholds(min_success_rate=0.99))


@pytest.fixture(scope="module")
def strict_page(tables):  # noqa: ANN001, ANN201
    doc = build_dashboard_document(build_dashboard(tables, STRICT))
    return doc, render_html(doc)


def test_every_section_and_chart_is_on_the_page(strict_page) -> None:
    doc, page = strict_page
    assert [s.title for s in doc.sections] == list(SECTIONS)
    assert sorted(chart_names(doc)) == sorted(CHARTS)
    assert figure_names(doc) == []  # every chart is interactive
    for name in CHARTS:
        assert page.count(f'data-chart="{name}"') == 1
        spec = re.search(f'id="chart-spec-{name}">(.*?)</script>', page, re.S).group(1)
        assert {p["name"] for p in json.loads(spec)["params"]} >= {"f_task_type", "f_model"}
    assert '<img class="plot"' not in page and "window.vegaEmbed=" in page  # Vega is inline


def test_the_filters_offer_the_values_of_the_data(runs, strict_page) -> None:
    _, page = strict_page
    for signal, column in (
        ("f_task_type", S.TASK_TYPE),
        ("f_tier", S.TIER),
        ("f_model", S.MODEL_ID),
    ):
        box = re.search(f'<select data-signal="{signal}">(.*?)</select>', page).group(1)
        options = re.findall(r'<option value="([^"]*)"', box)
        assert options[0] == "(all)"
        assert set(options[1:]) == {str(v) for v in runs[column].unique().to_list()}
    box = re.search('<select data-signal="f_from">(.*?)</select>', page).group(1)
    days = re.findall(r'<option value="(\d{4}-\d\d-\d\d)"', box)
    assert days == sorted(set(runs[S.TIMESTAMP].dt.strftime("%Y-%m-%d").drop_nulls()))


def test_a_crossed_alert_line_is_called_out_and_highlighted(tables, strict_page) -> None:
    _, page = strict_page
    assert "ALERT low_success_rate" in page
    assert '<tr class="highlight"><td>success rate</td>' in page
    relaxed = build_dashboard(tables, ACOConfig(alerts=AlertThresholds(min_success_rate=0.0)))
    assert not any("low_success_rate" in c.text for c in build_callouts(relaxed))


def test_alerts_of_the_days_are_one_row_per_alert(tables, strict_page) -> None:
    _, page = strict_page
    d = build_dashboard(tables, STRICT)
    n_days = sum(1 for _, m in d.by_day if "low_success_rate" in {a.name for a in m.alerts})
    assert f"{n_days} of {len(d.by_day)} days (latest" in page
    day_rows = re.findall(
        r"<td>(?:\d+ of \d+ days \(latest[^<]*|day [\d-]+)</td><td>(\w+)</td>", page
    )
    assert sorted(day_rows) == sorted(set(day_rows))  # one row per alert, not one per day


def test_cost_alert_line_is_the_ratio_times_the_top_tiers_cost_per_success(tables, runs) -> None:
    d = build_dashboard(tables, ACOConfig())
    top = runs.filter(pl.col(S.TIER) == runs[S.TIER].max())
    labelled = top.filter(pl.col(S.TASK_SUCCESS).is_not_null())  # docs/metrics.md
    expected = 2.0 * labelled[S.TOTAL_COST].sum() / labelled[S.TASK_SUCCESS].sum()
    assert cost_alert_line(d) == pytest.approx(expected)


def test_runs_without_timestamps_get_no_day_charts(tables, runs) -> None:
    undated = runs.with_columns(pl.lit(None, dtype=runs.schema[S.TIMESTAMP]).alias(S.TIMESTAMP))
    d = build_dashboard(with_runs(tables, undated), ACOConfig())
    assert d.by_day == () and d.n_without_timestamp == runs.height
    doc = build_dashboard_document(d)
    assert not set(DAILY_CHARTS) & set(chart_names(doc))
    page = render_html(doc)
    assert "No run has a timestamp" in page and "utcyearmonthdate" not in page
    assert 'data-signal="f_from"' not in page


def test_a_rate_zero_on_every_day_is_said_not_drawn(tables, runs) -> None:
    calm = with_runs(tables, runs.with_columns(pl.lit(False).alias(S.ESCALATED)))
    page = render_html(build_dashboard_document(build_dashboard(calm, ACOConfig())))
    assert "escalation rate is 0 on every day" in page
    assert (
        '"escalation_rate'
        not in page.split('id="chart-spec-rates_by_day">')[1].split("</script>")[0]
    )
    busy = with_runs(tables, runs.with_columns((pl.col(S.N_STEPS) > 3).alias(S.ESCALATED)))
    page = render_html(build_dashboard_document(build_dashboard(busy, ACOConfig())))
    assert "escalation rate is 0" not in page and "escalation_rate_a" in page


def test_the_page_carries_the_cells_metrics_json_sums(written) -> None:
    d, paths = written
    data = page_datasets(paths["report.html"].read_text())
    metrics = json.loads(paths["metrics.json"].read_text())
    calls, cells = data[D.CALLS], data[D.RUNS]
    assert calls[U.SPEND].sum() == pytest.approx(metrics["overall"]["total_cost"])
    assert cells["runs"].sum() == metrics["overall"]["runs"]
    usage = metrics["usage"]
    by_day = calls.group_by(U.DAY).agg(pl.col(U.SPEND, U.TOP_SPEND).sum())
    for day, spend, top in by_day.drop_nulls(U.DAY).iter_rows():
        assert usage["by_day"][day]["spend"] == pytest.approx(spend)
        assert usage["by_day"][day]["top_spend"] == pytest.approx(top)
    assert usage["overall"]["latency_calls"] == sum(map(sum, calls[U.LAT_COUNTS].to_list()))
    assert metrics["overall"]["labelled_share"] == pytest.approx(
        cells["known"].sum() / cells["runs"].sum()
    )
    assert metrics["overall"]["cost_per_success"] == pytest.approx(
        cells[U.KNOWN_COST].sum() / cells["successes"].sum()
    )


def totals_of(cells: pl.DataFrame) -> Totals:
    """The monitoring Totals of run cells: the figures the page's charts compute."""
    names = {"cost": S.TOTAL_COST}  # TierTotals' cost is the cells' total_cost
    tiers = []
    for tier, part in sorted(cells.group_by(U.TIER), key=lambda kv: int(kv[0][0])):
        tiers.append(
            TierTotals(
                tier=int(tier[0]),
                **{
                    f.name: part[names.get(f.name, f.name)].sum()
                    for f in dataclasses.fields(TierTotals)
                    if f.name != "tier"
                },
            )
        )
    return Totals(
        **{f.name: cells[f.name].sum() for f in dataclasses.fields(Totals) if f.name != "tiers"},
        tiers=tuple(tiers),
    )


def test_the_pages_run_cells_give_the_shared_metrics_of_every_day(written) -> None:
    d, paths = written
    cells = page_datasets(paths["report.html"].read_text())[D.RUNS]
    for day, metrics in d.by_day:
        day_cells = cells.filter(pl.col(U.DAY) == day)
        got = build_metrics(totals_of(day_cells), d.config.alerts)
        for field in dataclasses.fields(got):  # float sums in another order: approx
            value = getattr(got, field.name)
            expected = getattr(metrics, field.name)
            if field.name == "alerts":
                assert [a.name for a in value] == [a.name for a in expected]
            elif isinstance(value, float):
                assert value == pytest.approx(expected, rel=1e-12)
            else:
                assert value == expected, field.name


def test_report_traces_writes_the_same_bytes_twice(logs, written, tmp_path) -> None:
    d, paths = written
    report_traces([logs], tmp_path / "b")
    for name, path in paths.items():
        assert path.read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    metrics = json.loads(paths["metrics.json"].read_text())
    assert metrics["overall"]["runs"] == d.overall.runs
    assert metrics["overall"]["success_rate"] == pytest.approx(d.overall.success_rate)
    assert set(metrics["by_tier"]) == set(d.by_tier.groups)
    assert set(metrics["by_model"]) == {k for k, _ in d.by_model}
    assert metrics["top_tier"]["tier"] == 5


def test_markdown_names_the_charts_and_leaves_out_the_filters(strict_page) -> None:
    doc, _ = strict_page
    md = render_markdown(doc)
    assert "*Chart `spend_by_day`:" in md and "<select" not in md and "(all)" not in md
    assert "| model | runs | labelled |" in md


def test_rejected_lines_are_counted_and_called_out(tables) -> None:
    d = build_dashboard(tables, ACOConfig(), files=["x.jsonl"], n_rejected_lines=3)
    assert build_dashboard_metrics(d)["rejected_lines"] == 3
    assert any("3 trace lines were rejected" in c.text for c in build_callouts(d))


def test_runtime_traces_get_a_task_type_source_section(tables, runs, tmp_path) -> None:
    from aco.optimizer import ACOOptimizer

    assert build_dashboard(tables, ACOConfig()).by_task_type_from is None  # simulated: no source
    no_metadata = dataclasses.replace(tables, runs=runs.drop(S.METADATA))
    assert build_dashboard(no_metadata, ACOConfig()).by_task_type_from is None
    opt = ACOOptimizer(ACOConfig(trace_dir=str(tmp_path)))
    for request, task_type in [
        ("Fix the bug in the login code", None),
        ("hello", None),
        ("Summarize it", "research"),
        ("Refactor the parser", "coding"),
    ]:
        opt.start_run(request, task_type=task_type)
        opt.record_call(tier=2, cost=0.01)
        opt.end_run(success=True)
    runtime = read_traces(opt.trace_log.path)
    d = build_dashboard(runtime, ACOConfig())
    assert d.by_task_type_from == compute_stats(runtime.runs, ACOConfig(), by="task_type_from")
    assert {k: m.runs for k, m in d.by_task_type_from.groups.items()} == {
        "caller": 2,
        "none": 1,
        "rule_cues": 1,
    }
    assert build_dashboard_metrics(d)["by_task_type_from"]["caller"]["runs"] == 2
    assert "by_task_type_from" not in build_dashboard_metrics(build_dashboard(tables, ACOConfig()))
    doc = build_dashboard_document(d)
    assert "By task type source" in [s.title for s in doc.sections]


def test_models_outside_the_tier_table_are_named_beside_the_savings(tables) -> None:
    page = render_html(build_dashboard_document(build_dashboard(tables, ACOConfig())))
    assert "Models not in the config" not in page  # the simulator runs the config's models
    renamed = ACOConfig(
        tiers=tuple(dataclasses.replace(t, model_id=f"other-{t.tier}") for t in ACOConfig().tiers)
    )
    page = render_html(build_dashboard_document(build_dashboard(tables, renamed)))
    assert "Models not in the config&#x27;s tier table: claude-opus-4-5" in page
