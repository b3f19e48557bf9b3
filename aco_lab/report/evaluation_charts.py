"""The evaluation's cost-against-success chart: a Vega-Lite spec (aco_lab/report/charts.py).

What a reader needs stands out: the router's threshold-sweep curve and its operating point, the
best baseline's curve, the single tiers as labelled points and the target success as a line.
Every other policy is drawn faint; the legend (one entry per role, not per policy) highlights a
role when clicked, and every mark has a tooltip with its figures. The same spec renders to a
PNG (`build_cost_success_figure`) for notebooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aco_lab.report.charts import Chart, build_chart
from aco_lab.report.document import Figure
from aco_lab.train.curves import build_frontier, frontier_success

if TYPE_CHECKING:
    import altair as alt

    from aco_lab.evaluate.results import Evaluation

DATASET = "cost_success"
# The roles, in legend order, with colour, line width and opacity before any click.
ROUTER, POINT, RECOMMENDED, BEST, SECOND, SECOND_POINT, TIER, OTHER_CURVE, OTHER = (
    "this router (threshold sweep)",
    "this router's operating point",
    "recommended operating point",
    "best baseline",
    "the other router (threshold sweep)",
    "the other router's operating point",
    "single tier",
    "other baselines (curves)",
    "other baselines (points)",
)
STYLE = {
    ROUTER: ("#1f77b4", 3.0, 1.0),
    POINT: ("#08306b", 1.0, 1.0),
    RECOMMENDED: ("#2ca02c", 1.0, 1.0),
    BEST: ("#ff7f0e", 2.5, 1.0),
    SECOND: ("#ff7f0e", 2.5, 1.0),
    SECOND_POINT: ("#a63603", 1.0, 1.0),
    TIER: ("#444444", 1.0, 1.0),
    OTHER_CURVE: ("#9e9e9e", 1.2, 0.45),
    OTHER: ("#9e9e9e", 1.0, 0.5),
}
CURVES = (ROUTER, BEST, SECOND, OTHER_CURVE)
SHAPES = {
    POINT: "diamond",
    SECOND_POINT: "diamond",
    RECOMMENDED: "circle",
    TIER: "square",
    OTHER: "triangle-up",
}
LABELLED = (POINT, SECOND_POINT, RECOMMENDED, TIER)
Row = tuple[str, str, float, float]  # role, policy, cost per request, success rate
GRID = 80  # points per curve: its linear-cost segments drawn on a log cost axis


def dense_frontier(
    costs: Sequence[float], successes: Sequence[float]
) -> tuple[list[float], list[float]]:
    """A curve's frontier with enough points to draw its segments on a log cost axis."""
    fc, fs = build_frontier(costs, successes)
    if fc.size < 2:
        return fc.tolist(), fs.tolist()
    grid = np.geomspace(fc[0], fc[-1], GRID) if fc[0] > 0 else np.linspace(fc[0], fc[-1], GRID)
    grid = np.unique(np.concatenate((grid, fc)))
    return grid.tolist(), frontier_success(fc, fs, grid).tolist()


def _curve_rows(
    role: str, name: str, costs: Sequence[float], successes: Sequence[float]
) -> list[Row]:
    return [(role, name, c, s) for c, s in zip(*dense_frontier(costs, successes), strict=True)]


def _baseline_rows(ev: Evaluation, tiers_only: bool = False) -> list[Row]:
    return [
        (TIER if r.name.startswith("tier ") else OTHER, r.name, r.cost_per_request, r.success_rate)
        for r in ev.baselines
        if r.success_rate is not None
        and r.cost_per_request is not None
        and (r.name.startswith("tier ") or not tiers_only)
    ]


def build_cost_success_data(ev: Evaluation, best: str | None) -> dict[str, list[Any]]:
    """The chart's rows as columns: every curve's frontier and every policy's point."""
    rows: list[Row] = []
    for i, curve in enumerate(ev.curves):
        role = ROUTER if i == 0 else f"{BEST}: {curve.name}" if curve.name == best else OTHER_CURVE
        rows += _curve_rows(role, curve.name, curve.costs, curve.successes)
    rows += _baseline_rows(ev)
    rows.append((POINT, "operating point", ev.router.cost_per_request, ev.router.success_rate))
    rec = ev.recommended
    if rec is not None:
        rows.append((RECOMMENDED, "recommended", rec.cost_per_request, rec.success_rate))
    return _columns(rows, ev)


