"""The champion model: resolved from the MLflow registry, loaded aside, smoke-tested, swapped atomically.

Serving runs the version's ONNX graph with ONNX Runtime (one thread); the graph's sha256 must match the
one recorded at training, and loading it executes no pickled code. A version that fails to load keeps
the previous model serving; the failure is logged and counted, and the poller tries it again after a
wait that doubles with each failure (``reload_retry_s`` up to ``reload_retry_max_s``): a download
that failed once is served on a later poll, a broken version is not fetched on every poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.registry import (
    CHAMPION,
    MISSING_CODES,
    ModelInfo,
    download_onnx,
    model_info_from_version,
    registry_client,
)
from core.runtime import PROBABILITIES, onnx_session
from core.settings import Settings
from serving.telemetry import Telemetry

logger = logging.getLogger(__name__)

NO_CHAMPION = "no champion model loaded: train one with `fraudops train` or run `make demo`"


class ModelStoreError(Exception):
    """The champion cannot be (re)loaded; the message says why."""


class NoChampionError(ModelStoreError):
    """No version carries the champion alias (nothing to load, not a failure)."""


class ModelLoadError(ModelStoreError):
    """A champion version or the registry failed; the previous model keeps serving."""


@dataclass(frozen=True)
class LoadedModel:
    """A smoke-tested ONNX Runtime session and its registry metadata.

    ``columns`` picks the model's features, in its order, out of the service's feature rows (None when
    the model takes them all in the service's order).
    """

    info: ModelInfo
    session: Any
    input_name: str
    columns: np.ndarray | None

    @classmethod
    def create(cls, info: ModelInfo, session: Any, computable: list[str]) -> LoadedModel:
        """Bind a session to the service's feature order."""
        columns = np.array([computable.index(name) for name in info.features], dtype=np.intp)
        identity = len(columns) == len(computable) and bool((columns == np.arange(len(columns))).all())
        return cls(info, session, str(session.get_inputs()[0].name), None if identity else columns)

    def predict_fraud(self, features: np.ndarray) -> np.ndarray:
        """Fraud probability of each float32 row of the service's features (service order)."""
        X = features if self.columns is None else features[:, self.columns]
        output = self.session.run(
            [PROBABILITIES], {self.input_name: np.ascontiguousarray(X, dtype=np.float32)}
        )
        return np.asarray(output[0])[:, 1]


def smoke_test(loaded: LoadedModel, n_features: int) -> None:
    """Refuse a model that cannot score one all-zero row into a probability."""
    proba = loaded.predict_fraud(np.zeros((1, n_features), dtype=np.float32))
    if proba.shape != (1,) or not np.isfinite(proba).all() or not 0.0 <= float(proba[0]) <= 1.0:
        raise ValueError(f"smoke test failed: the model scored a zero row as {proba!r}")


def _sqlite_file_missing(uri: str) -> bool:
    """A sqlite store that does not exist yet holds no champion (and must not be created by serving)."""
    prefix = "sqlite:///"
    return uri.startswith(prefix) and not Path(uri[len(prefix) :]).exists()


class ModelStore:
    """Serves the version carrying the champion alias; :meth:`reload` follows the alias."""

    def __init__(
        self,
        settings: Settings,
        computable: list[str],
        delay_days: int,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uri = settings.tracking_uri
        self._name = settings.model_name
        self._computable = list(computable)
        self._delay_days = delay_days
        self._telemetry = telemetry
        self._client: Any = None
        self._current: LoadedModel | None = None
        self._swap_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._retry = Backoff(settings.reload_retry_s, settings.reload_retry_max_s, clock)
        self.last_error: str | None = None

    @property
    def current(self) -> LoadedModel | None:
        """The model serving now, or None."""
        with self._swap_lock:
            return self._current

    def unavailable_reason(self) -> str:
        """Why no model serves (the last load error, else the hint to train one)."""
        return self.last_error or NO_CHAMPION

    def reload(self, force: bool = True) -> bool:
        """Load the champion if its version changed; True when a new version now serves.

        Raises :class:`NoChampionError` or :class:`ModelLoadError`; either way the old model keeps
        serving. Without ``force`` (the poller's case) a version that failed is tried again only once
        its back-off has passed.
        """
        with self._load_lock:
            version = self._resolve_version()
            number, current = str(version.version), self.current
            if current is not None and current.info.version == number:
                return False
            if not force and self._retry.waiting(number):
                return False
            loaded = self._load_aside(version)
            with self._swap_lock:
                self._current = loaded
            self._retry.clear()
            self.last_error = None
            self._telemetry.set_served_model(loaded.info.name, loaded.info.version)
            logger.info("serving %s version %s", loaded.info.name, loaded.info.version)
            return True

    def _resolve_version(self) -> Any:
        from mlflow.exceptions import MlflowException

        if _sqlite_file_missing(self._uri):
            raise NoChampionError(f"{NO_CHAMPION} (no registry at {self._uri})")
        try:
            if self._client is None:
                self._client = registry_client(self._uri)
            return self._client.get_model_version_by_alias(self._name, CHAMPION)
        except MlflowException as exc:
            if exc.error_code in MISSING_CODES:
                raise NoChampionError(f"{NO_CHAMPION} ({exc.message})") from exc
            raise self._fail(None, f"cannot read the model registry at {self._uri}: {exc.message}") from exc

    def _load_aside(self, version: Any) -> LoadedModel:
        try:
            info = model_info_from_version(version, CHAMPION)
            self._check_compatible(info)
            session = onnx_session(download_onnx(self._client, info))
            loaded = LoadedModel.create(info, session, self._computable)
            smoke_test(loaded, len(self._computable))
        except Exception as exc:
            reason = f"{self._name} version {version.version} cannot serve: {type(exc).__name__}: {exc}"
            raise self._fail(str(version.version), reason) from exc
        return loaded

    def _check_compatible(self, info: ModelInfo) -> None:
        missing = [name for name in info.features if name not in self._computable]
        if missing:
            raise ValueError(f"model expects features serving does not compute (params.yaml): {missing}")
        if info.label_delay_days != self._delay_days:
            raise ValueError(
                f"model assumes a {info.label_delay_days}-day label delay, params.yaml says "
                f"{self._delay_days}: retrain or align params.yaml"
            )

    def _fail(self, version: str | None, reason: str) -> ModelLoadError:
        if reason != self.last_error:
            logger.warning("model reload failed, previous model keeps serving: %s", reason)
        if version is not None:
            wait = self._retry.failed(version)
            logger.info("version %s: next automatic attempt in %.0f s", version, wait)
        self.last_error = reason
        self._telemetry.reload_failures.inc()
        return ModelLoadError(reason)


class Backoff:
    """When to try a failed version again: after ``base_s``, doubling with each failure, at most ``cap_s``."""

    def __init__(self, base_s: float, cap_s: float, clock: Callable[[], float]) -> None:
        self._base, self._cap, self._clock = base_s, cap_s, clock
        self._version: str | None = None
        self._failures = 0
        self._retry_at = 0.0

    def failed(self, version: str) -> float:
        """Count a failure of ``version``; the seconds until it may be tried again."""
        self._failures = self._failures + 1 if version == self._version else 1
        self._version = version
        wait = min(self._base * 2.0 ** min(self._failures - 1, 30), self._cap)
        self._retry_at = self._clock() + wait
        return wait

    def waiting(self, version: str) -> bool:
        """Whether ``version`` failed and its wait is not over."""
        return version == self._version and self._clock() < self._retry_at

    def clear(self) -> None:
        """A version loaded: no failure to wait out."""
        self._version, self._failures = None, 0


async def poll_champion(store: ModelStore, interval_s: float) -> None:
    """Follow the champion alias every ``interval_s`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        with contextlib.suppress(ModelStoreError):  # the store logs and counts failures
            await asyncio.to_thread(store.reload, False)
