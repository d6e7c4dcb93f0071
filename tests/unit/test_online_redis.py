"""The feature state in Redis (core.online_redis) against the one in the process (core.online) and the
offline definition (core.features), on a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from core.features import DAY_S, compute_features, horizon_days
from core.online import FeatureState, FeatureStateError, OnlineFeatures
from core.online_redis import RedisFeatures, connect_redis
from core.params import Params
from core.schemas import TRANSACTION_COLUMNS
from tests.redis_support import TEST_REDIS_URL, connect_or_skip, free_port, own_prefix
from tests.unit.test_online_features import labelled_stream, row, rows_of

pytestmark = pytest.mark.redis

EMPTY = pd.DataFrame(columns=TRANSACTION_COLUMNS)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    client = connect_or_skip()
    yield client
    client.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    with own_prefix(client) as name:
        yield name


def redis_state(
    params: Params, prefix: str, url: str = TEST_REDIS_URL, timeout_s: float = 2.0
) -> RedisFeatures:
    return RedisFeatures(connect_redis(url, timeout_s), params.features, params.data.label_delay_days, prefix)


def loaded_state(params: Params, prefix: str) -> RedisFeatures:
    """A Redis state loaded empty (its marker written)."""
    state = redis_state(params, prefix)
    state.warm_start(EMPTY, {}, {"test": True})
    return state


def test_stream_gives_the_in_process_features_bit_for_bit(
    tmp_path: Path, params: Params, client: redis.Redis, prefix: str
) -> None:
    """The same warm start and the same stream (uneven batches, single rows, labels after each day) through
    both states: identical rows, equal to the offline features; old rows pruned from Redis too."""
    world = labelled_stream(tmp_path, days=50)
    tx, warm, fraud, label = world.tx, world.warm, world.fraud, world.label
    local = OnlineFeatures(params.features, params.data.label_delay_days)
    shared = redis_state(params, prefix)
    local.warm_start(tx[warm], world.warm_labels())
    shared.warm_start(tx[warm], world.warm_labels(), {"test": True})
    stream = world.stream()
    got: dict[str, list[np.ndarray]] = {"local": [], "shared": []}
    for _, part in stream.groupby(stream["tx_datetime"].dt.date, sort=True):
        for start in range(0, len(part), 37):  # uneven batches: some of one row, most counted with numpy
            rows = rows_of(part.iloc[start : start + 37])
            for name, state in (("local", local), ("shared", shared)):
                got[name].append(state.add_transactions(rows[:1]))
                got[name].append(state.add_transactions(rows[1:]))
        day_labels = {tid: label[tid] for tid in part["transaction_id"]}
        assert local.add_labels(day_labels) == shared.add_labels(day_labels) == len(day_labels)
    local_rows, shared_rows = np.concatenate(got["local"]), np.concatenate(got["shared"])
    assert shared_rows.dtype == np.float32
    assert np.array_equal(shared_rows, local_rows)
    offline = compute_features(tx, fraud, params.features, params.data.label_delay_days)
    expected = offline[~warm].to_numpy(dtype=np.float64)
    assert np.abs(shared_rows.astype(np.float64) - expected).max() <= 1e-9
    assert expected[:, shared.names.index("terminal_risk_30d")].max() > 0  # labels really fed risk
    # 50 days > the 37-day horizon: Redis pruned (as it goes, the process a week at a time) what no window
    # can reach any more, and nothing else
    newest = int(stream["tx_datetime"].max().timestamp())
    horizon = horizon_days(params.features, params.data.label_delay_days) * DAY_S
    oldest = client.zrange(shared.key("time"), 0, 0, withscores=True)[0][1]
    assert newest - horizon < oldest < newest - horizon + DAY_S
    assert shared.rows < local.rows < len(tx)


@pytest.mark.parametrize("kind", ["local", "shared"])
def test_concurrent_transactions_of_one_card_each_see_all_scored_before(
    kind: str, params: Params, prefix: str
) -> None:
    """Two clients (as two replicas) add transactions of one card at the same second at once: insert
    and count are one atomic step, so the counts are exactly 1..n, each seen once."""
    states: list[FeatureState] = (
        [loaded_state(params, prefix), redis_state(params, prefix)]
        if kind == "shared"
        else [OnlineFeatures(params.features, params.data.label_delay_days)] * 2
    )
    n_col = states[0].names.index("customer_nb_tx_1d")
    seen: list[float] = []
    start = threading.Barrier(2)

    def score(index: int) -> None:
        start.wait()
        for k in range(60):
            features = states[index].add_transactions([row(f"c{index}-{k}", "2026-01-22T10:00:00+00:00")])
            seen.append(float(features[0, n_col]))

    threads = [threading.Thread(target=score, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == [float(k) for k in range(1, 121)]


def test_the_same_transaction_again_counts_once_and_keeps_its_label(params: Params, prefix: str) -> None:
    state = loaded_state(params, prefix)
    n, risk = state.names.index("customer_nb_tx_1d"), state.names.index("terminal_risk_1d")
    state.add_transactions([row("a", "2026-01-02T10:00:00+00:00", terminal=5)])
    state.add_labels({"a": 1})
    again = state.add_transactions([row("a", "2026-01-02T10:00:00+00:00", terminal=5)])
    later = state.add_transactions([row("b", "2026-01-09T10:00:00+00:00", customer=2, terminal=5)])
    assert again[0, n] == 1.0 and (state.rows, state.known_labels) == (2, 1)
    assert later[0, risk] == 1.0  # a's fraud label survived its resubmission
    changed = state.add_transactions([row("a", "2026-01-02T10:00:00+00:00", terminal=5, amount=30.0)])
    assert changed[0, n] == 1.0 and state.held(["a"])["a"][3] == 300_000
    assert state.labels_of(["a", "b"]) == {}  # a different transaction under the id drops the old label


def test_history_keeps_only_what_a_window_can_reach(params: Params, client: redis.Redis, prefix: str) -> None:
    state = loaded_state(params, prefix)
    state.add_transactions(
        [row("old", "2026-01-10T12:00:00+00:00"), row("recent", "2026-02-10T12:00:00+00:00", 2, 2)]
    )
    state.add_labels({"old": 1, "recent": 1})
    assert (state.rows, state.known_labels) == (2, 2)
    # 30-day terminal window + 7-day delay = 37 days: on March 10 nothing reaches back to January 10
    state.add_transactions([row("far", "2026-03-10T12:00:00+00:00")])
    assert (state.rows, state.known_labels) == (2, 1)
    assert state.held(["old"]) == {}
    assert not client.exists(state.key("f:1"))  # its terminal's fraud index went with it


def test_without_its_marker_the_state_refuses_everything(
    params: Params, client: redis.Redis, prefix: str
) -> None:
    """A Redis emptied (restart, flush) must not score from an empty history, nor take labels."""
    state = loaded_state(params, prefix)
    state.add_transactions([row("a", "2026-01-02T10:00:00+00:00")])
    client.delete(state.key("ready"))
    calls: list[Any] = [
        lambda: state.add_transactions([row("b", "2026-01-02T11:00:00+00:00")]),
        lambda: state.features_of([row("a", "2026-01-02T10:00:00+00:00")]),
        lambda: state.held(["a"]),
        lambda: state.labels_of(["a"]),
        lambda: state.add_labels({"a": 1}),
    ]
    for call in calls:
        with pytest.raises(FeatureStateError, match="holds no feature state"):
            call()
    assert client.hkeys(state.key("tx")) == ["a"] and not client.exists(state.key("label"))
    assert "holds no feature state" in (state.unavailable_reason() or "")


def test_an_unreachable_redis_is_a_feature_state_error_in_time(params: Params) -> None:
    state = redis_state(params, "unreachable", url=f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(FeatureStateError, match=r"Redis at 127\.0\.0\.1:\d+/0 is unreachable"):
        state.add_transactions([row("a", "2026-01-02T10:00:00+00:00")])
    assert time.monotonic() - started < 3
    assert "is unreachable" in (state.unavailable_reason() or "")


def test_replicas_filling_together_fill_once(params: Params, client: redis.Redis, prefix: str) -> None:
    """Four replicas find Redis empty at once: one fills (the others see it busy), then all find it."""
    history = pd.DataFrame(
        [
            {
                "transaction_id": f"h{k}",
                "tx_datetime": pd.Timestamp("2026-01-02T10:00:00Z") + pd.Timedelta(minutes=k),
                "customer_id": k % 3,
                "terminal_id": k % 2,
                "tx_amount": 10.0 + k,
            }
            for k in range(50)
        ]
    )
    builds: list[int] = []

    def build() -> tuple[pd.DataFrame, dict[str, int], dict[str, Any]]:
        builds.append(1)
        time.sleep(0.3)  # long enough for every replica to try meanwhile
        return history, {"h0": 1}, {"data_version": "v1"}

    states = [redis_state(params, prefix) for _ in range(4)]
    outcomes: list[str] = []
    start = threading.Barrier(len(states))

    def fill(state: RedisFeatures) -> None:
        start.wait()
        outcomes.append(state.fill_once(build))

    threads = [threading.Thread(target=fill, args=(state,)) for state in states]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["busy", "busy", "busy", "filled"] and len(builds) == 1
    assert [state.fill_once(build) for state in states] == ["found"] * 4 and len(builds) == 1
    assert states[0].fills == 1 and states[0].rows == 50 and states[0].labels_of(["h0"]) == {"h0": 1}
    assert (states[0].marker() or {})["data_version"] == "v1"
    assert not client.exists(states[0].key("lock"))
