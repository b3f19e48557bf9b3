"""`aco-lab evaluate`, `compare` and `report`: what a router would have saved, and monitoring."""

import json
from pathlib import Path

import click

from aco.bundle import DEFAULT_MODELS_DIR
from aco.monitoring import format_metrics
from aco.progress import stage
from aco_lab.cli.command_line import command_line
from aco_lab.cli.options import on_error_option
from aco_lab.evaluate.results import (
    COMPARE_MODELS,
    DEFAULT_TARGET,
    DEFAULT_VERIFIER_ERROR,
    EvalOptions,
)

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="config.yaml with the tier table (default: the bundle's own).",
)
_OVERLAP = click.option(
    "--allow-overlap",
    is_flag=True,
    help="Evaluate even on requests the bundle trained on (flagged in the report).",
)
_VERIFIER = click.option(
    "--verifier-error",
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_VERIFIER_ERROR,
    show_default=True,
    help="Error rate of the static cascade baseline's verifier.",
)
_MODELS = click.option(
    "--compare-models",
    default=",".join(COMPARE_MODELS),
    show_default=True,
    help="Routers trained on the same data as baselines (comma list; '' none).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print metrics.json on stdout.")
_MODELS_DIR = click.option(
    "--models-dir",
    type=click.Path(path_type=Path),
    default=Path(DEFAULT_MODELS_DIR),
    show_default=True,
    help="Where --bundle vN and latest are looked up.",
)


def _options(allow_overlap: bool, verifier_error: float, compare_models: str) -> EvalOptions:
    from aco_lab.train.estimators import MODELS

    models = tuple(m.strip() for m in compare_models.split(",") if m.strip())
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)}: expected models from {', '.join(MODELS)}",
            param_hint="--compare-models",
        )
    return EvalOptions(
        allow_overlap=allow_overlap,
        verifier_error=verifier_error,
        target=DEFAULT_TARGET,
        compare_models=models,
    )


@click.command("evaluate")
@click.option(
    "--bundle",
    "bundle_ref",
    required=True,
    help="Bundle: a version like v11 or 'latest' (in --models-dir), or a .pkl path.",
)
@click.argument("paths", nargs=-1)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("evaluation"),
    show_default=True,
    help="Folder for metrics.json, decisions.jsonl, sweep.csv, report.md and report.html.",
)
@click.option(
    "--policy",
    type=click.Choice(("router", "cascade")),
    default="router",
    show_default=True,
    help="router: the bundle's tier router (and its learned controls); cascade: the bundle's "
    "learned cascade, every call paid, each decisions.jsonl line listing the tiers called.",
)
@_CONFIG
@_OVERLAP
@_VERIFIER
@_MODELS
@_MODELS_DIR
@on_error_option
@_JSON
@click.pass_context
def evaluate_command(
    ctx: click.Context,
    bundle_ref: str,
    paths: tuple[str, ...],
    out_dir: Path,
    policy: str,
    config_path: Path | None,
    allow_overlap: bool,
    verifier_error: float,
    compare_models: str,
    models_dir: Path,
    on_error: str,
    as_json: bool,
) -> None:
    """Measure a bundle on held-out traces against baselines.

    Replayed on counterfactual traces, estimated on ordinary logs. PATHS: traces the bundle did
    not train on (default: the held-out traces it recorded). Writes the report to --out.
    """
    from aco_lab.evaluate.evaluation import evaluate_bundle
    from aco_lab.report.evaluation_report import (
        build_evaluation_metrics,
        format_evaluation_table,
        format_headline,
        write_evaluation,
    )

    if policy == "cascade":
        _evaluate_cascade(
            ctx,
            bundle_ref,
            paths,
            out_dir,
            config_path,
            allow_overlap,
            models_dir,
            on_error,
            as_json,
        )
        return
    options = _options(allow_overlap, verifier_error, compare_models)
    stage(f"evaluating {bundle_ref} on {len(paths) or 'its held-out'} path(s)")
    ev = evaluate_bundle(bundle_ref, list(paths), config_path, options, models_dir, on_error)
    command = command_line(ctx)
    stage("writing the report")
    written = write_evaluation(ev, out_dir, command)
    for warning in ev.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(build_evaluation_metrics(ev, command), sort_keys=True))
        return
    click.echo(format_evaluation_table(ev), nl=False)
    if ev.recommended is not None:
        click.echo(f"recommended: {ev.recommended.why}")
    click.echo(f"wrote {', '.join(str(p) for p in written.values())}", err=True)
    click.echo(format_headline(ev), nl=False)


