"""Delayed-label performance: the join keeps only labelled scores, and a good score beats random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.performance import label_predictions, measure_performance


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
    assert result["measured"] is True
    assert result["rows"] == 4000
    assert result["frauds"] == int(predictions["_truth"].sum())
    assert result["average_precision"] > result["average_precision_random"] + 0.3
    assert result["roc_auc"] > 0.9
    assert result["card_precision_at_k"] > result["card_precision_at_k_random"]


def test_no_labelled_rows_is_not_measured() -> None:
    empty = label_predictions(scored(10), pd.DataFrame(columns=["transaction_id", "tx_fraud"]))
    result = measure_performance(empty, threshold=0.5, k=10)
    assert result == {"rows": 0, "frauds": 0, "measured": False, "reason": "no labelled rows in the window"}


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_is_not_measured(label: int) -> None:
    predictions = scored(50)
    feedback = feedback_for(predictions, slice(None)).assign(tx_fraud=label)
    result = measure_performance(label_predictions(predictions, feedback), threshold=0.5, k=10)
    assert result["measured"] is False
    assert result["reason"] == f"one class only ({50 * label} frauds in 50 labelled rows)"