def build_comparison_data(first: Evaluation, second: Evaluation) -> dict[str, list[Any]]:
    """Two routers on the same requests: both sweeps and operating points, the tiers and
    random mixing of tiers for scale."""
    rows: list[Row] = []
    for ev, curve_role, point_role in ((first, ROUTER, POINT), (second, SECOND, SECOND_POINT)):
        curve = ev.curves[0]
        rows += _curve_rows(curve_role, curve.name, curve.costs, curve.successes)
        rows.append(
            (
                point_role,
                f"{ev.bundle.name} operating point",
                ev.router.cost_per_request,
                ev.router.success_rate,
            )
        )
    mix = next(c for c in second.curves if c.name.startswith("random mixing"))
    rows += _curve_rows(OTHER_CURVE, mix.name, mix.costs, mix.successes)
    return _columns(rows + _baseline_rows(second, tiers_only=True), second)


def _columns(rows: Sequence[Row], ev: Evaluation) -> dict[str, list[Any]]:
    ref = ev.reference
    return {
        "role": [r[0] for r in rows],
        "policy": [r[1] for r in rows],
        "label": [r[1] if r[0] in LABELLED else "" for r in rows],
        "cost": [r[2] for r in rows],
        "success": [r[3] for r in rows],
        "cost_share": [r[2] / ref.strong_cost if ref.strong_cost else None for r in rows],
        "success_share": [r[3] / ref.strong_success if ref.strong_success else None for r in rows],
    }


def cost_success_chart(
    ev: Evaluation,
    data: dict[str, list[Any]],
    target: float,
    inline: bool = False,
    title: str = "Cost per request against success rate",
) -> alt.LayerChart:
    """The layered Altair chart over the page's named dataset (inline: the rows in the spec),
    with the target success of `ev` as a line."""
    import altair as alt

    # The legend names the best baseline ("best baseline: random mixing of tiers").
    kind = {r: r.split(":")[0] for r in set(data["role"])}
    roles = sorted(kind, key=lambda r: list(STYLE).index(kind[r]))
    style = {r: STYLE[kind[r]] for r in roles}
    pick = alt.selection_point(fields=["role"], bind="legend", name="pick")
    colour = alt.Color(
        "role:N",
        sort=roles,
        scale=alt.Scale(domain=roles, range=[style[r][0] for r in roles]),
        legend=alt.Legend(
            title="click an entry to highlight it",
            orient="bottom",
            columns=3,
            symbolLimit=0,
            labelLimit=320,
        ),
    )
    faded = (
        alt.when(pick)
        .then(
            alt.Opacity(
                "role:N",
                legend=None,
                scale=alt.Scale(domain=roles, range=[style[r][2] for r in roles]),
            )
        )
        .otherwise(alt.value(0.08))
    )
    positive = all(c > 0 for c in data["cost"])
    x = alt.X(
        "cost:Q",
        title="cost per request (USD, log scale)",
        scale=alt.Scale(type="log" if positive else "symlog"),
        axis=alt.Axis(format="$.2~g", values=_ticks(data["cost"])),
    )
    y = alt.Y(
        "success:Q", title="success rate", axis=alt.Axis(format=".0%"), scale=alt.Scale(zero=False)
    )
    tooltip = [
        alt.Tooltip("policy:N"),
        alt.Tooltip("cost:Q", format="$.3~g", title="cost per request"),
        alt.Tooltip("success:Q", format=".1%", title="success"),
        alt.Tooltip("cost_share:Q", format=".1%", title="of the top tier's cost"),
        alt.Tooltip("success_share:Q", format=".1%", title="of the top tier's success"),
    ]
    base = alt.Chart(
        alt.Data(values=[dict(zip(data, v, strict=True)) for v in zip(*data.values(), strict=True)])
        if inline
        else alt.NamedData(name=DATASET)
    )
    lines = (
        base.transform_filter(
            alt.FieldOneOfPredicate(field="role", oneOf=[r for r in roles if kind[r] in CURVES])
        )
        .mark_line()
        .encode(
            x=x,
            y=y,
            color=colour,
            opacity=faded,
            detail="policy:N",
            strokeWidth=alt.StrokeWidth(
                "role:N",
                legend=None,
                scale=alt.Scale(domain=roles, range=[style[r][1] for r in roles]),
            ),
            strokeDash=alt.condition(
                alt.datum.role == OTHER_CURVE, alt.value([5, 3]), alt.value([1, 0])
            ),
            tooltip=tooltip,
        )
        .add_params(pick)
    )
    points = (
        base.transform_filter(alt.FieldOneOfPredicate(field="role", oneOf=list(SHAPES)))
        .mark_point(filled=True, size=90)
        .encode(
            x=x,
            y=y,
            color=colour,
            opacity=faded,
            tooltip=tooltip,
            shape=alt.Shape(
                "role:N",
                legend=None,
                scale=alt.Scale(domain=list(SHAPES), range=list(SHAPES.values())),
            ),
        )
    )
    labels = (
        base.transform_filter("datum.label != ''")
        .mark_text(align="left", dx=7, dy=-7, fontSize=11)
        .encode(x=x, y=y, text="label:N", opacity=faded)
    )
    goal = target * ev.reference.strong_success
    line = alt.Chart(
        alt.Data(values=[{"y": goal, "text": f"target: {target:.0%} of the top tier's success"}])
    )
    rule = line.mark_rule(color="#d62728", strokeDash=[4, 4]).encode(y="y:Q")
    note = line.mark_text(
        align="left", baseline="bottom", x=4, dy=-3, color="#d62728", fontSize=11
    ).encode(y="y:Q", text="text:N")
    return alt.layer(lines, rule, note, points, labels).properties(
        width=760, height=420, title=title
    )


