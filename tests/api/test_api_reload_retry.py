"""The registry poller tries a version that failed to load again, after a back-off that doubles.

A real model store on the session's sqlite registry; the failure is injected at the artifact download
(``core.registry.download_onnx`` as the store calls it), and a stand-in clock moves the back-off along
(no test waits for it to pass).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import serving.model_store
from core.features import feature_names
from core.registry import TAG_ONNX_SHA256, ModelInfo
from serving.model_store import ModelLoadError, ModelStore, poll_champion
from serving.telemetry import Telemetry
from tests.api.conftest import Project


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def failures(telemetry: Telemetry) -> float:
    return float(telemetry.registry.get_sample_value("fraudops_model_reload_failures_total") or 0.0)


def downloads_failing_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the first ONNX download fail as a dropped connection; the versions asked for, in order."""
    real, asked = serving.model_store.download_onnx, []

    def download(client: Any, info: ModelInfo) -> bytes:
        asked.append(info.version)
        if len(asked) == 1:
            raise ConnectionResetError("connection reset by peer (injected)")
        return real(client, info)

    monkeypatch.setattr(serving.model_store, "download_onnx", download)
    return asked


@pytest.fixture()
def champion_restored(project: Project) -> Iterator[str]:
    """The serving champion's version; set back as champion after the test."""
    from core.registry import CHAMPION, registry_client

    settings = project.settings()
    client = registry_client(settings.tracking_uri)
    champion = str(client.get_model_version_by_alias(settings.model_name, CHAMPION).version)
    yield champion
    project.set_champion(champion)


def store_on(project: Project, clock: Clock, **settings: Any) -> tuple[ModelStore, Telemetry]:
    """A store serving the current champion, with back-off ``settings``."""
    telemetry = Telemetry()
    names = feature_names(project.params.features)
    store = ModelStore(
        project.settings(**settings), names, project.params.data.label_delay_days, telemetry, clock
    )
    store.reload()
    return store, telemetry


def test_a_download_that_failed_once_is_served_on_a_later_poll(
    project: Project, champion_restored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, telemetry = store_on(project, Clock(), reload_retry_s=0, reload_retry_max_s=0)
    version = project.register_version()
    project.set_champion(version)
    asked = downloads_failing_once(monkeypatch)

    async def poll_until_served() -> None:
        poller = asyncio.create_task(poll_champion(store, 0))
        try:
            while (current := store.current) is None or current.info.version != version:
                await asyncio.sleep(0.01)
        finally:
            poller.cancel()

    asyncio.run(asyncio.wait_for(poll_until_served(), timeout=30))
    assert asked == [version, version]  # failed once, then fetched again and served
    assert failures(telemetry) == 1 and store.last_error is None


def test_a_broken_version_is_retried_with_a_doubling_wait_and_the_old_model_serves(
    project: Project, champion_restored: str
) -> None:
    clock = Clock()
    store, telemetry = store_on(project, clock, reload_retry_s=1, reload_retry_max_s=4)
    broken = project.register_version({**project.version_tags(), TAG_ONNX_SHA256: "0" * 64})
    project.set_champion(broken)
    attempts = []
    for now in (0, 0.5, 1, 2.5, 3, 6.9, 7, 10.9, 11):  # fails at 0; waits 1, 2, 4, then 4 (the cap)
        clock.now = now
        try:
            store.reload(force=False)
        except ModelLoadError as exc:
            assert f"version {broken} cannot serve" in str(exc)
            attempts.append(now)
        assert store.current is not None and store.current.info.version == champion_restored
    assert attempts == [0, 1, 3, 7, 11]
    assert failures(telemetry) == len(attempts)  # each attempt counted once
    with pytest.raises(ModelLoadError):  # an operator's reload does not wait
        store.reload(force=True)
    project.set_champion(champion_restored)  # another version: served at once
    assert store.reload(force=False) is False  # it is the one serving: nothing to swap
    fixed = project.register_version()
    project.set_champion(fixed)
    assert store.reload(force=False) is True and store.current is not None
    assert store.current.info.version == fixed
