"""Runtime settings, read once from the environment (prefix ``FRAUDOPS_``) and a git-ignored ``.env``.

Model and data parameters live in ``params.yaml`` (see :mod:`core.params`); this class holds only what
changes between environments: where the stores are, which servers to talk to, and secrets.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_KEY = "changethis"


# the guarantee of the prediction log (core.predlog): a SIGKILL loses at most the scores acknowledged
# in this last stretch of time, so the writer's flush interval must leave room for the write within it
PREDICTION_LOSS_WINDOW_S = 0.1

ApiKey = Literal["admin_api_key", "feedback_api_key"]
API_KEYS: tuple[ApiKey, ...] = ("admin_api_key", "feedback_api_key")  # one key a privilege


def env_name(field: str) -> str:
    """The environment variable that sets the settings field ``field``."""
    return f"FRAUDOPS_{field.upper()}"


class Settings(BaseSettings):
    """Every runtime value of fraudops; defaults describe the solo, embedded development setup."""

    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_", env_file=".env", extra="ignore")

    environment: Literal["development", "staging", "production"] = "development"
    project_dir: Path = Field(default_factory=Path.cwd, description="Root holding data/, stores/, dvc.yaml.")
    mlflow_tracking_uri: str | None = Field(default=None, description="Default: sqlite under stores/mlflow.")
    mlflow_artifact_location: str | None = Field(
        default=None,
        description="Where the embedded store puts new experiments' artifacts, e.g. s3://bucket/mlflow "
        "(default: stores/mlflow/artifacts). A tracking server decides for itself (--artifacts-destination).",
    )
    dvc_remote_url: str | None = Field(
        default=None,
        description="The DVC remote, e.g. s3://bucket/dvc, instead of the folder stores/dvc-remote; "
        "written to the git-ignored .dvc/config.local.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="An S3-compatible store's endpoint (MinIO, moto), e.g. http://127.0.0.1:9000, for DVC "
        "and MLflow; unset for AWS S3. Credentials come only from AWS_* variables or ~/.aws.",
    )
    model_name: str = "fraud-detector"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    admin_api_key: str = Field(default=PLACEHOLDER_KEY, description="X-API-Key of /admin/* (reload models).")
    feedback_api_key: str = Field(
        default=PLACEHOLDER_KEY, description="X-API-Key of POST /v1/feedback (label feeds); no admin rights."
    )
    reload_interval_s: float = Field(default=10.0, ge=0, description="Registry poll interval; 0 disables.")
    reload_retry_s: float = Field(
        default=10.0, ge=0, description="First wait before the poller retries a version that failed to load."
    )
    reload_retry_max_s: float = Field(
        default=300.0, ge=0, description="Longest wait between retries; the wait doubles up to it."
    )
    max_batch_rows: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest request body in bytes (413 above it, refused before parsing). A full batch of "
        "max_batch_rows=10,000 transactions measures 1.4 MiB as compact JSON with short ids and 2.9 MiB "
        "at worst (64-character ids, largest ids and amounts, offset timestamps, 4-space indent): "
        "4 MiB leaves over a quarter to spare; raise both together.",
    )
    request_timeout_s: float = Field(default=60.0, gt=0)
    task_retries: int = Field(default=2, ge=0, description="Retries of flow tasks that call other services.")
    retry_delay_s: float = Field(default=5.0, ge=0, description="Delay between those retries (0 in tests).")
    prediction_log_url: str | None = Field(
        default=None,
        pattern=r"^postgres(ql)?://",
        description="The prediction and feedback logs in PostgreSQL (team mode), a postgresql:// URL whose "
        "database exists (the tables are created on first write); unset: the SQLite file "
        "stores/predictions.db (solo mode). See core.predlog_pg.",
    )
    log_flush_interval_s: float = Field(
        default=0.05,
        gt=0,
        lt=PREDICTION_LOSS_WINDOW_S,
        description="How often the API appends its queued predictions to the log; under 0.1 s, the most a "
        "SIGKILL may lose, with room left for the write itself (see core.predlog).",
    )
    log_retry_interval_s: float = Field(
        default=0.5, gt=0, description="Delay between attempts to write predictions while the log fails."
    )
    log_close_timeout_s: float = Field(
        default=10.0,
        ge=0,
        description="How long a clean stop waits for the log to take the queued predictions; what is still "
        "unwritten then is saved to a file beside the log (its path is logged), so a full disk cannot "
        "hang shutdown.",
    )
    log_max_pending_rows: int = Field(
        default=200_000, ge=1, description="Most predictions waiting for the log; beyond it scoring is 503."
    )
    redis_url: str = Field(
        default="",
        pattern=r"^((redis|rediss|unix)://.*)?$",
        description="The online feature state in Redis, shared by API replicas (team mode), e.g. "
        "redis://127.0.0.1:6379/0; empty: the state lives in the API process (solo mode). "
        "See core.online_redis.",
    )
    redis_prefix: str = Field(
        default="fraudops",
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of that state's keys: deployments sharing one Redis take different prefixes.",
    )
    redis_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long the API waits for Redis (to connect or answer) before a 503. Redis runs one "
        "script at a time: an answer includes the wait behind other replicas' batches (a 1,000-row batch "
        "takes 0.05-0.5 s), so leave room.",
    )
    monitor_cron: str = Field(
        default="0 6 * * *", description="When `fraudops schedule` runs the monitoring flow (cron, UTC)."
    )
    feature_engine: Literal["single", "dask"] = Field(
        default="single",
        description="How the features stage computes the table: one process (numpy), or Dask partitions "
        "by card and by terminal (same features); `dask` also runs training's search on the cluster.",
    )
    dask_scheduler: str = Field(
        default="",
        description="Address of an existing Dask scheduler (tcp://host:8786); empty: a local cluster is "
        "started for the run and stopped after it.",
    )
    dask_workers: int = Field(default=2, ge=1, description="Worker processes of that local cluster.")
    dask_worker_memory: str = Field(
        default="auto",
        description="Memory limit of each local worker (e.g. 1.5GiB): past it a worker spills to disk; "
        "`auto` shares the machine's memory between the workers.",
    )

    @field_validator("mlflow_artifact_location", "dvc_remote_url", "s3_endpoint_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # compose passes ${NAME:-} as an empty string when the variable is not set
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("mlflow_artifact_location", "dvc_remote_url", "s3_endpoint_url")
    @classmethod
    def _refuse_credentials_in_urls(cls, value: str | None, info: ValidationInfo) -> str | None:
        # these URLs reach DVC's config, MLflow's database and logs: no place for a secret
        if value is not None and "://" in value and "@" in urlsplit(value).netloc:
            raise ValueError(
                f"{env_name(str(info.field_name))} holds credentials; give them as AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY (or a profile in ~/.aws), never in a URL"
            )
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        if value is not None and (
            urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname
        ):
            raise ValueError(
                f"{env_name('s3_endpoint_url')} must be an http(s) URL such as http://127.0.0.1:9000, not {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_outside_development(self) -> Settings:
        for name in API_KEYS:
            if self.environment != "development" and getattr(self, name) == PLACEHOLDER_KEY:
                raise ValueError(
                    f"{env_name(name)} is the placeholder; set a real secret outside development"
                )
        if self.admin_api_key == self.feedback_api_key != PLACEHOLDER_KEY:
            raise ValueError(
                "FRAUDOPS_ADMIN_API_KEY and FRAUDOPS_FEEDBACK_API_KEY must differ: one key a privilege"
            )
        return self

    @property
    def data_dir(self) -> Path:
        return self.project_dir / "data"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def labels_dir(self) -> Path:
        return self.data_dir / "labels"

    @property
    def validated_dir(self) -> Path:
        return self.data_dir / "validated"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def stores_dir(self) -> Path:
        return self.project_dir / "stores"

    @property
    def reports_dir(self) -> Path:
        return self.project_dir / "reports"

    @property
    def prediction_log(self) -> Path:
        """SQLite database of the prediction and feedback logs (solo mode; see :mod:`core.predlog`).

        Also where the API saves predictions it could not write at a stop, whichever store holds the log."""
        return self.stores_dir / "predictions.db"

    @property
    def prefect_home(self) -> Path:
        return self.stores_dir / "prefect"

    @property
    def clock_file(self) -> Path:
        return self.stores_dir / "clock.json"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.stores_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.stores_dir / "mlflow" / "artifacts"

    @property
    def artifact_location(self) -> str:
        """Where the embedded store's new experiments keep artifacts: the setting, else the local folder."""
        return self.mlflow_artifact_location or self.artifact_root.as_uri()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once), with the project's own ``.env`` when run from elsewhere."""
    settings = Settings()
    project_env = settings.project_dir / ".env"
    if project_env.exists() and project_env.resolve() != Path(".env").resolve():
        return Settings(_env_file=project_env)
    return settings


