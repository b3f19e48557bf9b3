"""`aco-lab`: the offline toolkit's command line. Each command parses, calls the library, prints."""

import signal
import threading

import click

from aco import __version__
from aco.command_group import QUIET_HELP, ACOGroup, configure_logging
from aco_lab.cli import (
    data_commands,
    eval_commands,
    import_commands,
    stats_commands,
    train_commands,
)


@click.group(cls=ACOGroup)
@click.version_option(__version__, prog_name="aco-lab")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
def main(verbose: int, quiet: bool) -> None:
    """Learn which model tier each agent request needs, from traces (trace format v1).

    Results go to stdout (--json: one JSON object), logs and progress to stderr.
    """
    configure_logging(verbose)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM ends a command like an error does: staging folders and temp files are
        # removed and worker processes stopped on the way out (exit status 143).
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


for _module in (data_commands, import_commands, stats_commands, train_commands, eval_commands):
    for _command in _module.COMMANDS:
        main.add_command(_command)
