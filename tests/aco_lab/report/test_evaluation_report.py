"""The evaluation outputs: metrics.json against an independent replay, same input -> same bytes."""

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from aco_lab.evaluate.evaluation import evaluate_bundle
from aco_lab.evaluate.results import EvalOptions
from aco_lab.report.document import (
    Callout,
    Document,
    Figure,
    Section,
    build_table,
    dumps_json,
    figure_names,
    fmt_pct,
    fmt_usd,
    render_markdown,
)
from aco_lab.report.evaluation_report import (
    DECISIONS_FILE,
    METRICS_FILE,
    REPORT_HTML,
    REPORT_MD,
    SWEEP_FILE,
    write_evaluation,
)
from aco_lab.report.plots import plot_bars
from aco_lab.report.verdict import build_verdict
from tests.aco_lab.eval_case import eval_case, read_jsonl  # noqa: F401 - the fixture

OUTPUTS = (METRICS_FILE, DECISIONS_FILE, SWEEP_FILE, REPORT_MD, REPORT_HTML)


@pytest.fixture(scope="module")
def written(eval_case, tmp_path_factory):  # noqa: ANN001, ANN201, F811
    ev = evaluate_bundle(eval_case.bundle, [eval_case.eval], options=EvalOptions(compare_models=()))
    out = tmp_path_factory.mktemp("evaluation")
    write_evaluation(ev, out, command="aco-lab evaluate ...")
    return ev, out


def test_metrics_equal_an_independent_replay_of_the_decisions(written, eval_case) -> None:  # noqa: F811
    _, out = written
    metrics = json.loads((out / METRICS_FILE).read_text())
    # Raw traces, plain json: the run of each (request, model), and which requests have a
    # configured tier with no known outcome (those are not evaluated).
    runs, unknown = {}, set()
    for trace in read_jsonl(eval_case.eval):
        calls = [s["model_call"] for s in trace["steps"] if s.get("model_call")]
        model = max(calls, key=lambda c: c["tier"])["model_id"] if calls else None
        runs[(trace["request_id"], model)] = trace
        if trace["task_success"] is None:
            unknown.add(trace["request_id"])
    decisions = read_jsonl(out / DECISIONS_FILE)
    assert {d["request_id"] for d in decisions}.isdisjoint(unknown)
    successes = cost = 0.0
    for d in decisions:
        trace = runs[(d["request_id"], d["model_id"])]
        successes += bool(trace["task_success"])
        cost += trace["total_cost"]
    router = metrics["router"]
    assert router["n_requests"] == len(decisions)
    assert router["success_rate"] == pytest.approx(successes / len(decisions))
    assert router["cost_per_request"] == pytest.approx(cost / len(decisions))
    assert router["cost_per_success"] == pytest.approx(cost / successes)
    mix = defaultdict(float)
    for d in decisions:
        mix[str(d["tier"])] += 1 / len(decisions)
    assert {k: v for k, v in router["tier_mix"].items() if v} == pytest.approx(dict(mix))


def test_metrics_json_holds_the_router_and_every_baseline(written) -> None:
    ev, out = written
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["mode"] == "replay"
    assert set(metrics["router"]) >= {"success_rate", "cost_per_request", "cost_per_success"}
    assert set(metrics["baselines"]) == {b.name for b in ev.baselines}
    assert metrics["quality_goal"]["operating_point"]["met"] in (True, False)
    assert metrics["curves"][ev.curves[0].name]["aiq"] > 0
    assert metrics["data"]["overlap"] == {"requests": 0, "allowed": False}


