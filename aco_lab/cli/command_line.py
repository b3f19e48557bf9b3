"""The command line a CLI run records in what it writes (a bundle, metrics.json), rebuilt from
click's parsed parameters: the subcommand, its non-default options, then its arguments.
"""

from __future__ import annotations

import shlex

import click

PROGRAM = "aco-lab"
NOT_RECORDED = ("as_json",)  # options that change only how the result is printed


def command_line(ctx: click.Context) -> str:
    """`aco-lab SUBCOMMAND [non-default options] [arguments]`, shell-quoted."""
    options, arguments = [], []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            arguments += [str(v) for v in (value if isinstance(value, tuple) else (value,))]
            continue
        if value is None or value == param.default or param.name in NOT_RECORDED:
            continue
        if isinstance(value, bool):  # a flag (off: nothing to say), or one side of --x/--no-x
            flags = param.opts if value else param.secondary_opts
            options += [max(flags, key=len)] if flags else []
        else:
            options += [max(param.opts, key=len), str(value)]
    return shlex.join([PROGRAM, str(ctx.info_name), *options, *arguments])
