"""Stateless API replicas: real uvicorn processes sharing the online feature state in Redis.

One simulated day is scored through the replicas, each card's transactions alternating between them,
and through one in-process app (solo mode) on an identical project: the verdicts and the logged features
must be identical, and equal the offline features. A replica started later finds the state and loads
nothing; a Redis emptied is refilled from the logs by the next replica to start, with the same features;
a Redis gone makes the replicas answer 503 with Retry-After (nothing scored, nothing logged) until it is
back, and a Redis back empty is refilled from the logs while the replica runs.

The replicas and the solo app use the session's registered model (tests/api/conftest.py): nothing is
trained here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from core.features import feature_names
from core.online_redis import RedisFeatures, connect_redis
from core.predlog import read_predictions
from core.settings import PREDICTION_LOSS_WINDOW_S
from serving.app import create_app
from tests.api.conftest import write_validated
from tests.api.factories import ADMIN_KEY, FEEDBACK_AUTH, FEEDBACK_KEY, bodies
from tests.api.test_api_server import Server, free_port
from tests.redis_support import TEST_REDIS_URL, connect_or_skip, delete_prefix, own_prefix, redis_server

if TYPE_CHECKING:
    from tests.api.conftest import Project

pytestmark = pytest.mark.redis

START_TIMEOUT_S = 120  # generous: the machine's cores may be shared with other work


def make_project_dir(project: Project, root: Path) -> Path:
    """A project folder holding the session's params and validated history (its own prediction log)."""
    root.mkdir(parents=True)
    shutil.copy(project.dir / "params.yaml", root / "params.yaml")
    write_validated(root, project.history)
    return root


