"""`aco`: the runtime's command line — route, budget, gate, verify, stats, version.

Start-up stays fast: only click and the thin runtime load; numpy and the scorer load only
when a bundle is used. Data goes to stdout, logs and errors to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from aco import __version__
from aco.command_group import ACOGroup, configure_logging
from aco.errors import DataError
from aco.formatting import format_count, format_money
from aco.monitoring import GROUP_FIELDS

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="config.yaml (default: the built-in tier table).",
)
bundle_option = click.option(
    "--bundle",
    default=None,
    help="Router bundle: a .pkl path, a version like v3 or 'latest' under ./router_models "
    "(default: the config's runtime.router_model_path; none: rule-based routing).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
task_type_option = click.option(
    "--task-type", default=None, help="Task type, e.g. coding (default: inferred from the text)."
)


@click.group(cls=ACOGroup)
@click.version_option(__version__, prog_name="aco")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Route agent requests to the cheapest model tier that will do."""
    configure_logging(verbose)


def _optimizer(config_path: str | None, bundle: str | None) -> Any:
    from aco.optimizer import ACOOptimizer

    return ACOOptimizer(config_path, bundle=bundle)


def _emit(as_json: bool, data: dict[str, Any], line: str) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
    else:
        click.echo(line)
        click.echo(f"reason: {data['reason']}")


@main.command()
@click.argument("text")
@task_type_option
@click.option(
    "--input-tokens",
    type=click.IntRange(min=0),
    default=None,
    help="Prompt tokens, when known (default: estimated from the text).",
)
@click.option(
    "--difficulty",
    type=click.IntRange(1, 5),
    default=None,
    help="A difficulty estimate 1..5 known before the run.",
)
@config_option
@bundle_option
@json_option
def route(
    text: str,
    task_type: str | None,
    input_tokens: int | None,
    difficulty: int | None,
    config_path: str | None,
    bundle: str | None,
    as_json: bool,
) -> None:
    """Route a request to a tier: model, estimated cost and why.

    TEXT: the request, or - to read it from stdin.
    """
    text = sys.stdin.read() if text == "-" else text
    d = _optimizer(config_path, bundle).route(text, task_type, input_tokens, difficulty)
    data = {
        "tier": d.tier,
        "model_id": d.model_id,
        "confidence": d.confidence,
        "cost_estimate": d.cost_estimate,
        "task_type": d.task_type,
        "task_type_from": d.task_type_from,
        "reason": d.reason,
        "mode": d.mode,
    }
    _emit(
        as_json,
        data,
        f"tier={d.tier}, model={d.model_id}, "
        f"cost={format_money(d.cost_estimate)}, "
        f"confidence={d.confidence:.2f}, mode={d.mode}",
    )


@main.command()
@click.argument("text")
@task_type_option
@click.option(
    "--tier",
    type=click.IntRange(1, 5),
    default=None,
    help="Tier the run uses (default: the routed tier).",
)
@config_option
@bundle_option
@json_option
def budget(
    text: str,
    task_type: str | None,
    tier: int | None,
    config_path: str | None,
    bundle: str | None,
    as_json: bool,
) -> None:
    """Context budget of a request: tokens, what to keep, what to omit.

    TEXT: the request, or - to read it from stdin.
    """
    text = sys.stdin.read() if text == "-" else text
    opt = _optimizer(config_path, bundle)
    routing_mode = "given"
    if tier is None:
        routing = opt.route(text, task_type)
        tier, task_type, routing_mode = routing.tier, routing.task_type, routing.mode
    b = opt.context_budget(text, tier, task_type)
    data = {
        "tier": tier,
        "total_tokens": b.total_tokens,
        "keep_exact": list(b.keep_exact),
        "omit": list(b.omit),
        "reason": b.reason,
        "routing_mode": routing_mode,
        "mode": opt.controls.mode("context_budget"),
    }
    _emit(
        as_json,
        data,
        f"total_tokens={format_count(b.total_tokens)}, "
        f"keep_exact={','.join(b.keep_exact)}, "
        f"omit={','.join(b.omit)}, tier={tier} ({routing_mode}), "
        f"mode={data['mode']}",
    )


