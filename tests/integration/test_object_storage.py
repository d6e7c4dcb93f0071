"""Artifacts and data on an S3-compatible store, against moto's S3 server (a stand-in for AWS S3 or MinIO).

moto runs as its own process on 127.0.0.1 and speaks the S3 protocol over HTTP, so DVC (s3fs), MLflow
and boto3 talk to it exactly as they would to a real bucket. The MLflow server runs with compose.yaml's
own mlflow command and environment, given ``MLFLOW_ARTIFACTS_DESTINATION`` and the S3 endpoint as a
user would; only its database (sqlite in the test folder instead of PostgreSQL) and address change.
The credentials are random values shaped like real AWS keys, so the secret scan would see a leak.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.project import make_project
from core.settings import Settings, tool_environment
from fraudops.secret_scan import scan_repository
from pipelines.versioning import TRACKED, pull_data
from tests.integration.test_team_setup import (
    Server,
    _base_env,
    _compose_services,
    _flag,
    _free_port,
    _interpolate,
    _start,
)
from tests.integration.tiny_run import tiny_model, tiny_run_data
from tests.model.world import mlflow_uris_restored

BUCKET = "fraudops-test"
DVC_PREFIX = "dvc"
MLFLOW_PREFIX = "mlflow"
MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
S3_VARIABLES = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@dataclass(frozen=True)
class ObjectStore:
    """moto's S3 server, its bucket and the credentials it was given (moto accepts any)."""

    endpoint: str
    key_id: str
    secret: str

    @property
    def credentials(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )

    def keys(self, prefix: str) -> list[str]:
        """The object keys under ``prefix`` in the bucket."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@dataclass(frozen=True)
class Stores:
    s3: ObjectStore
    mlflow: Server
    mlflow_url: str
    mlflow_command: list[str]


def random_credentials() -> tuple[str, str]:
    """An access key id and a secret shaped like AWS's (AKIA + 16, 40 base64 characters)."""
    return "AKIA" + secrets.token_hex(8).upper(), base64.b64encode(secrets.token_bytes(30)).decode()


