"""`--engine local|dask` and `--scheduler ADDRESS`: where ingest and train run (docs/scaling.md).

dask is imported only when `--engine dask` is given: the local engine never loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from aco.errors import DataError

ENGINES = ("local", "dask")
DASK_INSTALL = "pip install 'aco[dask]' (from a checkout: pip install '.[dask]')"


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --engine and --scheduler to a command."""
    command = click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="With --engine dask: a running Dask scheduler (tcp://HOST:8786); without it, "
        "a local cluster is started for the command.",
    )(command)
    return click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default="local",
        show_default=True,
        help="local: this machine's processes; dask: the workers of a Dask cluster "
        "(needs the dask extra).",
    )(command)


@contextmanager
def open_engine(engine: str, scheduler: str | None, workers: int | None = None) -> Iterator[Any]:
    """None for the local engine; a connected aco_lab.traces.dask_engine.DaskEngine for dask."""
    if engine == "local":
        if scheduler:
            raise click.UsageError("--scheduler needs --engine dask")
        yield None
        return
    with _installed():
        from aco_lab.traces.dask_engine import dask_engine
    # Dask sets its own loggers to INFO: make them follow -v like the lab's.
    logging.getLogger("distributed").setLevel(logging.getLogger().getEffectiveLevel())
    with dask_engine(scheduler, workers) as connected:
        yield connected


@contextmanager
def open_trainer(engine: str, scheduler: str | None) -> Iterator[Any]:
    """None for the local engine; an aco_lab.train.dask_fit.DaskTrainer for dask."""
    if engine == "dask":
        with _installed():
            from aco_lab.train.dask_fit import DaskTrainer
    with open_engine(engine, scheduler) as cluster:
        yield None if cluster is None else DaskTrainer(cluster)


@contextmanager
def _installed() -> Iterator[None]:
    """An import of the dask extra's packages; one line on how to install them if missing."""
    try:
        yield
    except ImportError as exc:
        raise DataError(
            f"--engine dask: {exc.name or 'dask'} is not installed; install it with: {DASK_INSTALL}"
        ) from None