def launch(project: Project, project_dir: Path, log: Path, **env: str) -> Server:
    """``uvicorn --factory serving.app:create_app`` on a free port (as ``fraudops serve`` runs it), not
    waited for: see :func:`wait_ready`."""
    port = free_port()
    environment = {
        **os.environ,
        "FRAUDOPS_PROJECT_DIR": str(project_dir),
        "FRAUDOPS_ADMIN_API_KEY": ADMIN_KEY,
        "FRAUDOPS_FEEDBACK_API_KEY": FEEDBACK_KEY,
        "FRAUDOPS_RELOAD_INTERVAL_S": "0",
        "FRAUDOPS_MLFLOW_TRACKING_URI": project.settings().tracking_uri,
        "OMP_NUM_THREADS": "1",
        **env,
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app", "--port", str(port)]
    cmd += ["--no-access-log", "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=environment, stdout=out, stderr=subprocess.STDOUT, cwd=project_dir)
    return Server(proc, f"http://127.0.0.1:{port}", log)


def wait_ready(*servers: Server) -> None:
    """Wait until every server answers ``/health/ready`` with 200 (stopping them all on a failure)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(servers)
    last = "no answer"
    while waiting and time.monotonic() < deadline:
        for server in list(waiting):
            if server.proc.poll() is not None:
                stop_all(*servers)
                raise AssertionError(f"a replica exited: {server.log.read_text()[-2000:]}")
            try:
                response = httpx.get(f"{server.url}/health/ready", timeout=5)
            except httpx.TransportError as exc:
                last = repr(exc)
                continue
            last = f"{response.status_code} {response.text[:300]}"
            if response.status_code == 200:
                waiting.remove(server)
        time.sleep(0.2)
    if waiting:
        stop_all(*servers)
        raise AssertionError(
            f"not ready in {START_TIMEOUT_S} s ({last}): {waiting[0].log.read_text()[-2000:]}"
        )


def stop_all(*servers: Server) -> None:
    for server in servers:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
    for server in servers:
        server.stop()


@dataclass
class Replicas:
    """The shared Redis state, the replicas' project and the solo app scoring the same traffic."""

    project: Project
    prefix: str
    shared_dir: Path
    logs: Path
    env: dict[str, str]
    state: RedisFeatures
    solo: TestClient
    running: list[Server] = field(default_factory=list)
    day: list[dict[str, Any]] = field(default_factory=list)  # the replay day, time-ordered bodies

    def start(self, count: int) -> list[Server]:
        """``count`` replicas on the shared project and Redis, started together."""
        servers = [
            launch(
                self.project, self.shared_dir, self.logs / f"replica-{len(self.running) + n}.log", **self.env
            )
            for n in range(count)
        ]
        wait_ready(*servers)
        self.running += servers
        return servers

    def stop(self, servers: list[Server]) -> None:
        stop_all(*servers)
        for server in servers:
            self.running.remove(server)


@pytest.fixture(scope="module")
def replicas(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    client = connect_or_skip()
    root = tmp_path_factory.mktemp("replicas")
    shared_dir = make_project_dir(project, root / "shared")
    solo_settings = project.settings(
        project_dir=make_project_dir(project, root / "solo"),
        mlflow_tracking_uri=project.settings().tracking_uri,
    )
    day = bodies(project.replay.sort_values("tx_datetime", kind="stable"))
    params = project.params
    with own_prefix(client) as prefix, TestClient(create_app(solo_settings)) as solo:
        state = RedisFeatures(
            connect_redis(TEST_REDIS_URL, 2), params.features, params.data.label_delay_days, prefix
        )
        env = {"FRAUDOPS_REDIS_URL": TEST_REDIS_URL, "FRAUDOPS_REDIS_PREFIX": prefix}
        world = Replicas(project, prefix, shared_dir, root, env, state, solo, day=day)
        try:
            yield world
        finally:
            stop_all(*world.running)


def score_alternating(servers: list[Server], solo: TestClient, requests: list[dict[str, Any]]) -> None:
    """Score ``requests`` one at a time in order, each card's successive transactions on successive
    replicas, and the same through the solo app: the verdicts must be identical."""
    turns: dict[int, int] = {}
    with httpx.Client(timeout=30) as http:
        for body in requests:
            turn = turns[body["customer_id"]] = turns.get(body["customer_id"], -1) + 1
            shared = http.post(f"{servers[turn % len(servers)].url}/v1/score", json=body)
            alone = solo.post("/v1/score", json=body)
            assert shared.status_code == alone.status_code == 200, shared.text
            assert shared.json() == alone.json()


def logged_features(path: Path, ids: list[str], names: list[str]) -> np.ndarray:
    frame = read_predictions(path).drop_duplicates("transaction_id", keep="last").set_index("transaction_id")
    return frame.loc[ids, [f"f_{name}" for name in names]].to_numpy(dtype=np.float64)


def assert_same_features(world: Replicas, requests: list[dict[str, Any]]) -> None:
    """The replicas logged exactly the solo app's features for ``requests``, and the offline ones (of the
    history and the day scored so far, up to the last of ``requests``)."""
    world.solo.app.state.services.predictions.flush()  # type: ignore[attr-defined]
    names = feature_names(world.project.params.features)
    ids = [body["transaction_id"] for body in requests]
    shared = logged_features(world.shared_dir / "stores" / "predictions.db", ids, names)
    alone = logged_features(world.solo.app.state.services.settings.prediction_log, ids, names)  # type: ignore[attr-defined]
    assert np.array_equal(shared, alone)
    scored = [body["transaction_id"] for body in world.day[: world.day.index(requests[-1]) + 1]]
    replay = world.project.replay.set_index("transaction_id").loc[scored].reset_index()
    offline = world.project.offline_features(replay).set_index(replay["transaction_id"]).loc[ids, names]
    offline = offline.to_numpy(dtype=np.float64)
    assert np.abs(shared - offline).max() <= 1e-9
    assert (offline[:, names.index("customer_nb_tx_30d")] > 1).mean() > 0.9  # history really counted


def test_two_replicas_score_interleaved_cards_exactly_as_one_process(replicas: Replicas) -> None:
    servers = replicas.start(2)  # together: one fills Redis, the other waits for it
    assert replicas.state.fills == 1
    first = replicas.day[:200]
    score_alternating(servers, replicas.solo, first)
    cards = pd.Series([body["customer_id"] for body in first])
    assert cards.duplicated().sum() > 20  # many cards came back, on the other replica
    # labels through either replica reach the shared state once
    labels = {"labels": [{"transaction_id": body["transaction_id"], "tx_fraud": 1} for body in first[:10]]}
    for server in servers:
        response = httpx.post(f"{server.url}/v1/feedback", json=labels, headers=FEEDBACK_AUTH, timeout=30)
        assert response.status_code == 200 and response.json() == {"accepted": 10}, response.text
    assert replicas.state.labels_of([body["transaction_id"] for body in first[:10]]) == {
        body["transaction_id"]: 1 for body in first[:10]
    }
    assert replicas.solo.post("/v1/feedback", json=labels, headers=FEEDBACK_AUTH).status_code == 200
    time.sleep(0.3)  # the replicas keep running; their log writers flush every 50 ms
    assert_same_features(replicas, first)


def test_a_replica_started_later_finds_the_state_and_loads_nothing(replicas: Replicas) -> None:
    marker = replicas.state.marker()
    (late,) = replicas.start(1)
    assert replicas.state.fills == 1 and replicas.state.marker() == marker
    requests = replicas.day[200:300]
    score_alternating([late, replicas.running[0]], replicas.solo, requests)
    time.sleep(0.3)
    assert_same_features(replicas, requests)


def test_a_redis_emptied_is_refilled_from_the_logs_by_the_next_replica(replicas: Replicas) -> None:
    replicas.stop(list(replicas.running))  # a clean stop: every acknowledged prediction is logged
    delete_prefix(replicas.state.client, replicas.prefix)
    assert replicas.state.marker() is None and replicas.state.rows == 0
    (fresh,) = replicas.start(1)
    assert replicas.state.fills == 1  # counted from scratch: Redis had lost everything
    assert (replicas.state.marker() or {})["logged"] == 300  # the transactions scored so far, from the log
    requests = replicas.day[300:]
    score_alternating([fresh], replicas.solo, requests)
    time.sleep(0.3)
    assert_same_features(replicas, requests)


def later_day(day: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """``day``'s transactions a day later, under new ids."""
    return [
        {
            **body,
            "transaction_id": f"{tag}-{n}",
            "tx_datetime": (pd.Timestamp(body["tx_datetime"]) + pd.Timedelta(days=1)).isoformat(),
        }
        for n, body in enumerate(day)
    ]


def test_a_replica_killed_under_load_loses_no_more_than_the_guarantee(replicas: Replicas) -> None:
    """SIGKILL of one of two replicas while four clients score a day through both: the survivor keeps
    answering; every acknowledged transaction is in the shared state (a script commits before the
    answer); the log misses at most what the dead replica acknowledged in its last
    PREDICTION_LOSS_WINDOW_S (core.predlog's guarantee)."""
    (survivor,) = replicas.running
    (victim,) = replicas.start(1)
    requests = later_day(replicas.day, "kill")
    acked: dict[str, tuple[Server, float]] = {}
    failures: list[str] = []
    refused = [0]

    def client(share: list[dict[str, Any]], first: Server) -> None:
        target = first
        with httpx.Client(timeout=30) as http:
            for body in share:
                try:
                    response = http.post(f"{target.url}/v1/score", json=body)
                except httpx.TransportError:
                    refused[0] += 1
                    target = survivor  # as a load balancer does with a dead upstream; this one is lost
                    continue
                if response.status_code == 200:
                    acked[body["transaction_id"]] = (target, time.monotonic())
                else:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [
        threading.Thread(target=client, args=(requests[k::4], (survivor, victim)[k % 2])) for k in range(4)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while sum(server is victim for server, _ in list(acked.values())) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.proc.kill()  # SIGKILL mid-load: no shutdown, no flush
    killed_at = time.monotonic()
    for thread in threads:
        thread.join()
    replicas.stop([victim])
    time.sleep(0.3)  # the survivor's writer flushes every 50 ms
    by_victim = [tid for tid, (server, _) in acked.items() if server is victim]
    assert failures == [] and refused[0] > 0 and len(by_victim) > 50
    assert len(acked) - len(by_victim) > 100  # the survivor took the load on
    assert set(replicas.state.held(list(acked))) == set(acked)
    logged = set(read_predictions(replicas.shared_dir / "stores" / "predictions.db")["transaction_id"])
    lost = {tid: at for tid, at in ((tid, acked[tid][1]) for tid in set(acked) - logged)}
    assert all(acked[tid][0] is victim for tid in lost)
    assert all(at >= killed_at - PREDICTION_LOSS_WINDOW_S for at in lost.values()), sorted(
        killed_at - at for at in lost.values()
    )[-5:]


def test_redis_gone_answers_503_and_scores_nothing_until_it_is_back(
    project: Project, replicas: Replicas, tmp_path: Path
) -> None:
    project_dir = make_project_dir(project, tmp_path / "project")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {"FRAUDOPS_REDIS_URL": url, "FRAUDOPS_REDIS_TIMEOUT_S": "0.5"}
    day = replicas.day
    with redis_server(tmp_path, port) as (redis_proc, _):
        server = launch(project, project_dir, tmp_path / "replica.log", **env)
        try:
            wait_ready(server)
            with httpx.Client(base_url=server.url, timeout=30) as http:
                assert http.post("/v1/score", json=day[0]).status_code == 200
                redis_proc.kill()
                redis_proc.wait()
                refused = http.post("/v1/score", json=day[1])
                assert refused.status_code == 503, refused.text
                assert refused.headers["Retry-After"] == "2"
                detail = refused.json()["detail"]
                assert f"Redis at 127.0.0.1:{port}/0 is unreachable" in detail
                assert "Nothing was scored" in detail and "FRAUDOPS_REDIS_URL" in detail
                batch = http.post("/v1/score/batch", json={"transactions": day[1:3]})
                assert batch.status_code == 503 and "Retry-After" in batch.headers
                label = {"labels": [{"transaction_id": day[0]["transaction_id"], "tx_fraud": 1}]}
                feedback = http.post("/v1/feedback", json=label, headers=FEEDBACK_AUTH)
                assert feedback.status_code == 503 and "Retry-After" in feedback.headers
                ready = http.get("/health/ready")
                assert ready.status_code == 503 and "is unreachable" in ready.json()["detail"]
                assert http.get("/health/live").status_code == 200
                time.sleep(0.2)
                logged = read_predictions(project_dir / "stores" / "predictions.db")
                assert logged["transaction_id"].tolist() == [day[0]["transaction_id"]]
                with redis_server(tmp_path, port):  # back, empty: the replica refills it from the logs
                    deadline = time.monotonic() + 15
                    while http.get("/health/ready").status_code != 200:
                        assert time.monotonic() < deadline, server.log.read_text()[-2000:]
                        time.sleep(0.2)
                    again = http.post("/v1/feedback", json=label, headers=FEEDBACK_AUTH)
                    assert again.status_code == 200, again.text  # the label refused before is taken now
                    with redis.Redis(port=port, decode_responses=True) as back:
                        assert back.hexists(
                            "{fraudops}:tx", day[0]["transaction_id"]
                        )  # refilled from the log
                        assert back.hget("{fraudops}:label", day[0]["transaction_id"]) == "1"
                    assert http.post("/v1/score", json=day[1]).status_code == 200
        finally:
            stop_all(server)
