"""The worker processes that decode chunks of big inputs, and how they end with their parent.

`map_chunks(function, tasks, workers)` maps a per-chunk function over a process pool (spawned,
at most 2 x workers chunks in flight, results in task order); `report_chunks` counts the
results on a progress meter of the input's bytes (aco.progress). However the parent ends, its
workers end too, so a killed `aco-lab ingest` leaves nothing running:

- an error, Ctrl-C, or SIGTERM in `aco-lab` (the CLI turns it into an exit): the workers are
  terminated at once, not left to finish their chunks;
- SIGKILL, or any other death of the parent: on Linux the kernel sends each worker SIGKILL
  (`prctl(PR_SET_PDEATHSIG)`); elsewhere each worker notices within PARENT_POLL_SECONDS that
  its parent is gone (`os.getppid()` changes) and exits. With the workers gone, the resource
  tracker multiprocessing starts sees its pipe close and exits too.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from aco.errors import DataError
from aco.progress import Meter
from aco_lab.traces.chunks import ChunkTask

T = TypeVar("T")
# What runs a per-chunk function over the chunks: map_chunks below, or an engine's
# (aco_lab/traces/dask_engine.py): (function, tasks, workers) -> (task, result) in task order.
ChunkMapper = Callable[
    [Callable[[ChunkTask], T], Iterator[ChunkTask], int], Iterator[tuple[ChunkTask, T]]
]
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # smaller inputs are read in-process (no worker start-up)
MAX_WORKERS = 4  # worker processes for big inputs (each holds ~2 chunks' objects)
GZIP_RATIO = 5  # rough JSONL bytes per gzip byte, to judge an input's size
PARENT_POLL_SECONDS = 0.5  # how often a worker checks its parent is alive (non-Linux fallback)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_POLARS_THREADS = "POLARS_MAX_THREADS"


def worker_count(files: Sequence[Path], workers: int | None) -> int:
    """Processes to decode with: `workers` if given, else by input size and cores."""
    if workers is not None:
        return max(1, workers)
    size = sum(p.stat().st_size * (GZIP_RATIO if p.name.endswith(".gz") else 1) for p in files)
    return min(MAX_WORKERS, os.cpu_count() or 1) if size >= PARALLEL_MIN_BYTES else 1


def map_chunks(
    function: Callable[[ChunkTask], T], tasks: Iterator[ChunkTask], workers: int
) -> Iterator[tuple[ChunkTask, T]]:
    """(task, function(task)) in task order; in worker processes when workers > 1.

    At most 2 x workers chunks are in flight, so memory stays bounded whatever the input.
    When the caller stops early or anything fails, the workers are terminated at once.
    """
    if workers <= 1:
        yield from ((task, _result(task, partial(function, task))) for task in tasks)
        return
    # spawn, not fork: forking a process that runs Polars' thread pool can deadlock.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=watch_parent, initargs=(os.getpid(),)
    )
    try:
        _start_workers(pool, workers)
        in_flight: deque = deque()
        for task in tasks:
            in_flight.append((task, pool.submit(function, task)))
            if len(in_flight) >= 2 * workers:
                task_done, future = in_flight.popleft()
                yield task_done, _result(task_done, future.result)
        while in_flight:
            task_done, future = in_flight.popleft()
            yield task_done, _result(task_done, future.result)
    except BaseException:
        stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def report_chunks(
    chunks: Iterator[tuple[ChunkTask, T]], files: Sequence[Path], name: str
) -> Iterator[tuple[ChunkTask, T]]:
    """The chunks as they come, each counted on a progress meter of the files' bytes on disk."""
    meter = Meter(name, sum(_disk_size(path) for path in files), "bytes")
    for task, result in chunks:
        meter.advance(task.end - task.start)
        yield task, result
    meter.finish()


def _disk_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # named when it is read
        return 0


def _result(task: ChunkTask, get: Callable[[], T]) -> T:
    """A chunk's result; a file error (the input changed or vanished since it was planned, a
    full disk) as one line naming the chunk."""
    try:
        return get()
    except (OSError, EOFError) as exc:
        raise DataError(f"{task.file} (the chunk from line {task.first_line}): {exc}") from None


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate a pool's workers now (running chunks are dropped) and wait for them."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    processes = list((pool._processes or {}).values())  # no public handle before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join()


def watch_parent(parent: int) -> None:
    """Worker initializer: end this worker when its parent process ends, however it ends."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl here: the poll below still ends the worker
    threading.Thread(
        target=_exit_when_orphaned, args=(parent,), name="parent-watch", daemon=True
    ).start()


def _exit_when_orphaned(parent: int) -> None:
    """Exit once the parent is gone (an orphan is re-parented, so getppid changes); this
    also covers a parent that died before prctl above took effect."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _start_workers(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start every worker now, without the caller's main module.

    A spawned worker normally re-runs the caller's script (to find functions defined there);
    a script that reads traces at top level, without `if __name__ == "__main__":`, would
    then start workers from inside a worker and crash. Ours need only aco_lab's functions,
    so main is hidden while the workers start (submitting one task per worker starts them
    all; the pool starts no others later). Each worker also runs Polars on one thread: the
    workers already use the cores, and Polars' own pool would only compete with them.
    """
    main = sys.modules["__main__"]
    saved = {
        name: main.__dict__.pop(name) for name in ("__file__", "__spec__") if name in main.__dict__
    }
    main.__spec__ = None
    polars_threads = os.environ.get(_POLARS_THREADS)
    os.environ[_POLARS_THREADS] = "1"  # read by Polars when a worker imports it
    try:
        started = [pool.submit(os.getpid) for _ in range(workers)]
    finally:
        del main.__spec__
        main.__dict__.update(saved)
        if polars_threads is None:
            del os.environ[_POLARS_THREADS]
        else:
            os.environ[_POLARS_THREADS] = polars_threads
    for future in started:
        future.result()
