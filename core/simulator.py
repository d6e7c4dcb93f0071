"""A seeded, vectorised card-transaction simulator after the Fraud Detection Handbook's design.

Customers and terminals sit on a 100 x 100 grid; a customer uses terminals within ``radius``; daily
counts are Poisson, amounts normal, times of day normal around noon. Fraud scenarios: S1 amounts above
220, S2 compromised terminals (all their transactions for 28 days), S3 compromised cards (a third of
their transactions for 14 days, amounts x5). Drift scenarios change the days being simulated:
``holiday`` multiplies frequency and amounts by 1.5 (S1 is judged on the amount before the factor, so
only the inputs move), ``new-pattern`` makes night-time transactions of moderate amount on a cluster
of terminals fraudulent (scenario 4), ``control`` is the baseline process under another seed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS

SCENARIOS = ("none", "holiday", "new-pattern", "control")
GRID = 100.0
S1_AMOUNT = 220.0
S2_DAYS, S3_DAYS = 28, 14
HOLIDAY_FACTOR = 1.5
NEW_PATTERN_RADIUS = 25.0
NEW_PATTERN_MAX_AMOUNT = 120.0
NIGHT_END_S = 6 * 3600


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; rates are per day and scale with the population as in the handbook."""

    customers: int = 5000
    terminals: int = 10000
    days: int = 183
    start_date: dt.date = dt.date(2026, 1, 1)
    seed: int = 0
    population_seed: int = 1
    radius: float = 5.0
    scenarios: tuple[str, ...] = ("none",)
    compromised_terminals_per_10000: float = 2.0
    compromised_cards_per_5000: float = 3.0


@dataclass
class Population:
    """Customers' profiles, terminals' locations and which terminals each customer can reach."""

    customers: pd.DataFrame
    terminals: pd.DataFrame
    offsets: np.ndarray = field(repr=False)
    reachable: np.ndarray = field(repr=False)


def make_population(n_customers: int, n_terminals: int, radius: float, seed: int) -> Population:
    """Draw customers and terminals (seeded by ``seed`` alone)."""
    rng = np.random.default_rng(seed)
    cx, cy = rng.uniform(0, GRID, n_customers), rng.uniform(0, GRID, n_customers)
    mean_amount = rng.uniform(5, 100, n_customers)
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(n_customers, dtype=np.int64),
            "x": cx,
            "y": cy,
            "mean_amount": mean_amount,
            "std_amount": mean_amount / 2,
            "mean_nb_tx_per_day": rng.uniform(0, 4, n_customers),
        }
    )
    terminals = pd.DataFrame(
        {
            "terminal_id": np.arange(n_terminals, dtype=np.int64),
            "x": rng.uniform(0, GRID, n_terminals),
            "y": rng.uniform(0, GRID, n_terminals),
        }
    )
    return attach_reach(customers, terminals, radius)


