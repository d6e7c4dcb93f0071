"""HTTP bodies of the scoring API: every field bounded, every user error a 422 that says what to fix.

Timestamps must carry a timezone (a naive one is refused rather than guessed) and are converted to UTC.
Unknown fields are refused: clients send raw transactions, the service owns its features.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from core.schemas import MAX_TX_AMOUNT

# core.features packs an id and epoch seconds into one int64: ids and dates must stay in range.
MAX_ENTITY_ID = 90_000_000
MIN_TX_DATETIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
MAX_TX_DATETIME = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _to_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "tx_datetime needs a timezone, e.g. 2026-01-31T12:00:00Z or 2026-01-31T13:00:00+01:00"
        )
    # range first: converting 0001-01-01T00:00+00:01 to UTC would overflow (a 500, not a 422)
    if not MIN_TX_DATETIME <= value < MAX_TX_DATETIME:
        raise ValueError(f"tx_datetime must lie in [{MIN_TX_DATETIME:%Y-%m-%d}, {MAX_TX_DATETIME:%Y-%m-%d})")
    return value.astimezone(dt.UTC)


TransactionId = Annotated[str, Field(min_length=1, max_length=64, examples=["T20260122-0000001"])]
EntityId = Annotated[int, Field(ge=0, le=MAX_ENTITY_ID)]
UtcDatetime = Annotated[dt.datetime, AfterValidator(_to_utc), Field(examples=["2026-01-22T10:15:00Z"])]


class TransactionIn(BaseModel):
    """One raw card transaction, as the bank's switch reports it."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: TransactionId
    tx_datetime: UtcDatetime
    customer_id: EntityId
    terminal_id: EntityId
    tx_amount: float = Field(ge=0, le=MAX_TX_AMOUNT, allow_inf_nan=False, examples=[57.16])


def _first_duplicates(ids: list[str], limit: int = 5) -> list[str]:
    return [key for key, n in Counter(ids).items() if n > 1][:limit]


class BatchIn(BaseModel):
    """Several transactions scored in one call (ids unique within the batch)."""

    model_config = ConfigDict(extra="forbid")

    transactions: list[TransactionIn] = Field(min_length=1)

    @model_validator(mode="after")
    def _refuse_duplicate_ids(self) -> BatchIn:
        repeated = _first_duplicates([t.transaction_id for t in self.transactions])
        if repeated:
            raise ValueError(f"transaction_id must be unique within a batch; repeated: {', '.join(repeated)}")
        return self


class ScoreOut(BaseModel):
    """The model's verdict on one transaction."""

    transaction_id: str
    fraud_probability: float = Field(ge=0, le=1)
    is_fraud: bool = Field(description="fraud_probability >= threshold")
    threshold: float
    model_version: str


class BatchOut(BaseModel):
    """Verdicts in the order of the request."""

    predictions: list[ScoreOut]


class LabelIn(BaseModel):
    """A delayed fraud label for a transaction scored earlier."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: TransactionId
    tx_fraud: int = Field(ge=0, le=1, description="1 fraud, 0 genuine")
    tx_fraud_scenario: int = Field(default=0, ge=0, le=1000, description="0 genuine, else the fraud scenario")


class FeedbackIn(BaseModel):
    """A batch of delayed labels (the newest label of a transaction wins)."""

    model_config = ConfigDict(extra="forbid")

    labels: list[LabelIn] = Field(min_length=1)


class FeedbackOut(BaseModel):
    """How many labels were recorded."""

    accepted: int


class MetadataOut(BaseModel):
    """The model being served and what it assumes."""

    name: str
    version: str
    alias: str | None
    run_id: str
    data_version: str = Field(description="DVC version of the training data")
    features: list[str]
    threshold: float
    label_delay_days: int


class StatusOut(BaseModel):
    """A health answer."""

    status: str
    model_version: str | None = None


class ReloadOut(BaseModel):
    """Result of a registry reload."""

    changed: bool
    version: str | None


class ErrorOut(BaseModel):
    """Every error answer: what is wrong and what to do.

    A sentence, or for a request that does not match its schema, pydantic's list of per-field errors
    (``loc`` the field's path, ``msg`` the problem, ``input`` the offending value).
    """

    detail: str | list[dict[str, Any]]
