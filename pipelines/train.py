"""Training and evaluation: time-aware windows, a gradient-boosting model, metrics beside baselines.

The test window is the newest labelled days; the training window ends a label-delay gap before it,
because at serving time the most recent labels are not known yet. Fraud is rare, so accuracy is never
reported: ROC AUC, average precision and card precision@k, each with its random baseline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from core.features import feature_names, horizon_days
from core.metrics import card_k, evaluate_scores
from core.params import HyperParams, Params, ThresholdParams
from pipelines.results import Windows

if TYPE_CHECKING:
    from distributed import Client


class NotEnoughData(ValueError):
    """The windows hold too little labelled data to train or judge a model."""


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


def day_start(stamps: pd.Series, day: dt.date) -> pd.Timestamp:
    """Midnight starting ``day`` in the time zone of ``stamps`` (a datetime column)."""
    return pd.Timestamp(day).tz_localize(stamps.dt.tz)


def days_between(stamps: pd.Series, start: dt.date, end: dt.date) -> np.ndarray:
    """Which ``stamps`` fall on a day in [start, end] (compared as datetimes: no date objects per row)."""
    lo, hi = day_start(stamps, start), day_start(stamps, end + dt.timedelta(days=1))
    return ((stamps >= lo) & (stamps < hi)).to_numpy(bool)


def select_days(table: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Labelled rows whose transaction day lies in [start, end]."""
    part = table[days_between(table["tx_datetime"], start, end) & table["tx_fraud"].notna().to_numpy(bool)]
    return part.assign(tx_fraud=part["tx_fraud"].astype(int))


def drop_known_compromised(table: pd.DataFrame, windows: Windows, test: pd.DataFrame) -> pd.DataFrame:
    """The test rows minus those of cards already known to be compromised on their day.

    As in the handbook: a card is known once it has a labelled fraud from the training window's start
    onward whose label has arrived, that is a gap + 1 days before the test day (the gap is as long as
    the label delay). Such a card would already be blocked, so scoring it again flatters the model.
    """
    lag = (windows.test_start - windows.train_end).days
    frauds = table[(table["tx_fraud"] == 1).to_numpy(bool)]
    frauds = frauds[
        (frauds["tx_datetime"] >= day_start(frauds["tx_datetime"], windows.train_start)).to_numpy(bool)
    ]
    first = frauds.groupby("customer_id")["tx_datetime"].min().dt.floor("D")  # the day of the first fraud
    known_since = test["customer_id"].map(first)  # NaT: never a fraud before
    cutoff = test["tx_datetime"].dt.floor("D") - pd.Timedelta(days=lag)
    known = known_since.notna() & (known_since <= cutoff)
    return test[~known.to_numpy(bool)]


def split_windows(table: pd.DataFrame, windows: Windows) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and test rows (known-compromised cards left out of the test); refuses one-class windows."""
    train = select_days(table, windows.train_start, windows.train_end)
    test = drop_known_compromised(table, windows, select_days(table, windows.test_start, windows.test_end))
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


def fit_model(
    train: pd.DataFrame, params: Params, hyper: HyperParams | None = None
) -> HistGradientBoostingClassifier:
    """Fit the fraud model on the training window (``hyper``: the search's choice, else params.yaml's)."""
    hp = hyper or params.model.hyperparameters
    model = HistGradientBoostingClassifier(
        learning_rate=hp.learning_rate,
        max_iter=hp.max_iter,
        max_leaf_nodes=hp.max_leaf_nodes,
        min_samples_leaf=hp.min_samples_leaf,
        l2_regularization=hp.l2_regularization,
        early_stopping=False,  # a random 10 % hold-out would take a tenth of the few frauds away
        random_state=params.seed,
    )
    features = feature_names(params.features)
    y = train["tx_fraud"].to_numpy()
    return model.fit(feature_matrix(train, features), y, sample_weight=np.where(y == 1, hp.fraud_weight, 1.0))


def fit_baseline(train: pd.DataFrame, params: Params) -> Any:
    """The logistic-regression baseline every candidate is compared with (scaled features)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = feature_names(params.features)
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight=params.model.baseline_class_weight, max_iter=1000)
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


def validation_windows(windows: Windows, params: Params, first_day: dt.date) -> list[Windows]:
    """The protocol replayed inside the training window: the search and the threshold never see the test.

    Validation fold 0 tests on the training window's last ``test_days``, as if training had ended
    there; each next fold moves back one test window (as far as the feature warm-up allows).
    """
    folds = []
    for fold in range(params.model.validation_folds):
        last = windows.train_end - dt.timedelta(days=fold * params.evaluation.test_days)
        try:
            folds.append(plan_windows(last, params, first_day))
        except NotEnoughData:
            break
    return folds


@dataclass(frozen=True)
class Selection:
    """The search's outcome: the chosen hyperparameters, the threshold and every candidate's score."""

    hyper: HyperParams
    threshold: float
    threshold_note: str
    candidates: list[dict[str, Any]]
    folds: int
    # the chosen candidate on each validation fold at the chosen threshold: the figures monitoring
    # compares live weeks with (average precision, precision and recall at the threshold)
    fold_metrics: list[dict[str, float]] = field(default_factory=list)

    def validation_summary(self) -> dict[str, float]:
        """Mean and standard deviation over the validation folds of each fold metric, and the fold count."""
        out = {"validation_folds": float(len(self.fold_metrics))}
        for key in FOLD_METRICS:
            values = np.array([fold[key] for fold in self.fold_metrics], dtype=float)
            out[f"validation_{key}_mean"] = float(np.mean(values)) if values.size else float("nan")
            out[f"validation_{key}_std"] = float(np.std(values, ddof=1)) if values.size > 1 else float("nan")
        return out


