"""The service's incremental features (core.online) against the offline definition (core.features)."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.online
from core.features import compute_features, feature_names
from core.online import OnlineFeatures, Row, epoch_seconds
from core.params import Params
from core.simulator import SimulationConfig, write_simulation


def rows_of(frame: pd.DataFrame) -> list[Row]:
    return [
        (str(tid), epoch_seconds(when.to_pydatetime()), int(c), int(t), float(a))
        for tid, when, c, t, a in frame[
            ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
        ].itertuples(index=False)
    ]


def row(tid: str, when: str, customer: int = 1, terminal: int = 1, amount: float = 42.0) -> Row:
    return (tid, epoch_seconds(dt.datetime.fromisoformat(when)), customer, terminal, amount)


def state_for(params: Params) -> OnlineFeatures:
    return OnlineFeatures(params.features, params.data.label_delay_days)


@dataclass(frozen=True)
class LabelledStream:
    """A small simulated world in time order, its first ten days the warm start, and a label for every
    transaction (a fifth of them fraud: denser than the simulator's 1 %, so that terminal risk is not
    always zero in so small a world)."""

    tx: pd.DataFrame
    warm: np.ndarray  # bool per row of tx: before 2026-01-11
    fraud: np.ndarray
    label: dict[str, int]

    def warm_labels(self) -> dict[str, int]:
        return {tid: self.label[tid] for tid in self.tx["transaction_id"][self.warm]}

    def stream(self) -> pd.DataFrame:
        """The rows after the warm start."""
        return self.tx[~self.warm].reset_index(drop=True)


def labelled_stream(folder: Path, days: int) -> LabelledStream:
    cfg = SimulationConfig(customers=60, terminals=40, days=days, seed=3, start_date=dt.date(2026, 1, 1))
    _, tx = write_simulation(folder, cfg)
    tx = tx.sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    warm = (tx["tx_datetime"].dt.date < dt.date(2026, 1, 11)).to_numpy()
    fraud = (np.random.default_rng(0).random(len(tx)) < 0.2).astype(np.int64)
    return LabelledStream(tx, warm, fraud, dict(zip(tx["transaction_id"], fraud.tolist(), strict=True)))


def test_stream_reproduces_offline_features_bit_for_bit(tmp_path: Path, params: Params) -> None:
    """45 days streamed in batches after a 10-day warm start, labels fed after each day.

    Labels are denser than the simulator's 1 % (as in test_features) so that terminal risk is not
    always zero in so small a world.
    """
    world = labelled_stream(tmp_path, days=55)
    tx, warm, fraud, label = world.tx, world.warm, world.fraud, world.label
    state = state_for(params)
    state.warm_start(tx[warm], world.warm_labels())
    stream = world.stream()
    online = []
    for _, part in stream.groupby(stream["tx_datetime"].dt.date, sort=True):
        for start in range(0, len(part), 37):  # uneven batches, some of one row
            online.append(state.add_transactions(rows_of(part.iloc[start : start + 37])))
        state.add_labels({tid: label[tid] for tid in part["transaction_id"]})
    offline = compute_features(tx, fraud, params.features, params.data.label_delay_days)
    expected = offline[~warm].to_numpy()
    got = np.concatenate(online)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert expected[:, state.names.index("terminal_risk_30d")].max() > 0  # labels really fed risk
    assert state.rows < len(tx)  # 55 days > the 37-day horizon: old rows were pruned


def test_batch_rows_with_equal_time_count_each_other(params: Params) -> None:
    state = state_for(params)
    both = state.add_transactions(
        [row("a", "2026-01-22T10:00:00+00:00"), row("b", "2026-01-22T10:00:00+00:00")]
    )
    assert both[:, state.names.index("customer_nb_tx_1d")].tolist() == [2.0, 2.0]


def test_history_keeps_only_what_a_window_can_reach(params: Params) -> None:
    state = state_for(params)
    state.add_transactions(
        [row("old", "2026-01-10T12:00:00+00:00"), row("recent", "2026-02-10T12:00:00+00:00", 2, 2)]
    )
    state.add_labels({"old": 1, "recent": 1})
    assert (state.rows, state.known_labels) == (2, 2)
    # 30-day terminal window + 7-day delay = 37 days: on March 10 nothing reaches back to January 10
    state.add_transactions([row("far", "2026-03-10T12:00:00+00:00")])
    assert (state.rows, state.known_labels) == (2, 1)


def test_rescored_id_replaces_its_row(params: Params) -> None:
    state = state_for(params)
    first = state.add_transactions([row("a", "2026-01-22T10:00:00+00:00", amount=10.0)])
    again = state.add_transactions([row("a", "2026-01-22T10:00:00+00:00", amount=30.0)])
    n, avg = state.names.index("customer_nb_tx_1d"), state.names.index("customer_avg_amount_1d")
    assert state.rows == 1
    assert first[0, n] == again[0, n] == 1.0
    assert again[0, avg] == 30.0


def test_labels_of_unknown_transactions_are_not_kept(params: Params) -> None:
    state = state_for(params)
    state.add_transactions([row("known", "2026-01-22T10:00:00+00:00")])
    assert state.add_labels({"known": 1, "never-seen": 1}) == 1
    assert state.known_labels == 1


def test_terminal_risk_waits_for_the_label_delay(params: Params) -> None:
    """A fraud label counts in terminal risk only for transactions at least the delay later."""
    state = state_for(params)
    delay = params.data.label_delay_days
    state.add_transactions([row("fraud", "2026-01-01T10:00:00+00:00", customer=1, terminal=9)])
    state.add_labels({"fraud": 1})
    risk = state.names.index("terminal_risk_7d")
    early = state.add_transactions(
        [row("early", f"2026-01-{delay:02d}T10:00:00+00:00", customer=2, terminal=9)]
    )
    late = state.add_transactions(
        [row("late", f"2026-01-{delay + 1:02d}T10:00:00+00:00", customer=3, terminal=9)]
    )
    assert early[0, risk] == 0.0
    assert late[0, risk] == 1.0


def test_an_empty_warm_start_leaves_an_empty_state(params: Params) -> None:
    state = state_for(params)
    state.warm_start(
        pd.DataFrame(columns=["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]), {}
    )
    assert state.rows == 0
    assert state.add_transactions([row("a", "2026-01-22T10:00:00+00:00")]).shape == (1, len(state.names))


def test_batch_and_row_window_counts_agree(tmp_path: Path, params: Params) -> None:
    """Batches from NUMPY_MIN_ROWS rows count windows with numpy, smaller ones in a loop: same counts,
    with labels, equal times and rows arriving late in their series."""
    cfg = SimulationConfig(customers=150, terminals=60, days=40, seed=5, start_date=dt.date(2026, 1, 1))
    _, tx = write_simulation(tmp_path, cfg)
    tx = tx.sample(frac=1.0, random_state=1).reset_index(drop=True)  # out of time order
    rows = rows_of(tx)
    state = state_for(params)
    half = len(rows) // 2
    assert half > 500
    state.add_transactions(rows[:half])
    state.add_labels({r[0]: 1 for r in rows[:half:7]})
    batch = rows[half : half + 400]
    state.add_transactions(batch)  # in the history, as when the batch was scored
    numpy_counts = state._window_counts_numpy(batch, np.array([r[1] for r in batch]))
    loop_counts = np.array(state._row_window_counts(batch), dtype=np.int64)
    assert np.array_equal(numpy_counts, loop_counts)
    assert numpy_counts[:, 1::2].any() and (numpy_counts[:, -1] > 0).any()  # sums and risk not all zero


def test_features_land_in_their_named_columns_whatever_the_column_order(
    params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model columns in another order (here reversed) get the same value under each name, in batches
    counted with numpy and in single rows alike."""
    in_order = state_for(params)
    monkeypatch.setattr(core.online, "feature_names", lambda p: feature_names(p)[::-1])
    reversed_ = state_for(params)
    assert reversed_.names == in_order.names[::-1]
    rows = [
        row(f"t{k}", f"2026-01-{1 + k % 28:02d}T{k % 24:02d}:00:00+00:00", k % 3, k % 2, 10.0 + k)
        for k in range(40)
    ]
    got: list[list[np.ndarray]] = [[], []]
    for state, out in ((in_order, got[0]), (reversed_, got[1])):
        out.append(state.add_transactions(rows[:30]))  # numpy
        state.add_labels({r[0]: 1 for r in rows[:30:4]})
        out += [state.add_transactions(rows[30:]), state.add_transactions(rows[31:32])]  # the row loop
    for ours, theirs in zip(*got, strict=True):
        assert np.array_equal(ours, theirs[:, ::-1])
    assert got[0][1][:, in_order.names.index("terminal_risk_30d")].max() > 0


