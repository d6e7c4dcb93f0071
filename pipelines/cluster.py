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
    from distributed import Client, LocalCluster

log = logging.getLogger(__name__)

# Arrow's default allocator (mimalloc) keeps what the shuffles free for reuse: memory a worker counts
# as its own but cannot spill. Past 80 % of its limit the worker pauses, and a paused worker whose
# memory never falls stalls the whole run (seen at 1x with 450 MiB workers, and at 10x with 1 GiB).
# The C library's allocator gives it back (Dask already sets MALLOC_TRIM_THRESHOLD_ for that).
WORKER_ENVIRONMENT = {"ARROW_DEFAULT_MEMORY_POOL": "system"}


@contextmanager
def dask_client(settings: Settings) -> Iterator[Client]:
    """A client of the configured scheduler, or of a local cluster that lives as long as the block."""
    from distributed import Client

    # the scheduler logs every shuffle's start and end as a warning: routine here (four per feature table)
    logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
    # and the cluster's start and close (nannies, workers, comms) at INFO: noise in the command's output
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if settings.dask_scheduler:
        with Client(settings.dask_scheduler) as client:
            yield client
        return
    import dask.config

    limit = worker_memory_bytes(settings)
    # the nannies pass the config to their workers, and set WORKER_ENVIRONMENT before starting them
    environment = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENVIRONMENT}
    with dask.config.set(shuffle_buffers(limit) | {"distributed.nanny.pre-spawn-environ": environment}):
        cluster = local_cluster(settings, limit)
    with cluster, Client(cluster) as client:
        yield client


def worker_memory_bytes(settings: Settings) -> int:
    """Each local worker's memory limit in bytes (``auto``: the machine's memory shared between them)."""
    from distributed.worker_memory import parse_memory_limit

    limit = parse_memory_limit(settings.dask_worker_memory, 1, settings.dask_workers, logger=log)
    return int(limit or 0)


def shuffle_buffers(limit: int) -> dict[str, object]:
    """Dask configuration bounding the shuffle's buffers by a worker's memory ``limit`` (bytes).

    By default each worker may buffer 1 GiB of shards to send and 100 MiB to write: memory Dask does
    not manage, so it cannot spill it. On a worker smaller than that the buffers fill its memory, the
    worker pauses past 80 % of its limit and the shuffle never ends. A sixteenth and a thirty-second
    of the limit keep them within the partition budget of :func:`pipelines.features_dask.partition_rows`.
    """
    if not limit:
        return {}
    return {
        "distributed.p2p.comm.buffer": min(1024**3, limit // 16),
        "distributed.p2p.storage.buffer": min(100 * 1024**2, limit // 32),
    }


def local_cluster(settings: Settings, limit: int) -> LocalCluster:
    """The local cluster of the settings: its workers and their memory limit (bytes; 0: none)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=settings.dask_workers,
        threads_per_worker=1,  # one task at a time per worker: workers x 1 = the cores the cluster takes
        memory_limit=limit or None,
        host="127.0.0.1",  # like every other service of the project: this machine only
        # the scheduler's HTTP routes (health, metrics; the dashboard page needs bokeh, not shipped):
        # free ports on loopback, never the defaults on every interface (the workers' too)
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
    )


@contextmanager
def engine_client(settings: Settings) -> Iterator[Client | None]:
    """A cluster's client when ``FRAUDOPS_FEATURE_ENGINE=dask``, else None (one process, no Dask)."""
    if settings.feature_engine != "dask":
        yield None
        return
    with dask_client(settings) as client:
        yield client
