"""Training: time-aware windows, a model that beats chance, and the whole cycle on a real DVC repo and MLflow.

The training cycle runs for real in a throwaway project (its own git, DVC and sqlite MLflow store): the
session's simulated days are ingested, versioned and reproduced, then ``run_training`` is called twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.clock import set_today
from core.features import feature_names
from core.params import Params
from core.registry import (
    CHALLENGER,
    CHAMPION,
    TAG_DATA_VERSION,
    TAG_FEATURES,
    TAG_LABEL_DELAY,
    TAG_ONNX_SHA256,
    TAG_THRESHOLD,
)
from core.settings import Settings
from pipelines.export import TOLERANCE
from pipelines.ingest import find_batches, ingest_batch
from pipelines.tracking import client_for
from pipelines.train import (
    NotEnoughData,
    Windows,
    evaluate_model,
    fit_baseline,
    plan_windows,
    prequential_windows,
    split_windows,
)
from pipelines.training import TrainingOutcome, current_champion, run_training
from pipelines.versioning import data_version, ensure_dvc_repo, track_data
from tests.conftest import make_project, task_runs_in_order
from tests.model.world import SIM, TODAY, SmallWorld, mlflow_uris_restored


def test_plan_windows_follows_params(params: Params) -> None:
    ev = params.evaluation
    windows = plan_windows(dt.date(2026, 2, 11), params)
    assert windows == Windows(
        train_start=dt.date(2026, 1, 8),
        train_end=dt.date(2026, 1, 28),
        test_start=dt.date(2026, 2, 5),
        test_end=dt.date(2026, 2, 11),
    )
    # with params.yaml's 21 / 7 / 7 days: the same dates, derived from the parameters
    assert (windows.train_end - windows.train_start).days + 1 == ev.train_days
    assert (windows.test_start - windows.train_end).days - 1 == ev.gap_days
    assert (windows.test_end - windows.test_start).days + 1 == ev.test_days
    assert windows.as_tags() == {
        "train_window": "2026-01-08..2026-01-28",
        "test_window": "2026-02-05..2026-02-11",
    }


def labelled_days(start: dt.date, days: int, fraud_every: int) -> pd.DataFrame:
    """Ten transactions a day, each by another card; every ``fraud_every``-th one fraudulent (0: none)."""
    n = days * 10
    frauds = np.zeros(n) if fraud_every == 0 else (np.arange(n) % fraud_every == 0).astype(float)
    return pd.DataFrame(
        {
            "tx_datetime": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.arange(n) * 8640, unit="s"),
            "customer_id": np.arange(n),  # every card once: none is known to be compromised
            "tx_fraud": frauds,
        }
    )


@pytest.mark.parametrize(("window", "kind"), [("train", "training"), ("test", "test")])
def test_split_windows_refuses_a_window_with_one_class(params: Params, window: str, kind: str) -> None:
    windows = plan_windows(dt.date(2026, 2, 11), params)
    table = labelled_days(windows.train_start, 35, fraud_every=4)
    start, end = (
        (windows.train_start, windows.train_end)
        if window == "train"
        else (windows.test_start, windows.test_end)
    )
    days = table["tx_datetime"].dt.date
    table.loc[(days >= start) & (days <= end), "tx_fraud"] = 0.0
    with pytest.raises(NotEnoughData, match=f"the {kind} window .* has no labelled fraud and genuine rows"):
        split_windows(table, windows)


def test_split_windows_keeps_labelled_rows_of_each_window(params: Params) -> None:
    windows = plan_windows(dt.date(2026, 2, 11), params)
    table = labelled_days(windows.train_start, 35, fraud_every=4)
    table.loc[table.index % 5 == 0, "tx_fraud"] = np.nan  # labels not known yet
    train, test = split_windows(table, windows)
    assert len(train) == 21 * 10 * 4 // 5 and len(test) == 7 * 10 * 4 // 5
    assert train["tx_datetime"].dt.date.between(windows.train_start, windows.train_end).all()
    assert test["tx_datetime"].dt.date.between(windows.test_start, windows.test_end).all()
    assert set(train["tx_fraud"]) == {0, 1} and train["tx_fraud"].dtype == int


def test_model_beats_the_random_baseline(small_world: SmallWorld, params: Params) -> None:
    features = feature_names(params.features)
    threshold = small_world.selection.threshold
    m = evaluate_model(small_world.model, small_world.test, features, threshold, params)
    assert m["average_precision"] > m["average_precision_random"] + params.gate.first_model_ap_margin
    assert m["average_precision"] > 10 * m["average_precision_random"]
    assert m["roc_auc"] > m["roc_auc_random"] + 0.2
    assert m["card_precision_at_k"] > m["card_precision_at_k_random"]


# --- the training cycle in a throwaway project ---------------------------------------------------


@dataclass(frozen=True)
class TrainedProject:
    """The project, its settings and the outcome of its first training."""

    root: Path
    settings: Settings
    first: TrainingOutcome


@pytest.fixture(scope="module")
def trained_project(
    tmp_path_factory: pytest.TempPathFactory, small_world: SmallWorld, params: Params
) -> Iterator[TrainedProject]:
    """Ingest the simulated days as of TODAY, version them with DVC, train once."""
    root = make_project(tmp_path_factory.mktemp("training") / "project")
    settings = Settings(project_dir=root)
    with pytest.MonkeyPatch.context() as mp, mlflow_uris_restored():
        mp.setenv("FRAUDOPS_PROJECT_DIR", str(root))  # read by the DVC stages' processes
        mp.setenv("DVC_SITE_CACHE_DIR", str(root.parent / "dvc-site"))
        mp.setenv("PATH", os.environ["PATH"])  # reproduce() prepends this python's bin folder
        mp.chdir(root)
        statuses = []
        for kind, path in find_batches([small_world.sim_dir]):
            dest = settings.raw_dir if kind == "transactions" else settings.labels_dir
            statuses.append(ingest_batch(kind, path, dest, TODAY, params.data.label_delay_days).status)
        assert (statuses.count("ingested"), statuses.count("pending")) == (SIM.days + SIM.days - 6, 6)
        set_today(settings.clock_file, TODAY)
        ensure_dvc_repo(root)
        track_data(root)
        yield TrainedProject(root, settings, run_training(settings, params, "first"))


def params_candidates(project: TrainedProject) -> list[Any]:
    from core.params import load_params

    return load_params(project.root / "params.yaml").model.candidates()


def tags_of(settings: Settings, version: str) -> dict[str, str]:
    return dict(client(settings).get_model_version(settings.model_name, version).tags)


def client(settings: Settings) -> Any:
    """A client on ``settings``' store alone (not on whatever MLflow's process-wide URIs say)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def versions(settings: Settings) -> list[str]:
    found = client(settings).search_model_versions(f"name='{settings.model_name}'")
    return sorted(str(v.version) for v in found)


