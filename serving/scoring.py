"""Scoring and feedback: raw transactions in, online features, champion verdicts, logs out.

Both batch forms (rows, :class:`~serving.schemas.BatchIn`; columns, :class:`~serving.schemas.ColumnsIn`)
and the single transaction become one :class:`Transactions` and take the same path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi.responses import Response

from core.online import EPOCH
from core.predlog import PredictionBatch
from serving.deps import Services
from serving.model_store import LoadedModel
from serving.schemas import ColumnsIn, LabelIn, TransactionIn

ONE_MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Transactions:
    """Validated transactions as columns; ``micros`` are epoch microseconds (UTC)."""

    ids: list[str]
    micros: np.ndarray
    customers: list[int]
    terminals: list[int]
    amounts: list[float]

    @classmethod
    def of(
        cls,
        ids: list[str],
        times: Sequence[dt.datetime],
        customers: list[int],
        terminals: list[int],
        amounts: list[float],
    ) -> Transactions:
        # aware datetimes subtract in UTC whatever their offsets: exact integer microseconds
        micros = np.array([(when - EPOCH) // ONE_MICROSECOND for when in times], dtype=np.int64)
        return cls(ids, micros, customers, terminals, amounts)

    @classmethod
    def from_rows(cls, transactions: list[TransactionIn]) -> Transactions:
        return cls.of(
            [t.transaction_id for t in transactions],
            [t.tx_datetime for t in transactions],
            [t.customer_id for t in transactions],
            [t.terminal_id for t in transactions],
            [t.tx_amount for t in transactions],
        )

    @classmethod
    def from_columns(cls, columns: ColumnsIn) -> Transactions:
        return cls.of(
            columns.transaction_id,
            columns.tx_datetime,
            columns.customer_id,
            columns.terminal_id,
            columns.tx_amount,
        )

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Verdicts:
    """The champion's answers for :class:`Transactions`, in their order."""

    ids: list[str]
    probabilities: list[float]
    flags: list[bool]
    threshold: float
    version: str

    def rows(self) -> list[dict[str, Any]]:
        """As :class:`~serving.schemas.ScoreOut` dicts."""
        threshold, version = self.threshold, self.version
        return [
            {
                "transaction_id": tid,
                "fraud_probability": p,
                "is_fraud": flag,
                "threshold": threshold,
                "model_version": version,
            }
            for tid, p, flag in zip(self.ids, self.probabilities, self.flags, strict=True)
        ]

    def columns(self) -> dict[str, Any]:
        """As a :class:`~serving.schemas.ColumnsOut` dict."""
        return {
            "transaction_id": self.ids,
            "fraud_probability": self.probabilities,
            "is_fraud": self.flags,
            "threshold": self.threshold,
            "model_version": self.version,
        }


def json_response(content: Any) -> Response:
    """``content`` serialised by orjson: the verdicts are built to the response schema already, so they
    skip FastAPI's validate-and-serialise pass (which costs more than the scoring itself)."""
    return Response(orjson.dumps(content), media_type="application/json")


def score_transactions(services: Services, champion: LoadedModel, tx: Transactions) -> Verdicts:
    """Features from the online state, the champion's verdicts, each prediction queued for the log
    and the decisions counted.

    The prediction log is written off the request path (:class:`core.predlog.PredictionWriter`); a full
    queue refuses the request (503) rather than losing a prediction.
    """
    seconds = (tx.micros // 1_000_000).tolist()  # floored, as core.features does
    features = services.state.add_transactions(
        list(zip(tx.ids, seconds, tx.customers, tx.terminals, tx.amounts, strict=True))
    )
    probabilities = champion.predict_fraud(features).astype(np.float64)
    threshold, version = champion.info.threshold, champion.info.version
    flags = probabilities >= threshold
    services.predictions.submit(
        PredictionBatch(
            *(tx.ids, tx.micros, tx.customers, tx.terminals, tx.amounts, features, probabilities, flags),
            *(threshold, version, dt.datetime.now(dt.UTC).isoformat()),
        )
    )
    n = len(tx)
    n_fraud = int(flags.sum())
    services.telemetry.count_decisions(n_fraud, n - n_fraud)
    return Verdicts(tx.ids, probabilities.tolist(), flags.tolist(), threshold, version)


def record_feedback(services: Services, labels: list[LabelIn]) -> int:
    """Append the labels to the feedback log, then teach the feature state them; returns rows written.

    Logged first: a label the log refused (:class:`~core.predlog.PredictionLogError`) leaves the
    features as they were, so a retry applies it once and monitoring judges what scoring used.
    """
    today = services.clock.today() or dt.datetime.now(dt.UTC).date()
    records = [{**label.model_dump(), "received_on": today.isoformat()} for label in labels]
    written = services.predictions.log.append_feedback(records)
    services.state.add_labels({label.transaction_id: label.tx_fraud for label in labels})
    return written
