"""The Dask engine: the local engine's per-chunk work run by the workers of a Dask cluster.

`aco-lab ingest|train --engine dask` reads traces here. `dask_engine(scheduler)` connects to a
running scheduler (`tcp://host:8786`), or starts a local cluster when no address is given;
`DaskEngine.map_chunks` then has the signature of the local engine's `map_chunks`, so
`read_traces` and `ingest_traces` plan the same chunks (`plan_chunks`) and the workers run the
same `read_chunk` / `write_chunk` on them: the same rows, rejected lines and counts.

Workers read plain JSONL files by path (a byte range each) and write Parquet parts into the
dataset's staging folder, so on a real cluster the inputs and the output must sit on a file
system every worker sees at the same paths (docs/scaling.md). gzip inputs are decompressed
where the chunks are planned, so their chunks travel to the workers as bytes.

Only this engine imports dask (the local engine never does); `pip install 'aco[dask]'`.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from distributed import Client, Future, LocalCluster

from aco.errors import DataError
from aco_lab.traces.chunks import ChunkTask

log = logging.getLogger(__name__)

T = TypeVar("T")
IN_FLIGHT_PER_THREAD = 2  # chunks submitted per worker thread: keeps workers busy, memory bounded
CONNECT_TIMEOUT_S = 30  # how long to wait for a scheduler given by address
WORKER_ENV = {"POLARS_MAX_THREADS": "1"}  # local workers: one Polars thread each, as the
# local engine's worker processes (the workers already use the cores)


@dataclass(frozen=True, slots=True)
class DaskEngine:
    """A connected Dask client: per-chunk work and the training's partitions go to its workers."""

    client: Client

    def threads(self) -> int:
        """Worker threads of the cluster (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))

    def workers(self) -> int:
        """Workers of the cluster (at least 1)."""
        return max(1, len(self.client.nthreads()))

    def map_chunks(
        self, function: Callable[[ChunkTask], T], tasks: Iterator[ChunkTask], workers: int = 0
    ) -> Iterator[tuple[ChunkTask, T]]:
        """(task, function(task)) in task order, each run by a Dask worker.

        The local engine's contract: results in task order, at most IN_FLIGHT_PER_THREAD
        chunks per worker thread in flight (memory bounded whatever the input); `workers`,
        the local engine's process count, is not used (the cluster has its own).
        """
        window = IN_FLIGHT_PER_THREAD * self.threads()
        in_flight: deque[tuple[ChunkTask, Future]] = deque()
        try:
            for task in tasks:
                # A chunk that carries its bytes (gzip) is sent as data, not inside the task;
                # under a key of its own (hash=False: equal bytes elsewhere do not share it).
                sent = task if task.data is None else self.client.scatter(task, hash=False)
                in_flight.append((task, self.client.submit(function, sent, pure=False)))
                if len(in_flight) >= window:
                    yield _done(*in_flight.popleft())
            while in_flight:
                yield _done(*in_flight.popleft())
        finally:  # an error or a caller that stops early: drop the chunks still queued
            if in_flight:
                self.client.cancel([future for _, future in in_flight])


def _done(task: ChunkTask, future: Future) -> tuple[ChunkTask, object]:
    """A chunk's result (the worker's own error re-raised here), its future released."""
    try:
        return task, future.result()
    except OSError as exc:  # the file changed or vanished, or a worker cannot see it
        raise DataError(
            f"{task.file} (the chunk from line {task.first_line}), on a Dask "
            f"worker: {exc}; every worker must see the inputs at the same path"
        ) from None
    finally:
        future.release()


@contextmanager
def dask_engine(
    scheduler: str | None = None, workers: int | None = None, processes: bool = True
) -> Iterator[DaskEngine]:
    """A DaskEngine on the scheduler at `scheduler`, or on a local cluster started here.

    The local cluster has `workers` single-threaded worker processes (None: Dask's choice for
    this machine's cores), or threads of this process with processes=False (tests); it is shut
    down on the way out. A scheduler given by address is only disconnected from.
    """
    if scheduler:
        with _connect(scheduler) as client:
            yield DaskEngine(client)
        return
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        **({"env": WORKER_ENV} if processes else {}),  # the environment of worker processes
    )
    try:
        with Client(cluster) as client:
            if processes:
                # Worker processes share this process's stdout, which carries a command's
                # data (--json): what they print (LightGBM's native network messages among
                # it) goes to stderr, with the logs.
                client.run(_stdout_to_stderr)
            log.info("started a local Dask cluster: %d workers", len(client.nthreads()))
            yield DaskEngine(client)
    finally:
        cluster.close()


@contextmanager
def _connect(scheduler: str) -> Iterator[Client]:
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DataError(
            f"--scheduler {scheduler}: cannot connect to a Dask scheduler there "
            f"({exc}); check the address (tcp://HOST:8786) and that it runs"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise DataError(
                f"--scheduler {scheduler}: no Dask worker joined that scheduler "
                f"within {CONNECT_TIMEOUT_S} s; start workers (dask worker "
                f"{scheduler})"
            ) from None
        log.info(
            "connected to the Dask scheduler at %s: %d workers", scheduler, len(client.nthreads())
        )
        yield client
    finally:
        client.close()


def _stdout_to_stderr() -> None:
    """Point this worker process's stdout (file descriptor 1) at its stderr."""
    os.dup2(2, 1)
