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
import pyarrow as pa

from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS

SCENARIOS = ("none", "holiday", "new-pattern", "control")
GRID = 100.0
S1_AMOUNT = 220.0
S2_DAYS, S3_DAYS = 28, 14
HOLIDAY_FACTOR = 1.5
NEW_PATTERN_RADIUS = 25.0
NEW_PATTERN_MAX_AMOUNT = 120.0
NIGHT_END_S = 6 * 3600
DAY_S = 86_400
INCIDENT_COLUMNS = ["kind", "entity_id", "start", "end"]


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
    """Compute, per customer, the terminals within ``radius``, in ascending terminal id.

    Only terminals in the 3 x 3 grid cells (of side ``radius``) around a customer's cell are
    measured: checking every terminal against every customer cost customers x terminals, which
    grew with the square of the world's size.
    """
    cx, cy = customers["x"].to_numpy(np.float64), customers["y"].to_numpy(np.float64)
    tx, ty = terminals["x"].to_numpy(np.float64), terminals["y"].to_numpy(np.float64)
    counts = np.zeros(len(cx), dtype=np.int64)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per cell: customers, counts, terminals
    if radius != 0 and len(cx) and len(tx):
        cell = abs(radius)
        x0, y0 = min(cx.min(), tx.min()), min(cy.min(), ty.min())
        c_col, c_row = ((cx - x0) // cell).astype(np.int64), ((cy - y0) // cell).astype(np.int64)
        t_col, t_row = ((tx - x0) // cell).astype(np.int64), ((ty - y0) // cell).astype(np.int64)
        width = int(max(c_col.max(), t_col.max())) + 3  # a margin column: neighbours never wrap rows
        c_cell, t_cell = (c_row + 1) * width + c_col + 1, (t_row + 1) * width + t_col + 1
        t_order = np.argsort(t_cell, kind="stable")  # ascending terminal id within a cell
        t_sorted = t_cell[t_order]
        c_order = np.argsort(c_cell, kind="stable")
        for group in np.split(c_order, np.flatnonzero(np.diff(c_cell[c_order])) + 1):
            around = int(c_cell[group[0]]) + np.array(
                [-width - 1, -width, -width + 1, -1, 0, 1, width - 1, width, width + 1]
            )
            lo, hi = np.searchsorted(t_sorted, around, "left"), np.searchsorted(t_sorted, around, "right")
            candidates = np.sort(np.concatenate([t_order[a:b] for a, b in zip(lo, hi, strict=True)]))
            # the same expression as a full comparison would evaluate, so the same terminals pass
            d2 = (cx[group][:, None] - tx[candidates]) ** 2 + (cy[group][:, None] - ty[candidates]) ** 2
            rows, cols = np.nonzero(d2 < radius**2)  # row by row, terminals ascending in each
            per_row = np.bincount(rows, minlength=len(group))
            counts[group] = per_row
            found.append((group, per_row, candidates[cols]))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # each customer's terminals go straight to its slice: no sort of every (customer, terminal) pair
    reachable = np.empty(offsets[-1], dtype=np.int64)
    for group, per_row, terms in found:
        starts_in_group = np.cumsum(per_row) - per_row
        reachable[np.repeat(offsets[group] - starts_in_group, per_row) + np.arange(len(terms))] = terms
    return Population(customers, terminals, offsets, reachable)


Columns = dict[str, np.ndarray]


def _draw_day(pop: Population, cfg: SimulationConfig, rng: np.random.Generator) -> Columns:
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
    return {
        "seconds": seconds.astype(np.int64),
        "customer_id": cust_idx.astype(np.int64),
        "terminal_id": terminal,
        "tx_amount": np.round(amount, 2),
    }


Incident = tuple[str, int, dt.date, dt.date]  # kind, entity id, first day, day it ends (excluded)


def _new_incidents(
    pop: Population, cfg: SimulationConfig, rng: np.random.Generator, day: dt.date
) -> list[Incident]:
    """Terminals and cards compromised from ``day`` on (Poisson counts, rates scaled to the population)."""
    rows: list[Incident] = []
    n_term, n_cust = len(pop.terminals), len(pop.customers)
    term_rate = cfg.compromised_terminals_per_10000 * n_term / 10_000
    card_rate = cfg.compromised_cards_per_5000 * n_cust / 5_000
    for kind, rate, pool, length in (
        ("terminal", term_rate, n_term, S2_DAYS),
        ("card", card_rate, n_cust, S3_DAYS),
    ):
        for entity in rng.choice(pool, size=min(pool, rng.poisson(rate)), replace=False):
            rows.append((kind, int(entity), day, day + dt.timedelta(days=length)))
    return rows


def _incident_tuples(incidents: pd.DataFrame) -> list[Incident]:
    """Incidents as plain tuples, their days as dates (a frame read back from parquet holds datetimes)."""
    starts, ends = pd.to_datetime(incidents["start"]).dt.date, pd.to_datetime(incidents["end"]).dt.date
    return list(zip(incidents["kind"], map(int, incidents["entity_id"]), starts, ends, strict=True))


def _hit(active: list[Incident], kind: str, entity: np.ndarray) -> np.ndarray:
    """Whether each transaction's terminal or card is under an incident of ``kind`` (all active today)."""
    return np.isin(entity, np.array([e for k, e, _, _ in active if k == kind], dtype=np.int64))


def _apply_fraud(
    tx: Columns, pop: Population, cfg: SimulationConfig, active: list[Incident], rng: np.random.Generator
) -> Columns:
    amount = tx["tx_amount"].copy()
    scenario = np.zeros(len(amount), dtype=np.int64)
    scenario[amount > S1_AMOUNT] = 1
    scenario[(scenario == 0) & _hit(active, "terminal", tx["terminal_id"])] = 2
    card = _hit(active, "card", tx["customer_id"]) & (scenario == 0)
    card &= rng.uniform(0, 1, len(amount)) < 1 / 3
    scenario[card] = 3
    amount[card] *= 5
    if "new-pattern" in cfg.scenarios:
        scenario[(scenario == 0) & _new_pattern_mask(tx, pop)] = 4
    if "holiday" in cfg.scenarios:
        amount = np.round(amount * HOLIDAY_FACTOR, 2)
    return tx | {
        "tx_amount": np.round(amount, 2),
        "tx_fraud_scenario": scenario,
        "tx_fraud": (scenario > 0).astype(np.int64),
    }


def new_pattern_terminals(pop: Population) -> np.ndarray:
    """Terminals of the new-pattern cluster: within a fixed radius of a population-seeded centre."""
    centre = pop.terminals[["x", "y"]].to_numpy()[0]
    d2 = ((pop.terminals[["x", "y"]].to_numpy() - centre) ** 2).sum(axis=1)
    return pop.terminals["terminal_id"].to_numpy()[d2 < NEW_PATTERN_RADIUS**2]


def _new_pattern_mask(tx: Columns, pop: Population) -> np.ndarray:
    in_cluster = np.isin(tx["terminal_id"], new_pattern_terminals(pop))
    night = tx["seconds"] < NIGHT_END_S
    return in_cluster & night & (tx["tx_amount"] <= NEW_PATTERN_MAX_AMOUNT)


def _in_time_order(tx: Columns, pop: Population) -> Columns:
    """A day's rows by (time, customer, terminal), stably: sorting each day on its own, small and in
    cache, gives the order one sort of every day would, since days follow each other."""
    n_cust, n_term = len(pop.customers), len(pop.terminals)  # ids are row positions: below these
    if DAY_S * n_cust * n_term < np.iinfo(np.int64).max:  # one packed key sorts faster than three
        key = (tx["seconds"] * n_cust + tx["customer_id"]) * n_term + tx["terminal_id"]
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((tx["terminal_id"], tx["customer_id"], tx["seconds"]))
    return {name: values[order] for name, values in tx.items()}


def transaction_ids(dates: list[dt.date], day: np.ndarray, seq: np.ndarray) -> pd.Series:
    """``T<YYYYMMDD>-<seq, 7 digits>`` per row (``day`` indexes ``dates``), built as bytes in numpy:
    formatting a Python string per row was most of the simulation's time."""
    if len(seq) and seq.max() >= 10**7:  # wider than 7 digits: the plain format, as before
        return pd.Series([f"T{dates[d]:%Y%m%d}-{s:07d}" for d, s in zip(day, seq, strict=True)], dtype="str")
    prefixes = np.frombuffer("".join(f"T{d:%Y%m%d}-" for d in dates).encode(), dtype=np.uint8)
    chars = np.empty((len(seq), 17), dtype=np.uint8)
    chars[:, :10] = prefixes.reshape(-1, 10)[day] if len(dates) else 0
    for place in range(7):
        chars[:, 16 - place] = ord("0") + (seq // 10**place) % 10
    offsets = np.arange(0, 17 * (len(seq) + 1), 17, dtype=np.int64)
    array = pa.Array.from_buffers(
        pa.large_string(), len(seq), [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )
    return pd.Series(array.to_pandas(), dtype="str")


def simulate(
    cfg: SimulationConfig, pop: Population, open_incidents: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate ``cfg.days`` days: transactions with their labels, and all incidents (old and new).

    Each day draws from its own generator, seeded by (seed, date): simulating 60 days at once equals
    30 days and then 30 more into the same folder. Days stay numpy columns until the end: a frame per
    day and the incident table rebuilt every day cost more than the draws.
    """
    incidents = [open_incidents] if open_incidents is not None else []
    still_open = _incident_tuples(open_incidents) if open_incidents is not None else []
    days: list[Columns] = []
    for offset in range(cfg.days):
        day = cfg.start_date + dt.timedelta(days=offset)
        rng = np.random.default_rng([cfg.seed, day.toordinal()])
        tx = _draw_day(pop, cfg, rng)
        new = _new_incidents(pop, cfg, rng, day)
        incidents.append(pd.DataFrame(new, columns=INCIDENT_COLUMNS))
        still_open = [i for i in still_open + new if i[3] > day]
        active = [i for i in still_open if i[2] <= day]
        days.append(_in_time_order(_apply_fraud(tx, pop, cfg, active, rng), pop))
    rows = np.array([len(d["seconds"]) for d in days], dtype=np.int64)
    # column by column, each day's piece dropped once copied: the days are never held twice
    columns = {name: np.concatenate([d.pop(name) for d in days]) for name in list(days[0])} if days else {}
    day_index = np.repeat(np.arange(cfg.days, dtype=np.int64), rows)
    base_s = (cfg.start_date - dt.date(1970, 1, 1)).days * DAY_S
    micros = (base_s + day_index * DAY_S + columns["seconds"]) * 1_000_000
    seq = np.arange(len(day_index), dtype=np.int64) - np.repeat(np.cumsum(rows) - rows, rows)
    dates = [cfg.start_date + dt.timedelta(days=d) for d in range(cfg.days)]
    frame: dict[str, np.ndarray | pd.Series] = {
        **columns,
        "day": day_index,
        "tx_datetime": pd.Series(micros.astype("datetime64[us]")).dt.tz_localize("UTC"),
        "transaction_id": transaction_ids(dates, day_index, seq),
    }
    # copy=False keeps the columns as they are: stacking them into one block copies every row again
    return pd.DataFrame(frame, copy=False), pd.concat(incidents, ignore_index=True)


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
    # rows come in day order: each day is a slice, found without a date object per row
    bounds = np.searchsorted(tx["day"].to_numpy(), np.arange(cfg.days + 1))
    for offset in np.flatnonzero(np.diff(bounds)):  # days without a transaction get no file
        part = tx.iloc[bounds[offset] : bounds[offset + 1]]
        day = cfg.start_date + dt.timedelta(days=int(offset))
        part[TRANSACTION_COLUMNS].to_parquet(out / "transactions" / f"{day}.parquet", index=False)
        part[LABEL_COLUMNS].to_parquet(out / "labels" / f"{day}.parquet", index=False)
    pop.customers.to_parquet(out / "customers.parquet", index=False)
    pop.terminals.to_parquet(out / "terminals.parquet", index=False)
    incidents.to_parquet(incidents_file, index=False)
    return cfg, tx
