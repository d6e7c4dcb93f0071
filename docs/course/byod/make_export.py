"""Write a small bank export in fraudops' layout: export/transactions/DAY.parquet, export/labels/DAY.parquet."""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(3)
out, start, days = Path("export"), dt.date(2026, 5, 4), 80
customers, terminals = 150, 300
compromised_until = np.full(terminals, -1)  # last day a terminal is compromised (-1: never)
for d in range(days):
    day = start + dt.timedelta(days=d)
    if d % 3 == 0:  # every third day a terminal is compromised for four weeks
        compromised_until[rng.integers(terminals)] = d + 27
    per_customer = rng.poisson(2.0, customers)
    n = int(per_customer.sum())
    terminal = rng.integers(terminals, size=n)
    amount = np.round(rng.lognormal(3.5, 0.8, n), 2)
    fraud = (amount > 250) | (compromised_until[terminal] >= d)
    seconds = np.sort(rng.integers(0, 86_400, n))
    ids = [f"bank-{day:%Y%m%d}-{i:05d}" for i in range(n)]
    tx = pd.DataFrame(
        {
            "transaction_id": ids,
            "tx_datetime": (pd.Timestamp(day, tz="UTC") + pd.to_timedelta(seconds, unit="s")).as_unit("us"),
            "customer_id": rng.permutation(np.repeat(np.arange(customers), per_customer)),
            "terminal_id": terminal,
            "tx_amount": amount,
        }
    )
    labels = pd.DataFrame({"transaction_id": ids, "tx_fraud": fraud.astype(int)})  # no scenario column
    for kind, frame in (("transactions", tx), ("labels", labels)):
        (out / kind).mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out / kind / f"{day}.parquet", index=False)
