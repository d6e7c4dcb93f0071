"""One training cycle: reproduce the data, train a candidate, judge it against the champion, register.

:func:`run_training` is the cycle, stage by stage: the ``dvc.yaml`` stages (validate, features,
train), evaluate, gate, log run, register, promote. ``fraudops train``, the Prefect training flow and
the retraining the monitor triggers all run it (the flows make each stage a task), so every path
runs the same code. The alias moves last: a failure anywhere leaves the champion as it was, and a
cycle run again with its id finds the run and the version it logged before instead of adding more.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from core.features import feature_names
from core.params import Params
from core.registry import (
    CHAMPION,
    MISSING_CODES,
    SCORE_COLUMN,
    ModelInfo,
    load_model,
    model_info_from_version,
    read_model_info,
)
from core.settings import Settings
from pipelines.features import read_feature_table
from pipelines.gate import GateDecision, apply_decision, judge
from pipelines.plots import PR_CURVE_PNG
from pipelines.report import save_confusion, save_curves, save_importance, write_model_card
from pipelines.results import TrainingOutcome
from pipelines.tracking import (
    TAG_CYCLE,
    client_for,
    discard_unfinished_runs,
    find_cycle_run,
    git_commit,
    log_run,
    register_run,
    use_store,
)
from pipelines.train import (
    evaluate_model,
    score_frame,
    split_windows,
)
from pipelines.train_stage import TrainedModel, read_stage
from pipelines.versioning import DVC_STAGES, data_version, reproduce

log = logging.getLogger(__name__)
T = TypeVar("T")
TAG_JUDGED_AGAINST = "gate.champion_version"  # the champion the gate compared with ("" for a first model)


@dataclass(frozen=True)
class Candidate:
    """The DVC stage's model evaluated beside the champion on the newest labelled window."""

    trained: TrainedModel
    train: pd.DataFrame
    test: pd.DataFrame
    features: list[str]
    metrics: dict[str, float]
    champion: ModelInfo | None
    champion_metrics: dict[str, float] | None
    data_version: str


def current_champion(client: Any, name: str) -> tuple[ModelInfo, Any] | None:
    """The serving model and its metadata, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    try:
        info = read_model_info(client, name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code not in MISSING_CODES:
            raise  # an unreachable registry is not an empty one: the gate must not judge a "first" model
        return None
    return info, load_model(info)


def champion_to_beat(settings: Settings, cycle_id: str) -> tuple[ModelInfo, Any] | None:
    """The champion the cycle is judged against: the serving one, unless this cycle already replaced it.

    An attempt whose promotion reached the registry but whose answer was lost leaves the cycle's own
    version as champion; judged against itself, the re-run would demote it to challenger. The run
    records the champion its gate compared with, so the re-run compares with that one again.
    """
    client = client_for(settings)
    champion = current_champion(client, settings.model_name)
    if champion is None or champion[0].run_id != find_cycle_run(settings, cycle_id):
        return champion
    previous = client.get_run(champion[0].run_id).data.tags.get(TAG_JUDGED_AGAINST, "")
    if not previous:
        return None
    info = model_info_from_version(client.get_model_version(settings.model_name, previous), None)
    return info, load_model(info)


def write_report(
    folder: Path, model: Any, test: pd.DataFrame, run_data: dict[str, Any], params: Params
) -> list[Path]:
    """Curves, confusion matrix, importances and the model card for the run's artifacts."""
    features, threshold = run_data["features"], run_data["threshold"]
    y, scores = test["tx_fraud"].to_numpy(), score_frame(model, test, features)
    return [
        *save_curves(y, scores, folder, run_data["tags"]["test_window"]),
        *save_confusion(y, scores, threshold, folder),
        *save_importance(model, test, features, folder, params.seed),
        write_model_card(run_data, folder),
    ]


def reference_sample(model: Any, train: pd.DataFrame, features: list[str], params: Params) -> pd.DataFrame:
    """Rows of the training window monitoring compares live windows with: features and the model's score.

    The scores are the model's own on rows it was trained on; the prediction-drift check compares the
    live score distribution with them (genuine rows, nearly all of them, score alike in and out of sample).
    """
    sample = train[features].sample(
        n=min(len(train), params.monitoring.reference_rows), random_state=params.seed
    )
    return sample.assign(**{SCORE_COLUMN: score_frame(model, sample, features)})


