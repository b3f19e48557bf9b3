"""`aco-lab train`: learn a tier router from traces and write a versioned bundle."""

import json
from pathlib import Path

import click

from aco.bundle import DEFAULT_MODELS_DIR
from aco.config import load_config
from aco.policy import CALIBRATION_METHODS
from aco_lab.cli.command_line import command_line
from aco_lab.cli.engine_options import engine_options, open_engine
from aco_lab.cli.options import on_error_option
from aco_lab.train.estimators import MODELS, OBJECTIVES
from aco_lab.train.router import TrainOptions, train_router, validation_headline


@click.command("train")
@click.argument("paths", nargs=-1, required=True)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="config.yaml with the tier table (default: the built-in one).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=DEFAULT_MODELS_DIR,
              show_default=True, help="Folder of versioned bundles (router_bundle_vN.pkl).")
@click.option("--model", type=click.Choice(MODELS), default="lgbm", show_default=True)
@click.option("--objective", type=click.Choice(OBJECTIVES), default="success", show_default=True,
              help="success: P(success | request, tier); cheapest: cheapest sufficient tier.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--success-floor", type=click.FloatRange(0.0, 1.0), default=0.95, show_default=True,
              help="Keep at least this share of the top tier's success (validation).")
@click.option("--calibration", type=click.Choice(CALIBRATION_METHODS), default="platt",
              show_default=True, help="How predicted success is calibrated (held-out fold).")
@click.option("--controls/--no-controls", default=True, show_default=True,
              help="Also learn the run controls (cascade, doom, tool gate, verifier, context).")
@on_error_option
@engine_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def train_command(paths: tuple[str, ...], config_path: Path | None, out_dir: Path, model: str,
                  objective: str, seed: int, success_floor: float, calibration: str,
                  controls: bool, on_error: str, engine: str, scheduler: str | None,
                  as_json: bool) -> None:
    """Train a router on trace files (files, globs, dirs) and write the next bundle version."""
    options = TrainOptions(model=model, objective=objective, seed=seed,
                           success_floor=success_floor, calibration=calibration,
                           command=command_line(click.get_current_context()), controls=controls)
    click.echo(f"training {model} ({objective}) on {len(paths)} path(s)...", err=True)
    with open_engine(engine, scheduler) as cluster:
        trainer = None
        if cluster is not None:
            from aco_lab.train.dask_fit import DaskTrainer

            trainer = DaskTrainer(cluster)
        info, payload = train_router(list(paths), load_config(config_path), options, out_dir,
                                     on_error, trainer)
    headline = validation_headline(payload)
    if as_json:
        click.echo(json.dumps({"path": str(info.path), "version": info.version,
                               "sha256": info.sha256, **headline,
                               "controls": sorted(payload.get("controls", {}))}))
        return
    click.echo(f"bundle: {info.path}")
    click.echo(f"version: {info.version}")
    click.echo(f"controls: {', '.join(payload.get('controls', {})) or 'none (rules)'}")
    for key, value in headline.items():
        click.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


COMMANDS: list = [train_command]
