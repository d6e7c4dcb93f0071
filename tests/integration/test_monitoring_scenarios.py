"""The monitor on one shared simulated history: quiet when it should be, firing when it should.

A throwaway project (its own git, DVC repository and MLflow store) ingests a simulated history and
trains its first champion for real. Then the calendar moves on, one period after another of the same
world: each period's transactions are scored with the champion's ONNX graph (the runtime the service
uses) on features computed as the service computes them, logged to the prediction log, and their
labels come back as feedback a label delay later. The monitor judges the log once a week:

1. control weeks: no retraining;
2. a new fraud pattern at unchanged amounts: no dataset drift in the window before its labels
   arrive; once they have, the performance alarm fires and the real training cycle (DVC, MLflow,
   gate) runs. That first challenger cannot know the pattern: its training window ends a test week
   and a label-delay gap before the newest labels. After the cool-down the next retrain trains on
   weeks that hold the pattern, and the gate promotes it;
3. a holiday season that started 14 days before the window: dataset drift, retraining triggered
   (here a recording stand-in: the training cycle has already run for real twice);
4. a window holding too few scored transactions: "not enough data", no decision. This run goes
   through the Prefect flow ``monitor`` itself.

The project trains with a one-candidate grid (``params.yaml``'s hyperparameters, no search) to keep
three trainings affordable; everything else is ``params.yaml`` as shipped, the policy included.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.project import make_project
from core.clock import set_today
from core.features import compute_features, horizon_days
from core.params import Params, load_params
from core.predlog import append_feedback, append_predictions, read_predictions
from core.registry import CHAMPION, download_onnx, read_model_info, registry_client
from core.runtime import onnx_session, session_fraud_probability
from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS
from core.settings import Settings, get_settings
from core.simulator import SimulationConfig, write_simulation
from monitoring.flow import run_monitoring
from monitoring.history import read_history
from monitoring.summary import MonitoringSummary
from pipelines.gate import GateDecision
from pipelines.ingest import find_batches, ingest_batch
from pipelines.training import TrainingOutcome, run_training
from pipelines.versioning import ensure_dvc_repo, track_data
from tests.model.world import mlflow_uris_restored

pytestmark = pytest.mark.integration

CUSTOMERS, TERMINALS, SEED = 2000, 4000, 7
START = dt.date(2026, 1, 5)  # a Monday
HISTORY_DAYS = 98  # full validation folds after the 37-day feature warm-up
SERVING = START + dt.timedelta(days=HISTORY_DAYS)  # the first day the champion scores
CONTROL_DAYS, PATTERN_DAYS, HOLIDAY_DAYS = 14, 28, 21
PATTERN = SERVING + dt.timedelta(days=CONTROL_DAYS)  # the new fraud pattern's first day
HOLIDAY = PATTERN + dt.timedelta(days=PATTERN_DAYS)  # the holiday season's first day (the pattern ends)


@dataclass
class World:
    """The project, its simulated world and the service's stand-in: score, log, send feedback."""

    settings: Settings
    params: Params
    sim_dir: Path
    transactions: pd.DataFrame  # every simulated transaction so far, with its label
    scored: set[str] = field(default_factory=set)
    labelled: set[str] = field(default_factory=set)
    retrains: list[str] = field(default_factory=list)
    trained: list[TrainingOutcome] = field(default_factory=list)  # what each real cycle returned
    ingested: set[Path] = field(default_factory=set)  # batches in the store: the feed sends each once

    def simulate(self, days: int, scenario: str, seed: int) -> pd.DataFrame:
        """Continue the world by ``days`` days of ``scenario``."""
        cfg = SimulationConfig(CUSTOMERS, TERMINALS, days, START, seed=seed, scenarios=(scenario,))
        _, tx = write_simulation(self.sim_dir, cfg)
        self.transactions = pd.concat([self.transactions, tx], ignore_index=True)
        return tx

    def ingest(self, today: dt.date) -> None:
        """Ingest what arrived by ``today`` (new days and released labels) and version it with DVC.

        Batches already in the store are not sent again: checking every day of the history once more
        at each run was a fifth of the module's time and tells nothing about monitoring.
        """
        for kind, path in find_batches([self.sim_dir]):
            if path in self.ingested:
                continue
            dest = self.settings.raw_dir if kind == "transactions" else self.settings.labels_dir
            outcome = ingest_batch(kind, path, dest, today, self.params.data.label_delay_days)
            assert outcome.status in ("ingested", "pending"), outcome
            if outcome.status == "ingested":
                self.ingested.add(path)
        ensure_dvc_repo(self.settings.project_dir)
        track_data(self.settings.project_dir)

    def serve(self, tx: pd.DataFrame) -> int:
        """Score ``tx`` with the champion's ONNX graph, as the service does, and log every verdict."""
        client = registry_client(self.settings.tracking_uri)
        info = read_model_info(client, self.settings.model_name, CHAMPION)
        delay = self.params.data.label_delay_days
        # a feature window reaches horizon_days back: older transactions cannot change tx's features
        since = tx["tx_datetime"].min() - dt.timedelta(days=horizon_days(self.params.features, delay) + 1)
        history = self.transactions[self.transactions["tx_datetime"] >= since]
        history = history.sort_values("tx_datetime", kind="stable")
        features = compute_features(history, history["tx_fraud"].to_numpy(), self.params.features, delay)
        rows = features.loc[history["transaction_id"].isin(tx["transaction_id"]).to_numpy()]
        batch = history.loc[rows.index, TRANSACTION_COLUMNS]
        scores = session_fraud_probability(
            onnx_session(download_onnx(client, info)), rows[info.features].to_numpy(np.float32)
        )
        log = batch.assign(
            **{f"f_{name}": rows[name].to_numpy(float) for name in info.features},
            fraud_probability=scores,
            is_fraud=scores >= info.threshold,
            threshold=info.threshold,
            model_version=info.version,
            scored_at=batch["tx_datetime"],
        )
        append_predictions(self.settings.prediction_log, log.to_dict("records"))
        self.scored |= set(batch["transaction_id"])
        return len(log)

    def release_labels(self, today: dt.date) -> None:
        """Send the labels of scored transactions whose delay has passed by ``today``."""
        last = today - dt.timedelta(days=self.params.data.label_delay_days)
        tx = self.transactions
        due = tx["transaction_id"].isin(self.scored - self.labelled) & (tx["tx_datetime"].dt.date <= last)
        labels = tx.loc[due, LABEL_COLUMNS].assign(received_on=today.isoformat())
        append_feedback(self.settings.prediction_log, labels.to_dict("records"))
        self.labelled |= set(labels["transaction_id"])

    def monitor(self, today: dt.date, retrain: Any = None) -> MonitoringSummary:
        """Ingest, release the due labels, move the clock and run the monitor as of ``today``."""
        self.ingest(today)
        self.release_labels(today)
        set_today(self.settings.clock_file, today)
        return run_monitoring(self.settings, self.params, today, retrain or self.train)

    def train(self, reason: str) -> TrainingOutcome:
        """The real training cycle on the newest versioned data (what the retrain flow runs)."""
        self.retrains.append(reason)
        self.trained.append(run_training(self.settings, self.params, reason))
        return self.trained[-1]


