"""Interactive charts in a self-contained page: Vega-Lite specs drawn by Vega in the browser.

A `Chart` is a Vega-Lite spec (built with Altair) that reads its data by name from the page's
datasets, which are written once, as columns, however many charts read them. `Controls` are
select boxes that set a chart parameter of that name in every chart declaring it: the page's
filters. The Vega, Vega-Lite and Vega-Embed JavaScript is inlined from the vl-convert package,
so the page makes no request when it is viewed. A chart that fails to draw says so in the page
(`data-chart-state="error"`); a drawn one carries `data-chart-state="drawn"`.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # altair takes ~0.7 s to import: only the pages that draw charts load it
    import altair as alt

DATA_ID = "aco-chart-data"
ALL = "(all)"  # the option of a filter that keeps every value

CSS = """
.controls { position: sticky; top: 0; z-index: 10; background: #fafafa; border: 1px solid #ddd;
            padding: .5rem .8rem; margin: .8rem 0; font-size: .85rem; display: flex;
            flex-wrap: wrap; gap: .4rem 1.1rem; align-items: center; }
.controls label { white-space: nowrap; }
.controls select { font-size: .85rem; margin-left: .3rem; max-width: 16rem; }
.controls .note { color: #555; flex-basis: 100%; }
figure.chart { margin: 1rem 0; }
figure.chart .vega { width: 100%; }
.chart-error { font-weight: 600; color: #a00; }
"""

# Turns the columns into rows for each chart (Vega may annotate rows, so no chart shares them),
# draws every chart, and hands every select's value to each chart declaring that parameter.
_GLUE = """
(function () {
  "use strict";
  var columns = JSON.parse(document.getElementById("%(data_id)s").textContent);
  function rows(name) {
    var cols = columns[name], keys = Object.keys(cols), out = [];
    var n = keys.length ? cols[keys[0]].length : 0;
    for (var i = 0; i < n; i++) {
      var row = {};
      for (var k = 0; k < keys.length; k++) { row[keys[k]] = cols[keys[k]][i]; }
      out.push(row);
    }
    return out;
  }
  function choices() {
    var values = {};
    document.querySelectorAll("select[data-signal]").forEach(function (box) {
      values[box.getAttribute("data-signal")] = box.value;
    });
    return values;
  }
  var drawn = [];
  function apply(entry, values) {
    entry.params.forEach(function (name) {
      if (name in values) { entry.view.signal(name, values[name]); }
    });
    return entry.view.runAsync();
  }
  function fail(el, error) {
    el.setAttribute("data-chart-state", "error");
    var box = document.createElement("div");
    box.className = "chart-error";
    box.textContent = "This chart could not be drawn: " + error;
    el.appendChild(box);
  }
  // Vega reports a failing dataflow (a transform's error) through its logger, not by rejecting.
  function logger(el) {
    var level = 1;
    return {
      level: function (value) {
        if (value === undefined) { return level; }
        level = value;
        return this;
      },
      error: function () { fail(el, Array.prototype.join.call(arguments, " ")); return this; },
      warn: function () { return this; },
      info: function () { return this; },
      debug: function () { return this; }
    };
  }
  document.querySelectorAll("div[data-chart]").forEach(function (el) {
    var spec = JSON.parse(document.getElementById(el.getAttribute("data-spec")).textContent);
    spec.datasets = {};
    Object.keys(columns).forEach(function (name) { spec.datasets[name] = rows(name); });
    var params = (spec.params || []).map(function (p) { return p.name; });
    var options = {actions: false, renderer: "svg", mode: "vega-lite", logger: logger(el)};
    vegaEmbed(el, spec, options).then(function (result) {
      var entry = {view: result.view, params: params};
      drawn.push(entry);
      return apply(entry, choices());
    }).then(function () {
      if (!el.hasAttribute("data-chart-state")) { el.setAttribute("data-chart-state", "drawn"); }
    }).catch(function (error) { fail(el, error); });
  });
  document.querySelectorAll("select[data-signal]").forEach(function (box) {
    box.addEventListener("change", function () {
      var values = choices();
      drawn.forEach(function (entry) { apply(entry, values); });
    });
  });
})();
"""


@dataclass(frozen=True, slots=True)
class Chart:
    """An interactive chart: a Vega-Lite spec whose data are the page's named datasets."""

    name: str  # stable identifier, e.g. "spend_by_day"
    spec: Mapping[str, Any]  # Vega-Lite JSON (alt.Chart(...).to_dict())
    alt: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Select:
    """A select box that sets the chart parameter `signal` (the first option is the default)."""

    signal: str
    label: str
    options: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Controls:
    """The page's filters: select boxes every chart follows."""

    selects: tuple[Select, ...]
    note: str = ""


def build_chart(
    name: str,
    chart: alt.TopLevelMixin,
    alt_text: str,
    caption: str = "",
    params: Sequence[str] = (),
) -> Chart:
    """A Chart from an Altair chart (its spec checked against the Vega-Lite schema), with a
    top-level parameter (initially ALL) for each name in `params`: what the Controls set."""
    spec = chart.to_dict()
    spec.pop("$schema", None)  # a URL the page never needs; Vega-Embed does not fetch it
    # Added to the spec, not with Altair's add_params, which copies every subchart (~1 s).
    spec["params"] = [*spec.get("params", ()), *({"name": p, "value": ALL} for p in params)]
    return Chart(name, spec, alt_text, caption)


def render_chart(chart: Chart) -> str:
    """The chart's container and its spec (a JSON script the page's glue reads)."""
    spec_id = f"chart-spec-{_esc(chart.name)}"
    caption = f"<figcaption>{_esc(chart.caption)}</figcaption>" if chart.caption else ""
    return (
        f'<figure class="chart"><div class="vega" data-chart="{_esc(chart.name)}" '
        f'data-spec="{spec_id}" role="img" aria-label="{_esc(chart.alt)}"></div>'
        f'<script type="application/json" id="{spec_id}">{script_json(chart.spec)}</script>'
        f"{caption}</figure>"
    )


def render_controls(controls: Controls) -> str:
    """The filter bar."""
    boxes = []
    for select in controls.selects:
        options = "".join(f'<option value="{_esc(o)}">{_esc(o)}</option>' for o in select.options)
        boxes.append(
            f'<label>{_esc(select.label)}<select data-signal="{_esc(select.signal)}">'
            f"{options}</select></label>"
        )
    note = f'<span class="note">{_esc(controls.note)}</span>' if controls.note else ""
    return f'<div class="controls">{"".join(boxes)}{note}</div>'


def render_scripts(datasets: Mapping[str, Mapping[str, Sequence[Any]]]) -> str:
    """The data, the inlined Vega libraries and the glue: what a page with charts ends with."""
    return (
        f'<script type="application/json" id="{DATA_ID}">{script_json(datasets)}</script>\n'
        f"<script>{vega_javascript()}</script>\n"
        f"<script>{_GLUE % {'data_id': DATA_ID}}</script>"
    )


@functools.cache
def vega_javascript() -> str:
    """Vega, Vega-Lite (the version Altair writes) and Vega-Embed as one script.

    vl-convert bundles them; the first call in a process takes a few seconds.
    """
    import altair as alt
    import vl_convert

    version = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]  # "v6.4.1" -> "6.4"
    return vl_convert.javascript_bundle(vl_version=version)


def script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no `</` can end it early), keys sorted."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/")


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)