def alias_version(settings: Settings, alias: str) -> str:
    return str(client(settings).get_model_version_by_alias(settings.model_name, alias).version)


def test_first_training_registers_the_champion(
    trained_project: TrainedProject, small_world: SmallWorld, params: Params
) -> None:
    first, settings = trained_project.first, trained_project.settings
    assert (first.version, first.alias, first.decision.promote) == ("1", CHAMPION, True)
    ap, floor = first.metrics["average_precision"], first.metrics["average_precision_random"]
    floor += params.gate.first_model_ap_margin
    assert first.decision.reasons == [
        f"first model: AP {ap:.3f} beats random baseline + margin ({floor:.3f})"
    ]
    assert (first.previous_champion, first.champion_metrics) == (None, None)
    # the pipeline (ingest, DVC stages, delayed labels) reproduces the in-memory windows and model
    assert first.windows == small_world.windows
    features = feature_names(params.features)
    threshold = small_world.selection.threshold
    assert first.metrics == evaluate_model(small_world.model, small_world.test, features, threshold, params)
    assert first.data_version == data_version(trained_project.root)
    assert alias_version(settings, CHAMPION) == "1"
    tags = client(settings).get_model_version(settings.model_name, "1").tags
    assert {k: tags[k] for k in (TAG_THRESHOLD, TAG_FEATURES, TAG_LABEL_DELAY, TAG_DATA_VERSION)} == {
        TAG_THRESHOLD: str(threshold),
        TAG_FEATURES: json.dumps(features),
        TAG_LABEL_DELAY: str(params.data.label_delay_days),
        TAG_DATA_VERSION: first.data_version,
    }
    run = client(settings).get_run(first.run_id)
    assert run.data.tags["gate.promote"] == "True"
    assert run.data.tags["test_window"] == f"{first.windows.test_start}..{first.windows.test_end}"
    assert run.data.metrics["test_average_precision"] == first.metrics["average_precision"]