def one_candidate(path: Path) -> None:
    """Train without the hyperparameter search: the fixed hyperparameters are the only candidate."""
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["model"]["search"] = {}
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The project with its history ingested and its first champion trained; the monitor's state persists."""
    root = make_project(tmp_path_factory.mktemp("scenarios") / "project")
    settings = Settings(project_dir=root)
    with pytest.MonkeyPatch.context() as mp, mlflow_uris_restored():
        mp.setenv("FRAUDOPS_PROJECT_DIR", str(root))  # read by the DVC stages' processes
        mp.setenv("DVC_SITE_CACHE_DIR", str(root.parent / "dvc-site"))
        mp.setenv("PATH", os.environ["PATH"])  # reproduce() prepends this python's bin folder
        # the train stage's OpenMP threads sleep when they wait: spinning, they starve on busy cores
        # (a 5 s fit took 45 s beside another process)
        mp.setenv("OMP_WAIT_POLICY", "PASSIVE")
        mp.chdir(root)
        get_settings.cache_clear()
        one_candidate(root / "params.yaml")
        world = World(settings, load_params(root / "params.yaml"), root / "world", pd.DataFrame())
        world.simulate(HISTORY_DAYS, "none", SEED)
        world.ingest(SERVING)
        set_today(settings.clock_file, SERVING)
        first = world.train("initial model")
        assert first.version == "1" and first.decision.promote, first.decision
        yield world
        get_settings.cache_clear()


def reasons(summary: MonitoringSummary) -> str:
    return "; ".join(summary.decision.reasons)


def test_control_weeks_do_not_retrain(world: World) -> None:
    world.serve(world.simulate(CONTROL_DAYS, "control", SEED + 1))
    summary = world.monitor(PATTERN)
    assert summary.decision.action == "none", reasons(summary)
    assert summary.drift is not None and summary.drift.prediction is not None
    assert summary.drift.drifted is False and summary.drift.prediction.drifted is False
    perf = summary.performance
    assert perf.measured is True, perf
    assert perf.average_precision is not None and perf.floor is not None
    assert perf.average_precision >= perf.floor
    assert world.retrains == ["initial model"]


