"""Commands that bring outside knowledge in: `import` (other tools' traces), `label` (outcomes)."""

import json
from pathlib import Path

import click

from aco.config import ACOConfig, load_config
from aco.formatting import format_count
from aco.optimizer import ACOOptimizer
from aco.outcomes import OUTCOMES_FILE_NAME
from aco_lab.importers import READERS, import_traces, parse_tier_options


@click.command("import")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--from",
    "source",
    type=click.Choice(sorted(READERS)),
    required=True,
    help="What wrote the files: OpenTelemetry GenAI spans (OTLP/JSON), a Langfuse "
    "export, LangSmith runs.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file of trace format v1 to write (replaced atomically).",
)
@click.option(
    "--tier",
    "tiers",
    multiple=True,
    metavar="MODEL=N",
    help="Tier 1..5 of a model the config's tier table does not name (repeatable).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="config.yaml whose tier table maps model ids to tiers (default: the built-in one).",
)
@click.option(
    "--on-error",
    type=click.Choice(["fail", "skip"]),
    default="fail",
    show_default=True,
    help="fail: write nothing when a record is wrong; skip: leave its run out.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
def import_command(
    paths: tuple[str, ...],
    source: str,
    out: Path,
    tiers: tuple[str, ...],
    config_path: str | None,
    on_error: str,
    as_json: bool,
) -> None:
    """Convert OpenTelemetry, Langfuse or LangSmith traces to v1.

    The output is read like any traces (validate, stats, train...). Prints each problem as
    FILE:POSITION: field: message (with --on-error skip), then
    `records=N skipped=S invalid=I runs=R written=W rejected=X`.
    """
    result = import_traces(
        READERS[source],
        list(paths),
        out,
        load_config(config_path),
        parse_tier_options(tiers),
        on_error,
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "records": result.records,
                    "skipped": result.skipped,
                    "invalid": result.invalid,
                    "runs": result.runs,
                    "written": result.written,
                    "rejected": result.rejected,
                    "problems": list(result.problems),
                },
                ensure_ascii=False,
            )
        )
    else:
        for problem in result.problems:
            click.echo(problem)
        click.echo(result.summary())
    click.echo(f"wrote {out}", err=True)


@click.command("label")
@click.argument("trace_ids", nargs=-1, required=True)
@click.option("--success/--failure", required=True, help="Whether these runs solved their task.")
@click.option(
    "--traces",
    "trace_dir",
    default="traces",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Trace directory: the outcomes go to its outcomes.jsonl.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was recorded as one JSON object.")
def label_command(trace_ids: tuple[str, ...], success: bool, trace_dir: str, as_json: bool) -> None:
    """Record whether runs succeeded, known after they ended.

    Appended to the trace directory's outcomes.jsonl; the latest label of a run wins. Readers
    join them to the traces by trace_id: stats, reports and training count them.
    """
    optimizer = ACOOptimizer(ACOConfig(trace_dir=trace_dir))
    for trace_id in trace_ids:
        optimizer.record_outcome(trace_id, success)
    path = Path(trace_dir) / OUTCOMES_FILE_NAME
    if as_json:
        click.echo(
            json.dumps(
                {
                    "labelled": len(trace_ids),
                    "task_success": success,
                    "trace_ids": list(trace_ids),
                    "outcomes_file": str(path),
                },
                ensure_ascii=False,
            )
        )
    else:
        outcome = "success" if success else "failure"
        click.echo(f"labelled {format_count(len(trace_ids))} run(s) {outcome} in {path}")


COMMANDS = [import_command, label_command]
