"""Commands that make and summarise traces: `simulate` and `stats`."""

import json
from pathlib import Path

import click

from aco.config import load_config
from aco.formatting import format_count
from aco.monitoring import GROUP_FIELDS, format_metrics
from aco_lab.cli.options import on_error_option
from aco_lab.report.stats import compute_stats
from aco_lab.simulate.generate import MODES, write_simulated_traces
from aco_lab.traces.reading import read_traces

CONFIG_HELP = "config.yaml with the tier table and alert lines (default: the built-in one)."


def _parse_tiers(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected tiers like 1,3,5, got {value!r}") from None


@click.command("simulate")
@click.option(
    "--n",
    "n_requests",
    type=click.IntRange(min=0),
    required=True,
    help="Requests to simulate (counterfactual mode writes one trace per tier each).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL file to write (gzip when it ends in .gz); replaced atomically.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="counterfactual",
    show_default=True,
    help="counterfactual: every request at every tier; logs: one run at a routed tier.",
)
@click.option(
    "--tiers",
    callback=_parse_tiers,
    default=None,
    help="Comma-separated tiers to simulate, e.g. 1,3,5 (default: all configured).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="config.yaml with the tier table to simulate (default: the built-in one).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes simulating blocks of requests (the file is the same).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def simulate_command(
    n_requests: int,
    seed: int,
    out: Path,
    mode: str,
    tiers: list[int] | None,
    config_path: str | None,
    workers: int,
    as_json: bool,
) -> None:
    """Write seeded simulated agent traces for demos and tests.

    Trace format v1; the same seed and options give the same bytes.
    """
    config = load_config(config_path)
    summary = write_simulated_traces(out, n_requests, seed, config, mode, tiers, workers)
    if as_json:
        fields = ("path", "mode", "requests", "traces", "bytes")
        click.echo(json.dumps({name: getattr(summary, name) for name in fields}))
    else:
        click.echo(
            f"wrote {format_count(summary.traces)} traces "
            f"({format_count(summary.requests)} requests, {summary.mode}) to "
            f"{summary.path} ({format_count(summary.bytes)} bytes)"
        )


@click.command("stats")
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the metrics.")
@click.option(
    "--by",
    type=click.Choice(GROUP_FIELDS),
    default=None,
    help="Also compute the metrics per group (task_type_from: given or guessed).",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@on_error_option
def stats_command(
    paths: tuple[str, ...], as_json: bool, by: str | None, config_path: str | None, on_error: str
) -> None:
    """Monitoring metrics and alerts of traces (docs/metrics.md)."""
    config = load_config(config_path)
    tables = read_traces(list(paths), on_error=on_error)
    metrics = compute_stats(tables, config, by).to_dict()
    click.echo(json.dumps(metrics, ensure_ascii=False) if as_json else format_metrics(metrics))


COMMANDS: list = [simulate_command, stats_command]
