"""Durable append of trace-format-v1 lines, safe for many threads and processes at once.

Every trace becomes one line written by one ``os.write`` loop on an ``O_APPEND`` descriptor
while holding an exclusive ``fcntl.flock`` on the file. The lock is taken on a descriptor
opened for this append alone: flock locks belong to the open file description, so writers
in the same process (threads) exclude each other exactly like separate processes do.
Under the lock the writer also repairs a torn tail left by a writer that died mid-line
(it ends that fragment with a newline), so a crash costs at most its own line and never
glues two traces together.

Fsync policy: ``fsync=True`` (the default) calls ``os.fsync`` after every line, so a trace
is on disk when ``end_run`` returns (milliseconds, docs/benchmarks.md; an agent run takes
seconds). The directory is fsynced once after the file is created. ``fsync=False`` leaves
flushing to the OS: a machine crash (not a process crash) can lose the last lines.
Needs POSIX (``fcntl``); on other systems appends are serialized within the process only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from aco.errors import ACOError, TraceFormatError

try:
    import fcntl
except ImportError:  # not POSIX: only the in-process lock below protects the file
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

TRACE_FILE_NAME = "traces.jsonl"  # one file per trace directory; aco-lab reads the directory
_FALLBACK_LOCK = threading.Lock()


class TraceLog:
    """An append-only JSONL file of traces in a directory (config.trace_dir)."""

    def __init__(
        self, directory: str | Path, file_name: str = TRACE_FILE_NAME, fsync: bool = True
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / file_name
        self.fsync = fsync
        self._dir_synced = False

    def append(self, trace: Mapping[str, Any]) -> None:
        """Append one trace as one JSON line (atomically with respect to other writers)."""
        self.append_line(encode_trace(trace))

    def append_line(self, line: bytes) -> None:
        """Append one already encoded line that ends with a newline."""
        if not line.endswith(b"\n") or b"\n" in line[:-1]:
            raise TraceFormatError(f"{self.path}: a trace line must be one line ending in \\n")
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released by os.close
                self._write_locked(fd, line)
            else:
                with _FALLBACK_LOCK:
                    self._write_locked(fd, line)
        finally:
            os.close(fd)
        if self.fsync and not self._dir_synced:
            _fsync_directory(self.directory)
            self._dir_synced = True

    def _write_locked(self, fd: int, line: bytes) -> None:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            log.warning("%s: the last line was torn (a writer died mid-line); ending it", self.path)
            line = b"\n" + line
        view = memoryview(line)
        while view:  # os.write may write less than asked (signals, full disks)
            view = view[os.write(fd, view) :]
        if self.fsync:
            os.fsync(fd)

    def read(self) -> Iterator[dict[str, Any]]:
        """The traces in the file, in order (a torn line is skipped with a warning)."""
        if not self.path.exists():
            return iter(())
        from aco.monitoring import read_trace_lines

        return read_trace_lines(self.path, on_error="skip")


def encode_trace(trace: Mapping[str, Any]) -> bytes:
    """One trace as compact UTF-8 JSON plus a newline (NaN and infinities refused)."""
    try:
        text = json.dumps(trace, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        trace_id = trace.get("trace_id", "?") if isinstance(trace, Mapping) else "?"
        raise ACOError(
            f"trace {trace_id}: not JSON-serializable ({exc}); record plain "
            f"numbers, strings, lists and dicts only"
        ) from None
    # A lone surrogate (broken unicode from upstream) cannot be UTF-8: it becomes "?".
    return text.encode("utf-8", errors="replace") + b"\n"


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some systems cannot open a directory; the file's own fsync still holds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
