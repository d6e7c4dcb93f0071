"""Clock, metrics, prediction log and settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.clock import labels_released, last_labelled_day, read_today, set_today
from core.metrics import card_k, card_precision_at_k, evaluate_scores
from core.predlog import append_feedback, append_predictions, read_feedback, read_predictions
from core.settings import PLACEHOLDER_KEY, Settings, ensure_api_keys


def test_clock_releases_labels_after_the_delay(tmp_path: Path) -> None:
    clock = tmp_path / "clock.json"
    assert read_today(clock) is None
    set_today(clock, dt.date(2026, 2, 10))
    assert read_today(clock) == dt.date(2026, 2, 10)
    assert last_labelled_day(dt.date(2026, 2, 10), 7) == dt.date(2026, 2, 3)
    assert labels_released(dt.date(2026, 2, 3), dt.date(2026, 2, 10), 7)
    assert not labels_released(dt.date(2026, 2, 4), dt.date(2026, 2, 10), 7)


def _cards() -> pd.DataFrame:
    day1, day2 = pd.Timestamp("2026-01-01 10:00", tz="UTC"), pd.Timestamp("2026-01-02 10:00", tz="UTC")
    return pd.DataFrame(
        {
            "tx_datetime": [day1, day1, day1, day2, day2, day2],
            "customer_id": [1, 2, 3, 1, 2, 3],
            "tx_fraud": [1, 0, 0, 1, 1, 0],
        }
    )


def test_card_precision_drops_cards_caught_earlier() -> None:
    frame = _cards()
    scores = np.array([0.9, 0.1, 0.2, 0.9, 0.5, 0.1])
    cpk, random, ceiling = card_precision_at_k(frame, scores, k=1)
    # day 1: card 1 is top and fraudulent (1.0); day 2: card 1 already caught, card 2 is top and fraudulent
    assert cpk == 1.0
    assert random == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert ceiling == 1.0


def test_evaluate_scores_reports_baselines() -> None:
    frame = _cards()
    metrics = evaluate_scores(frame, np.array([0.9, 0.1, 0.2, 0.8, 0.7, 0.1]), threshold=0.5, k=1)
    assert metrics["roc_auc"] == 1.0 and metrics["roc_auc_random"] == 0.5
    assert metrics["average_precision_random"] == pytest.approx(0.5)
    assert metrics["recall_at_threshold"] == 1.0
    # three alerts out of six rows: random alerts would catch half the frauds, at the fraud rate
    assert metrics["recall_at_threshold_random"] == pytest.approx(0.5)
    assert metrics["precision_at_threshold"] == 1.0 and metrics["precision_at_threshold_random"] == 0.5
    assert card_k(5000, 100) == 100 and card_k(100, 100) == 10


def test_prediction_log_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "stores" / "predictions.db"
    rec = {"transaction_id": "T1", "tx_datetime": "2026-01-05T10:00:00+00:00", "fraud_probability": 0.2}
    assert (
        append_predictions(db, [rec, {**rec, "transaction_id": "T2"}, {**rec, "fraud_probability": 0.3}]) == 3
    )
    frame = read_predictions(db, dt.date(2026, 1, 5), dt.date(2026, 1, 5))
    assert sorted(frame["transaction_id"]) == ["T1", "T2"]
    assert frame.set_index("transaction_id").loc["T1", "fraud_probability"] == 0.3  # newest score wins
    assert read_predictions(db, dt.date(2026, 1, 6)).empty
    assert read_feedback(db).empty
    append_feedback(
        db, [{"transaction_id": "T1", "tx_fraud": 1, "tx_fraud_scenario": 2, "received_on": "2026-01-12"}]
    )
    assert read_feedback(db)["tx_fraud"].tolist() == [1]


@pytest.mark.parametrize("variable", ["FRAUDOPS_ADMIN_API_KEY", "FRAUDOPS_FEEDBACK_API_KEY"])
def test_api_keys_generated_in_development_and_placeholders_refused_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    for name in ("FRAUDOPS_ADMIN_API_KEY", "FRAUDOPS_FEEDBACK_API_KEY"):
        monkeypatch.delenv(name, raising=False)  # undone after the test, with what it sets
    settings = Settings(project_dir=tmp_path, admin_api_key=PLACEHOLDER_KEY, feedback_api_key=PLACEHOLDER_KEY)
    ensure_api_keys(settings)
    key = getattr(settings, variable.removeprefix("FRAUDOPS_").lower())
    assert key != PLACEHOLDER_KEY and f"{variable}={key}" in (tmp_path / ".env").read_text()
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600  # secrets: readable by their owner only
    assert settings.admin_api_key != settings.feedback_api_key
    ensure_api_keys(settings)  # generated once: a second call keeps them
    assert (tmp_path / ".env").read_text().count(variable) == 1
    real = {"admin_api_key": "a-real-admin-key", "feedback_api_key": "a-real-feedback-key"}
    field = variable.removeprefix("FRAUDOPS_").lower()
    with pytest.raises(ValueError, match=f"{variable} is the placeholder"):
        Settings(project_dir=tmp_path, environment="production", **{**real, field: PLACEHOLDER_KEY})
    Settings(project_dir=tmp_path, environment="production", **real)


def test_one_key_cannot_hold_both_privileges(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must differ"):
        Settings(project_dir=tmp_path, admin_api_key="same-key", feedback_api_key="same-key")


def test_a_fraud_card_missed_on_one_day_still_counts_on_the_next() -> None:
    day1, day2 = pd.Timestamp("2026-01-01 10:00", tz="UTC"), pd.Timestamp("2026-01-02 10:00", tz="UTC")
    frame = pd.DataFrame(
        {
            "tx_datetime": [day1, day1, day1, day2, day2, day2],
            "customer_id": [1, 2, 3, 1, 2, 3],
            "tx_fraud": [1, 1, 0, 1, 1, 0],
        }
    )
    # day 1: card 1 is caught (top 1); card 2 is fraudulent but missed, so it stays in play on day 2
    scores = np.array([0.9, 0.2, 0.1, 0.9, 0.8, 0.1])
    cpk, random, _ = card_precision_at_k(frame, scores, k=1)
    assert cpk == 1.0  # day 2: card 1 dropped out, card 2 ranks first and is fraudulent
    assert random == pytest.approx((2 / 3 + 1 / 2) / 2)  # day 2 judges cards 2 and 3 only


def test_card_precision_breaks_score_ties_by_the_lower_card_id_and_counts_days_in_the_columns_zone() -> None:
    paris = "Europe/Paris"
    day1 = pd.Timestamp("2026-01-01 10:00", tz=paris)
    late = pd.Timestamp("2026-01-01 23:30", tz=paris)  # 22:30 UTC: still the 1st in Paris
    frame = pd.DataFrame(
        {
            "tx_datetime": [day1, day1, late, day1 + pd.Timedelta(days=1)],
            "customer_id": [7, 3, 5, 7],
            "tx_fraud": [0, 1, 0, 1],
        }
    )
    scores = np.array([0.5, 0.5, 0.1, 0.9])
    cpk, random, _ = card_precision_at_k(frame, scores, k=1)
    # day 1 (cards 3, 5, 7): 3 and 7 tie at 0.5, card 3 ranks first and is fraudulent; day 2: card 7
    assert cpk == 1.0
    assert random == pytest.approx((1 / 3 + 1) / 2)