def _evaluate_cascade(
    ctx: click.Context,
    bundle_ref: str,
    paths: tuple[str, ...],
    out_dir: Path,
    config_path: Path | None,
    allow_overlap: bool,
    models_dir: Path,
    on_error: str,
    as_json: bool,
) -> None:
    """`evaluate --policy cascade`: replay the bundle's learned cascade and its baselines."""
    from aco_lab.evaluate.bundle_controls import evaluate_bundle_controls
    from aco_lab.report.controls import format_cascade_table, write_cascade_evaluation

    stage(f"evaluating the cascade of {bundle_ref}")
    ev, meta = evaluate_bundle_controls(
        bundle_ref,
        list(paths),
        config_path,
        models_dir,
        only=("cascade",),
        allow_overlap=allow_overlap,
        on_error=on_error,
    )
    written = write_cascade_evaluation(ev, out_dir, command_line(ctx), meta)
    if as_json:
        click.echo(json.dumps(json.loads(written["metrics"].read_text()), sort_keys=True))
        return
    click.echo(format_cascade_table(ev.cascade), nl=False)
    click.echo(f"wrote {', '.join(str(p) for p in written.values())}", err=True)


@click.command("compare")
@click.argument("bundles", nargs=2)
@click.argument("paths", nargs=-1)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("comparison"),
    show_default=True,
    help="Folder for metrics.json, report.md and report.html.",
)
@_CONFIG
@_OVERLAP
@_VERIFIER
@click.option(
    "--compare-models",
    default="",
    show_default=True,
    help="Also train these routers as baselines (comma list; evaluate does by default).",
)
@_MODELS_DIR
@on_error_option
@_JSON
@click.pass_context
def compare_command(
    ctx: click.Context,
    bundles: tuple[str, str],
    paths: tuple[str, ...],
    out_dir: Path,
    config_path: Path | None,
    allow_overlap: bool,
    verifier_error: float,
    compare_models: str,
    models_dir: Path,
    on_error: str,
    as_json: bool,
) -> None:
    """Compare two bundles on the same traces.

    BUNDLES: two versions or paths, then the traces, as in `aco-lab compare v10 v11 eval.jsonl`.
    """
    from aco_lab.report.comparison import compare_bundles, format_comparison, write_comparison

    options = _options(allow_overlap, verifier_error, compare_models)
    comparison = compare_bundles(bundles, list(paths), config_path, options, models_dir, on_error)
    metrics = write_comparison(comparison, out_dir, command_line(ctx))
    if as_json:
        click.echo(json.dumps(metrics, sort_keys=True))
        return
    click.echo(format_comparison(comparison), nl=False)


@click.command("report")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Folder for report.html, report.md and metrics.json.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="config.yaml with the tier table and alert lines (default: the built-in one).",
)
@on_error_option
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json on stdout.")
def report_command(
    paths: tuple[str, ...], out_dir: Path, config_path: Path | None, on_error: str, as_json: bool
) -> None:
    """Write the monitoring dashboard of traces (self-contained HTML).

    Prints the overall metrics and alerts, as `aco-lab stats` does.
    """
    from aco_lab.report.dashboard import report_traces
    from aco_lab.report.evaluation_report import METRICS_FILE

    dashboard, written = report_traces(list(paths), out_dir, config_path, on_error)
    if as_json:
        metrics = next(p for p in written if p.name == METRICS_FILE)
        click.echo(json.dumps(json.loads(metrics.read_text()), sort_keys=True))
    else:
        click.echo(format_metrics(dashboard.overall.to_dict()))
    click.echo(f"wrote {', '.join(str(p) for p in written)}", err=True)


@click.command("holdout")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for train.jsonl.gz and eval.jsonl.gz.",
)
@click.option(
    "--eval-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="Share of the requests held out.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the split (the same seed puts each request on the same side).",
)
@on_error_option
@click.option("--json", "as_json", is_flag=True, help="Print the two paths as one JSON object.")
def holdout_command(
    paths: tuple[str, ...],
    out_dir: Path,
    eval_fraction: float,
    seed: int,
    on_error: str,
    as_json: bool,
) -> None:
    """Split traces by request into train and eval files.

    No request is on both sides. Writes train.jsonl.gz and eval.jsonl.gz (from datasets:
    train/ and eval/ datasets).
    """
    from aco_lab.traces.holdout import split_trace_files

    train, held = split_trace_files(list(paths), out_dir, eval_fraction, seed, on_error)
    if as_json:
        click.echo(json.dumps({"train": str(train), "eval": str(held)}))
    else:
        click.echo(f"train: {train}")
        click.echo(f"eval: {held}")


COMMANDS: list = [evaluate_command, compare_command, report_command, holdout_command]
