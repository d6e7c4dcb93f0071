"""The local Dask cluster and the partition size: sized from the workers' memory, never left to stall.

A worker whose memory passes 80 % of its limit pauses; memory it cannot spill (a running task's,
Arrow's freed-but-kept pages, the shuffle's buffers) keeps it paused and the run waits forever
(``docs/benchmarks.md``, the memory cap). These tests pin what prevents it.
"""

from __future__ import annotations

import os

import pytest

from core.settings import Settings
from pipelines.cluster import dask_client, shuffle_buffers
from pipelines.features_dask import MIN_PIECE_ROWS, PIECE_ROWS, partition_rows

MiB = 1024**2


def test_partitions_are_sized_from_the_smallest_workers_memory_limit() -> None:
    assert partition_rows([]) == partition_rows([0, 0]) == PIECE_ROWS  # no limit known: the largest
    assert partition_rows([4096 * MiB]) == PIECE_ROWS
    small = partition_rows([450 * MiB])
    assert MIN_PIECE_ROWS <= small < PIECE_ROWS // 4
    assert partition_rows([4096 * MiB, 450 * MiB, 0]) == small  # the smallest worker decides
    assert partition_rows([900 * MiB]) > small


def test_a_worker_too_small_for_a_partition_is_refused_with_the_memory_to_give_it() -> None:
    with pytest.raises(ValueError, match=r"350 MiB .* at least 397 MiB \(FRAUDOPS_DASK_WORKER_MEMORY"):
        partition_rows([350 * MiB, 4096 * MiB])


def test_the_shuffle_buffers_are_bounded_by_the_workers_memory() -> None:
    assert shuffle_buffers(0) == {}  # no limit: Dask's own defaults
    small = shuffle_buffers(450 * MiB)
    assert small["distributed.p2p.comm.buffer"] + small["distributed.p2p.storage.buffer"] < 45 * MiB
    large = shuffle_buffers(64 * 1024 * MiB)
    assert large == {"distributed.p2p.comm.buffer": 1024 * MiB, "distributed.p2p.storage.buffer": 100 * MiB}


def test_the_local_clusters_workers_give_freed_arrow_memory_back_and_keep_small_shuffle_buffers() -> None:
    settings = Settings(_env_file=None, dask_workers=1, dask_worker_memory="450MiB")  # type: ignore[call-arg]

    def worker_view() -> tuple[str, str, int, int, str | None]:
        import dask.config
        import pyarrow as pa
        from dask.utils import parse_bytes

        return (
            pa.default_memory_pool().backend_name,
            os.environ.get("ARROW_DEFAULT_MEMORY_POOL", ""),
            parse_bytes(dask.config.get("distributed.p2p.comm.buffer")),
            parse_bytes(dask.config.get("distributed.p2p.storage.buffer")),
            os.environ.get("MALLOC_TRIM_THRESHOLD_"),  # Dask's own setting is kept beside ours
        )

    with dask_client(settings) as client:
        (limit,) = (w["memory_limit"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
        (view,) = client.run(worker_view).values()
    assert limit == 450 * MiB
    assert view == ("system", "system", 450 * MiB // 16, 450 * MiB // 32, "65536")
