"""The model search on a Dask cluster: the same candidates' scores and the same choice as the serial search."""

from __future__ import annotations

from typing import Any

from core.params import Params
from pipelines.train import select_model
from tests.model.world import SmallWorld


def test_the_search_on_dask_chooses_as_the_serial_search(
    small_world: SmallWorld, params: Params, dask_client: Any
) -> None:
    scheduler = dask_client.cluster.scheduler
    serial = small_world.selection  # the world's own search ran in this process
    on_dask = select_model(small_world.table, small_world.windows, params, client=dask_client)

    fits = scheduler.task_prefixes["fit_and_score"]  # KeyError: no fit ran on the cluster
    assert fits.all_durations["compute"] > 0
    aps = [c["validation_ap_mean"] for c in serial.candidates]
    assert len(set(aps)) == len(aps) > 1  # distinct scores: the choice is not a tie broken by order
    assert on_dask.candidates == serial.candidates  # every candidate's AP mean and spread, exactly
    assert on_dask.hyper == serial.hyper
    assert on_dask.threshold == serial.threshold and on_dask.fold_metrics == serial.fold_metrics
    assert on_dask == serial
