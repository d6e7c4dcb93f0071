"""HTTP bodies of the scoring API: every field bounded, every user error a 422 that says what to fix.

Timestamps must carry a timezone (a naive one is refused rather than guessed).
Unknown fields are refused: clients send raw transactions, the service owns its features.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from core.schemas import MAX_TX_AMOUNT

# core.features packs an id and epoch seconds into one int64: ids and dates must stay in range.
MAX_ENTITY_ID = 90_000_000
MIN_TX_DATETIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
MAX_TX_DATETIME = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


TIMEZONE_MESSAGE = "tx_datetime needs a timezone, e.g. 2026-01-31T12:00:00Z or 2026-01-31T13:00:00+01:00"
RANGE_MESSAGE = f"tx_datetime must lie in [{MIN_TX_DATETIME:%Y-%m-%d}, {MAX_TX_DATETIME:%Y-%m-%d})"

TransactionId = Annotated[str, Field(min_length=1, max_length=64, examples=["T20260122-0000001"])]
EntityId = Annotated[int, Field(ge=0, le=MAX_ENTITY_ID)]
# validated by pydantic-core without Python code (a batch of 1,000 rows 3x faster than a Python
# validator); the offset is kept and every use converts to UTC. serving.errors words the errors.
AwareTime = Annotated[
    AwareDatetime,
    Field(
        ge=MIN_TX_DATETIME, lt=MAX_TX_DATETIME, examples=["2026-01-22T10:15:00Z"], description=RANGE_MESSAGE
    ),
]
Amount = Annotated[float, Field(ge=0, le=MAX_TX_AMOUNT, allow_inf_nan=False, examples=[57.16])]


def friendlier(error: dict[str, Any]) -> dict[str, Any]:
    """pydantic's error on a transaction time in the words of :data:`TIMEZONE_MESSAGE` and
    :data:`RANGE_MESSAGE`; other errors as they are."""
    if "tx_datetime" not in error.get("loc", ()):
        return error
    if error.get("type") == "timezone_aware":
        return {**error, "msg": TIMEZONE_MESSAGE}
    if error.get("type") in ("greater_than_equal", "less_than"):
        return {**error, "msg": RANGE_MESSAGE}
    return error


class TransactionIn(BaseModel):
    """One raw card transaction, as the bank's switch reports it."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: TransactionId
    tx_datetime: AwareTime
    customer_id: EntityId
    terminal_id: EntityId
    tx_amount: Amount


def _first_duplicates(ids: list[str], limit: int = 5) -> list[str]:
    return [key for key, n in Counter(ids).items() if n > 1][:limit]


class BatchIn(BaseModel):
    """Several transactions scored in one call (ids unique within the batch)."""

    model_config = ConfigDict(extra="forbid")

    transactions: list[TransactionIn] = Field(min_length=1)

    @model_validator(mode="after")
    def _refuse_duplicate_ids(self) -> BatchIn:
        ids = [t.transaction_id for t in self.transactions]
        if len(set(ids)) < len(ids):
            repeated = _first_duplicates(ids)
            raise ValueError(f"transaction_id must be unique within a batch; repeated: {', '.join(repeated)}")
        return self


class ColumnsIn(BaseModel):
    """A batch as columns: one list per field, equally long, ids unique (the form a dataframe writes
    with ``to_dict(orient="list")``, and the cheapest to read)."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: list[TransactionId] = Field(min_length=1)
    tx_datetime: list[AwareTime] = Field(min_length=1)
    customer_id: list[EntityId] = Field(min_length=1)
    terminal_id: list[EntityId] = Field(min_length=1)
    tx_amount: list[Amount] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_columns(self) -> ColumnsIn:
        lengths = {name: len(getattr(self, name)) for name in type(self).model_fields}
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{name} {n}" for name, n in lengths.items())
            raise ValueError(f"every column needs one value per transaction; lengths: {sizes}")
        if len(set(self.transaction_id)) < len(self.transaction_id):
            repeated = _first_duplicates(self.transaction_id)
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


class ColumnsOut(BaseModel):
    """Verdicts as columns, in the order of the request."""

    transaction_id: list[str]
    fraud_probability: list[Annotated[float, Field(ge=0, le=1)]]
    is_fraud: list[bool] = Field(description="fraud_probability >= threshold")
    threshold: float | list[float] = Field(
        description="One value for all verdicts; one per verdict when a transaction sent again got its "
        "stored verdict from an earlier model"
    )
    model_version: str | list[str] = Field(description="As threshold: one value, or one per verdict")


class LabelIn(BaseModel):
    """A delayed fraud label for a transaction scored earlier."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: TransactionId
    tx_fraud: int = Field(ge=0, le=1, description="1 fraud, 0 genuine")
    tx_fraud_scenario: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="The simulator's fraud scenario (0 genuine); absent from real label feeds",
    )


class FeedbackIn(BaseModel):
    """A batch of delayed labels (a label sent again is recorded once; a different one for a labelled
    transaction is refused with 409)."""

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
