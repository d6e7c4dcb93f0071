"""The stage-by-stage commands on real components: replay and label release through the real app,
rollback on the session's sqlite registry with the app's registry poller following the alias.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from core.clock import read_today
from core.registry import CHAMPION, registry_client
from fraudops import stages
from fraudops.errors import UserError
from serving.app import create_app
from tests.api.conftest import Project, fresh_prediction_log


@pytest.fixture
def clock_restored(project: Project) -> Iterator[None]:
    """The stages move the project's simulated clock: remove it afterwards, as other modules expect."""
    yield
    project.settings().clock_file.unlink(missing_ok=True)


@pytest.fixture
def champion_restored(project: Project) -> Iterator[None]:
    """Rollback moves the session's champion: version 1 serves again afterwards, the run tag is gone."""
    yield
    project.set_champion("1")
    client = registry_client(project.settings().tracking_uri)
    run_id = client.get_model_version(project.settings().model_name, "1").run_id
    if stages.JUDGED_AGAINST in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, stages.JUDGED_AGAINST)


def test_replay_scores_each_day_then_release_sends_the_labels_due(
    client: TestClient, project: Project, clock_restored: None
) -> None:
    settings = project.settings()
    world = project.dir / "sim"  # the layout `fraudops simulate` writes: the history and the replay day
    day = project.replay["tx_datetime"].dt.date.min()
    tx = stages.read_world_days(world, day, day)
    assert sorted(tx["transaction_id"]) == sorted(project.replay["transaction_id"])

    totals = stages.score_days(client, settings, tx, Console(file=io.StringIO()), "replay")
    assert totals.scored == len(project.replay) and totals.days == [day]
    assert read_today(settings.clock_file) == day + dt.timedelta(days=1)

    delay = project.params.data.label_delay_days
    early = stages.release_labels(client, settings, world, day + dt.timedelta(days=delay - 1), delay, day)
    assert early == {}  # not due yet: nothing is sent
    sent = stages.release_labels(client, settings, world, day + dt.timedelta(days=delay), delay, None)
    assert sent == {day: len(project.replay)}
    services = client.app.state.services  # type: ignore[attr-defined]
    ids = project.replay["transaction_id"].tolist()
    assert len(services.state.labels_of(ids)) == len(ids)


def test_replay_of_days_the_world_lacks_names_what_it_holds(project: Project) -> None:
    with pytest.raises(UserError, match=r"no transactions from 2030-01-01 to 2030-01-02 .* it holds \d{4}-"):
        stages.read_world_days(project.dir / "sim", dt.date(2030, 1, 1), dt.date(2030, 1, 2))


def test_rollback_moves_the_champion_back_and_the_running_api_follows(
    project: Project, champion_restored: None
) -> None:
    settings = project.settings()
    registry = registry_client(settings.tracking_uri)
    older, newer = project.register_version(), project.register_version()
    project.set_champion(newer)
    run_id = registry.get_model_version(settings.model_name, newer).run_id
    registry.set_tag(run_id, stages.JUDGED_AGAINST, older)  # as training records the champion it beat
    fresh_prediction_log(settings)
    with TestClient(create_app(project.settings(reload_interval_s=0.2))) as api:
        assert api.get("/v1/metadata").json()["version"] == newer

        done = stages.rollback(settings, None, "live AP fell after the promotion")

        assert (done.previous, done.version) == (newer, older)
        assert str(registry.get_model_version_by_alias(settings.model_name, CHAMPION).version) == older
        tags = registry.get_model_version(settings.model_name, older).tags
        assert tags[stages.ROLLBACK_FROM] == newer
        assert tags[stages.ROLLBACK_REASON] == "live AP fell after the promotion"
        deadline = time.monotonic() + 20
        while api.get("/v1/metadata").json()["version"] != older and time.monotonic() < deadline:
            time.sleep(0.2)
        assert api.get("/v1/metadata").json()["version"] == older  # the poller, no reload call


def test_rollback_to_a_missing_version_is_refused_and_nothing_moves(
    project: Project, champion_restored: None
) -> None:
    settings = project.settings()
    registry = registry_client(settings.tracking_uri)
    before = str(registry.get_model_version_by_alias(settings.model_name, CHAMPION).version)
    with pytest.raises(UserError, match=r"has no version '999': its versions are 1"):
        stages.rollback(settings, "999", "typo")
    with pytest.raises(UserError, match="already the champion"):
        stages.rollback(settings, before, "no-op")
    assert str(registry.get_model_version_by_alias(settings.model_name, CHAMPION).version) == before
