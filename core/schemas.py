"""Record schemas shared by every layer: transactions, labels and the prediction log (pandera)."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

TRANSACTION_COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
LABEL_COLUMNS = ["transaction_id", "tx_fraud", "tx_fraud_scenario"]
# only the simulator knows fraud scenarios: a real label export leaves the column out (null scenario)
OPTIONAL_LABEL_COLUMNS = ["tx_fraud_scenario"]
MAX_TX_AMOUNT = 1e7  # above this (or infinite) an amount is an error, not a transaction
SCORE_COLUMNS = ["fraud_probability", "is_fraud", "threshold", "model_version", "scored_at"]


class TransactionSchema(pa.DataFrameModel):
    """One card transaction as the bank's switch reports it (timestamps in UTC)."""

    transaction_id: Series[str] = pa.Field(nullable=False, unique=True, str_length={"min_value": 1})
    tx_datetime: Series[pd.DatetimeTZDtype] = pa.Field(
        nullable=False, dtype_kwargs={"unit": "us", "tz": "UTC"}
    )
    customer_id: Series[int] = pa.Field(ge=0, nullable=False)
    terminal_id: Series[int] = pa.Field(ge=0, nullable=False)
    tx_amount: Series[float] = pa.Field(ge=0, le=MAX_TX_AMOUNT, nullable=False)

    class Config:
        strict = "filter"
        coerce = True


class LabelSchema(pa.DataFrameModel):
    """A fraud label, known only some days after the transaction."""

    transaction_id: Series[str] = pa.Field(nullable=False, unique=True)
    tx_fraud: Series[int] = pa.Field(isin=[0, 1], nullable=False)
    # 0 genuine, else the simulator's fraud scenario; null when the source does not know it
    tx_fraud_scenario: Series[pd.Int64Dtype] = pa.Field(ge=0, nullable=True)

    class Config:
        strict = "filter"
        coerce = True