def ensure_api_keys(settings: Settings) -> None:
    """In development, generate each API key still at the placeholder into ``.env``, once, on first use."""
    if settings.environment != "development":
        return  # the validator refused placeholders already
    for name in API_KEYS:
        if getattr(settings, name) != PLACEHOLDER_KEY:
            continue
        key = secrets.token_urlsafe(24)
        path = settings.project_dir / ".env"
        # created readable by its owner only (a shared volume, a multi-user machine)
        with os.fdopen(
            os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8"
        ) as fh:
            fh.write(f"{env_name(name)}={key}\n")
        path.chmod(0o600)  # a .env made earlier by hand keeps no wider mode either
        os.environ[env_name(name)] = key
        setattr(settings, name, key)


STEP_LOGGERS = ("core", "pipelines", "monitoring")  # the packages whose logs a flow run shows


def tool_environment(settings: Settings) -> dict[str, str]:
    """Environment for the embedded tools: state inside the project, telemetry off."""
    env = {
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_LOGGING_LEVEL": "ERROR",
        "DO_NOT_TRACK": "true",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(settings.stores_dir / "dvc-site"),
        "PREFECT_HOME": str(settings.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_LEVEL": "INFO",  # what the Prefect UI shows for each run
        # the steps' own loggers reach the UI too, each line under its task run (none outside a run)
        "PREFECT_LOGGING_EXTRA_LOGGERS": ",".join(STEP_LOGGERS),
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",  # the CLI reports outcomes itself
        "PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL": "CRITICAL",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL": "CRITICAL",
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",  # idle OpenMP threads sleep: no spinning on shared cores
    }
    if settings.s3_endpoint_url:
        # MLflow's S3 client reads its own variable; boto3's S3-only one leaves STS and SSO on AWS
        env["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
        env["AWS_ENDPOINT_URL_S3"] = settings.s3_endpoint_url
    return env


def apply_tool_environment(settings: Settings) -> None:
    """Set the tool environment in this process, keeping anything the user set explicitly."""
    for key, value in tool_environment(settings).items():
        os.environ.setdefault(key, value)
