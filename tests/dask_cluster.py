"""A small in-process Dask cluster for the Dask engine's tests (threads, not processes: fast)."""

from collections.abc import Iterator

import pytest

WORKERS = 2


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[object]:
    """A DaskEngine on 2 single-threaded in-process workers; skips without the dask extra."""
    pytest.importorskip("distributed")
    from aco_lab.traces.dask_engine import dask_engine

    with dask_engine(workers=WORKERS, processes=False) as engine:
        yield engine
