"""The simulator: reproducible, in the contract's layout, chaining periods, with the drift scenarios."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from core.simulator import NEW_PATTERN_MAX_AMOUNT, SimulationConfig, write_simulation

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
    assert 0.001 < tx["tx_fraud"].mean() < 0.05


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
