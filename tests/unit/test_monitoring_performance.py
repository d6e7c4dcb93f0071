"""Delayed-label performance: the join keeps only labelled scores, and a good score beats random."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from core.params import Params
from monitoring.champion import expected_from_metrics
from monitoring.performance import (
    LivePerformance,
    drop_known_cards,
    label_predictions,
    lookback_start,
    measure_performance,
)
from monitoring.policy import Expected


def scored(n: int, seed: int = 0) -> pd.DataFrame:
    """A prediction log of ``n`` rows over 7 days whose scores rank frauds first (with noise)."""
    rng = np.random.default_rng(seed)
    fraud = (rng.uniform(size=n) < 0.05).astype(int)
    return pd.DataFrame(
        {
            "transaction_id": [f"T{i:05d}" for i in range(n)],
            "tx_datetime": pd.Timestamp("2026-02-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 7, n), "D"),
            "customer_id": rng.integers(0, 300, n),
            "terminal_id": rng.integers(0, 600, n),
            "f_tx_amount": rng.uniform(0, 100, n),
            "fraud_probability": np.clip(0.6 * fraud + rng.normal(0.2, 0.15, n), 0, 1),
            "threshold": 0.5,
            "model_version": "3",
            "_truth": fraud,
        }
    )


def feedback_for(predictions: pd.DataFrame, ids: slice, extra: int = 0) -> pd.DataFrame:
    part = predictions.iloc[ids]
    labels = pd.DataFrame(
        {
            "transaction_id": part["transaction_id"].to_list() + [f"X{i}" for i in range(extra)],
            "tx_fraud": part["_truth"].to_list() + [1] * extra,
            "tx_fraud_scenario": part["_truth"].to_list() + [1] * extra,
        }
    )
    return labels


def test_join_keeps_only_scored_transactions_with_a_label() -> None:
    predictions = scored(1000)
    labelled = label_predictions(predictions, feedback_for(predictions, slice(0, 600), extra=25))
    assert len(labelled) == 600
    assert set(labelled["transaction_id"]) == set(predictions["transaction_id"][:600])
    for column in ("tx_datetime", "customer_id", "fraud_probability", "threshold", "tx_fraud"):
        assert column in labelled.columns
    assert "f_tx_amount" not in labelled.columns
    assert labelled["tx_fraud"].sum() == predictions["_truth"][:600].sum()


def test_join_with_no_feedback_is_empty() -> None:
    empty = pd.DataFrame(columns=["transaction_id", "tx_fraud", "tx_fraud_scenario"])
    assert label_predictions(scored(10), empty).empty


def test_good_scores_beat_every_random_baseline() -> None:
    predictions = scored(4000)
    labelled = label_predictions(predictions, feedback_for(predictions, slice(None)))
    result = measure_performance(labelled, threshold=0.5, k=10)
    assert result.measured is True
    assert result.rows == 4000
    assert result.frauds == int(predictions["_truth"].sum())
    assert result.average_precision is not None and result.average_precision_random is not None
    assert result.average_precision > result.average_precision_random + 0.3
    assert result.roc_auc is not None and result.roc_auc > 0.9
    assert result.card_precision_at_k is not None and result.card_precision_at_k_random is not None
    assert result.card_precision_at_k > result.card_precision_at_k_random


def test_no_labelled_rows_is_not_measured() -> None:
    empty = label_predictions(scored(10), pd.DataFrame(columns=["transaction_id", "tx_fraud"]))
    result = measure_performance(empty, threshold=0.5, k=10)
    assert result == LivePerformance(
        rows=0, frauds=0, measured=False, reason="no labelled rows in the window"
    )


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_is_not_measured(label: int) -> None:
    predictions = scored(50)
    feedback = feedback_for(predictions, slice(None)).assign(tx_fraud=label)
    result = measure_performance(label_predictions(predictions, feedback), threshold=0.5, k=10)
    assert result.measured is False
    assert result.reason == f"one class only ({50 * label} frauds in 50 labelled rows)"


def test_cards_known_to_be_compromised_leave_the_week(params: Params) -> None:
    """As in training's test weeks: a card counts as known 8 days (gap + 1) after its first labelled fraud."""
    start = dt.date(2026, 3, 10)
    rows = [  # (card, day offset from the week's start, fraud)
        (1, -10, 1),  # card 1's fraud before the week: known all week
        (1, 2, 0),
        (2, -3, 1),  # card 2: known from day 5 on
        (2, 4, 0),
        (2, 5, 1),
        (3, 1, 0),  # card 3: never a fraud
        (3, 6, 0),
        (4, -40, 1),  # card 4's fraud is older than the lookback: not counted
        (4, 3, 0),
    ]
    labelled = pd.DataFrame(
        {
            "transaction_id": [f"T{i}" for i in range(len(rows))],
            "customer_id": [r[0] for r in rows],
            "tx_datetime": [pd.Timestamp(start + dt.timedelta(days=r[1]), tz="UTC") for r in rows],
            "tx_fraud": [r[2] for r in rows],
            "fraud_probability": 0.5,
        }
    )
    assert lookback_start(start, params) == start - dt.timedelta(days=28)
    kept = drop_known_cards(labelled, start, start + dt.timedelta(days=6), params)
    assert sorted(zip(kept["customer_id"], kept["tx_datetime"].dt.day - start.day, strict=True)) == [
        (2, 4),
        (3, 1),
        (3, 6),
        (4, 3),
    ]


def test_expected_figures_come_from_the_prequential_folds_else_the_validation_folds() -> None:
    validation = {
        "validation_folds": 2.0,
        "validation_average_precision_mean": 0.55,
        "validation_average_precision_std": 0.04,
        "validation_precision_at_threshold_mean": 0.5,
        "validation_recall_at_threshold_mean": 0.62,
        "test_average_precision": 0.7,
    }
    assert expected_from_metrics(validation) == Expected(0.55, 0.04, 2, 0.5, 0.62, "validation folds")
    # with prequential folds: their mean and sample standard deviation (the stage logs a population std)
    prequential = {"test_prequential_folds": 4.0, "test_prequential_average_precision_mean": 0.6}
    both = expected_from_metrics(validation | prequential | {"test_prequential_average_precision_std": 0.06})
    assert both is not None and (both.average_precision, both.folds) == (0.6, 4)
    assert both.average_precision_std == pytest.approx(0.06 * (4 / 3) ** 0.5)
    assert (both.precision, both.recall, both.source) == (0.5, 0.62, "prequential folds")
    one_fold = expected_from_metrics({"validation_folds": 1.0, "validation_average_precision_mean": 0.5})
    assert one_fold is not None and (one_fold.folds, one_fold.average_precision_std) == (1, None)
    older = expected_from_metrics({"test_average_precision": 0.7, "test_recall_at_threshold": 0.6})
    assert older == Expected(0.7, None, 1, None, 0.6, "test window")
    assert expected_from_metrics({}) is None
