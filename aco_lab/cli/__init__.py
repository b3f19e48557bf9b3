"""`aco-lab`: the offline toolkit's command line. Each command parses, calls the library, prints."""

import click

from aco import __version__
from aco.command_group import ACOGroup, configure_logging
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
def main(verbose: int) -> None:
    """Learn which model tier each agent request needs, from traces (trace format v1)."""
    configure_logging(verbose)


for _module in (data_commands, import_commands, stats_commands, train_commands, eval_commands):
    for _command in _module.COMMANDS:
        main.add_command(_command)
