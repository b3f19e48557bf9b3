"""Both HTML pages as a real browser shows them, in headless Chromium.

The evaluation page: every plot must be decoded with non-uniform pixels, its cost-success chart
drawn with the router, its operating point and the single tiers, and its verdict on the first
screen (a 1280x800 window). The dashboard: every
interactive chart must be drawn (marks in its SVG, no error, no JavaScript error on the page),
its sections must be there, the headline tiles must show metrics.json's figures, the filters
must change them to the figures of the filtered runs, and a chart by day must show each day's
metric. A screenshot of each page must not be one colour.

Skips when no Chromium is installed, unless ACO_REQUIRE_BROWSER=1 (CI), where it fails.
"""

import datetime as dt
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from aco_lab.evaluate.evaluation import evaluate_bundle
from aco_lab.evaluate.results import EvalOptions
from aco_lab.report.dashboard import report_traces
from aco_lab.report.dashboard_tables import fmt_ms
from aco_lab.report.document import fmt_pct, fmt_usd
from aco_lab.report.evaluation_report import write_evaluation
from tests.aco_lab.eval_case import eval_case  # noqa: F401 - the fixture

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
)
TIMEOUT_S = 180
# Injected into a copy of the page: after load, decode every plot on a canvas and write what
# was seen into the DOM, which --dump-dom then prints.
PLOT_PROBE = """<script>
window.addEventListener("load", function () {
  var out = [];
  document.querySelectorAll("img").forEach(function (img) {
    var r = {name: img.getAttribute("data-plot"), complete: img.complete,
             width: img.naturalWidth, height: img.naturalHeight, colours: 0};
    try {
      var c = document.createElement("canvas");
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      var ctx = c.getContext("2d"); ctx.drawImage(img, 0, 0);
      var d = ctx.getImageData(0, 0, c.width, c.height).data, seen = {};
      for (var i = 0; i < d.length && r.colours < 20; i += 4) {
        var k = d[i] + "," + d[i + 1] + "," + d[i + 2];
        if (!seen[k]) { seen[k] = 1; r.colours++; }
      }
    } catch (e) { r.error = String(e); }
    out.push(r);
  });
  var pre = document.createElement("pre");
  pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""
# First in <head>: every error the page raises, from its first script on.
ERROR_CATCHER = """<script>
window.pageErrors = [];
window.addEventListener("error", function (e) { window.pageErrors.push(String(e.message)); });
window.addEventListener("unhandledrejection", function (e) {
  window.pageErrors.push(String(e.reason)); });
