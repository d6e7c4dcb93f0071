"""run_monitoring end to end on a real MLflow store and a real prediction log (no Prefect server).

The retraining it triggers is a recording stand-in: the real one (``pipelines.flows.retraining_flow``)
trains a model and has its own tests; here only the call and how its result is recorded matter.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.features import compute_features, feature_names
from core.params import (
    DataParams,
    EvaluationParams,
    FeatureParams,
    GateParams,
    HyperParams,
    ModelParams,
    MonitoringParams,
    Params,
    ThresholdParams,
)
from core.predlog import append_feedback, append_predictions
from core.registry import (
    CHAMPION,
    REFERENCE_ARTIFACT,
    TAG_DATA_VERSION,
    TAG_FEATURES,
    TAG_LABEL_DELAY,
    TAG_THRESHOLD,
    registry_client,
)
from core.settings import Settings
from core.simulator import SimulationConfig, make_population, simulate
from monitoring.flow import gather_windows, plan_windows, run_monitoring
from monitoring.history import read_history
from monitoring.policy import RetrainFailures
from monitoring.summary import MonitoringSummary, RetrainOutcome
from pipelines.results import TrainingOutcome
from tests.conftest import task_runs_in_order, training_outcome

FEATURES = FeatureParams(customer_windows_days=[1, 7, 30], terminal_windows_days=[1, 7, 30], night_end_hour=6)
COLUMNS = feature_names(FEATURES)
START, BASE_DAYS, HOLIDAY_DAYS = dt.date(2026, 1, 5), 51, 14
HOLIDAY_START = START + dt.timedelta(days=BASE_DAYS)
TODAY = HOLIDAY_START + dt.timedelta(days=HOLIDAY_DAYS)


def make_params() -> Params:
    return Params(
        seed=0,
        data=DataParams(label_delay_days=7),
        features=FEATURES,
        evaluation=EvaluationParams(
            train_days=21, gap_days=7, test_days=7, k_per_5000_customers=100, prequential_folds=4
        ),
        model=ModelParams(
            hyperparameters=HyperParams(
                learning_rate=0.1,
                max_iter=10,
                max_leaf_nodes=8,
                min_samples_leaf=20,
                l2_regularization=0.0,
                fraud_weight=1.0,
            ),
            search={},
            validation_folds=1,
            baseline_class_weight=None,
            threshold=ThresholdParams(
                objective="precision", target_precision=0.5, missed_fraud_cost=100.0, review_cost=5.0
            ),
        ),
        gate=GateParams(ap_margin=0.01, cpk_tolerance=0.0, first_model_ap_margin=0.05),
        monitoring=MonitoringParams(
            window_days=7,
            min_rows=500,
            drift_share=0.5,
            drift_methods={},
            drift_thresholds={},
            prediction_drift_method="wasserstein",
            prediction_drift_threshold=0.1,
            prediction_drift_retrains=True,
            reference_rows=5000,
            ap_drop_std=3.0,
            ap_drop=0.1,
            min_labelled_frauds=5,
            cooldown_days=14,
            retry_backoff_days=1,
            max_retrain_failures=3,
        ),
    )


def simulated_world() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A normal period followed by a holiday, with features computed over both."""
    pop = make_population(300, 600, radius=5.0, seed=1)
    parts = [
        simulate(SimulationConfig(300, 600, days, start, seed=seed, scenarios=(scenario,)), pop)[0]
        for days, start, seed, scenario in (
            (BASE_DAYS, START, 0, "none"),
            (HOLIDAY_DAYS, HOLIDAY_START, 1, "holiday"),
        )
    ]
    tx = pd.concat(parts, ignore_index=True)
    return tx, compute_features(tx, tx["tx_fraud"].to_numpy(), FEATURES, delay_days=7)


