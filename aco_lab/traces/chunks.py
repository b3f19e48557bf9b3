"""One chunk of an input file: its lines read, decoded and checked into tables.

`read_chunk` is what loader workers run. The chunk's lines are decoded by msgspec
(aco_lab/traces/parser.py), then checked into tables.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter

import polars as pl

from aco.trace_decode import UTF8_BOM
from aco_lab.traces import schema as S
from aco_lab.traces.parser import (
    LineProblem,
    build_chunk_tables,
    decode_chunk,
    raw_text,
    split_lines,
    without_lines,
)
from aco_lab.traces.strict_keys import unknown_key_problem
from aco_lab.traces.validate import Rejection


@dataclass(frozen=True, slots=True)
class ChunkTask:
    """Lines of one input file to decode: a byte range of the file, or bytes already read."""

    file: str  # the file's name as given: the source_file of every row
    first_line: int  # line number (1-based, in the file) of the chunk's first line
    # The chunk's bytes of the file on disk; of a gzip file, the compressed bytes read up to
    # the chunk's end (what progress is counted in).
    start: int = 0
    end: int = 0
    data: bytes | None = None  # decompressed lines (gzip inputs); None: read start..end of file

    def read(self) -> bytes:
        """The chunk's bytes: whole lines, the last one ending the chunk.

        A UTF-8 byte order mark that starts the file (some editors write one) is dropped.
        """
        if self.data is not None:
            data = self.data
        else:
            with open(self.file, "rb") as stream:
                stream.seek(self.start)
                data = stream.read(self.end - self.start)
        if self.first_line == 1 and data.startswith(UTF8_BOM):
            return data[len(UTF8_BOM) :]
        return data

    def line_texts(self, lines: Iterable[int]) -> dict[int, str]:
        """The text of some lines of the chunk, by line number in the file."""
        chunk_lines = self.read().split(b"\n")
        return {line: raw_text(chunk_lines[line - self.first_line]) for line in lines}


@dataclass(frozen=True, slots=True)
class ChunkTables:
    """A decoded, checked chunk of one file (line numbers are the file's)."""

    runs: pl.DataFrame
    steps: pl.DataFrame
    tool_calls: pl.DataFrame
    rejected: tuple[Rejection, ...]  # sorted by line
    lines_read: int  # non-blank lines == runs.height + len(rejected)

    def __reduce__(self) -> tuple:
        # Arrow IPC crosses the process boundary ~4x cheaper than the frames' default pickling.
        frames = tuple(_to_ipc(f) for f in (self.runs, self.steps, self.tool_calls))
        return (_chunk_from_ipc, (frames, self.rejected, self.lines_read))


def _to_ipc(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    return buffer.getvalue()


def _chunk_from_ipc(
    frames: tuple[bytes, ...], rejected: tuple[Rejection, ...], lines_read: int
) -> ChunkTables:
    runs, steps, tool_calls = (pl.read_ipc(io.BytesIO(data)) for data in frames)
    return ChunkTables(runs, steps, tool_calls, rejected, lines_read)


def read_chunk(task: ChunkTask, strict: bool = False) -> ChunkTables:
    """Decode and check one chunk into tables (runs in a worker process for big inputs).

    strict: also reject lines with keys trace format v1 does not define
    (aco_lab/traces/strict_keys.py).
    """
    data = task.read()
    with _cycle_collector_paused():
        decoded = decode_chunk(split_lines(data), task.first_line)
    runs, steps, tool_calls, late = build_chunk_tables(task.file, decoded)
    read = len(decoded.numbers) + len(decoded.problems)
    problems = decoded.problems + _late_problems(data, task.first_line, late)
    if strict and (refused := _unknown_key_problems(data, task.first_line, runs)):
        runs, steps, tool_calls = without_lines(
            (runs, steps, tool_calls), [p.line for p in refused]
        )
        problems += refused
    rejected = [
        Rejection(task.file, p.line, f"{task.file}:{p.line}: {p.message}", p.raw)
        for p in sorted(problems, key=attrgetter("line"))
    ]
    return ChunkTables(runs, steps, tool_calls, tuple(rejected), read)


def _unknown_key_problems(data: bytes, first_line: int, runs: pl.DataFrame) -> list[LineProblem]:
    """A problem per accepted line that carries a key trace format v1 does not define."""
    lines = split_lines(data)
    problems = []
    for number in runs.get_column(S.LINE).to_list():
        line = lines[number - first_line]
        if message := unknown_key_problem(line):
            problems.append(LineProblem(number, message, raw_text(line)))
    return problems


def _late_problems(data: bytes, first_line: int, late: list[tuple[int, str]]) -> list[LineProblem]:
    """The problems of lines only a column check rejected, with their text."""
    if not late:
        return []
    lines = split_lines(data)
    return [
        LineProblem(line, message, raw_text(lines[line - first_line])) for line, message in late
    ]


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while building millions of acyclic objects.

    Each trace holds lists (steps, tool calls) that the collector would traverse again and
    again as they pile up; none of them can form a cycle, so the pause frees nothing late.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