def test_sweep_csv_has_a_row_per_threshold_point(written) -> None:
    ev, out = written
    with open(out / SWEEP_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(ev.sweep)
    assert float(rows[0]["success_rate"]) == pytest.approx(ev.sweep[0].result.success_rate)
    shares = [float(rows[0][f"share_tier{t}"]) for t in ev.tiers]
    assert sum(shares) == pytest.approx(1.0)


def test_the_html_report_is_self_contained_and_shows_every_plot(written) -> None:
    _, out = written
    page = (out / REPORT_HTML).read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert not re.search(r"<script[^>]*\ssrc=", page)  # every script inline
    names = re.findall(r'data-plot="([^"]+)"', page)
    assert names == ["tier_mix", "reliability"]
    assert page.count('src="data:image/png;base64,') == len(names)
    assert re.findall(r'data-chart="([^"]+)"', page) == ["cost_success"]
    md = (out / REPORT_MD).read_text()
    assert "| policy |" in md and "router (v1)" in md


def _verdict_md(ev, tmp_path: Path) -> tuple[str, dict]:  # noqa: ANN001
    write_evaluation(ev, tmp_path)
    md = (tmp_path / REPORT_MD).read_text()
    metrics = json.loads((tmp_path / METRICS_FILE).read_text())
    assert md.split("\n## ")[1].startswith("Verdict\n")  # the first section
    return md.split("\n## ")[1], metrics["quality_goal"]


def test_the_verdict_says_what_the_router_saves_when_it_wins(eval_case, tmp_path) -> None:  # noqa: F811
    ev = evaluate_bundle(
        eval_case.bundle, [eval_case.eval], options=EvalOptions(compare_models=(), target=0.95)
    )
    verdict, goal = _verdict_md(ev, tmp_path)
    curve, point = goal["curve_cost_fraction_at_target"], goal["operating_point"]
    assert curve < goal["best_baseline_cost_fraction_at_target"]  # the router wins here
    top_cps = ev.reference.strong_cost / ev.reference.strong_success
    assert (
        f"At 95% of the top tier's success, this router costs {fmt_pct(curve)} of always "
        f"using the top tier (tier 5), {fmt_pct(1 - curve)} less: about "
        f"{fmt_usd(curve / 0.95 * top_cps)} per successful task against "
        f"{fmt_usd(top_cps)}."
    ) in verdict
    assert not point["below_target"]
    assert (
        f"operating point keeps {fmt_pct(point['success_fraction_of_top'])} of the top "
        f"tier's success at {fmt_pct(point['cost_fraction_of_top'])} of its cost: "
        f"{fmt_usd(ev.router.cost_per_success)} per successful task"
    ) in verdict
    assert f"the {goal['best_baseline']}, needs" not in verdict
    assert "comes closest" in verdict and "cheaper than this router" not in verdict


def test_the_verdict_names_a_baseline_that_wins(eval_case, tmp_path) -> None:  # noqa: F811
    ev = evaluate_bundle(
        eval_case.bundle, [eval_case.eval], options=EvalOptions(compare_models=(), target=0.9)
    )
    _, goal = _verdict_md(ev, tmp_path)
    curve = goal["curve_cost_fraction_at_target"]
    # Whichever wins on this case, the verdict follows the figures: a table 3 points cheaper
    # than the router's curve is named, with what to do.
    cheaper = {
        **goal,
        "best_baseline": "best tier per task type",
        "best_baseline_cost_fraction_at_target": curve - 0.03,
    }
    verdict = build_verdict(ev, cheaper)
    assert not verdict.router_wins
    assert verdict.headline.startswith(
        f"The best tier per task type reaches 90% of the top tier's success at "
        f"{fmt_pct(curve - 0.03)} of the top tier's cost, cheaper than this router's "
        f"{fmt_pct(curve)}: ship that table"
    )
    dearer = {**cheaper, "best_baseline_cost_fraction_at_target": curve + 0.03}
    assert build_verdict(ev, dearer).router_wins
    assert build_verdict(ev, dearer).headline.startswith(
        f"At 90% of the top tier's success, this router costs {fmt_pct(curve)}"
    )


def test_an_operating_point_below_the_target_is_not_called_a_saving(eval_case, tmp_path) -> None:  # noqa: F811
    ev = evaluate_bundle(
        eval_case.bundle, [eval_case.eval], options=EvalOptions(compare_models=(), target=1.05)
    )
    verdict, goal = _verdict_md(ev, tmp_path)
    assert goal["operating_point"]["below_target"]
    point = verdict[verdict.index("The bundle's operating point") :].split("\n")[0]
    assert "keeps only" in point and "is not a saving at the target quality" in point
    assert "less)" not in point and "per successful task" not in point


def test_same_input_gives_the_same_bytes(written, eval_case, tmp_path) -> None:  # noqa: F811
    _, first = written
    again = evaluate_bundle(
        eval_case.bundle, [eval_case.eval], options=EvalOptions(compare_models=())
    )
    write_evaluation(again, tmp_path, command="aco-lab evaluate ...")
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (first / name).read_bytes(), name


def test_an_allowed_overlap_is_flagged_first_thing_in_the_report(eval_case, tmp_path) -> None:  # noqa: F811
    ev = evaluate_bundle(
        eval_case.bundle,
        [eval_case.train],
        options=EvalOptions(compare_models=(), allow_overlap=True),
    )
    write_evaluation(ev, tmp_path)
    page = (tmp_path / REPORT_HTML).read_text()
    first_callout = page.index('<div class="callout warning">')
    assert "used to train this bundle" in page[first_callout : first_callout + 300]
    assert first_callout < page.index("<h2>")
    metrics = json.loads((tmp_path / METRICS_FILE).read_text())
    assert metrics["data"]["overlap"] == {"requests": 160, "allowed": True}


def test_markdown_escapes_pipes_and_bolds_highlighted_rows() -> None:
    doc = Document(
        "T",
        (
            Section(
                "S",
                (
                    "para",
                    build_table(("a", "b"), [("x|y", "1"), ("z", "2")], highlight=[1]),
                    Figure("f", plot_bars(["a"], [1.0], "t", "y"), "alt text"),
                    Callout("careful", "warning"),
                ),
            ),
        ),
    )
    md = render_markdown(doc)
    assert "| x\\|y | 1 |" in md
    assert "| **z** | **2** |" in md
    assert "> **WARNING:** careful" in md
    assert "Figure `f`: alt text" in md
    assert figure_names(doc) == ["f"]


def test_json_has_no_nan_and_sorted_keys() -> None:
    text = dumps_json({"b": float("nan"), "a": (1, float("inf"))})
    assert json.loads(text) == {"a": [1, None], "b": None}
    assert text.index('"a"') < text.index('"b"')


def test_written_files_are_readable_by_others(written) -> None:
    _, out = written
    assert Path(out / METRICS_FILE).stat().st_mode & 0o044