def check_raw_data(settings: Settings) -> None:
    """Refuse to train before anything was ingested, with the commands that fix it."""
    if not any(settings.raw_dir.glob("*.parquet")):
        raise FileNotFoundError(
            f"no data in {settings.raw_dir}: run `fraudops simulate --out DIR` and `fraudops ingest DIR` first"
        )


def evaluate_candidate(settings: Settings, params: Params, cycle_id: str) -> Candidate:
    """Read the train stage's model and score it, and the champion, on the stage's test window."""
    table = read_feature_table(settings.data_dir)
    trained = read_stage(settings.data_dir, settings.project_dir / "metrics")
    train, test = split_windows(table, trained.windows)
    features = feature_names(params.features)
    population = int(table["customer_id"].nunique())  # customers seen in all the data: k as in the stage
    metrics = evaluate_model(trained.model, test, features, trained.threshold, params, population)
    use_store(settings)  # the champion is loaded through MLflow's process-wide URIs
    champion = champion_to_beat(settings, cycle_id)
    champion_metrics = None
    if champion is not None:
        info, model = champion
        champion_metrics = evaluate_model(model, test, info.features, info.threshold, params, population)
    champion_ap = f"{champion_metrics['average_precision']:.3f}" if champion_metrics else "none yet"
    log.info(
        "candidate on %s: AP %.3f (random %.3f); champion on the same window: %s",
        trained.windows.as_tags()["test_window"],
        metrics["average_precision"],
        metrics["average_precision_random"],
        champion_ap,
    )
    return Candidate(
        trained,
        train,
        test,
        features,
        metrics,
        champion[0] if champion else None,
        champion_metrics,
        data_version(settings.project_dir),
    )


def log_candidate(
    settings: Settings,
    params: Params,
    candidate: Candidate,
    decision: GateDecision,
    reason: str,
    cycle_id: str,
) -> str:
    """The MLflow run of this training cycle (report, reference sample, model): found again on a re-run."""
    found = find_cycle_run(settings, cycle_id)
    if found is not None:
        log.info("training cycle %s: run %s already logged", cycle_id, found)
        return found
    discard_unfinished_runs(settings, cycle_id)
    run_data = _run_data(settings, params, reason, candidate, decision, cycle_id)
    reference = reference_sample(candidate.trained.model, candidate.train, candidate.features, params)
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(Path(tmp), candidate.trained.model, candidate.test, run_data, params)
        training_json = Path(tmp) / "training.json"  # search candidates, threshold note, windows
        training_json.write_text(json.dumps(candidate.trained.training, indent=2), encoding="utf-8")
        report.append(training_json)
        report.append(settings.project_dir / "metrics" / PR_CURVE_PNG)  # the stage's, with both baselines
        run_id = log_run(
            settings,
            candidate.trained.model,
            run_data,
            reference,
            report,
            candidate.trained.onnx_path.read_bytes(),
        )
    log.info("training cycle %s: logged MLflow run %s", cycle_id, run_id)
    return run_id


class Step(Protocol):
    """How a stage runs: :func:`plain` calls it; the Prefect flows make it a named, retried task."""

    def __call__(
        self, name: str, fn: Callable[..., T], retry: bool, run_name: str | None = None
    ) -> Callable[..., T]: ...


def plain(name: str, fn: Callable[..., T], retry: bool, run_name: str | None = None) -> Callable[..., T]:
    """Run a stage as the plain function it is (no Prefect, no retries)."""
    return fn


def run_training(
    settings: Settings, params: Params, reason: str, cycle_id: str | None = None, step: Step = plain
) -> TrainingOutcome:
    """One training cycle: the DVC stages, evaluate, gate, log run, register, promote.

    ``cycle_id`` names the cycle (a new one by default): running a failed cycle again with its id
    registers no second model version. ``step`` runs each stage (the flows pass Prefect tasks);
    ``retry`` marks the stages that are safe to repeat.
    """
    cycle_id = cycle_id or new_cycle_id()
    check_raw_data(settings)
    for name in DVC_STAGES:
        step(name, reproduce_stage, retry=True)(settings, name)
    candidate = step("evaluate", evaluate_candidate, retry=True)(settings, params, cycle_id)
    decision = step("gate", judge, retry=False)(candidate.metrics, candidate.champion_metrics, params.gate)
    run_id = step("log run", log_candidate, retry=True)(
        settings, params, candidate, decision, reason, cycle_id
    )
    registered = step("register", register_run, retry=True)(settings, run_id)
    alias = step("promote", promote, retry=True)(settings, registered, decision)
    outcome = outcome_of(candidate, decision, registered, alias, reason, cycle_id)
    save_outcome(settings, outcome)
    return outcome


