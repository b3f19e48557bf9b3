"""aco_lab.cli.command_line: the recorded command lists non-default options, then arguments."""

import click
from click.testing import CliRunner

from aco_lab.cli.command_line import command_line


@click.command("demo")
@click.argument("paths", nargs=-1)
@click.option("--out", default="out")
@click.option("--seed", type=int, default=0)
@click.option("--controls/--no-controls", default=True)
@click.option("--strict", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def demo(**_: object) -> None:
    click.echo(command_line(click.get_current_context()))


def run(*args: str) -> str:
    result = CliRunner().invoke(demo, list(args))
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_defaults_are_left_out_and_arguments_come_last() -> None:
    assert run("a b.jsonl", "--seed", "0", "--json") == "aco-lab demo 'a b.jsonl'"


def test_changed_options_and_flags_are_recorded() -> None:
    assert (
        run("t.jsonl", "--no-controls", "--strict", "--seed", "3", "--out", "x")
        == "aco-lab demo --out x --seed 3 --no-controls --strict t.jsonl"
    )
