"""A Dask `distributed.LocalCluster` on loopback for the Beam DaskRunner (tests, one-machine runs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_dask_cluster(n_workers: int = 2) -> Iterator[str]:
    """Start a LocalCluster (worker processes, one thread each, 127.0.0.1 only); yields the scheduler address.

    Pass it to the job as `--runner=DaskRunner --dask_client_address=<address>`.
    """
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    ) as cluster:
        yield cluster.scheduler_address
