"""The Dask cluster the features and the training search run on when ``FRAUDOPS_FEATURE_ENGINE=dask``.

An existing scheduler when ``FRAUDOPS_DASK_SCHEDULER`` names one (its workers must reach the same
files: one machine or a shared filesystem), else a local cluster started for the run and stopped
after it. Nothing is imported from Dask until a cluster is asked for: ``make demo`` never pays for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from core.settings import Settings

if TYPE_CHECKING:
    from distributed import Client


@contextmanager
def dask_client(settings: Settings) -> Iterator[Client]:
    """A client of the configured scheduler, or of a local cluster that lives as long as the block."""
    from distributed import Client, LocalCluster

    # the scheduler logs every shuffle's start and end as a warning: routine here (four per feature table)
    logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
    # and the cluster's start and close (nannies, workers, comms) at INFO: noise in the command's output
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if settings.dask_scheduler:
        with Client(settings.dask_scheduler) as client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=settings.dask_workers,
        threads_per_worker=1,  # one task at a time per worker: workers x 1 = the cores the cluster takes
        memory_limit=settings.dask_worker_memory,
        host="127.0.0.1",  # like every other service of the project: this machine only
        # the scheduler's HTTP routes (health, metrics; the dashboard page needs bokeh, not shipped):
        # free ports on loopback, never the defaults on every interface (the workers' too)
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
    )
    with cluster, Client(cluster) as client:
        yield client


@contextmanager
def engine_client(settings: Settings) -> Iterator[Client | None]:
    """A cluster's client when ``FRAUDOPS_FEATURE_ENGINE=dask``, else None (one process, no Dask)."""
    if settings.feature_engine != "dask":
        yield None
        return
    with dask_client(settings) as client:
        yield client
