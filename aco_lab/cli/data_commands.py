"""Commands over trace files: validate, ingest, stats, simulate."""

import json
from pathlib import Path

import click

from aco.formatting import format_count
from aco_lab.cli.engine_options import engine_options, open_engine
from aco_lab.cli.options import on_error_option
from aco_lab.traces.ingest import ingest_traces
from aco_lab.traces.reading import collect_traces

STRICT_HELP = (
    "Also refuse lines with keys trace format v1 does not define (a misspelt "
    "optional key, say); by default they are ignored."
)


def _summary(read: int, accepted: int, rejected: int) -> str:
    return (
        f"read={format_count(read)} accepted={format_count(accepted)} "
        f"rejected={format_count(rejected)}"
    )


@click.command("validate")
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.option("--strict", is_flag=True, help=STRICT_HELP)
def validate_command(paths: tuple[str, ...], as_json: bool, strict: bool) -> None:
    """Check traces line by line against trace format v1.

    PATHS: files, globs, directories or datasets; exit status 1 if any line is bad. Prints
    each problem as FILE:LINE: field.path: message, then each warning prefixed with
    `warning: `, then `read=N accepted=A rejected=R`, all on stdout.
    """
    tables = collect_traces(paths, strict=strict)
    summary = _summary(tables.lines_read, tables.runs.height, len(tables.rejected))
    if as_json:
        problems = [{"file": r.file, "line": r.line, "error": r.error} for r in tables.rejected]
        click.echo(
            json.dumps(
                {
                    "read": tables.lines_read,
                    "accepted": tables.runs.height,
                    "rejected": len(tables.rejected),
                    "problems": problems,
                    "warnings": list(tables.warnings),
                },
                ensure_ascii=False,
            )
        )
    else:
        for rejection in tables.rejected:
            click.echo(rejection.error)
        for warning in tables.warnings:
            click.echo(f"warning: {warning}")
        click.echo(summary)
    if tables.rejected:
        raise click.exceptions.Exit(1)


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Dataset directory to create (Parquet tables, manifest, rejected lines).",
)
@on_error_option
@click.option("--force", is_flag=True, help="Replace an existing non-empty --out directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@click.option("--strict", is_flag=True, help=STRICT_HELP)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes decoding chunks (default: 1 below 64 MB of input, else up to 4); "
    "with --engine dask and no --scheduler, the local cluster's workers.",
)
@engine_options
def ingest_command(
    paths: tuple[str, ...],
    out_dir: Path,
    on_error: str,
    force: bool,
    as_json: bool,
    strict: bool,
    workers: int | None,
    engine: str,
    scheduler: str | None,
) -> None:
    """Write traces as a Parquet dataset, partitioned by source.

    The dataset directory is written atomically; every later command reads it as traces.
    """
    with open_engine(engine, scheduler, workers) as cluster:
        result = ingest_traces(
            list(paths),
            out_dir,
            on_error=on_error,
            force=force,
            strict=strict,
            workers=workers,
            mapper=cluster.map_chunks if cluster else None,
        )
    if as_json:
        fields = ("lines_read", "accepted", "rejected", "warnings", "steps", "tool_calls")
        click.echo(
            json.dumps({"out_dir": str(result.out_dir), **{f: getattr(result, f) for f in fields}})
        )
    else:
        click.echo(_summary(result.lines_read, result.accepted, result.rejected))
    click.echo(f"wrote {result.out_dir}", err=True)


COMMANDS: list = [validate_command, ingest_command]