def card_burst(rows: int, start: str = "2026-02-01T00:00:00+00:00", step_s: int = 240) -> pd.DataFrame:
    """One card testing itself: ``rows`` small transactions ``step_s`` apart at three terminals, with
    a few other cards' transactions at the same terminals in between."""
    first = dt.datetime.fromisoformat(start)
    k = np.arange(rows)
    other = k % 10 == 9  # every tenth transaction another card's
    return pd.DataFrame(
        {
            "transaction_id": [f"b{i}" for i in k],
            "tx_datetime": pd.to_datetime(
                [first + dt.timedelta(seconds=int(i) * step_s) for i in k], utc=True
            ),
            "customer_id": np.where(other, 100 + k % 7, 1),
            "terminal_id": k % 3,
            "tx_amount": np.where(other, 40.0 + k % 13, 1.0 + (k % 5) * 0.75),
        }
    )


def test_a_long_card_burst_reproduces_offline_features_bit_for_bit(params: Params) -> None:
    """A burst of 3,600 rows on one card over 10 days (series past the length a batch copies), scored
    one row at a time and in batches, with labels fed as they come: the offline features exactly."""
    tx = card_burst(3600)
    fraud = (np.random.default_rng(4).random(len(tx)) < 0.3).astype(np.int64)
    rows = rows_of(tx)
    offline = compute_features(tx, fraud, params.features, params.data.label_delay_days).to_numpy()
    for size in (1, 40):  # the row loop, then batches counted with numpy
        state = state_for(params)
        online = []
        for start in range(0, len(rows), 360):  # labels of each part known before the next
            part = rows[start : start + 360]
            online += [state.add_transactions(part[i : i + size]) for i in range(0, len(part), size)]
            state.add_labels({r[0]: int(fraud[start + i]) for i, r in enumerate(part)})
        got = np.concatenate(online)
        assert got.dtype == np.float32 and np.abs(got - offline).max() == 0.0
    assert offline[:, state.names.index("customer_nb_tx_30d")].max() > 3000  # the windows did grow
    assert offline[:, state.names.index("terminal_risk_30d")].max() > 0