@main.command()
@click.argument("tool")
@click.option(
    "--task-type",
    default=None,
    help="Task type, e.g. coding (default: the tool's figures over all task types).",
)
@config_option
@bundle_option
@json_option
def gate(
    tool: str, task_type: str | None, config_path: str | None, bundle: str | None, as_json: bool
) -> None:
    """Whether a call of TOOL is worth making (allow or deny, and why; a learned deny on weak
    evidence is advisory: the call is allowed and the advice printed)."""
    g = _optimizer(config_path, bundle).gate_tool(tool, task_type)
    data = {
        "allow": g.allow,
        "tool_name": g.tool_name,
        "task_type": task_type,
        "reason": g.reason,
        "mode": g.mode,
        "enforcement": g.enforcement,
        "advice": g.advice,
    }
    advice = f", advice={g.advice} ({g.enforcement})" if g.advice else ""
    _emit(as_json, data, f"allow={str(g.allow).lower()}, tool={g.tool_name}, mode={g.mode}{advice}")


@main.command()
@click.option(
    "--risk",
    type=click.Choice(["low", "medium", "high"]),
    required=True,
    help="What a wrong answer would cost.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.0, 1.0),
    required=True,
    help="Confidence that the answer is right, 0..1.",
)
@config_option
@bundle_option
@json_option
def verify(
    risk: str, confidence: float, config_path: str | None, bundle: str | None, as_json: bool
) -> None:
    """Whether to call a verifier before declaring an answer DONE."""
    v = _optimizer(config_path, bundle).should_verify(risk, confidence)
    data = {
        "verify": v.verify,
        "risk": risk,
        "confidence": confidence,
        "reason": v.reason,
        "mode": v.mode,
    }
    _emit(as_json, data, f"verify={str(v.verify).lower()}, mode={v.mode}")


@main.command()
@click.option(
    "--trace-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Trace log directory (default: the config's runtime.trace_dir).",
)
@click.option(
    "--by",
    type=click.Choice(GROUP_FIELDS),
    default=None,
    help="Also compute the metrics per group (task_type_from: given or guessed).",
)
@config_option
@json_option
def stats(trace_dir: str | None, by: str | None, config_path: str | None, as_json: bool) -> None:
    """Monitoring metrics and alerts of the local trace log.

    The metrics `aco-lab stats` computes over any traces (definitions: docs/metrics.md).
    """
    from aco.config import load_config
    from aco.monitoring import format_metrics
    from aco.optimizer import ACOOptimizer

    config = load_config(config_path)
    if trace_dir is not None:
        config = config.replace(trace_dir=trace_dir)
    if not Path(config.trace_dir).is_dir():  # a mistyped directory is not an empty log
        raise DataError(
            f"{config.trace_dir}: no such trace directory; pass --trace-dir with "
            f"the directory runs are logged to (runtime.trace_dir)"
        )
    metrics = ACOOptimizer(config).stats(by)
    click.echo(json.dumps(metrics, ensure_ascii=False) if as_json else format_metrics(metrics))


@main.command()
@click.option(
    "--bundle",
    default=None,
    help="Also describe this router bundle (a .pkl path, a version like v3 or "
    "'latest' under ./router_models), after checking it as loading does.",
)
@json_option
def version(bundle: str | None, as_json: bool) -> None:
    """Versions of the runtime, trace format and features.

    With --bundle, also what the bundle holds, after checking it as loading does.
    """
    from aco.features import FEATURE_VERSION
    from aco.trace_format import SCHEMA_VERSION

    runtime = {
        "aco": __version__,
        "trace_format": SCHEMA_VERSION,
        "feature_version": FEATURE_VERSION,
    }
    lines = [
        f"aco {__version__} (trace format v{SCHEMA_VERSION}, feature version {FEATURE_VERSION})"
    ]
    if bundle is not None:
        from aco.bundle import bundle_key, load_payload, read_manifest, resolve_bundle_path
        from aco.bundle_info import describe_bundle, format_description

        path = resolve_bundle_path(bundle)
        payload = load_payload(path)  # every check `aco route` makes before routing
        runtime["bundle"] = describe_bundle(
            path, payload, read_manifest(path), bundle_key() is not None
        )
        lines += format_description(runtime["bundle"])
    click.echo(json.dumps(runtime, ensure_ascii=False) if as_json else "\n".join(lines))
