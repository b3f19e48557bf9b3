"""aco.progress (reports through logging) and aco.progress_display (drawn on a terminal)."""

import io
import logging

import pytest

from aco.progress import LOGGER, RECORD_KEY, Meter, Progress, stage
from aco.progress_display import progress_shown


class Terminal(io.StringIO):
    """A stream that says it is a terminal (the display draws only on one)."""

    def isatty(self) -> bool:
        return True


def _work() -> None:
    stage("building features")
    meter = Meter("reading traces", 300, "requests")
    for _ in range(3):
        meter.advance(100)
    meter.finish()  # already done: nothing more is reported
    stage("writing the bundle")


def test_reports_are_log_records_carrying_progress(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    _work()
    reports = [getattr(r, RECORD_KEY) for r in caplog.records]
    assert reports == [
        Progress("building features"),
        Progress("reading traces", 0, 300, "requests"),
        Progress("reading traces", 100, 300, "requests"),
        Progress("reading traces", 200, 300, "requests"),
        Progress("reading traces", 300, 300, "requests"),
        Progress("writing the bundle"),
    ]
    # Stages at INFO (shown by -v), the meter's steps at DEBUG (-vv).
    assert [r.levelno for r in caplog.records] == [logging.INFO] * 2 + [logging.DEBUG] * 3 + [
        logging.INFO
    ]


def test_a_meter_never_counts_past_its_total(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    meter = Meter("simulating requests", 10)
    meter.advance(7)
    meter.advance(7)
    assert meter.done == 10
    assert [getattr(r, RECORD_KEY).done for r in caplog.records] == [0, 7, 10]


def test_a_terminal_shows_stage_lines_and_a_bar() -> None:
    terminal = Terminal()
    with progress_shown(True, terminal):
        _work()
    lines = terminal.getvalue().replace("\r", "\n").splitlines()
    stages = [line for line in lines if line.endswith(("building features", "the bundle"))]
    assert [line.split("] ", 1)[1] for line in stages] == [
        "building features",
        "writing the bundle",
    ]
    assert all(line.startswith("[") and "s] " in line for line in stages)  # time stamps
    bars = [line for line in lines if "reading traces" in line]
    assert "100%" in bars[-1] and "300/300 requests" in bars[-1]
    assert terminal.getvalue().endswith("writing the bundle\n")


@pytest.mark.parametrize(("enabled", "stream"), [(False, Terminal()), (True, io.StringIO())])
def test_nothing_is_drawn_when_quiet_or_not_a_terminal(
    enabled: bool,
    stream: io.StringIO,
) -> None:
    with progress_shown(enabled, stream):
        _work()
    assert stream.getvalue() == ""


def test_the_logger_is_restored_and_a_bar_closed_when_the_work_fails() -> None:
    logger = logging.getLogger(LOGGER)
    before = (logger.level, logger.propagate, list(logger.handlers))
    terminal = Terminal()
    with pytest.raises(RuntimeError), progress_shown(True, terminal):
        Meter("reading traces", 10, "bytes").advance(3)
        raise RuntimeError("cut short")
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
    assert terminal.getvalue().endswith("\n")  # the next line (the error) starts clean
