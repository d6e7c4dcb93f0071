"""The model search's fits on a Dask cluster: every (candidate, validation fold) pair is one task.

Each fold's training and test rows are scattered to the workers once and shared by every candidate's
task; the tasks run :func:`pipelines.train.fit_and_score`, the serial search's own step, so the
scores are the same numbers (a fit does not depend on the machine's thread count: checked for
HistGradientBoosting at 1 and 2 OpenMP threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.params import HyperParams, Params

if TYPE_CHECKING:
    from distributed import Client


def search_scores(
    client: Client,
    splits: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    candidates: Sequence[HyperParams],
    params: Params,
) -> list[list[np.ndarray]]:
    """Per candidate, per fold: the test rows' fraud probabilities, fitted and scored on the cluster."""
    from pipelines.train import fit_and_score

    # broadcast: every worker takes part in every fold, so each gets each fold's rows once
    folds = [client.scatter(list(split), broadcast=True) for split in splits]
    futures = [
        [client.submit(fit_and_score, train, test, params, hyper, pure=False) for train, test in folds]
        for hyper in candidates
    ]
    return [client.gather(row) for row in futures]
