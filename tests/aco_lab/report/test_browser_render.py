"""Both HTML pages as a real browser shows them: headless Chromium loads each page, every plot
must be decoded with non-uniform pixels, and a screenshot of the page must not be one colour.

Skips when no Chromium is installed, unless ACO_REQUIRE_BROWSER=1 (CI), where it fails.
"""

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
from aco_lab.report.evaluation_report import write_evaluation
from tests.aco_lab.eval_case import eval_case  # noqa: F401 - the fixture

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-component-update", "--disable-sync")
TIMEOUT_S = 180
# Injected into a copy of the page: after load, decode every plot on a canvas and write what
# was seen into the DOM, which --dump-dom then prints.
PROBE = """<script>
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
  pre.id = "plot-probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


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


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.parametrize("page", ["evaluation", "dashboard"])
def test_every_plot_is_decoded_and_not_blank(browser, pages, page, tmp_path) -> None:
    html = pages[page].read_text(encoding="utf-8")
    expected = re.findall(r'data-plot="([^"]+)"', html)
    assert expected, "the page has no plot"
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = _run(browser, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom",
                probe.as_uri())
    found = re.search(r'<pre id="plot-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output; chromium said: {done.stderr[-2000:]}"
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [s["name"] for s in seen] == expected
    for s in seen:
        assert s["complete"] and s["width"] > 100 and s["height"] > 100, s
        assert "error" not in s, s
        assert s["colours"] > 2, f"{s['name']} is blank"


@pytest.mark.parametrize("page", ["evaluation", "dashboard"])
def test_the_page_screenshot_is_not_a_single_colour(browser, pages, page, tmp_path) -> None:
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    done = _run(browser, tmp_path / "profile", "--window-size=1200,2400",
                f"--screenshot={shot}", pages[page].as_uri())
    assert shot.is_file(), f"no screenshot; chromium said: {done.stderr[-2000:]}"
    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] > 1000 and pixels.shape[1] > 1000
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