def register_champion(settings: Settings, reference: pd.DataFrame, tmp_path: Path) -> None:
    """A registered version aliased champion, whose run holds the reference sample and a test AP."""

    (settings.stores_dir / "mlflow").mkdir(parents=True)
    client = registry_client(settings.tracking_uri)
    experiment = client.create_experiment("fraudops", artifact_location=settings.artifact_root.as_uri())
    run_id = client.create_run(experiment).info.run_id
    ref_file = tmp_path / Path(REFERENCE_ARTIFACT).name
    reference.to_parquet(ref_file, index=False)
    client.log_artifact(run_id, str(ref_file), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
    client.log_metric(run_id, "test_average_precision", 0.6)
    client.set_terminated(run_id)
    client.create_registered_model(settings.model_name)
    tags = {
        TAG_THRESHOLD: "0.5",
        TAG_FEATURES: json.dumps(COLUMNS),
        TAG_LABEL_DELAY: "7",
        TAG_DATA_VERSION: "d1",
    }
    version = client.create_model_version(
        settings.model_name, f"runs:/{run_id}/model", run_id=run_id, tags=tags
    ).version
    client.set_registered_model_alias(settings.model_name, CHAMPION, version)


def log_scored_holiday(settings: Settings, tx: pd.DataFrame, features: pd.DataFrame) -> int:
    """Write the holiday's scored transactions and all their labels; returns the rows logged."""
    rng = np.random.default_rng(0)
    holiday = (tx["tx_datetime"].dt.date >= HOLIDAY_START).to_numpy()
    rows, feats = tx[holiday], features[holiday]
    scores = np.clip(0.6 * rows["tx_fraud"].to_numpy() + rng.normal(0.2, 0.15, len(rows)), 0, 1)
    log = rows[["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]].assign(
        **{f"f_{c}": feats[c].astype(float) for c in COLUMNS},
        fraud_probability=scores,
        is_fraud=scores >= 0.5,
        threshold=0.5,
        model_version="1",
        scored_at=rows["tx_datetime"],
    )
    log["tx_datetime"] = log["tx_datetime"].map(pd.Timestamp.isoformat)
    append_predictions(settings.prediction_log, log.to_dict("records"))
    labels = rows[["transaction_id", "tx_fraud", "tx_fraud_scenario"]].assign(
        received_on=(rows["tx_datetime"].dt.date + dt.timedelta(days=7)).astype(str)
    )
    append_feedback(settings.prediction_log, labels.to_dict("records"))
    return len(log)


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame]:
    return simulated_world()


@pytest.fixture()
def settings(
    world: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    settings = Settings(project_dir=tmp_path, mlflow_tracking_uri=None)
    tx, features = world
    base = (tx["tx_datetime"].dt.date >= START + dt.timedelta(days=BASE_DAYS - 21)).to_numpy()
    register_champion(settings, features[base].sample(5000, random_state=0), tmp_path)
    log_scored_holiday(settings, tx, features)
    return settings


def test_windows_follow_today_and_label_delay() -> None:
    windows = plan_windows(TODAY, make_params())
    assert windows["data"] == {"start": TODAY - dt.timedelta(days=7), "end": TODAY - dt.timedelta(days=1)}
    assert windows["labelled"] == {
        "start": TODAY - dt.timedelta(days=13),
        "end": TODAY - dt.timedelta(days=7),
    }


def test_holiday_drift_retrains_once_then_cools_down(settings: Settings) -> None:
    calls: list[str] = []
    outcomes: list[TrainingOutcome] = []

    def retrain(reason: str) -> TrainingOutcome:
        calls.append(reason)
        outcomes.append(training_outcome(reason, "2", promote=True))
        return outcomes[-1]

    first = run_monitoring(settings, make_params(), TODAY, retrain)
    assert first.decision.action == "retrain"
    assert first.decision.reasons[0].startswith("dataset drift:")
    assert first.drift is not None and "tx_amount" in first.drift.drifted_columns
    assert first.retrain == RetrainOutcome(
        started=True,
        completed=True,
        promoted=True,
        version="2",
        outcome=outcomes[0],
        attempt=first.retrain.attempt if first.retrain else None,
    )
    assert len(calls) == 1 and calls[0].startswith(f"monitor {TODAY}: dataset drift")
    assert all(reason in calls[0] for reason in first.decision.reasons)  # the retraining is told why
    assert first.performance.measured is True
    assert first.model.version == "1"
    assert first.performance.expected is not None
    assert first.performance.expected.average_precision == pytest.approx(0.6)
    reports = first.reports
    assert reports.drift_html is not None and reports.drift_html.stat().st_size > 0
    assert reports.prediction_drift_html is None and first.drift.prediction is None  # reference unscored
    assert reports.summary_json is not None
    written = MonitoringSummary.model_validate_json(reports.summary_json.read_text())
    assert written.decision.action == "retrain" and written == first  # the file is the summary
    # the run is in MLflow too: its decision as tags, its numbers as metrics, its reports as artifacts
    client = registry_client(settings.tracking_uri)
    run = client.get_run(first.mlflow_run_id)
    assert run.data.tags["action"] == "retrain" and run.data.tags["reasons"].startswith("dataset drift:")
    assert run.data.metrics["drift_share"] == pytest.approx(first.drift.share)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"summary.json", "reports"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "reports")] == [
        f"reports/{TODAY}-drift.html",
        f"reports/{TODAY}-performance.html",
        "reports/timeline.png",  # drift share and live AP up to this run (monitoring.plots)
    ]
    assert reports.performance_html is not None and reports.performance_html.stat().st_size > 0

    second = run_monitoring(settings, make_params(), TODAY + dt.timedelta(days=1), retrain)
    assert second.decision.action == "cooldown"
    assert second.decision.reasons[0].startswith(f"cooldown: last retrain on {TODAY}, 1 < 14 days ago")
    assert len(calls) == 1
    history = read_history(settings)
    assert [h.decision.action for h in history] == ["retrain", "cooldown"]
    assert history == [first, second]  # the history's lines are the summaries, read back whole