def _ticks(costs: Sequence[float]) -> list[float]:
    """1, 2 and 5 times the powers of ten across the costs: a log axis a person can read."""
    positive = [c for c in costs if c > 0]
    if not positive:
        return [0.0]
    lo, hi = np.floor(np.log10(min(positive))), np.ceil(np.log10(max(positive)))
    ticks = [m * 10.0**e for e in range(int(lo), int(hi) + 1) for m in (1, 2, 5)]
    return [float(f"{t:.3g}") for t in ticks if min(positive) / 2 <= t <= max(positive) * 2]


def cost_success_chart_block(ev: Evaluation, best: str | None) -> tuple[Chart, dict]:
    """The report's chart and its dataset (the document's datasets hold it once)."""
    data = build_cost_success_data(ev, best)
    chart = build_chart(
        "cost_success",
        cost_success_chart(ev, data, ev.options.target),
        "cost per request against success rate: the router's curve and operating point, the "
        "best baseline's curve, the single tiers and the other baselines",
        caption="Click a legend entry to highlight that role; hover a point or a line for its "
        "figures. Faint: the other baselines. Red dashes: the target success.",
    )
    return chart, {DATASET: data}


def comparison_chart_block(first: Evaluation, second: Evaluation) -> tuple[Chart, dict]:
    """The comparison page's chart of two routers on the same requests, and its dataset."""
    data = build_comparison_data(first, second)
    chart = build_chart(
        "cost_success",
        cost_success_chart(
            first, data, first.options.target, title="Two routers on the same requests"
        ),
        "both routers' threshold sweeps and operating points, single tiers and random mixing",
        caption=f"Blue: {first.bundle.name}; orange: {second.bundle.name}. Click a legend entry "
        "to highlight it; hover for the figures.",
    )
    return chart, {DATASET: data}


def build_cost_success_figure(ev: Evaluation, best: str | None = None) -> Figure:
    """The same chart as a PNG (for notebooks and other places without JavaScript)."""
    import vl_convert

    data = build_cost_success_data(ev, best)
    spec = cost_success_chart(ev, data, ev.options.target, inline=True).to_dict()
    png = vl_convert.vegalite_to_png(spec, scale=1.5)
    return Figure("cost_success", png, "cost per request against success rate")