def peak_bytes_allocated(action: Callable[[], object]) -> int:
    """Memory ``action`` allocated at its peak, above what was allocated before (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def long_card_state(params: Params, rows: int) -> OnlineFeatures:
    """A state whose card 1 holds ``rows`` transactions, and its terminals a third of them each."""
    tx = card_burst(rows, step_s=10)
    state = state_for(params)
    state.warm_start(tx, {})
    return state


def test_a_batch_on_a_long_card_copies_none_of_its_history(params: Params) -> None:
    """Counting a batch's windows copies what the batch's rows need, not the card's 60,000 earlier rows
    (a burst made each batch on that card copy the whole series: cost grew with the card's history)."""
    state = long_card_state(params, 60_000)
    batch = [row(f"n{i}", f"2026-02-08T{i // 60:02d}:{i % 60:02d}:00+00:00", amount=1.0) for i in range(32)]
    state.add_transactions(batch)
    seconds = np.array([r[1] for r in batch])
    copied = peak_bytes_allocated(lambda: state._window_counts_numpy(batch, seconds))
    assert copied < 64 * 1024  # a copy of the card's times alone is 480 KB


def test_a_label_on_a_long_terminal_does_not_rewrite_its_totals_in_python(params: Params) -> None:
    """A label for an old row of a terminal holding 20,000 rows shifts the totals after it in place
    (it rebuilt them through a Python list: time and memory grew with the terminal's history)."""
    state = long_card_state(params, 60_000)
    assert state.add_labels({"b0": 1}) == 1
    assert peak_bytes_allocated(lambda: state.add_labels({"b3": 1})) < 16 * 1024
    risk = state.names.index("terminal_risk_30d")
    later = state.add_transactions([row("late", "2026-02-13T00:00:00+00:00", customer=5, terminal=0)])
    # its window ends a delay (7 days) earlier, on Feb 6: terminal 0's rows 0, 3, ..., 43,200 (10 s apart)
    assert later[0, risk] == np.float32(2 / 14_401)
