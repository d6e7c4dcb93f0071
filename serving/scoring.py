"""Scoring and feedback: raw transactions in, online features, champion verdicts, logs out."""

from __future__ import annotations

import datetime as dt
from typing import cast

import numpy as np
import pandas as pd

from core.clock import read_today
from core.predlog import append_feedback, append_predictions
from serving.deps import Services
from serving.model_store import LoadedModel
from serving.schemas import LabelIn, ScoreOut, TransactionIn


def transactions_frame(transactions: list[TransactionIn]) -> pd.DataFrame:
    """The request's transactions as a frame with the transaction columns."""
    return pd.DataFrame([t.model_dump() for t in transactions])


def build_scores(ids: list[str], probabilities: np.ndarray, champion: LoadedModel) -> list[ScoreOut]:
    """One verdict per transaction at the model's threshold."""
    threshold, version = champion.info.threshold, champion.info.version
    return [
        ScoreOut(
            transaction_id=tid,
            fraud_probability=float(p),
            is_fraud=bool(p >= threshold),
            threshold=threshold,
            model_version=version,
        )
        for tid, p in zip(ids, probabilities, strict=True)
    ]


def prediction_records(
    transactions: list[TransactionIn], features: pd.DataFrame, scores: list[ScoreOut]
) -> list[dict[str, object]]:
    """Prediction-log records (core.predlog.prediction_columns), features as the model saw them."""
    scored_at = dt.datetime.now(dt.UTC).isoformat()
    logged = features.astype(np.float64).rename(columns=lambda name: f"f_{name}")
    feature_rows = cast(list[dict[str, object]], logged.to_dict("records"))
    return [
        {
            **tx.model_dump(),
            "tx_datetime": tx.tx_datetime.isoformat(),
            **row,
            **score.model_dump(exclude={"transaction_id"}),
            "scored_at": scored_at,
        }
        for tx, row, score in zip(transactions, feature_rows, scores, strict=True)
    ]


def score_transactions(
    services: Services, champion: LoadedModel, transactions: list[TransactionIn]
) -> list[ScoreOut]:
    """Score transactions in request order, log each prediction and count the decisions."""
    features = services.state.record_batch(transactions_frame(transactions))[champion.info.features]
    probabilities = champion.predict_fraud(features)
    scores = build_scores([t.transaction_id for t in transactions], probabilities, champion)
    append_predictions(services.settings.prediction_log, prediction_records(transactions, features, scores))
    n_fraud = sum(s.is_fraud for s in scores)
    services.telemetry.count_decisions(n_fraud, len(scores) - n_fraud)
    return scores


def record_feedback(services: Services, labels: list[LabelIn]) -> int:
    """Teach the feature state the labels and append them to the feedback log; returns rows written."""
    today = read_today(services.settings.clock_file) or dt.datetime.now(dt.UTC).date()
    services.state.add_labels({label.transaction_id: label.tx_fraud for label in labels})
    records = [{**label.model_dump(), "received_on": today.isoformat()} for label in labels]
    return append_feedback(services.settings.prediction_log, records)
