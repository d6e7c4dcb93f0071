"""Request bodies and constants for the API tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from core.schemas import TRANSACTION_COLUMNS

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
ADMIN_KEY = "test-admin-key"
FEEDBACK_KEY = "test-feedback-key"
FEEDBACK_AUTH = {"X-API-Key": FEEDBACK_KEY}
THRESHOLD = 0.5  # the decision threshold the tests' registered versions carry


def transaction(tid: str, when: str, customer: int, terminal: int, amount: float = 42.0) -> dict[str, Any]:
    """A raw transaction body."""
    return {
        "transaction_id": tid,
        "tx_datetime": when,
        "customer_id": customer,
        "terminal_id": terminal,
        "tx_amount": amount,
    }


def bodies(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Simulated transactions as request bodies."""
    rows = frame[TRANSACTION_COLUMNS].itertuples(index=False)
    return [transaction(r[0], r[1].isoformat(), int(r[2]), int(r[3]), float(r[4])) for r in rows]


def columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Transaction bodies as the columnar batch body of ``POST /v1/score/columns``."""
    return {name: [row[name] for row in rows] for name in TRANSACTION_COLUMNS}
