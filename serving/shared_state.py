"""The online feature state as the settings choose it, and, in Redis, kept filled.

``FRAUDOPS_REDIS_URL`` unset: the state lives in the API process, rebuilt at start-up
(:func:`serving.state.load_state`). Set: it lives in Redis, shared by every replica
(:class:`core.online_redis.RedisFeatures`), and a :class:`StateKeeper` per replica keeps it there:

- a replica starting finds the state (its marker) and loads nothing; when Redis holds none, one replica
  fills it from the validated data and the logs' tail (:func:`serving.state.read_history`, the rebuild
  a solo restart does) under a lock, and the others serve once its marker is written;
- a Redis emptied while replicas run (restarted without persistence, flushed) is seen within
  :data:`CHECK_INTERVAL_S` and refilled the same way; meanwhile every script refuses to run without the
  marker, so requests answer 503 rather than scoring from an empty history;
- a Redis out of reach: requests answer 503 (:func:`serving.errors.state_unavailable`), the keeper
  retries.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from core.online import FeatureState, FeatureStateError
from core.online_redis import FillOutcome, RedisFeatures, connect_redis
from core.params import Params
from core.settings import Settings
from serving.state import load_state, read_history

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0  # how often a replica checks that Redis still holds the state

Source = tuple[pd.DataFrame, Mapping[str, int], dict[str, Any]]


def validated_version(settings: Settings) -> str:
    """A digest of ``data/validated`` (its transactions and labels files): the data a state was filled
    from, recorded in its marker ("none" without validated data)."""
    digest = hashlib.sha256()
    found = False
    for name in ("transactions.parquet", "labels.parquet"):
        path = settings.validated_dir / name
        if path.exists():
            found = True
            with path.open("rb") as fh:
                digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()[:16] if found else "none"


def history_source(settings: Settings, params: Params) -> Source:
    """What a fill writes: :func:`serving.state.read_history`, and where it comes from for the marker."""
    transactions, labels, counts = read_history(settings, params)
    return transactions, labels, {**counts, "data_version": validated_version(settings)}


class StateKeeper:
    """Fills the Redis state when it holds none, at start-up and then every :data:`CHECK_INTERVAL_S` in a
    background thread; counts the fills this replica made (:attr:`fills`)."""

    def __init__(
        self, state: RedisFeatures, build: Callable[[], Source], interval_s: float = CHECK_INTERVAL_S
    ):
        self.state = state
        self.fills = 0
        self._build = build
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: str | None = None  # the last failure logged: each one is logged once

    def check(self) -> FillOutcome | None:
        """Fill the state if Redis holds none and no other replica is filling it; None when Redis
        cannot be reached (logged once until it can)."""
        try:
            outcome = self.state.fill_once(self._build)
        except FeatureStateError as exc:
            if str(exc) != self._failing:
                logger.warning("the feature state cannot be checked: %s; requests answer 503 meanwhile", exc)
                self._failing = str(exc)
            return None
        if self._failing is not None:
            logger.warning("%s answers again (%s)", self.state.where, outcome)
            self._failing = None
        if outcome == "filled":
            self.fills += 1
            logger.warning("the feature state was empty in %s: filled from the logs", self.state.where)
        return outcome

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feature-state-keeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def open_state(settings: Settings, params: Params) -> tuple[FeatureState, StateKeeper | None]:
    """The feature state the settings choose, and its keeper when it lives in Redis (started; the first
    check runs here, so a reachable Redis holds the state before the app serves)."""
    if not settings.redis_url:
        return load_state(settings, params), None
    client = connect_redis(settings.redis_url, settings.redis_timeout_s)
    state = RedisFeatures(client, params.features, params.data.label_delay_days, settings.redis_prefix)
    keeper = StateKeeper(state, lambda: history_source(settings, params))
    if keeper.check() == "found":
        marker = state.marker() or {}
        current = validated_version(settings)
        logger.info("feature state found in %s (%s): nothing to load", state.where, marker)
        if marker.get("data_version") not in (None, current):
            logger.warning(
                "the feature state in %s was filled from other validated data (%s, here %s): delete its "
                "keys (prefix %s) and restart a replica to rebuild it from this data",
                *(state.where, marker.get("data_version"), current, settings.redis_prefix),
            )
    keeper.start()
    return state, keeper
