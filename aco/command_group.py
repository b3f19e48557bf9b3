"""The click group both CLIs use: an ACOError becomes one line on stderr and exit code 1, and
the progress the library reports is drawn on stderr while a command runs (a terminal only,
not with --quiet: aco/progress_display.py).

Anything else is a bug and keeps its traceback.
"""

import logging
import sys

import click

from aco.errors import ACOError
from aco.progress_display import progress_shown

QUIET_HELP = "Draw no progress on stderr (it is drawn only when stderr is a terminal)."


class ACOGroup(click.Group):
    """A click group that prints ACOError messages as `error: ...` and exits 1."""

    def invoke(self, ctx: click.Context):
        try:
            with progress_shown(not ctx.params.get("quiet", False)):
                return super().invoke(ctx)
        except ACOError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


def configure_logging(verbose: int) -> None:
    """Send library logs to stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
