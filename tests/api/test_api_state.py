"""The online feature state on its own: bounded history, replacement of re-scored ids, labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from serving.state import FeatureState
from tests.api.factories import transaction

if TYPE_CHECKING:
    from tests.api.conftest import Project


def _frame(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def _state(project: Project) -> FeatureState:
    return FeatureState(project.params.features, project.params.data.label_delay_days)


def test_history_keeps_only_what_a_window_can_reach(project: Project) -> None:
    state = _state(project)
    labels = dict(zip(project.history["transaction_id"], project.history["tx_fraud"], strict=True))
    state.warm_start(project.history, labels)
    assert (state.rows, state.known_labels) == (len(project.history), len(project.history))
    # 30-day terminal window + 7-day delay = 37 days: a transaction 60 days later leaves only itself
    state.record_batch(_frame(transaction("far", "2026-03-23T12:00:00Z", 1, 1)))
    assert (state.rows, state.known_labels) == (1, 0)


def test_rescored_id_replaces_its_row(project: Project) -> None:
    state = _state(project)
    first = state.record_batch(_frame(transaction("a", "2026-01-22T10:00:00Z", 1, 1, 10.0)))
    again = state.record_batch(_frame(transaction("a", "2026-01-22T10:00:00Z", 1, 1, 30.0)))
    assert state.rows == 1
    assert first["customer_nb_tx_1d"].iloc[0] == again["customer_nb_tx_1d"].iloc[0] == 1.0
    assert again["customer_avg_amount_1d"].iloc[0] == 30.0


def test_labels_of_unknown_transactions_are_not_kept(project: Project) -> None:
    state = _state(project)
    state.record_batch(_frame(transaction("known", "2026-01-22T10:00:00Z", 1, 1)))
    assert state.add_labels({"known": 1, "never-seen": 1}) == 1
    assert state.known_labels == 1