def fit_and_score(train: pd.DataFrame, test: pd.DataFrame, params: Params, hyper: HyperParams) -> np.ndarray:
    """One step of the search: fit ``hyper`` on a fold's training rows, score its test rows."""
    return score_frame(fit_model(train, params, hyper), test, feature_names(params.features))


def select_model(
    table: pd.DataFrame, windows: Windows, params: Params, client: Client | None = None
) -> Selection:
    """Fit every candidate on each validation fold; keep the best mean AP; set the threshold on its scores.

    With a Dask ``client`` the (candidate, fold) fits run as tasks on its cluster: the same scores.
    """
    from sklearn.metrics import average_precision_score

    folds = validation_windows(windows, params, table["tx_datetime"].min().date())
    splits = []
    for fold in folds:
        try:
            splits.append(split_windows(table, fold))
        except NotEnoughData:
            continue
    if not splits:
        raise NotEnoughData(
            f"no validation fold fits before the training window {windows.as_tags()['train_window']}: "
            "simulate and ingest more days (or lower model.validation_folds' needs in params.yaml)"
        )
    hypers = params.model.candidates()
    if client is None:
        all_scores = [
            [fit_and_score(train, test, params, hyper) for train, test in splits] for hyper in hypers
        ]
    else:
        from pipelines.search_dask import search_scores

        all_scores = search_scores(client, splits, hypers, params)
    ys = [test["tx_fraud"].to_numpy() for _, test in splits]
    candidates: list[dict[str, Any]] = []
    best: tuple[float, HyperParams, list[np.ndarray], list[np.ndarray]] | None = None
    for hyper, scores in zip(hypers, all_scores, strict=True):
        aps = [float(average_precision_score(y, s)) for y, s in zip(ys, scores, strict=True)]
        mean_ap = float(np.mean(aps))
        candidates.append(
            {**hyper.model_dump(), "validation_ap_mean": mean_ap, "validation_ap_std": float(np.std(aps))}
        )
        if best is None or mean_ap > best[0]:
            best = (mean_ap, hyper, ys, scores)
    assert best is not None  # the grid always holds at least one candidate
    _, hyper, ys, scores = best
    threshold, note = choose_threshold(np.concatenate(ys), np.concatenate(scores), params.model.threshold)
    figures = [fold_figures(y, s, threshold) for y, s in zip(ys, scores, strict=True)]
    return Selection(hyper, threshold, note, candidates, len(splits), figures)


FOLD_METRICS = ("average_precision", "precision_at_threshold", "recall_at_threshold")


def fold_figures(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """One validation fold's figures at the threshold: AP, precision and recall, rows and frauds."""
    from sklearn.metrics import average_precision_score, precision_score, recall_score

    alerts = (scores >= threshold).astype(int)
    return {
        "average_precision": float(average_precision_score(y, scores)),
        "precision_at_threshold": float(precision_score(y, alerts, zero_division=0)),
        "recall_at_threshold": float(recall_score(y, alerts, zero_division=0)),
        "rows": float(len(y)),
        "frauds": float(y.sum()),
    }


def choose_threshold(y: np.ndarray, scores: np.ndarray, target: ThresholdParams) -> tuple[float, str]:
    """The decision threshold meeting ``target`` on out-of-sample scores, and a sentence saying how.

    ``precision``: the lowest threshold whose alerts reach the target precision (the most frauds
    caught at that precision); when no threshold reaches it, the one with the best F1. ``cost``: the
    threshold minimising missed frauds x ``missed_fraud_cost`` + alerts x ``review_cost``.
    """
    order = np.argsort(-scores, kind="stable")
    s, hits = scores[order], y[order].astype(float)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # alerting on the top i+1 rows, ties kept together
    alerts = last + 1.0
    caught = np.cumsum(hits)[last]
    thresholds = s[last]
    if target.objective == "precision":
        precision, recall = caught / alerts, caught / max(hits.sum(), 1.0)
        ok = np.flatnonzero(precision >= target.target_precision)
        if ok.size:
            i = int(ok[-1])
            note = f"lowest threshold with validation precision >= {target.target_precision}"
        else:  # the most precise threshold would alert on a handful of rows: balance the two instead
            i = int(np.argmax(2 * precision * recall / np.maximum(precision + recall, 1e-12)))
            note = f"no threshold reached precision {target.target_precision} on validation: the best F1"
        return float(thresholds[i]), f"{note} (precision {precision[i]:.3f}, recall {recall[i]:.3f})"
    cost = (hits.sum() - caught) * target.missed_fraud_cost + alerts * target.review_cost
    nothing = hits.sum() * target.missed_fraud_cost
    i = int(np.argmin(cost))
    prices = f"missed fraud {target.missed_fraud_cost:g}, review {target.review_cost:g}"
    if nothing <= cost[i]:  # no alert at all is cheapest: a threshold above every score
        return float(np.nextafter(s[0], np.inf)), f"no alert is cheapest on validation ({prices})"
    return float(thresholds[i]), (
        f"minimum validation cost {cost[i]:,.0f} against {nothing:,.0f} without alerts ({prices})"
    )
