"""Options several `aco-lab` commands share, defined once."""

import click

ON_ERROR_CHOICES = ("fail", "skip")

on_error_option = click.option(
    "--on-error",
    type=click.Choice(ON_ERROR_CHOICES),
    default="fail",
    show_default=True,
    help="Bad trace lines, or a trace file that cannot be read: fail: stop with an error "
    "naming them; skip: leave them out (counted on stderr).",
)