def reproduce_stage(settings: Settings, name: str) -> list[str]:
    """``dvc repro`` of one ``dvc.yaml`` stage (and what it depends on); the stages that ran."""
    ran = reproduce(settings.project_dir, name)
    log.info("dvc repro %s: %s", name, f"ran {', '.join(ran)}" if ran else "up to date, nothing ran")
    return ran


def promote(settings: Settings, registered: ModelInfo, decision: GateDecision) -> str:
    """Move ``champion`` (promoted) or ``challenger`` to the registered version; the alias set."""
    alias = apply_decision(client_for(settings), settings.model_name, registered.version, decision)
    log.info("%s version %s is now @%s", settings.model_name, registered.version, alias)
    return alias


def new_cycle_id() -> str:
    """A fresh training-cycle id."""
    return uuid.uuid4().hex


def outcome_of(
    candidate: Candidate,
    decision: GateDecision,
    registered: ModelInfo,
    alias: str,
    reason: str,
    cycle_id: str,
) -> TrainingOutcome:
    """The typed result of one cycle."""
    return TrainingOutcome(
        version=registered.version,
        alias=alias,
        decision=decision,
        metrics=candidate.metrics,
        champion_metrics=candidate.champion_metrics,
        previous_champion=candidate.champion.version if candidate.champion else None,
        windows=candidate.trained.windows,
        data_version=candidate.data_version,
        run_id=registered.run_id,
        cycle_id=cycle_id,
        reason=reason,
    )


def save_outcome(settings: Settings, outcome: TrainingOutcome) -> Path:
    """Write the outcome to ``reports/training/v<version>.json`` (schema: docs/schemas)."""
    path = settings.reports_dir / "training" / f"v{outcome.version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(outcome.model_dump_json(indent=2), encoding="utf-8")
    return path


def _run_data(
    settings: Settings,
    params: Params,
    reason: str,
    candidate: Candidate,
    decision: GateDecision,
    cycle_id: str,
) -> dict[str, Any]:
    trained, metrics, champion_metrics = candidate.trained, candidate.metrics, candidate.champion_metrics
    windows = trained.windows
    logged = {f"test_{k}": v for k, v in metrics.items()}
    logged |= {  # the stage's comparisons: logistic baseline and prequential folds
        f"test_{k}": float(v)
        for k, v in trained.metrics.items()
        if k.startswith(("baseline_", "prequential_"))
    }
    # the chosen candidate on the validation folds: what monitoring expects of a live week
    logged |= {k: float(v) for k, v in trained.training.get("validation", {}).items() if k != "folds"}
    logged |= {
        "n_iter": float(trained.n_iter),
        "threshold": trained.threshold,
        "test_onnx_max_abs_diff": float(trained.training["onnx_max_abs_diff"]),  # unrounded
    }
    if champion_metrics:
        logged |= {f"champion_{k}": v for k, v in champion_metrics.items()}
    return {
        "run_name": f"train-{windows.test_end}",
        "features": feature_names(params.features),
        "threshold": trained.threshold,
        "threshold_note": trained.training["threshold_note"],
        "label_delay_days": params.data.label_delay_days,
        "params": {
            **trained.hyperparameters,  # the search's choice
            **{f"search.{k}": str(v) for k, v in params.model.search.items()},
            "validation_folds": params.model.validation_folds,
            **{f"threshold.{k}": v for k, v in params.model.threshold.model_dump().items()},
            **params.evaluation.model_dump(),
            "seed": params.seed,
        },
        "metrics": {k: float(v) for k, v in logged.items() if np.isfinite(v)},
        "tags": {
            **windows.as_tags(),
            "reason": reason,
            "git_commit": git_commit(settings.project_dir),
            "data_version": candidate.data_version,
            TAG_CYCLE: cycle_id,
            "features": ",".join(feature_names(params.features)),
            "gate.promote": str(decision.promote),
            "gate.reasons": " | ".join(decision.reasons),
            TAG_JUDGED_AGAINST: candidate.champion.version if candidate.champion else "",
        },
    }
