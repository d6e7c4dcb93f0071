"""The simulator: reproducible, in the contract's layout, chaining periods, with the drift scenarios."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from core.simulator import NEW_PATTERN_MAX_AMOUNT, SimulationConfig, make_population, write_simulation

SMALL = SimulationConfig(customers=200, terminals=400, days=10, seed=3, start_date=dt.date(2026, 3, 1))


def test_layout_and_records(tmp_path: Path) -> None:
    _, tx = write_simulation(tmp_path, SMALL)
    days = sorted(p.stem for p in (tmp_path / "transactions").glob("*.parquet"))
    assert days == [str(dt.date(2026, 3, 1) + dt.timedelta(days=i)) for i in range(10)]
    assert sorted(p.stem for p in (tmp_path / "labels").glob("*.parquet")) == days
    assert (tmp_path / "customers.parquet").exists() and (tmp_path / "terminals.parquet").exists()
    day = pd.read_parquet(tmp_path / "transactions" / f"{days[0]}.parquet")
    assert list(day.columns) == ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
    assert str(day["tx_datetime"].dt.tz) == "UTC"
    assert (day["tx_datetime"].dt.date.astype(str) == days[0]).all()
    assert tx["transaction_id"].is_unique
    assert (tx["tx_amount"] >= 0).all()


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    write_simulation(tmp_path / "a", SMALL)
    write_simulation(tmp_path / "b", SMALL)
    for sub in ("transactions", "labels"):
        for path in (tmp_path / "a" / sub).glob("*.parquet"):
            assert path.read_bytes() == (tmp_path / "b" / sub / path.name).read_bytes()


def test_continuing_a_folder_appends_days_with_unique_ids(tmp_path: Path) -> None:
    _, first = write_simulation(tmp_path, SMALL)
    used, second = write_simulation(tmp_path, SimulationConfig(**{**SMALL.__dict__, "days": 5, "seed": 4}))
    assert used.start_date == dt.date(2026, 3, 11)
    assert len(list((tmp_path / "transactions").glob("*.parquet"))) == 15
    assert not set(first["transaction_id"]) & set(second["transaction_id"])


def test_holiday_raises_amounts_and_frequency(tmp_path: Path) -> None:
    _, base = write_simulation(tmp_path / "a", SMALL)
    _, holiday = write_simulation(
        tmp_path / "b", SimulationConfig(**{**SMALL.__dict__, "scenarios": ("holiday",)})
    )
    assert len(holiday) > 1.3 * len(base)
    assert holiday["tx_amount"].median() > 1.3 * base["tx_amount"].median()


def test_new_pattern_relabels_night_transactions_only(tmp_path: Path) -> None:
    cfg = SimulationConfig(**{**SMALL.__dict__, "scenarios": ("new-pattern",)})
    _, tx = write_simulation(tmp_path, cfg)
    new = tx[tx["tx_fraud_scenario"] == 4]
    assert len(new) > 0
    assert (new["tx_datetime"].dt.hour < 6).all()
    assert (new["tx_amount"] <= NEW_PATTERN_MAX_AMOUNT).all()
    _, base = write_simulation(tmp_path / "base", SMALL)
    assert len(base) == len(tx)  # the inputs do not move, only the labels


def test_fraud_rate_and_scenarios_match_the_handbook_design(tmp_path: Path) -> None:
    cfg = SimulationConfig(customers=1000, terminals=2000, days=60, seed=0, start_date=dt.date(2026, 1, 1))
    _, tx = write_simulation(tmp_path, cfg)
    assert 0.004 < tx["tx_fraud"].mean() < 0.015  # the handbook's book scale has 0.84 %
    counts = tx["tx_fraud_scenario"].value_counts()
    assert {1, 2, 3} <= set(counts.index) and 4 not in counts.index
    assert (tx.loc[tx["tx_fraud_scenario"] == 1, "tx_amount"] > 220).all()
    genuine = tx.loc[tx["tx_fraud"] == 0, "tx_amount"].mean()
    assert tx.loc[tx["tx_fraud_scenario"] == 3, "tx_amount"].mean() > 3 * genuine  # amounts x5
    assert (tx["tx_fraud"] == (tx["tx_fraud_scenario"] > 0)).all()
    # per day about 2 transactions per customer (uniform 0..4 a day), times around noon
    assert 1.5 < len(tx) / (1000 * 60) < 2.5
    assert 10 <= tx["tx_datetime"].dt.hour.median() <= 14


def test_sixty_days_at_once_equal_thirty_and_thirty(tmp_path: Path) -> None:
    start = dt.date(2026, 1, 1)
    whole = SimulationConfig(customers=300, terminals=600, days=60, seed=9, start_date=start)
    write_simulation(tmp_path / "once", whole)
    half = SimulationConfig(**{**whole.__dict__, "days": 30})
    write_simulation(tmp_path / "twice", half)
    write_simulation(tmp_path / "twice", half)
    for sub in ("transactions", "labels"):
        once = sorted((tmp_path / "once" / sub).glob("*.parquet"))
        assert len(once) == 60
        for path in once:
            assert path.read_bytes() == (tmp_path / "twice" / sub / path.name).read_bytes(), path.name


def test_reach_by_grid_cells_equals_every_pair_measured() -> None:
    # the grid only skips pairs too far apart: the same terminals, in the same (ascending) order
    pop = make_population(300, 700, 7.5, seed=2)
    cx, cy = pop.customers["x"].to_numpy()[:, None], pop.customers["y"].to_numpy()[:, None]
    near = (cx - pop.terminals["x"].to_numpy()) ** 2 + (cy - pop.terminals["y"].to_numpy()) ** 2 < 7.5**2
    expected = [np.flatnonzero(row) for row in near]
    assert np.array_equal(np.diff(pop.offsets), [len(e) for e in expected])
    assert np.array_equal(pop.reachable, np.concatenate(expected))