def test_training_again_on_the_same_data_keeps_the_champion(
    trained_project: TrainedProject, tmp_path: Path, params: Params
) -> None:
    import mlflow

    settings, first = trained_project.settings, trained_project.first
    with mlflow_uris_restored():
        # MLflow's process-wide URIs left on another store (as a serving app in the same process does)
        other = f"sqlite:///{tmp_path / 'other.db'}"
        mlflow.set_tracking_uri(other)
        mlflow.set_registry_uri(other)
        second = run_training(settings, params, "same data")

    assert (second.version, second.alias, second.decision.promote) == ("2", CHALLENGER, False)
    assert second.previous_champion == "1"
    assert second.metrics == first.metrics  # same data, same seed: the same model
    assert second.champion_metrics == first.metrics  # the champion scored on the same window
    ap = first.metrics["average_precision"]
    assert second.decision.reasons[0] == f"AP {ap:.3f} < champion {ap:.3f} + margin {params.gate.ap_margin}"
    assert (alias_version(settings, CHAMPION), alias_version(settings, CHALLENGER)) == ("1", "2")
    assert versions(settings) == ["1", "2"]
    assert not (tmp_path / "other.db").exists()


def closed_port() -> int:
    """A local port nothing listens on (bound once to find it, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_training_fails_when_the_tracking_server_is_down(
    trained_project: TrainedProject, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    real = trained_project.settings
    port = closed_port()
    down = Settings(project_dir=trained_project.root, mlflow_tracking_uri=f"http://127.0.0.1:{port}")
    before = versions(real)

    with mlflow_uris_restored(), pytest.raises(MlflowException, match=f"127.0.0.1:{port}"):
        run_training(down, params, "server down")

    assert alias_version(real, CHAMPION) == "1"
    assert versions(real) == before


def test_an_unreachable_registry_is_not_an_empty_one(
    trained_project: TrainedProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = trained_project.settings
    assert current_champion(client_for(settings), "no-such-model") is None
    # treating "cannot ask" as "no champion" would judge the next model as a first one
    down = Settings(project_dir=trained_project.root, mlflow_tracking_uri=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(MlflowException, match="API request to"):
        current_champion(client_for(down), settings.model_name)


def test_the_run_keeps_its_lineage_and_report(trained_project: TrainedProject) -> None:
    import mlflow

    first, settings = trained_project.first, trained_project.settings
    run = client(settings).get_run(first.run_id)
    tags = run.data.tags
    assert (
        tags["data_version"] == first.data_version
        and tags["test_window"] == first.windows.as_tags()["test_window"]
    )
    assert {"git_commit", "train_window", "features", "reason", "gate.promote"} <= set(tags)
    assert run.data.metrics["test_average_precision"] == pytest.approx(first.metrics["average_precision"])
    with mlflow_uris_restored():
        folder = Path(
            mlflow.artifacts.download_artifacts(run_id=first.run_id, tracking_uri=settings.tracking_uri)
        )
    report = folder / "report"
    assert {p.name for p in report.iterdir()} == {
        "pr_curve.png",
        "roc_curve.png",
        "confusion_matrix.json",
        "confusion_matrix.png",
        "feature_importance.csv",
        "feature_importance.png",
        "model_card.md",
        "training.json",
    }
    card = (report / "model_card.md").read_text(encoding="utf-8")
    assert "logistic baseline" in card and "Decision threshold" in card
    training = json.loads((report / "training.json").read_text(encoding="utf-8"))
    assert len(training["search"]) == len(params_candidates(trained_project))
    # the chosen hyperparameters and the threshold are the run's params and metric
    assert {k: float(v) for k, v in training["hyperparameters"].items()} == {
        k: float(run.data.params[k]) for k in training["hyperparameters"]
    }
    assert run.data.metrics["threshold"] == pytest.approx(training["threshold"])
    assert float(tags_of(settings, first.version)[TAG_THRESHOLD]) == pytest.approx(training["threshold"])
    # the ONNX form is an artifact of the same run, with its sha256 on the version, and agrees
    onnx_model = (folder / "onnx" / "model.onnx").read_bytes()
    assert tags_of(settings, first.version)[TAG_ONNX_SHA256] == hashlib.sha256(onnx_model).hexdigest()
    assert run.data.metrics["test_onnx_max_abs_diff"] <= TOLERANCE
    counts = json.loads((report / "confusion_matrix.json").read_text(encoding="utf-8"))
    assert sum(v for k, v in counts.items() if k != "threshold") == first.metrics["rows"]
    importance = pd.read_csv(report / "feature_importance.csv")
    assert len(importance) == 15 and importance["importance"].max() > 0
    assert first.data_version in (report / "model_card.md").read_text(encoding="utf-8")
    assert (folder / "reference" / "reference.parquet").exists()


def test_folds_compare_the_model_with_the_logistic_baseline(small_world: SmallWorld, params: Params) -> None:
    from pipelines.train_stage import compare_folds

    population = int(small_world.table["customer_id"].nunique())
    sel = small_world.selection
    compared = compare_folds(
        small_world.table, small_world.windows, params, population, sel.hyper, sel.threshold
    )
    assert compared["prequential_folds"] == params.evaluation.prequential_folds  # 84 days hold all four
    random_ap = small_world.test["tx_fraud"].mean()
    for prefix in ("prequential", "baseline_prequential"):
        assert compared[f"{prefix}_average_precision_mean"] > random_ap
        assert compared[f"{prefix}_average_precision_std"] >= 0
    assert compared["baseline_average_precision"] > random_ap
    # fold 0 is the protocol's own windows: the models already fitted there give the same figures
    first_day = small_world.table["tx_datetime"].min().date()
    assert prequential_windows(small_world.windows.test_end, params, first_day)[0] == small_world.windows
    baseline = fit_baseline(small_world.train, params)
    args = (small_world.table, small_world.windows, params, population, sel.hyper, sel.threshold)
    assert compare_folds(*args, {"model": small_world.model, "baseline": baseline}) == compared
    # ... and they are what fold 0 uses: another model there changes the model's figures only
    swapped = compare_folds(*args, {"model": baseline})
    assert swapped["prequential_average_precision_mean"] != compared["prequential_average_precision_mean"]
    assert swapped["baseline_average_precision"] == compared["baseline_average_precision"]


def test_cards_known_to_be_compromised_leave_the_test_set(params: Params) -> None:
    windows = plan_windows(dt.date(2026, 2, 11), params)  # train 01-08..01-28, test 02-05..02-11
    rows = [  # (day, card, fraud)
        (windows.train_start - dt.timedelta(days=1), 1, 1),  # before the training window: not counted
        (windows.train_start, 2, 1),  # a fraud in training: card 2 is known throughout the test
        (windows.train_end + dt.timedelta(days=1), 3, 1),  # in the gap: known 8 days later (02-06)
        (windows.train_start, 4, 0),
        *((windows.test_start + dt.timedelta(days=d), card, 0) for d in range(7) for card in (1, 2, 3, 4)),
        (windows.test_start, 5, 1),
    ]
    table = pd.DataFrame(
        {
            "tx_datetime": [pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=12) for day, _, _ in rows],
            "customer_id": [card for _, card, _ in rows],
            "tx_fraud": [float(fraud) for _, _, fraud in rows],
        }
    )
    _, test = split_windows(table, windows)
    kept = test.groupby("customer_id")["tx_datetime"].apply(lambda t: sorted(t.dt.strftime("%m-%d")))
    assert 2 not in kept.index  # known from the training window on
    assert kept[1] == [f"02-{d:02d}" for d in range(5, 12)]  # its fraud predates the training window
    assert kept[3] == ["02-05"]  # its gap fraud (01-29) became known on 02-06
    assert len(kept[4]) == 7 and kept[5] == ["02-05"]


def test_a_failure_after_registration_never_registers_a_second_version(
    trained_project: TrainedProject, prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The register task retries and the failed cycle is run again: one version for its run, same champion."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from core.settings import get_settings
    from pipelines.flows import training_flow
    from pipelines.tracking import TAG_CYCLE, ensure_experiment

    settings = trained_project.settings
    monkeypatch.setenv("FRAUDOPS_TASK_RETRIES", "1")
    monkeypatch.setenv("FRAUDOPS_RETRY_DELAY_S", "0")
    get_settings.cache_clear()  # the flow reads the settings with these retries (and again after)
    champion = alias_version(settings, CHAMPION)
    set_tag, set_alias = MlflowClient.set_model_version_tag, MlflowClient.set_registered_model_alias
    tagged: list[str] = []

    def tag_then_fail_once(self: Any, name: str, version: str, key: str, value: str) -> None:
        set_tag(self, name, version, key, value)  # the version exists; the answer is lost once
        tagged.append(version)
        if len(tagged) == 1:
            raise MlflowException("connection reset by peer (injected after registration)")

    def registry_down(self: Any, *args: Any, **kwargs: Any) -> None:
        raise MlflowException("registry unavailable (injected)")

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", tag_then_fail_once)
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", registry_down)
    cycle = "cycle-failing-after-registration"
    try:
        with mlflow_uris_restored(), pytest.raises(MlflowException, match="registry unavailable"):
            training_flow("registry flaky", cycle_id=cycle)  # register retried; promote fails for good
        monkeypatch.setattr(MlflowClient, "set_registered_model_alias", set_alias)
        with mlflow_uris_restored():  # the failed cycle run again
            state = training_flow("registry flaky", cycle_id=cycle, return_state=True)
        outcome = state.result()
    finally:
        get_settings.cache_clear()

    with mlflow_uris_restored():
        experiment = ensure_experiment(settings)
    runs = client(settings).search_runs([experiment], filter_string=f"tags.`{TAG_CYCLE}` = '{cycle}'")
    assert [r.info.run_id for r in runs] == [outcome.run_id]  # one run for the cycle
    found = client(settings).search_model_versions(f"run_id='{outcome.run_id}'")
    assert [str(v.version) for v in found] == [outcome.version]  # one version for the run
    assert set(tagged) == {outcome.version}
    assert alias_version(settings, CHAMPION) == champion and outcome.alias == CHALLENGER
    assert alias_version(settings, CHALLENGER) == outcome.version
    assert stage_names(state.state_details.flow_run_id, 8) == [  # what the Prefect UI shows of the run
        "validate",
        "features",
        "train",
        "evaluate",
        "gate",
        "log run",
        "register",
        "promote",
    ]


def stage_names(flow_run_id: Any, expected: int) -> list[str]:
    """The task runs of a flow run, by start time, without Prefect's run-name suffix."""
    return [r.name.rsplit("-", 1)[0] for r in task_runs_in_order(flow_run_id, expected)]


