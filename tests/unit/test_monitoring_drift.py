"""Evidently's drift verdict on simulated windows: a holiday shift is flagged, the same process is not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.features import compute_features, feature_names
from core.params import FeatureParams, Params
from core.predlog import prediction_columns
from core.registry import ModelInfo
from core.simulator import SimulationConfig, make_population, simulate
from monitoring.champion import Champion
from monitoring.drift import DriftConfig, DriftResult, detect_drift, features_from_log
from monitoring.evidence import check_prediction_drift

FEATURES = FeatureParams(customer_windows_days=[1, 7, 30], terminal_windows_days=[1, 7, 30], night_end_hour=6)
COLUMNS = feature_names(FEATURES)
START = dt.date(2026, 1, 5)  # a Monday: kept windows are whole weeks, so the weekend flag cannot drift
DAYS = 51  # 37 days (30-day window + 7-day label delay) before the kept 14: every window is full


def simulated_features(seed: int, scenario: str, keep_days: int) -> pd.DataFrame:
    """Features of the last ``keep_days`` days of a small simulated world (fixed population)."""
    pop = make_population(300, 600, radius=5.0, seed=1)
    cfg = SimulationConfig(
        customers=300, terminals=600, days=DAYS, start_date=START, seed=seed, scenarios=(scenario,)
    )
    tx, _ = simulate(cfg, pop)
    features = compute_features(tx, tx["tx_fraud"].to_numpy(), FEATURES, delay_days=7)
    first_kept = pd.Timestamp(START + dt.timedelta(days=DAYS - keep_days), tz="UTC")
    return features[(tx["tx_datetime"] >= first_kept).to_numpy()].reset_index(drop=True)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return simulated_features(seed=0, scenario="none", keep_days=14)


@pytest.fixture(scope="module")
def holiday_window() -> pd.DataFrame:
    return simulated_features(seed=1, scenario="holiday", keep_days=7)


@pytest.fixture(scope="module")
def holiday(
    reference: pd.DataFrame, holiday_window: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> DriftResult:
    html = tmp_path_factory.mktemp("holiday") / "drift.html"
    return detect_drift(reference, holiday_window, COLUMNS, html, drift_share=0.5)


@pytest.fixture(scope="module")
def control(reference: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> DriftResult:
    current = simulated_features(seed=2, scenario="control", keep_days=7)
    html = tmp_path_factory.mktemp("control") / "drift.html"
    return detect_drift(reference, current, COLUMNS, html, drift_share=0.5)


def test_holiday_shift_is_flagged_as_dataset_drift(holiday: DriftResult) -> None:
    assert holiday.drifted
    assert holiday.share >= 0.5
    assert holiday.n_columns == len(COLUMNS)
    assert len(holiday.drifted_columns) == round(holiday.share * holiday.n_columns)
    for column in ("tx_amount", "customer_avg_amount_7d", "customer_nb_tx_7d"):
        assert column in holiday.drifted_columns


def test_holiday_column_scores_carry_evidently_method_and_threshold(holiday: DriftResult) -> None:
    amount = holiday.column_scores["tx_amount"]
    assert amount.method == "Wasserstein distance (normed)"
    assert amount.threshold == pytest.approx(0.1)
    assert amount.score > amount.threshold
    assert amount.drifted is True
    assert set(holiday.column_scores) == set(COLUMNS)


def test_same_process_under_another_seed_is_not_dataset_drift(control: DriftResult) -> None:
    assert not control.drifted
    assert control.share < 0.5
    assert "tx_amount" not in control.drifted_columns
    assert control.column_scores["tx_amount"].drifted is False


def test_html_report_is_written(holiday: DriftResult, control: DriftResult) -> None:
    for result in (holiday, control):
        assert result.html_path is not None and result.html_path.exists()
        assert result.html_path.stat().st_size > 10_000
        assert "<html" in result.html_path.read_text(encoding="utf-8")[:2000].lower()


def test_features_from_log_renames_logged_columns() -> None:
    logged = pd.DataFrame(np.ones((2, len(prediction_columns(COLUMNS)))), columns=prediction_columns(COLUMNS))
    frame = features_from_log(logged, COLUMNS)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 2


def test_features_from_log_names_missing_columns() -> None:
    with pytest.raises(KeyError, match="f_tx_amount"):
        features_from_log(pd.DataFrame({"transaction_id": ["a"]}), COLUMNS)


def test_dataset_verdict_follows_drift_share(
    reference: pd.DataFrame, holiday_window: pd.DataFrame, holiday: DriftResult, tmp_path: Path
) -> None:
    """The same columns drift, but above a share Evidently is told not to reach, no dataset drift."""
    lenient = detect_drift(reference, holiday_window, COLUMNS, tmp_path / "lenient.html", drift_share=0.95)
    assert lenient.drifted_columns == holiday.drifted_columns
    assert lenient.share == pytest.approx(holiday.share)
    assert lenient.share < 0.95
    assert not lenient.drifted


def amount_score(frame: pd.DataFrame) -> pd.DataFrame:
    """A stand-in for the model's score that rises with the amount, as the fraud model's does."""
    return frame.assign(fraud_probability=1 / (1 + np.exp(-(frame["tx_amount"] - 150) / 30)))


def test_prediction_drift_follows_the_scores_and_stays_out_of_the_share(
    reference: pd.DataFrame, holiday_window: pd.DataFrame, holiday: DriftResult, tmp_path: Path
) -> None:
    config = DriftConfig(score_method="wasserstein", score_threshold=0.1)
    scored_reference = amount_score(reference)
    shifted = detect_drift(
        scored_reference,
        amount_score(holiday_window),
        COLUMNS,
        None,
        config=config,
        score_column="fraud_probability",
    )
    assert shifted.prediction is not None and shifted.prediction.drifted is True
    assert shifted.prediction.score > 0.1 and shifted.prediction.column == "fraud_probability"
    assert (shifted.n_columns, shifted.share) == (len(COLUMNS), pytest.approx(holiday.share))
    assert shifted.html_path is None
    same = detect_drift(
        scored_reference,
        amount_score(reference.iloc[::2]),
        COLUMNS,
        tmp_path / "same.html",
        config=config,
        score_column="fraud_probability",
    )
    assert same.prediction is not None and same.prediction.drifted is False
    assert same.html_path is not None and same.html_path.exists()


def test_per_column_methods_and_thresholds_replace_the_defaults(
    reference: pd.DataFrame, holiday_window: pd.DataFrame
) -> None:
    config = DriftConfig(methods={"tx_amount": "psi"}, thresholds={"tx_amount": 50.0, "tx_during_night": 0.5})
    result = detect_drift(reference, holiday_window, COLUMNS, None, config=config)
    assert result.column_scores["tx_amount"].method == "psi"
    assert result.column_scores["tx_amount"].threshold == pytest.approx(50.0)
    assert result.column_scores["tx_amount"].drifted is False  # a threshold no PSI reaches
    assert result.column_scores["tx_during_night"].threshold == pytest.approx(0.5)
    assert result.column_scores["customer_avg_amount_7d"].method == "Wasserstein distance (normed)"
    assert result.prediction is None  # no score column: not checked


@pytest.mark.parametrize("window", ["holiday", "control"])
def test_without_a_report_the_verdict_is_the_reports(
    window: str, reference: pd.DataFrame, holiday_window: pd.DataFrame, tmp_path: Path
) -> None:
    """The benchmark's fast path (no HTML) and the report agree column by column, score included."""
    current = (
        holiday_window if window == "holiday" else simulated_features(seed=2, scenario="control", keep_days=7)
    )
    config = DriftConfig(
        methods={"tx_during_night": "psi"}, thresholds={"terminal_risk_7d": 0.2}, score_method="ks"
    )
    args = (amount_score(reference), amount_score(current), COLUMNS)
    fast = detect_drift(*args, None, config=config, score_column="fraud_probability")
    full = detect_drift(*args, tmp_path / "report.html", config=config, score_column="fraud_probability")
    assert (fast.drifted, fast.share, fast.drifted_columns) == (
        full.drifted,
        full.share,
        full.drifted_columns,
    )
    assert fast.column_scores.keys() == full.column_scores.keys()
    for column, test in full.column_scores.items():
        assert fast.column_scores[column].model_dump() == {
            **test.model_dump(),
            "score": pytest.approx(test.score, rel=1e-9, abs=1e-12),
        }
    assert fast.prediction is not None and full.prediction is not None
    assert fast.prediction.model_dump() == {
        **full.prediction.model_dump(),
        "score": pytest.approx(full.prediction.score, abs=1e-12),
    }


@pytest.mark.parametrize("window", ["holiday", "control"])
def test_prediction_drift_check_is_the_same_with_or_without_its_report(
    window: str, reference: pd.DataFrame, holiday_window: pd.DataFrame, tmp_path: Path, params: Params
) -> None:
    """The monitor's own prediction-drift stage: its report and its direct test give the same verdict."""
    current = (
        holiday_window if window == "holiday" else simulated_features(seed=2, scenario="control", keep_days=7)
    )
    info = ModelInfo("fraud", "1", "champion", "run", 0.5, COLUMNS, 7, "d1")
    champion = Champion(info, amount_score(reference), None)
    monitoring = params.monitoring.model_copy(update={"min_rows": 100})
    html = tmp_path / "prediction-drift.html"
    full = check_prediction_drift(champion, amount_score(current), monitoring, html)
    fast = check_prediction_drift(champion, amount_score(current), monitoring, None)
    assert full is not None and fast is not None and html.stat().st_size > 10_000
    assert full.drifted is (window == "holiday")
    assert fast.model_dump() == {**full.model_dump(), "score": pytest.approx(full.score, abs=1e-12)}
    assert check_prediction_drift(champion, current, monitoring, None) is None  # no scores: not checked