def test_far_future_window_is_not_enough_data(settings: Settings) -> None:
    summary = run_monitoring(settings, make_params(), TODAY + dt.timedelta(days=30), None)
    assert summary.decision.action == "not-enough-data"
    assert summary.rows == 0
    assert summary.drift is None
    assert summary.retrain is None


def test_failed_retrain_is_recorded_then_raised(settings: Settings) -> None:
    def broken(reason: str) -> TrainingOutcome:
        raise RuntimeError("training data missing")

    with pytest.raises(RuntimeError, match="training data missing"):
        run_monitoring(settings, make_params(), TODAY, broken)
    [decision] = read_history(settings)
    assert decision.retrain is not None and decision.retrain.completed is False
    assert decision.retrain.error is not None and "training data missing" in decision.retrain.error
    # a retrain that did not complete starts no cool-down: the next day's drift retrains again
    again = run_monitoring(
        settings, make_params(), TODAY + dt.timedelta(days=1), lambda r: training_outcome(r)
    )
    assert again.decision.action == "retrain" and again.retrain is not None and again.retrain.completed


def test_the_prefect_flow_runs_the_stages_as_tasks(
    settings: Settings, prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Prefect UI shows each stage of a monitoring run as a task run, and the retraining as a subflow."""
    from prefect import flow, get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    import pipelines.flows
    from monitoring.flow import monitoring_flow

    @flow(name="retrain")
    def fake_retraining(reason: str) -> TrainingOutcome:  # a real training has its own flow tests
        return training_outcome(reason, "2", promote=False)

    monkeypatch.setattr(pipelines.flows, "load_context", lambda: (settings, make_params()))
    monkeypatch.setattr(pipelines.flows, "retraining_flow", fake_retraining)
    state = monitoring_flow(today=TODAY.isoformat(), return_state=True)
    summary = state.result()
    assert isinstance(summary, MonitoringSummary) and summary.decision.action == "retrain"
    run_id = state.state_details.flow_run_id
    runs = task_runs_in_order(run_id, 6)
    with get_client(sync_client=True) as client:
        [subflow] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id]))
        )
    stages = [r.name.rsplit("-", 1)[0] for r in runs]
    assert [s for s in stages if s != "retrain"] == [
        "gather windows",
        "data drift",
        "prediction drift",
        "live performance",
        "decide",
        "record",
    ]
    assert all(r.state is not None and r.state.is_completed() for r in runs)
    assert subflow.state is not None and subflow.state.is_completed()  # the retraining, as a subflow
    # the subflow was told why, in the policy's own words
    reason = subflow.parameters["reason"]
    assert reason.startswith(f"monitor {TODAY}: dataset drift")
    assert all(r in reason for r in summary.decision.reasons)
    # the record stage wrote the run: the retraining completed, its challenger not promoted
    [line] = read_history(settings)
    assert line == summary and line.decision.action == "retrain"
    assert line.retrain is not None and (line.retrain.completed, line.retrain.promoted) == (True, False)
    # a completed retraining holds the next ones back, promoted or not: three days later, same drift
    calls: list[str] = []

    def retrain(reason: str) -> TrainingOutcome:
        calls.append(reason)
        return training_outcome(reason, "3")

    later = run_monitoring(settings, make_params(), TODAY + dt.timedelta(days=3), retrain)
    assert later.decision.action == "cooldown" and later.retrain is None and calls == []
    assert later.decision.reasons[0] == f"cooldown: last retrain on {TODAY}, 3 < 14 days ago"
    assert any(r.startswith("dataset drift:") for r in later.decision.reasons[1:])  # what was held back


def test_a_crashed_retrain_is_recorded_and_counts_towards_an_alert(settings: Settings) -> None:
    """A retrain that kills the process leaves its started line; the next run counts it and, at
    ``max_retrain_failures``, raises an alert (a history line and an MLflow metric) instead of retrying,
    until a model is registered. The back-off between failures: tests/unit/test_monitoring_policy.py."""
    params = make_params()
    monitoring = params.monitoring.model_copy(update={"max_retrain_failures": 1})
    params = params.model_copy(update={"monitoring": monitoring})
    calls: list[str] = []

    def crash(reason: str) -> TrainingOutcome:
        raise SystemExit("killed while retraining")  # not an Exception: nothing after it runs

    with pytest.raises(SystemExit):
        run_monitoring(settings, params, TODAY, crash)
    [crashed] = read_history(settings)
    assert crashed.retrain is not None and (crashed.retrain.started, crashed.retrain.finished) == (
        True,
        False,
    )

    alert = run_monitoring(settings, params, TODAY + dt.timedelta(days=1), calls.append)  # type: ignore[arg-type]
    assert alert.decision.action == "alert" and calls == [] and alert.retrain is None
    assert alert.decision.reasons[0] == (
        f"alert: retraining failed once, last on {TODAY} (no record: the process stopped during the "
        "retrain); no automatic retrain after 1 failures: fix the cause, then run `fraudops train`"
    )
    assert alert.decision.reasons[1].startswith("dataset drift:")  # what asked for the retrain
    client = registry_client(settings.tracking_uri)
    assert client.get_run(alert.mlflow_run_id).data.metrics["retrain_failures"] == 1
    history = read_history(settings)
    assert [(h.decision.action, h.retrain_failures) for h in history] == [("retrain", 0), ("alert", 1)]

    # `fraudops train` registers a model: the series of failures ends, the next drift retrains again
    champion = client.get_model_version_by_alias(settings.model_name, CHAMPION)
    client.create_model_version(settings.model_name, champion.source, run_id=champion.run_id)
    assert gather_windows(settings, params, TODAY + dt.timedelta(days=2)).failures == RetrainFailures()
