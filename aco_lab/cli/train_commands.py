"""`aco-lab train`: learn a tier router from traces and write a versioned bundle."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from aco.bundle import DEFAULT_MODELS_DIR
from aco.config import load_config
from aco.formatting import format_count, format_share
from aco.policy import CALIBRATION_METHODS
from aco.progress import stage
from aco_lab.cli.command_line import command_line
from aco_lab.cli.engine_options import engine_options, open_trainer
from aco_lab.cli.options import on_error_option
from aco_lab.train.candidates import CANDIDATES
from aco_lab.train.estimators import OBJECTIVES
from aco_lab.train.router import AUTO, TrainOptions, train_router, validation_headline

# Headline figures that are fractions (printed as percentages); the rest are scores.
SHARE_KEYS = ("success_vs_top", "cost_vs_top", "task_type_accuracy", "task_type_accuracy_as_routed")


@click.command("train")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="config.yaml with the tier table (default: the built-in one).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_MODELS_DIR,
    show_default=True,
    help="Folder of versioned bundles; the next router_bundle_vN.pkl is written there.",
)
@click.option(
    "--model",
    type=click.Choice((AUTO, *CANDIDATES)),
    default=AUTO,
    show_default=True,
    help="Router: auto (the candidate with the best cross-validated cost at the floor), "
    "or one of a per-task-type table, logistic regression, nearest neighbours, "
    "LightGBM, the table with a LightGBM residual.",
)
@click.option(
    "--objective",
    type=click.Choice(OBJECTIVES),
    default="success",
    show_default=True,
    help="success: P(success | request, tier); cheapest: cheapest sufficient tier.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the folds and estimators (same traces and seed, same bundle).",
)
@click.option(
    "--success-floor",
    type=click.FloatRange(0.0, 2.0),
    default=0.95,
    show_default=True,
    help="Keep at least this share of the top tier's success (out of fold).",
)
@click.option(
    "--calibration",
    type=click.Choice(CALIBRATION_METHODS),
    default="platt",
    show_default=True,
    help="How predicted success is calibrated (held-out fold).",
)
@click.option(
    "--success-margin",
    type=click.FloatRange(0.0, 5.0),
    default=1.0,
    show_default=True,
    help="Standard errors of its success the operating point keeps above the floor.",
)
@click.option(
    "--allow-shortfall",
    is_flag=True,
    help="Ship a router that cannot keep the floor, its shortfall recorded.",
)
@click.option(
    "--controls/--no-controls",
    default=True,
    show_default=True,
    help="Also learn the run controls (cascade, doom, tool gate, verifier, context).",
)
@on_error_option
@engine_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def train_command(
    paths: tuple[str, ...],
    config_path: Path | None,
    out_dir: Path,
    model: str,
    objective: str,
    seed: int,
    success_floor: float,
    calibration: str,
    success_margin: float,
    allow_shortfall: bool,
    controls: bool,
    on_error: str,
    engine: str,
    scheduler: str | None,
    as_json: bool,
) -> None:
    """Train a tier router on traces and write the next bundle version.

    PATHS: files, globs, directories or datasets. Prints the bundle's path and version, which
    candidate won the cross-validation and why, and its operating point's figures; progress
    and warnings on stderr.
    """
    options = TrainOptions(
        model=model,
        objective=objective,
        seed=seed,
        success_floor=success_floor,
        calibration=calibration,
        command=command_line(click.get_current_context()),
        controls=controls,
        success_margin=success_margin,
        allow_shortfall=allow_shortfall,
    )
    stage(f"training {model} ({objective}) on {len(paths)} path(s)")
    with open_trainer(engine, scheduler) as trainer, _warnings_said_once():
        info, payload = train_router(
            list(paths), load_config(config_path), options, out_dir, on_error, trainer
        )
    headline = validation_headline(payload)
    for warning in payload.get("warnings", []):
        click.echo(f"WARNING: {warning}", err=True)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(info.path),
                    "version": info.version,
                    "sha256": info.sha256,
                    **headline,
                    "controls": sorted(payload.get("controls", {})),
                }
            )
        )
        return
    click.echo(f"bundle: {info.path}")
    click.echo(f"version: {info.version}")
    click.echo(f"controls: {', '.join(payload.get('controls', {})) or 'none (rules)'}")
    for key, value in headline.items():
        click.echo(f"{key}: {_shown(key, value)}")


def _shown(key: str, value: object) -> str:
    """A headline figure for people: shares of the top tier as percentages."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return format_count(value)
    if isinstance(value, float):
        shown_as_share = (
            key in SHARE_KEYS
            or key.endswith(("_share", "_share_expected"))
            or key.startswith("cv_cost_at_target_")
        )
        return format_share(value) if shown_as_share else f"{value:.4f}"
    return str(value)


COMMANDS: list = [train_command]


# Training logs each warning it also returns in the bundle; the command prints the bundle's.
TRAINING_LOGGERS = ("aco_lab.train.router", "aco_lab.train.operating_point")


class _NoWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.WARNING


@contextmanager
def _warnings_said_once() -> Iterator[None]:
    """While training: the training loggers' warnings held back (printed after, from the
    bundle), their other records kept."""
    drop, loggers = _NoWarnings(), [logging.getLogger(name) for name in TRAINING_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)
