"""What a terminal shows of the progress the library reports (aco/progress.py): a line per
stage and a click progress bar per meter, on stderr, each line stamped with the time since
the command started.

Both command lines turn it on for every command (aco/command_group.py) unless stderr is not
a terminal (a pipe, a file, CI logs) or `--quiet` is given: then nothing is drawn, and the
reports stay ordinary log records (`-v` shows the stages).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from aco.formatting import format_count
from aco.progress import LOGGER, RECORD_KEY, Progress

BAR_WIDTH = 30  # characters of the bar itself


class ProgressDisplay(logging.Handler):
    """A logging handler drawing `aco.progress` reports: stage lines and progress bars."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.started = time.monotonic()
        self.bar: Any = None  # the open click progress bar, if any
        self.bar_of: Progress | None = None  # the report that opened it

    def emit(self, record: logging.LogRecord) -> None:
        progress = getattr(record, RECORD_KEY, None)
        if not isinstance(progress, Progress):
            return
        if progress.done is None:
            self.close_bar()
            click.echo(f"{self._stamp()} {progress.stage}", file=self.stream)
        elif self._continues(progress):
            self.bar.update(progress.done - self.bar.pos, _position(progress))
            if progress.done >= (progress.total or 0):
                self.close_bar()
        else:
            self.close_bar()
            self._open_bar(progress)

    def _continues(self, progress: Progress) -> bool:
        opened = self.bar_of
        return (
            self.bar is not None
            and opened is not None
            and opened.stage == progress.stage
            and opened.total == progress.total
            and progress.done > 0
        )

    def _open_bar(self, progress: Progress) -> None:
        if not progress.total:  # nothing to count: the stage line says it all
            click.echo(f"{self._stamp()} {progress.stage}", file=self.stream)
            return
        bytes_counted = progress.unit == "bytes"
        self.bar = click.progressbar(
            length=progress.total,
            label=f"{self._stamp()} {progress.stage}",
            file=self.stream,
            width=BAR_WIDTH,
            show_percent=True,
            show_eta=True,
            item_show_func=None if bytes_counted else lambda text: text,
        )
        self.bar_of = progress
        self.bar.__enter__()
        if progress.done:
            self.bar.update(progress.done, _position(progress))

    def close_bar(self) -> None:
        """End the open bar, if any, on its own line."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
        self.bar, self.bar_of = None, None

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f}s]"

    def close(self) -> None:
        self.close_bar()
        super().close()


def _position(progress: Progress) -> str:
    return f"{format_count(progress.done or 0)}/{format_count(progress.total or 0)} {progress.unit}"


@contextmanager
def progress_shown(enabled: bool, stream: IO[str] | None = None) -> Iterator[None]:
    """While the block runs, draw progress on `stream` (stderr) if enabled and a terminal."""
    stream = stream if stream is not None else sys.stderr
    if not enabled or not _is_terminal(stream):
        yield
        return
    logger = logging.getLogger(LOGGER)
    display = ProgressDisplay(stream)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(display)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # drawn here, not also printed as log lines
    try:
        yield
    finally:
        logger.removeHandler(display)
        logger.setLevel(level)
        logger.propagate = propagate
        display.close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