def test_a_new_fraud_pattern_is_invisible_until_its_labels_arrive(world: World) -> None:
    world.serve(world.simulate(PATTERN_DAYS, "new-pattern", SEED + 2))
    before = world.monitor(PATTERN + dt.timedelta(days=6))  # six of the window's seven days are new
    assert before.decision.action == "none", reasons(before)
    assert before.drift is not None and before.drift.prediction is not None
    assert before.drift.drifted is False and before.drift.prediction.drifted is False
    assert before.windows.labelled.end < PATTERN


def test_its_labels_raise_the_performance_alarm_and_retraining_ends_in_a_promotion(world: World) -> None:
    first = world.monitor(PATTERN + dt.timedelta(days=13))  # the labelled week is the pattern's first
    assert first.decision.action == "retrain", reasons(first)
    assert any(r.startswith("performance drop: live AP") for r in first.decision.reasons), reasons(first)
    assert first.drift is not None and first.drift.drifted is False  # the inputs still look as they did
    perf = first.performance
    assert perf.average_precision is not None and perf.floor is not None and perf.expected is not None
    assert perf.average_precision < perf.floor < perf.expected.average_precision
    # the real cycle ran; its challenger trained on weeks before the pattern and was judged on the
    # pattern's first week, beside the champion
    assert first.retrain is not None and first.retrain.completed is True
    outcome = first.retrain.outcome
    assert outcome is not None
    assert outcome.windows.as_tags()["test_window"].startswith(PATTERN.isoformat())
    assert outcome.windows.as_tags()["train_window"].endswith(str(PATTERN - dt.timedelta(days=8)))
    assert outcome.decision.reasons and outcome.champion_metrics is not None

    held = world.monitor(PATTERN + dt.timedelta(days=20))
    assert held.decision.action == "cooldown", reasons(held)
    assert held.decision.reasons[0] == f"cooldown: last retrain on {first.today}, 7 < 14 days ago"

    again = world.monitor(PATTERN + dt.timedelta(days=27))
    assert again.decision.action == "retrain", reasons(again)
    assert again.retrain is not None and again.retrain.outcome is not None
    outcome = again.retrain.outcome
    assert outcome.windows.as_tags()["train_window"].endswith(
        str(PATTERN + dt.timedelta(days=6))
    )  # a week of it
    assert again.retrain.promoted is True, outcome.decision.reasons
    assert outcome.champion_metrics is not None
    assert outcome.metrics["average_precision"] > outcome.champion_metrics["average_precision"]
    assert len(world.retrains) == 3  # the initial model and the two retrains


def test_a_holiday_season_is_dataset_drift_and_retrains(world: World) -> None:
    world.serve(world.simulate(HOLIDAY_DAYS, "holiday", SEED + 3))
    calls: list[str] = []

    def fake_retrain(reason: str) -> TrainingOutcome:
        calls.append(reason)  # what a cycle returns, from the real first one: only its recording matters
        decision = GateDecision(promote=False, reasons=["recorded"])
        return world.trained[0].model_copy(
            update={"version": "0", "alias": "challenger", "decision": decision}
        )

    today = HOLIDAY + dt.timedelta(days=HOLIDAY_DAYS)  # the window starts 14 days into the season
    summary = world.monitor(today, retrain=fake_retrain)
    assert summary.decision.action == "retrain", reasons(summary)
    assert summary.decision.reasons[0].startswith("dataset drift:")
    assert summary.drift is not None
    assert {"tx_amount", "customer_avg_amount_7d"} <= set(summary.drift.drifted_columns)
    assert summary.model.version == "3"
    assert len(calls) == 1 and calls[0].startswith(f"monitor {today}: dataset drift")


def test_a_quiet_window_is_not_enough_data(world: World, prefect_server: None) -> None:
    from monitoring.flow import monitoring_flow

    quiet = world.simulate(1, "none", SEED + 4)
    world.serve(quiet.head(300))
    today = quiet["tx_datetime"].dt.date.max() + dt.timedelta(days=1)
    world.ingest(today)
    set_today(world.settings.clock_file, today + dt.timedelta(days=6))  # the window: 1 scored day of 7
    summary = monitoring_flow(today=None, retrain=True)
    assert summary.decision.action == "not-enough-data"
    assert summary.rows == 300
    assert summary.decision.reasons == [
        f"only 300 scored transactions in the window (< min_rows {world.params.monitoring.min_rows}): no judgement"
    ]
    assert summary.drift is None and summary.retrain is None

    history = read_history(world.settings)
    actions = ["none", "none", "retrain", "cooldown", "retrain", "retrain", "not-enough-data"]
    assert [h.decision.action for h in history] == actions
    for decision in history:  # every decision keeps its inputs, its reasons and its reports
        assert decision.decision.reasons and decision.model.version
        assert decision.reports.summary_json is not None
        written = MonitoringSummary.model_validate_json(decision.reports.summary_json.read_text())
        assert written.today == decision.today
    assert len(read_predictions(world.settings.prediction_log)) == len(world.scored)
