"""Training/serving parity: the service's online features equal core.features on the same rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from fastapi.testclient import TestClient

from core.features import feature_names
from tests.api.factories import bodies

if TYPE_CHECKING:
    from tests.api.conftest import Project

REPLAY_ROWS, BATCH_ROWS = 400, 100


def test_replayed_day_has_the_offline_features(client: TestClient, project: Project) -> None:
    """Replay the day after the warm-start history in time-ordered batches, compare the logged features."""
    replay = project.replay.sort_values("tx_datetime", kind="stable").head(REPLAY_ROWS).reset_index(drop=True)
    requests = bodies(replay)
    for start in range(0, len(requests), BATCH_ROWS):
        response = client.post("/v1/score/batch", json={"transactions": requests[start : start + BATCH_ROWS]})
        assert response.status_code == 200, response.text
    logged = project.logged_predictions(replay["transaction_id"].tolist())
    expected = project.offline_features(replay)
    names = feature_names(project.params.features)
    online = logged[[f"f_{name}" for name in names]].to_numpy(dtype=np.float64)
    # the warm start's history and labels are really used
    assert expected["customer_nb_tx_30d"].min() > 1
    assert (expected["terminal_risk_30d"] > 0).any()
    np.testing.assert_allclose(online, expected[names].to_numpy(dtype=np.float64), rtol=1e-6, atol=1e-6)


def test_rescoring_replaces_instead_of_counting_twice(client: TestClient, project: Project) -> None:
    first = bodies(project.replay.sort_values("tx_datetime").head(1))
    assert client.post("/v1/score/batch", json={"transactions": first}).status_code == 200  # scored once
    before = project.logged_predictions([first[0]["transaction_id"]]).iloc[0]
    assert client.post("/v1/score/batch", json={"transactions": first}).status_code == 200
    after = project.logged_predictions([first[0]["transaction_id"]]).iloc[0]
    assert after["f_customer_nb_tx_1d"] == before["f_customer_nb_tx_1d"]
    assert after["f_terminal_nb_tx_1d"] == before["f_terminal_nb_tx_1d"]
