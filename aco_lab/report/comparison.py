"""Two router bundles side by side on the same evaluation traces (`aco-lab compare v10 v11`).

Each bundle is evaluated exactly as `aco-lab evaluate` would (same requests, same replay or
estimate, same overlap rule); the comparison puts their figures in one table and their
threshold curves on one plot, with the single tiers and random mixing for scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aco.errors import DataError
from aco_lab.evaluate.evaluation import evaluate_bundle
from aco_lab.evaluate.results import EvalOptions, Evaluation
from aco_lab.files import write_text
from aco_lab.report.document import (
    Callout,
    Document,
    Section,
    build_table,
    dumps_json,
    fmt_number,
    fmt_pct,
    fmt_usd,
    write_document,
)
from aco_lab.report.evaluation_charts import comparison_chart_block
from aco_lab.report.evaluation_report import (
    METRICS_FILE,
    build_evaluation_metrics,
    format_text_table,
)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two evaluations of different bundles on the same requests."""

    first: Evaluation
    second: Evaluation


def compare_bundles(
    bundles: Sequence[str | Path],
    paths: Sequence[str | Path],
    config_path: str | Path | None,
    options: EvalOptions,
    models_dir: str | Path = "router_models",
    on_error: str = "skip",
) -> Comparison:
    """Evaluate two bundles on the same traces (on_error: bad lines fail, or are skipped)."""
    first, second = (
        evaluate_bundle(b, paths, config_path, options, models_dir, on_error) for b in bundles
    )
    if first.data.n_requests != second.data.n_requests or first.mode != second.mode:
        raise DataError(
            f"{first.bundle.name} and {second.bundle.name} were evaluated on different "
            "requests (their configs differ); pass --config to use one tier table"
        )
    return Comparison(first, second)


ROWS = (
    ("success rate", lambda ev, m: fmt_pct(ev.router.success_rate)),
    (
        "success vs top tier",
        lambda ev, m: fmt_pct(m["quality_goal"]["operating_point"]["success_fraction_of_top"]),
    ),
    ("cost per request", lambda ev, m: fmt_usd(ev.router.cost_per_request)),
    (
        "cost vs top tier",
        lambda ev, m: fmt_pct(m["quality_goal"]["operating_point"]["cost_fraction_of_top"]),
    ),
    ("cost per successful task", lambda ev, m: fmt_usd(ev.router.cost_per_success)),
    ("under-routed", lambda ev, m: fmt_pct(ev.router.under_routing)),
    ("over-routed", lambda ev, m: fmt_pct(ev.router.over_routing)),
    (
        "curve: cost @95% of top success",
        lambda ev, m: fmt_pct(m["quality_goal"]["curve_cost_fraction_at_95"]),
    ),
    ("curve: AIQ", lambda ev, m: fmt_number(m["curves"][ev.curves[0].name]["aiq"])),
    ("curve: APGR", lambda ev, m: fmt_number(m["curves"][ev.curves[0].name]["apgr"])),
    ("calibration: Brier", lambda ev, m: fmt_number(m["calibration"]["brier"])),
    ("calibration: ECE", lambda ev, m: fmt_number(m["calibration"]["ece"])),
    ("figures", lambda ev, m: ev.router.kind),
    ("model", lambda ev, m: ev.bundle.model),
    ("training requests", lambda ev, m: str(ev.bundle.n_training_requests)),
)


def build_comparison_table(c: Comparison) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Columns and rows: one row per figure, one column per bundle."""
    metrics = [build_evaluation_metrics(ev) for ev in (c.first, c.second)]
    columns = ("", c.first.bundle.name, c.second.bundle.name)
    rows = [(label, get(c.first, metrics[0]), get(c.second, metrics[1])) for label, get in ROWS]
    return columns, rows


def format_comparison(c: Comparison) -> str:
    """The comparison table as aligned plain text."""
    return format_text_table(*build_comparison_table(c))


def build_comparison_document(c: Comparison) -> Document:
    """The comparison page: the table and both threshold curves on one plot."""
    columns, rows = build_comparison_table(c)
    warnings = tuple(dict.fromkeys((*c.first.warnings, *c.second.warnings)))
    chart, datasets = comparison_chart_block(c.first, c.second)
    text = (
        f"Both bundles on the same {c.first.data.n_requests} evaluation requests "
        f"({c.first.mode}); per-bundle details: `aco-lab evaluate --bundle NAME`."
    )
    return Document(
        f"Router comparison: {c.first.bundle.name} vs {c.second.bundle.name}",
        (
            Section("Side by side", (text, build_table(columns, rows))),
            Section("Cost against success", (chart,)),
        ),
        tuple(Callout(w, "warning") for w in warnings),
        datasets,
    )


def write_comparison(c: Comparison, out_dir: str | Path, command: str = "") -> dict:
    """Write metrics.json (both evaluations), report.md and report.html; return the metrics."""
    metrics = {
        "format": "aco-comparison",
        "command": command,
        "bundles": [build_evaluation_metrics(ev, command) for ev in (c.first, c.second)],
    }
    write_text(Path(out_dir) / METRICS_FILE, dumps_json(metrics))
    write_document(build_comparison_document(c), out_dir)
    return metrics