def attach_reach(customers: pd.DataFrame, terminals: pd.DataFrame, radius: float) -> Population:
    """Compute, per customer, the terminals within ``radius`` (in chunks to bound memory)."""
    tx, ty = terminals["x"].to_numpy(), terminals["y"].to_numpy()
    lists: list[np.ndarray] = []
    for start in range(0, len(customers), 1000):
        part = customers.iloc[start : start + 1000]
        d2 = (part["x"].to_numpy()[:, None] - tx) ** 2 + (part["y"].to_numpy()[:, None] - ty) ** 2
        lists.extend(np.flatnonzero(row) for row in d2 < radius**2)
    counts = np.array([len(x) for x in lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    reachable = np.concatenate(lists) if lists else np.empty(0, dtype=np.int64)
    return Population(customers, terminals, offsets, reachable.astype(np.int64))


def _draw_day(pop: Population, cfg: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """One day's transactions (before fraud): Poisson counts, times around noon, normal amounts."""
    cust = pop.customers
    factor = HOLIDAY_FACTOR if "holiday" in cfg.scenarios else 1.0
    counts = rng.poisson(cust["mean_nb_tx_per_day"].to_numpy() * factor)
    cust_idx = np.repeat(np.arange(len(cust)), counts)
    seconds = rng.normal(43_200, 20_000, len(cust_idx))
    n_reach = np.diff(pop.offsets)[cust_idx]
    keep = (seconds > 0) & (seconds < 86_400) & (n_reach > 0)
    cust_idx, seconds, n_reach = cust_idx[keep], seconds[keep], n_reach[keep]
    mean, std = cust["mean_amount"].to_numpy()[cust_idx], cust["std_amount"].to_numpy()[cust_idx]
    amount = rng.normal(mean, std)
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    pick = (rng.uniform(0, 1, len(cust_idx)) * n_reach).astype(np.int64)
    terminal = pop.reachable[pop.offsets[cust_idx] + pick]
    return pd.DataFrame(
        {
            "seconds": seconds.astype(np.int64),
            "customer_id": cust_idx.astype(np.int64),
            "terminal_id": terminal,
            "tx_amount": np.round(amount, 2),
        }
    )


def _new_incidents(
    pop: Population, cfg: SimulationConfig, rng: np.random.Generator, day: dt.date
) -> pd.DataFrame:
    """Terminals and cards compromised from ``day`` on (Poisson counts, rates scaled to the population)."""
    rows = []
    n_term, n_cust = len(pop.terminals), len(pop.customers)
    term_rate = cfg.compromised_terminals_per_10000 * n_term / 10_000
    card_rate = cfg.compromised_cards_per_5000 * n_cust / 5_000
    for kind, rate, pool, length in (
        ("terminal", term_rate, n_term, S2_DAYS),
        ("card", card_rate, n_cust, S3_DAYS),
    ):
        for entity in rng.choice(pool, size=min(pool, rng.poisson(rate)), replace=False):
            rows.append((kind, int(entity), day, day + dt.timedelta(days=length)))
    return pd.DataFrame(rows, columns=["kind", "entity_id", "start", "end"])


def _hit(incidents: pd.DataFrame, kind: str, entity: np.ndarray) -> np.ndarray:
    """Whether each transaction's terminal or card is under an incident of ``kind`` (all active today)."""
    return np.isin(entity, incidents.loc[incidents["kind"] == kind, "entity_id"].to_numpy())


def _apply_fraud(
    tx: pd.DataFrame,
    pop: Population,
    cfg: SimulationConfig,
    active: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    scenario = np.zeros(len(tx), dtype=np.int64)
    amount = tx["tx_amount"].to_numpy().copy()
    scenario[amount > S1_AMOUNT] = 1
    scenario[(scenario == 0) & _hit(active, "terminal", tx["terminal_id"].to_numpy())] = 2
    card = _hit(active, "card", tx["customer_id"].to_numpy()) & (scenario == 0)
    card &= rng.uniform(0, 1, len(tx)) < 1 / 3
    scenario[card] = 3
    amount[card] *= 5
    if "new-pattern" in cfg.scenarios:
        scenario[(scenario == 0) & _new_pattern_mask(tx, pop)] = 4
    if "holiday" in cfg.scenarios:
        amount = np.round(amount * HOLIDAY_FACTOR, 2)
    out = tx.assign(tx_amount=np.round(amount, 2), tx_fraud_scenario=scenario)
    return out.assign(tx_fraud=(scenario > 0).astype(np.int64))


def new_pattern_terminals(pop: Population) -> np.ndarray:
    """Terminals of the new-pattern cluster: within a fixed radius of a population-seeded centre."""
    centre = pop.terminals[["x", "y"]].to_numpy()[0]
    d2 = ((pop.terminals[["x", "y"]].to_numpy() - centre) ** 2).sum(axis=1)
    return pop.terminals["terminal_id"].to_numpy()[d2 < NEW_PATTERN_RADIUS**2]


def _new_pattern_mask(tx: pd.DataFrame, pop: Population) -> np.ndarray:
    in_cluster = np.isin(tx["terminal_id"].to_numpy(), new_pattern_terminals(pop))
    night = tx["seconds"].to_numpy() < NIGHT_END_S
    return in_cluster & night & (tx["tx_amount"].to_numpy() <= NEW_PATTERN_MAX_AMOUNT)


def simulate(
    cfg: SimulationConfig, pop: Population, open_incidents: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate ``cfg.days`` days: transactions with their labels, and all incidents (old and new).

    Each day draws from its own generator, seeded by (seed, date): simulating 60 days at once equals
    30 days and then 30 more into the same folder.
    """
    incidents = [open_incidents] if open_incidents is not None else []
    days = []
    for offset in range(cfg.days):
        day = cfg.start_date + dt.timedelta(days=offset)
        rng = np.random.default_rng([cfg.seed, day.toordinal()])
        tx = _draw_day(pop, cfg, rng)
        incidents.append(_new_incidents(pop, cfg, rng, day))
        known = pd.concat(incidents, ignore_index=True)
        active = known[
            (pd.to_datetime(known["start"]).dt.date <= day) & (pd.to_datetime(known["end"]).dt.date > day)
        ]
        days.append(_apply_fraud(tx, pop, cfg, active, rng).assign(day=offset))
    tx = pd.concat(days, ignore_index=True)
    base = pd.Timestamp(cfg.start_date, tz="UTC")
    tx["tx_datetime"] = (base + pd.to_timedelta(tx["day"] * 86_400 + tx["seconds"], unit="s")).astype(
        "datetime64[us, UTC]"
    )
    tx = tx.sort_values(["tx_datetime", "customer_id", "terminal_id"], kind="stable").reset_index(drop=True)
    seq = tx.groupby("day").cumcount().to_numpy()
    tx["transaction_id"] = [
        f"T{d:%Y%m%d}-{s:07d}" for d, s in zip(tx["tx_datetime"].dt.date, seq, strict=True)
    ]
    return tx, pd.concat(incidents, ignore_index=True)


def existing_days(out: Path) -> list[dt.date]:
    """Days already simulated into ``out``."""
    folder = out / "transactions"
    return sorted(dt.date.fromisoformat(p.stem) for p in folder.glob("*.parquet")) if folder.exists() else []


def load_or_make_population(out: Path, cfg: SimulationConfig) -> Population:
    """The folder's population when it has one (so periods chain), else a new one from the seed."""
    customers, terminals = out / "customers.parquet", out / "terminals.parquet"
    if customers.exists() and terminals.exists():
        return attach_reach(pd.read_parquet(customers), pd.read_parquet(terminals), cfg.radius)
    return make_population(cfg.customers, cfg.terminals, cfg.radius, cfg.population_seed)


def write_simulation(out: Path, cfg: SimulationConfig) -> tuple[SimulationConfig, pd.DataFrame]:
    """Simulate into ``out`` in the contract's layout, continuing the days already there.

    Returns the configuration actually used (its start date moves past existing days) and the
    transactions with their labels.
    """
    days = existing_days(out)
    if days:
        cfg = SimulationConfig(**{**cfg.__dict__, "start_date": days[-1] + dt.timedelta(days=1)})
    pop = load_or_make_population(out, cfg)
    incidents_file = out / "incidents.parquet"
    open_incidents = None
    if incidents_file.exists():
        previous = pd.read_parquet(incidents_file)
        open_incidents = previous[pd.to_datetime(previous["end"]).dt.date > cfg.start_date]
        open_incidents = open_incidents.assign(
            start=pd.to_datetime(open_incidents["start"]).dt.date,
            end=pd.to_datetime(open_incidents["end"]).dt.date,
        )
    tx, incidents = simulate(cfg, pop, open_incidents)
    for sub in ("transactions", "labels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for day, part in tx.groupby(tx["tx_datetime"].dt.date):
        part[TRANSACTION_COLUMNS].to_parquet(out / "transactions" / f"{day}.parquet", index=False)
        part[LABEL_COLUMNS].to_parquet(out / "labels" / f"{day}.parquet", index=False)
    pop.customers.to_parquet(out / "customers.parquet", index=False)
    pop.terminals.to_parquet(out / "terminals.parquet", index=False)
    incidents.to_parquet(incidents_file, index=False)
    return cfg, tx