# MLflow calls of the log-run, register and promote stages, in the order a cycle makes them
REGISTRY_CALLS = (
    "create_run",  # log run: the run is created (with its cycle tag)
    "log_batch",  # log run: params, metrics, tags
    "log_artifact",  # log run: reference sample, ONNX, report
    "set_terminated",  # log run: the run ends FINISHED
    "_create_model_version",  # register (what mlflow.register_model calls)
    "set_model_version_tag",  # register: the contract tags
    "update_registered_model",  # register: the description
    "set_registered_model_alias",  # promote
)


def test_a_failure_at_any_registry_call_leaves_one_run_and_one_version(
    trained_project: TrainedProject, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each MLflow call of the last three stages fails once after doing its work (the answer is lost).

    The cycle is run again by its id after each failure. The model's stage outputs and evaluation are
    the module's (read once; ``dvc repro``, scoring and the report have their own tests); MLflow is the
    real store.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    import pipelines.training as training
    from pipelines.tracking import TAG_CYCLE, ensure_experiment

    settings = trained_project.settings
    always = params.model_copy(update={"gate": params.gate.model_copy(update={"ap_margin": -1.0})})
    champion = alias_version(settings, CHAMPION)
    cached = (
        "read_feature_table",
        "read_stage",
        "split_windows",
        "load_model",
        "data_version",
    )
    for name in cached:
        monkeypatch.setattr(training, name, memoized(getattr(training, name)))
    # same data, same seed: every model of this module scores as the first (see the second training)
    monkeypatch.setattr(training, "evaluate_model", lambda *_: trained_project.first.metrics)
    sample = training.reference_sample
    monkeypatch.setattr(
        training, "reference_sample", lambda m, train, *rest: sample(m, train.head(100), *rest)
    )
    monkeypatch.setattr(training, "write_report", lambda folder, *_: [small_file(folder)])
    armed, failed = list(REGISTRY_CALLS), []
    for method in REGISTRY_CALLS:
        monkeypatch.setattr(
            MlflowClient, method, fail_once_after(getattr(MlflowClient, method), armed, failed)
        )
    with mlflow_uris_restored():
        experiment = ensure_experiment(settings)
    runs_before = {r.info.run_id for r in client(settings).search_runs([experiment])}
    cycle, outcome = "cycle-with-a-failure-at-every-call", None
    try:
        for _ in range(len(REGISTRY_CALLS) + 1):  # the cycle run again after each failure
            with mlflow_uris_restored(), contextlib.suppress(MlflowException):
                outcome = run_training(settings, always, "flaky registry", cycle, step=skip_dvc_stages)
            if outcome is not None:
                break
        assert outcome is not None and failed == list(REGISTRY_CALLS), failed  # each failed once, in turn
        new_runs = [r.info.run_id for r in client(settings).search_runs([experiment])]
        assert sorted(set(new_runs) - runs_before) == [outcome.run_id]  # one run, no orphan
        tagged = client(settings).search_runs([experiment], filter_string=f"tags.`{TAG_CYCLE}` = '{cycle}'")
        assert [r.info.run_id for r in tagged] == [outcome.run_id]
        found = client(settings).search_model_versions(f"run_id='{outcome.run_id}'")
        assert [str(v.version) for v in found] == [outcome.version]  # one version
        # the lost answer of the promotion is not taken for a champion to beat: still promoted
        assert (outcome.alias, outcome.previous_champion) == (CHAMPION, champion)
        assert alias_version(settings, CHAMPION) == outcome.version
    finally:  # the module's later tests expect the first champion
        client(settings).set_registered_model_alias(settings.model_name, CHAMPION, champion)


def fail_once_after(real: Any, armed: list[str], failed: list[str]) -> Any:
    """``real``, which raises once after doing its work when its name is the next armed one."""

    from mlflow.exceptions import MlflowException

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)
        if armed and armed[0] == real.__name__:
            failed.append(armed.pop(0))
            raise MlflowException(f"{real.__name__}: connection reset by peer (injected, answer lost)")
        return result

    return call


def memoized(fn: Any) -> Any:
    """``fn`` answering a repeated call from a cache (arguments by value where hashable, else by identity)."""
    cache: dict[tuple[Any, ...], Any] = {}

    def call(*args: Any) -> Any:
        key = tuple(key_of(a) for a in args)
        if key not in cache:
            cache[key] = fn(*args)
        return cache[key]

    return call


def key_of(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, BaseModel):  # params by value
        return value.model_dump_json()
    if is_dataclass(value) and not isinstance(value, type):  # a version's ModelInfo by value
        return repr(value)
    try:
        hash(value)
    except TypeError:
        return id(value)
    return value


def small_file(folder: Path) -> Path:
    path = folder / "model_card.md"
    path.write_text("report: see test_the_run_keeps_its_lineage_and_report", encoding="utf-8")
    return path


def skip_dvc_stages(name: str, fn: Any, retry: bool, run_name: str | None = None) -> Any:
    """Run each stage but ``dvc repro``, which the module's first training ran."""
    from pipelines.versioning import DVC_STAGES

    return (lambda *_: []) if name in DVC_STAGES else fn