def compose_mlflow(variables: dict[str, str], backend: str, port: int) -> tuple[list[str], dict[str, str]]:
    """compose.yaml's mlflow command and environment as compose fills them in from ``variables`` (the
    shell or .env), with the database and the listening address made local."""

    def fill(text: object) -> str:
        set_ones = re.sub(r"\$\{(\w+):-[^}]*\}", lambda m: variables.get(m[1], m[0]), str(text))
        return _interpolate(set_ones)  # the others take compose's default

    service = _compose_services()["mlflow"]
    command = [fill(part) for part in service["command"]]
    assert command[:2] == ["mlflow", "server"], command
    command[_flag(command, "--backend-store-uri")] = backend
    command[_flag(command, "--host")] = "127.0.0.1"
    command[_flag(command, "--port")] = str(port)
    command[_flag(command, "--allowed-hosts")] = f"127.0.0.1:{port},localhost:{port}"
    return command, {key: fill(value) for key, value in service.get("environment", {}).items()}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """moto's S3 server with an empty bucket."""
    workdir = tmp_path_factory.mktemp("s3")
    key_id, secret = random_credentials()
    port = _free_port()
    store = ObjectStore(f"http://127.0.0.1:{port}", key_id, secret)
    moto = _start(
        "moto server",
        [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        _base_env(workdir),
        workdir,
        f"{store.endpoint}/moto-api/",
    )
    try:
        moto.wait_healthy(60)
        store.client().create_bucket(Bucket=BUCKET)
        yield store
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def stores(s3: ObjectStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """The bucket and an MLflow server whose artifacts live in it, started but not waited for: the DVC
    tests take it too, so it starts up (~10 s, more on a busy machine) while they run."""
    workdir = tmp_path_factory.mktemp("mlflow-on-s3")
    port = _free_port()
    command, compose_env = compose_mlflow(
        {
            "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/{MLFLOW_PREFIX}",
            "FRAUDOPS_S3_ENDPOINT_URL": s3.endpoint,
            "AWS_ACCESS_KEY_ID": s3.key_id,
            "AWS_SECRET_ACCESS_KEY": s3.secret,
        },
        f"sqlite:///{workdir / 'mlflow.db'}",
        port,
    )
    url = f"http://127.0.0.1:{port}"
    server = _start("mlflow server", command, _base_env(workdir) | compose_env, workdir, f"{url}/health")
    try:
        yield Stores(s3, server, url, command)
    finally:
        server.stop()


@pytest.fixture
def no_s3_access(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This process can reach no bucket: no credentials, no endpoint, no ~/.aws."""
    for name in (*CREDENTIAL_VARIABLES, *S3_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no wait for an instance role either


def use_bucket(monkeypatch: pytest.MonkeyPatch, s3: ObjectStore, **settings_env: str) -> None:
    """Give this process the bucket's credentials and the FRAUDOPS_ settings, as a user's shell would."""
    for name, value in {**s3.credentials, **settings_env}.items():
        monkeypatch.setenv(name, value)


# --------------------------------------------------------------------------------------------------
# DVC


@dataclass(frozen=True)
class PushedProject:
    root: Path
    settings: Settings
    files: dict[Path, bytes]  # the tracked data files and their bytes, as pushed


def project_with_data(base: Path) -> Path:
    """A throwaway project in ``base`` holding three simulated days of transactions and labels."""
    from core.simulator import SimulationConfig, write_simulation

    root = make_project(base / "project")
    write_simulation(base / "sim", SimulationConfig(customers=30, terminals=60, days=3, seed=5))
    for folder, kind in zip(TRACKED, ("transactions", "labels"), strict=True):
        shutil.copytree(base / "sim" / kind, root / folder)
    return root


def data_files(root: Path) -> dict[Path, bytes]:
    """The raw days and labels of the project in ``root``, and their bytes."""
    return {p.relative_to(root): p.read_bytes() for folder in TRACKED for p in (root / folder).iterdir()}


@pytest.fixture(scope="module")
def pushed_project(stores: Stores, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushedProject]:
    """A throwaway project whose settings name the bucket as DVC remote; its raw data versioned and pushed
    by the ingest flow's versioning step."""
    from pipelines.flows import version_data

    base = tmp_path_factory.mktemp("dvc-on-s3")
    root = project_with_data(base)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        use_bucket(
            mp,
            stores.s3,
            FRAUDOPS_PROJECT_DIR=str(root),
            FRAUDOPS_DVC_REMOTE_URL=f"s3://{BUCKET}/{DVC_PREFIX}",
            FRAUDOPS_S3_ENDPOINT_URL=stores.s3.endpoint,
            DVC_SITE_CACHE_DIR=str(base / "dvc-site"),
        )
        settings = Settings()
        version_data(settings, [])
    yield PushedProject(root, settings, data_files(root))


def test_dvc_pushes_the_data_to_the_bucket_and_pulls_it_back_byte_for_byte(
    stores: Stores, pushed_project: PushedProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    root = pushed_project.root
    assert len(pushed_project.files) == 6  # three days of transactions and of labels
    # DVC keeps each file under its md5 (files/md5/ab/cdef...), in the bucket, not in the local folder
    pushed = set(stores.s3.keys(f"{DVC_PREFIX}/files/md5/"))
    for data in pushed_project.files.values():
        md5 = hashlib.md5(data).hexdigest()
        assert f"{DVC_PREFIX}/files/md5/{md5[:2]}/{md5[2:]}" in pushed
    assert not (root / "stores" / "dvc-remote").exists()

    # the tracked config keeps the folder remote (a clone works anywhere); this machine's is local
    assert "remote = local" in (root / ".dvc" / "config").read_text(encoding="utf-8")
    local = (root / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert "remote = storage" in local and f"url = s3://{BUCKET}/{DVC_PREFIX}" in local
    assert f"endpointurl = {stores.s3.endpoint}" in local

    # lose the data and the cache: only the bucket still has them
    for folder in TRACKED:
        shutil.rmtree(root / folder)
    shutil.rmtree(root / ".dvc" / "cache")
    monkeypatch.chdir(root)
    use_bucket(monkeypatch, stores.s3, DVC_SITE_CACHE_DIR=str(root.parent / "dvc-site"))
    pull_data(root, [f"{folder}.dvc" for folder in TRACKED])
    assert data_files(root) == pushed_project.files


def test_a_push_the_store_refused_is_finished_by_the_next_ingest(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store out of reach: the versioning step fails with the S3 client's error naming the
    endpoint, the data stays in the project and DVC's cache, and the next ingest, though it brings
    nothing new, sends the bucket what it lacks."""
    from botocore.exceptions import EndpointConnectionError

    from pipelines.flows import version_data

    root = project_with_data(tmp_path)
    files = data_files(root)
    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    monkeypatch.chdir(root)
    use_bucket(
        monkeypatch,
        stores.s3,
        FRAUDOPS_PROJECT_DIR=str(root),
        FRAUDOPS_DVC_REMOTE_URL=f"s3://{BUCKET}/outage",
        FRAUDOPS_S3_ENDPOINT_URL=down,
        DVC_SITE_CACHE_DIR=str(tmp_path / "dvc-site"),
        AWS_MAX_ATTEMPTS="1",  # fail at once rather than after the S3 client's retries
    )
    with pytest.raises(EndpointConnectionError, match=re.escape(down)):
        version_data(Settings(), [])
    assert data_files(root) == files and (root / "data" / "raw.dvc").is_file()
    assert stores.s3.keys("outage/") == []

    monkeypatch.setenv("FRAUDOPS_S3_ENDPOINT_URL", stores.s3.endpoint)  # the store is back
    version_data(Settings(), [])  # the same ingest again: no new batch
    pushed = stores.s3.keys("outage/files/md5/")
    assert len(pushed) == len(files) + len(TRACKED)  # each file, and each folder's manifest (.dir)


def test_no_tracked_file_holds_the_bucket_credentials(stores: Stores, pushed_project: PushedProject) -> None:
    root = pushed_project.root
    subprocess.run(["git", "add", "."], cwd=root, check=True, capture_output=True)
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    assert {".dvc/config", "data/raw.dvc", "data/labels.dvc"} <= set(tracked)
    assert ".dvc/config.local" not in tracked  # git-ignored by DVC's own .dvc/.gitignore
    for path in filter(None, tracked):
        data = (root / path).read_bytes()
        for secret in (stores.s3.key_id, stores.s3.secret):
            assert secret.encode() not in data, f"{path} holds a credential"
    # nor the untracked DVC config: the credentials stay in the environment
    local = (root / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert stores.s3.key_id not in local and stores.s3.secret not in local
    assert scan_repository(root) == []


# --------------------------------------------------------------------------------------------------
# MLflow


def test_the_embedded_store_can_keep_its_artifacts_in_the_bucket(
    s3: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_s3_access: None
) -> None:
    """Solo with a bucket: FRAUDOPS_MLFLOW_ARTIFACT_LOCATION and FRAUDOPS_S3_ENDPOINT_URL, the client
    writing to S3 itself with the AWS credentials of its environment."""
    import mlflow
    import mlflow.sklearn

    from pipelines.tracking import ensure_experiment, pip_requirements

    use_bucket(
        monkeypatch,
        s3,
        FRAUDOPS_PROJECT_DIR=str(tmp_path),
        FRAUDOPS_MLFLOW_ARTIFACT_LOCATION=f"s3://{BUCKET}/solo",
        FRAUDOPS_S3_ENDPOINT_URL=s3.endpoint,
    )
    settings = Settings()
    for name, value in tool_environment(settings).items():
        monkeypatch.setenv(name, value)  # what every fraudops command does at start
    model, x, _ = tiny_model(seed=3)
    with mlflow_uris_restored():
        experiment = ensure_experiment(settings, "solo-s3")
        assert mlflow.get_experiment(experiment).artifact_location == f"s3://{BUCKET}/solo"
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.sklearn.log_model(model, name="model", pip_requirements=pip_requirements())
        loaded = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # MLflow 3 keeps a logged model under the experiment's models/<model id>/artifacts
    assert any(k.endswith("/artifacts/MLmodel") for k in s3.keys("solo/models/"))
    assert not settings.artifact_root.exists()  # nothing went to the local artifact folder
    assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == s3.endpoint


def test_the_mlflow_server_keeps_the_model_in_the_bucket_and_serves_it_to_clients_without_s3_access(
    stores: Stores, tmp_path: Path, no_s3_access: None
) -> None:
    """Training and serving as in the team setup, with the server's artifacts in the bucket: the clients
    (trainer, API) have no S3 credentials, the server proxies every artifact."""
    import mlflow
    import pandas as pd

    from core.registry import download_onnx, load_model, registry_client
    from pipelines.export import to_onnx_bytes
    from pipelines.tracking import ensure_experiment, log_run, register_run

    assert stores.mlflow_command[_flag(stores.mlflow_command, "--artifacts-destination")] == (
        f"s3://{BUCKET}/{MLFLOW_PREFIX}"
    )
    stores.mlflow.wait_healthy()
    model, x, features = tiny_model(seed=3)
    onnx_model = to_onnx_bytes(model, len(features))
    settings = Settings(project_dir=tmp_path, mlflow_tracking_uri=stores.mlflow_url, model_name="s3-check")
    run_data = tiny_run_data("s3-check", features)
    with mlflow_uris_restored():
        experiment = ensure_experiment(settings, "s3-check")
        assert mlflow.get_experiment(experiment).artifact_location.startswith("mlflow-artifacts:")
        run_id = log_run(settings, model, run_data, pd.DataFrame(x, columns=features), [], onnx_model)
        info = register_run(settings, run_id)
        loaded = load_model(info)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert download_onnx(registry_client(stores.mlflow_url), info) == onnx_model

    # the files are objects in the bucket, under the run
    keys = stores.s3.keys(f"{MLFLOW_PREFIX}/")
    assert any(k.endswith(f"/{run_id}/artifacts/onnx/model.onnx") for k in keys), keys
    assert any(k.endswith("/MLmodel") for k in keys), keys
    assert not list(tmp_path.rglob("MLmodel")), "a model file landed on the client's disk"