</script>"""
# Last in <body>: once every chart has settled, set the given filters, let the charts redraw,
# then write the charts' states, mark counts and mark labels into the DOM.
CHART_PROBE = """<script>
window.addEventListener("load", function () {
  var filters = %(filters)s;
  var charts = document.querySelectorAll("div[data-chart]");
  function settled() {
    return Array.prototype.every.call(charts, function (el) {
      return el.hasAttribute("data-chart-state"); });
  }
  function report() {
    var out = {errors: window.pageErrors, charts: [],
               titles: Array.prototype.map.call(document.querySelectorAll("h2"),
                                               function (h) { return h.textContent; })};
    charts.forEach(function (el) {
      var items = el.querySelectorAll("g.role-mark > *");
      out.charts.push({name: el.getAttribute("data-chart"),
                       state: el.getAttribute("data-chart-state"), items: items.length,
                       labels: Array.prototype.map.call(items, function (item) {
                         return item.getAttribute("aria-label"); })});
    });
    var pre = document.createElement("pre");
    pre.id = "probe"; pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  function filter() {
    Object.keys(filters).forEach(function (signal) {
      var box = document.querySelector('select[data-signal="' + signal + '"]');
      box.value = filters[signal];
      box.dispatchEvent(new Event("change"));
    });
    setTimeout(report, 1000);
  }
  var tries = 0;
  (function wait() {
    if (!settled() && tries++ < 300) { setTimeout(wait, 100); return; }
    filter();
  })();
});
</script>"""
# Last in <body>: where the verdict sits in the first screen, and the first h2's title.
VERDICT_PROBE = """<script>
window.addEventListener("load", function () {
  var box = document.querySelector(".callout.verdict, .callout.verdict-warn");
  var out = {height: window.innerHeight, first: document.querySelector("h2").textContent,
             text: box ? box.textContent : null,
             bottom: box ? box.getBoundingClientRect().bottom : null};
  var pre = document.createElement("pre");
  pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""
FIRST_SCREEN = "--window-size=1280,800"  # a laptop's browser window
DASHBOARD_CHARTS = (
    "overview",
    "spend_by_day",
    "spend_breakdown",
    "savings",
    "tokens",
    "latency",
    "outcomes_by_day",
    "success_by_group",
    "rates_by_day",
)
DASHBOARD_SECTIONS = (
    "Overview",
    "Spend",
    "Tokens",
    "Latency",
    "Outcomes",
    "Monitoring rates by day",
    "Alerts",
    "By model",
    "By tier",
    "By task type",
)


@pytest.fixture(scope="module")
def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("ACO_REQUIRE_BROWSER") == "1":
        pytest.fail("ACO_REQUIRE_BROWSER=1 but no chromium is installed (apt-get install chromium)")
    pytest.skip("no headless Chromium installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def pages(eval_case, tmp_path_factory) -> dict[str, Path]:  # noqa: F811
    root = tmp_path_factory.mktemp("pages")
    ev = evaluate_bundle(eval_case.bundle, [eval_case.eval], options=EvalOptions(compare_models=()))
    evaluation = write_evaluation(ev, root / "evaluation")["report.html"]
    _, written = report_traces([eval_case.logs], root / "dashboard")
    return {"evaluation": evaluation, "dashboard": next(p for p in written if p.suffix == ".html")}


@pytest.fixture(scope="module")
def metrics(pages) -> dict:
    return json.loads((pages["dashboard"].parent / "metrics.json").read_text())


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)


def _probe(browser: str, page: Path, tmp_path: Path, head: str, tail: str, *flags: str) -> object:
    """What the probe script wrote into the page, as loaded by Chromium."""
    text = page.read_text(encoding="utf-8")
    tmp_path.mkdir(parents=True, exist_ok=True)
    probe = tmp_path / "probe.html"
    before, end, after = text.rpartition("</body>")  # the page's own; a script may quote one
    text = (before + tail + end + after).replace("<head>", "<head>" + head, 1)
    probe.write_text(text, encoding="utf-8")
    done = _run(
        browser,
        tmp_path / "profile",
        *flags,
        "--virtual-time-budget=60000",
        "--dump-dom",
        probe.as_uri(),
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output; chromium said: {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def _charts(browser: str, page: Path, tmp_path: Path, filters: dict | None = None) -> dict:
    seen = _probe(
        browser, page, tmp_path, ERROR_CATCHER, CHART_PROBE % {"filters": json.dumps(filters or {})}
    )
    assert seen["errors"] == []
    return seen


def _tiles(seen: dict) -> list[str]:
    """The overview's headline values, in order ("value: $1.23" marks)."""
    overview = next(c for c in seen["charts"] if c["name"] == "overview")
    return [
        label[len("value: ") :]
        for label in overview["labels"]
        if label and label.startswith("value: ")
    ]


def test_every_plot_is_decoded_and_not_blank(browser, pages, tmp_path) -> None:
    html_text = pages["evaluation"].read_text(encoding="utf-8")
    expected = re.findall(r'data-plot="([^"]+)"', html_text)
    assert expected, "the page has no plot"
    seen = _probe(browser, pages["evaluation"], tmp_path, "", PLOT_PROBE)
    assert [s["name"] for s in seen] == expected
    for s in seen:
        assert s["complete"] and s["width"] > 100 and s["height"] > 100, s
        assert "error" not in s, s
        assert s["colours"] > 2, f"{s['name']} is blank"


def test_the_evaluation_verdict_is_on_the_first_screen(browser, pages, tmp_path) -> None:
    seen = _probe(browser, pages["evaluation"], tmp_path, "", VERDICT_PROBE, FIRST_SCREEN)
    metrics = json.loads((pages["evaluation"].parent / "metrics.json").read_text())
    assert seen["first"] == "Verdict"
    assert fmt_pct(metrics["quality_goal"]["curve_cost_fraction_at_target"]) in seen["text"]
    assert 0 < seen["bottom"] <= seen["height"], seen


def test_the_evaluation_chart_is_drawn_with_every_role(browser, pages, tmp_path) -> None:
    seen = _charts(browser, pages["evaluation"], tmp_path)
    assert [c["name"] for c in seen["charts"]] == ["cost_success"]
    chart = seen["charts"][0]
    assert chart["state"] == "drawn" and chart["items"] > 20
    labels = " ".join(label or "" for label in chart["labels"])
    for tier in range(1, 6):  # the single tiers, as points with a tooltip and a label
        assert f"policy: tier {tier} only; cost per request: $" in labels
        assert f"label: tier {tier} only" in labels
    assert "policy: operating point" in labels and "label: operating point" in labels
    assert "policy: router (v1)" in labels  # the router's curve


def test_every_dashboard_chart_is_drawn_and_every_section_shown(browser, pages, tmp_path) -> None:
    seen = _charts(browser, pages["dashboard"], tmp_path)
    assert [c["name"] for c in seen["charts"]] == list(DASHBOARD_CHARTS)
    for chart in seen["charts"]:
        assert chart["state"] == "drawn", chart["name"]
        assert chart["items"] > 5, f"{chart['name']} drew {chart['items']} marks"
    assert set(DASHBOARD_SECTIONS) <= set(seen["titles"])


def test_the_headline_tiles_show_metrics_json(browser, pages, metrics, tmp_path) -> None:
    tiles = _tiles(_charts(browser, pages["dashboard"], tmp_path))
    spend, runs, labelled, success, cost_per_success, saved, _, latency = tiles
    overall, usage = metrics["overall"], metrics["usage"]["overall"]
    assert spend == fmt_usd(usage["spend"]) == fmt_usd(overall["total_cost"])
    assert runs == f"{overall['runs']:,}"
    assert labelled == fmt_pct(overall["labelled_share"])
    assert success == fmt_pct(overall["success_rate"])
    assert cost_per_success == fmt_usd(overall["cost_per_success"])
    assert saved == fmt_usd(usage["savings"])
    assert latency == f"{fmt_ms(usage['latency_p50_ms'])} / {fmt_ms(usage['latency_p95_ms'])}"


def test_the_filters_change_the_tiles_to_the_filtered_runs(
    browser, pages, metrics, tmp_path
) -> None:
    task_type = max(metrics["by_task_type"], key=lambda k: metrics["by_task_type"][k]["runs"])
    seen = _charts(browser, pages["dashboard"], tmp_path / "type", {"f_task_type": task_type})
    spend, runs, _, success, *_ = _tiles(seen)
    assert runs == f"{metrics['by_task_type'][task_type]['runs']:,}"
    assert success == fmt_pct(metrics["by_task_type"][task_type]["success_rate"])
    assert spend == fmt_usd(metrics["usage"]["by_task_type"][task_type]["spend"])
    days = sorted(metrics["by_day"])[1:3]
    seen = _charts(
        browser, pages["dashboard"], tmp_path / "days", {"f_from": days[0], "f_to": days[-1]}
    )
    assert _tiles(seen)[1] == f"{sum(metrics['by_day'][day]['runs'] for day in days):,}"


def test_a_chart_by_day_shows_each_days_metric(browser, pages, metrics, tmp_path) -> None:
    seen = _charts(browser, pages["dashboard"], tmp_path)
    rates = next(c for c in seen["charts"] if c["name"] == "rates_by_day")
    points = {}
    for label in rates["labels"]:
        found = re.match(
            r"day \(year-month-date\): (\w+ \d+, \d+); verifier_call_rate: "
            r"([\d.]+)%",
            label or "",
        )
        if found:
            day = dt.datetime.strptime(found.group(1), "%b %d, %Y").date().isoformat()
            points[day] = float(found.group(2)) / 100
    assert points.keys() == metrics["by_day"].keys()
    for day, value in points.items():
        assert value == pytest.approx(metrics["by_day"][day]["verifier_call_rate"], abs=1e-8)


@pytest.mark.parametrize("page", ["evaluation", "dashboard"])
def test_the_page_screenshot_is_not_a_single_colour(browser, pages, page, tmp_path) -> None:
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    done = _run(
        browser,
        tmp_path / "profile",
        "--window-size=1200,2400",
        "--virtual-time-budget=30000",
        f"--screenshot={shot}",
        pages[page].as_uri(),
    )
    assert shot.is_file(), f"no screenshot; chromium said: {done.stderr[-2000:]}"
    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] > 1000 and pixels.shape[1] > 1000
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
