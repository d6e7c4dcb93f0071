"""Scoring and feedback: raw transactions in, online features, champion verdicts, logs out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import orjson
from fastapi.responses import Response

from core.online import Row, epoch_seconds
from core.predlog import append_feedback
from serving.deps import Services
from serving.model_store import LoadedModel
from serving.schemas import LabelIn, TransactionIn


def transaction_rows(transactions: list[TransactionIn]) -> list[Row]:
    """The request's transactions as the feature state's rows."""
    return [
        (t.transaction_id, epoch_seconds(t.tx_datetime), t.customer_id, t.terminal_id, t.tx_amount)
        for t in transactions
    ]


def json_response(content: Any) -> Response:
    """``content`` serialised by orjson: the verdicts are built to the response schema already, so they
    skip FastAPI's validate-and-serialise pass (which costs more than the scoring itself)."""
    return Response(orjson.dumps(content), media_type="application/json")


def score_transactions(
    services: Services, champion: LoadedModel, transactions: list[TransactionIn]
) -> list[dict[str, Any]]:
    """Verdicts (:class:`~serving.schemas.ScoreOut` fields) in request order; each prediction is queued
    for the log and the decisions are counted.

    The prediction log is written off the request path (:class:`core.predlog.PredictionWriter`); a full
    queue refuses the request (503) rather than losing a prediction.
    """
    rows = transaction_rows(transactions)
    features = services.state.record(rows)
    probabilities = champion.predict_fraud(features).tolist()
    threshold, version = champion.info.threshold, champion.info.version
    flags = [p >= threshold for p in probabilities]
    scored_at = dt.datetime.now(dt.UTC).isoformat()
    feature_rows = features.astype(np.float64).tolist()
    services.predictions.submit(
        [
            (
                tid,
                t.tx_datetime.isoformat(timespec="microseconds"),
                customer,
                terminal,
                amount,
                *values,
                p,
                int(flag),
                threshold,
                version,
                scored_at,
            )
            for (tid, _, customer, terminal, amount), t, values, p, flag in zip(
                rows, transactions, feature_rows, probabilities, flags, strict=True
            )
        ]
    )
    n_fraud = sum(flags)
    services.telemetry.count_decisions(n_fraud, len(flags) - n_fraud)
    return [
        {
            "transaction_id": row[0],
            "fraud_probability": p,
            "is_fraud": flag,
            "threshold": threshold,
            "model_version": version,
        }
        for row, p, flag in zip(rows, probabilities, flags, strict=True)
    ]


def record_feedback(services: Services, labels: list[LabelIn]) -> int:
    """Teach the feature state the labels and append them to the feedback log; returns rows written."""
    today = services.clock.today() or dt.datetime.now(dt.UTC).date()
    services.state.add_labels({label.transaction_id: label.tx_fraud for label in labels})
    records = [{**label.model_dump(), "received_on": today.isoformat()} for label in labels]
    return append_feedback(services.settings.prediction_log, records)
