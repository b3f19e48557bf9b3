"""Progress of long work, reported through `logging`: the library says where it is, a command
line decides whether and how to show it.

Library code calls `stage("building features")` when it enters a stage of its work, and
counts countable work with a `Meter` (`Meter("reading traces", total, "bytes")`, then
`advance(n)`). Each report is a log record of the `aco.progress` logger carrying a `Progress`
as its `progress` attribute: stages at INFO, meter steps at DEBUG. Without a display they
are ordinary log lines (`-v` shows the stages, `-vv` every step); the command lines draw
them as stage lines and bars on a terminal (aco/progress_display.py). Nothing here prints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

LOGGER = "aco.progress"
RECORD_KEY = "progress"  # the LogRecord attribute that carries the Progress
log = logging.getLogger(LOGGER)


@dataclass(frozen=True, slots=True)
class Progress:
    """One report: the stage, and for counted work how far it is (done of total units)."""

    stage: str
    done: int | None = None  # None: a stage without a count
    total: int | None = None
    unit: str = ""  # what is counted: "bytes", "requests", "files"


def stage(name: str) -> None:
    """Report that the work entered a stage (e.g. "building features")."""
    log.info("%s", name, extra={RECORD_KEY: Progress(name)})


class Meter:
    """Counted work of one stage: created with the total, advanced as units are done."""

    def __init__(self, name: str, total: int, unit: str = "") -> None:
        self.name, self.total, self.unit, self.done = name, max(int(total), 0), unit, 0
        log.info("%s", name, extra={RECORD_KEY: Progress(name, 0, self.total, unit)})

    def advance(self, units: int = 1) -> None:
        """Count `units` more done (the count never passes the total)."""
        done = min(self.done + int(units), self.total)
        if done == self.done:
            return
        self.done = done
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: %d of %d %s",
                self.name,
                self.done,
                self.total,
                self.unit,
                extra={RECORD_KEY: Progress(self.name, self.done, self.total, self.unit)},
            )

    def finish(self) -> None:
        """Count the rest as done (a total that was an estimate, or work cut short by design)."""
        self.advance(self.total - self.done)
