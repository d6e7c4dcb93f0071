"""Training and evaluation: time-aware windows, a gradient-boosting model, metrics beside baselines.

The test window is the newest labelled days; the training window ends a label-delay gap before it,
because at serving time the most recent labels are not known yet. Fraud is rare, so accuracy is never
reported: ROC AUC, average precision and card precision@k, each with its random baseline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from core.features import feature_names, horizon_days
from core.metrics import card_k, evaluate_scores
from core.params import Params


class NotEnoughData(ValueError):
    """The windows hold too little labelled data to train or judge a model."""


@dataclass(frozen=True)
class Windows:
    """Inclusive day ranges of the training and test windows."""

    train_start: dt.date
    train_end: dt.date
    test_start: dt.date
    test_end: dt.date

    def as_tags(self) -> dict[str, str]:
        return {
            "train_window": f"{self.train_start}..{self.train_end}",
            "test_window": f"{self.test_start}..{self.test_end}",
        }


def plan_windows(last_labelled: dt.date, params: Params, first_day: dt.date | None = None) -> Windows:
    """Test = the newest ``test_days`` labelled days; train ends ``gap_days`` before the test starts.

    With ``first_day`` (the oldest day of data), training starts no earlier than the feature horizon
    after it: before that, 30-day windows are cut short and the model would learn from skewed features.
    """
    ev = params.evaluation
    test_start = last_labelled - dt.timedelta(days=ev.test_days - 1)
    train_end = test_start - dt.timedelta(days=ev.gap_days + 1)
    train_start = train_end - dt.timedelta(days=ev.train_days - 1)
    if first_day is not None:
        warmup = horizon_days(params.features, params.data.label_delay_days)
        train_start = max(train_start, first_day + dt.timedelta(days=warmup))
        if train_start > train_end:
            needed = warmup + ev.train_days + ev.gap_days + ev.test_days + params.data.label_delay_days
            raise NotEnoughData(
                f"data from {first_day} leave no training days after the {warmup}-day feature warm-up: "
                f"simulate and ingest at least {needed} days"
            )
    return Windows(train_start, train_end, test_start, last_labelled)


def last_labelled_in(table: pd.DataFrame, today: dt.date | None = None, delay_days: int = 0) -> dt.date:
    """The newest day whose labels are present in the data (and released by ``today`` when given).

    Ingest admits only released labels, so the data alone decides; ``today`` is a further guard.
    """
    labelled = table.loc[table["tx_fraud"].notna(), "tx_datetime"]
    if labelled.empty:
        raise NotEnoughData("no labelled transactions yet: ingest labels (they arrive a label delay later)")
    newest = labelled.max().date()
    return newest if today is None else min(newest, today - dt.timedelta(days=delay_days))


def select_days(table: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Labelled rows whose transaction day lies in [start, end]."""
    days = table["tx_datetime"].dt.date
    part = table[(days >= start) & (days <= end) & table["tx_fraud"].notna()]
    return part.assign(tx_fraud=part["tx_fraud"].astype(int))


def split_windows(table: pd.DataFrame, windows: Windows) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and test rows; refuses windows without both classes."""
    train = select_days(table, windows.train_start, windows.train_end)
    test = select_days(table, windows.test_start, windows.test_end)
    for name, part in (("training", train), ("test", test)):
        if part.empty or part["tx_fraud"].nunique() < 2:
            raise NotEnoughData(
                f"the {name} window {windows.as_tags()} has no labelled fraud and genuine rows: "
                "simulate and ingest more days"
            )
    return train, test


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The model's input: the named features as float32 (as serving computes them)."""
    return frame[features].astype(np.float32)


def fit_model(train: pd.DataFrame, params: Params) -> HistGradientBoostingClassifier:
    """Fit the fraud model on the training window."""
    mp = params.model
    model = HistGradientBoostingClassifier(
        learning_rate=mp.learning_rate,
        max_iter=mp.max_iter,
        max_leaf_nodes=mp.max_leaf_nodes,
        min_samples_leaf=mp.min_samples_leaf,
        l2_regularization=mp.l2_regularization,
        class_weight=mp.class_weight,
        random_state=params.seed,
    )
    features = feature_names(params.features)
    return model.fit(feature_matrix(train, features), train["tx_fraud"].to_numpy())


def fit_baseline(train: pd.DataFrame, params: Params) -> Any:
    """The logistic-regression baseline every candidate is compared with (scaled features)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = feature_names(params.features)
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight=params.model.class_weight, max_iter=1000)
    )
    return model.fit(feature_matrix(train, features), train["tx_fraud"].to_numpy())


def prequential_windows(last_labelled: dt.date, params: Params, first_day: dt.date) -> list[Windows]:
    """The protocol's windows, then the same shifted back a test window at a time (as far as data allow)."""
    folds = []
    for fold in range(params.evaluation.prequential_folds):
        shifted = last_labelled - dt.timedelta(days=fold * params.evaluation.test_days)
        try:
            folds.append(plan_windows(shifted, params, first_day))
        except NotEnoughData:
            break
    return folds


def score_frame(model: object, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Fraud probabilities for every row."""
    return np.asarray(model.predict_proba(feature_matrix(frame, features)))[:, 1]  # type: ignore[attr-defined]


def evaluate_model(
    model: object,
    frame: pd.DataFrame,
    features: list[str],
    threshold: float,
    params: Params,
    n_customers: int | None = None,
) -> dict[str, float]:
    """All metrics of ``model`` on a labelled window; k from ``n_customers`` (the population), else the window's."""
    population = n_customers if n_customers is not None else frame["customer_id"].nunique()
    k = card_k(population, params.evaluation.k_per_5000_customers)
    return evaluate_scores(frame, score_frame(model, frame, features), threshold, k)
