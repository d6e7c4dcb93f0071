"""The service as it runs in production: a uvicorn process under steady concurrent load.

Model swaps under load: three promotions while 8 clients score without pause; no request fails and every
response names the version that scored it. Clean shutdown under load: SIGTERM while clients score;
every prediction the service acknowledged is in the prediction log afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from core.predlog import read_predictions
from tests.api.factories import ADMIN_KEY, FEEDBACK_KEY, bodies

if TYPE_CHECKING:
    from tests.api.conftest import Project

CONCURRENCY = 8
AUTH = {"X-API-Key": ADMIN_KEY}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"the server did not stop within 30 s: {self.log.read_text()[-2000:]}"
            ) from None


def start_server(project: Project, log: Path) -> Server:
    """``uvicorn --factory serving.app:create_app`` on a free port, as ``fraudops serve`` runs it."""
    port = free_port()
    settings = project.settings()
    env = {
        **os.environ,
        "FRAUDOPS_PROJECT_DIR": str(project.dir),
        "FRAUDOPS_ADMIN_API_KEY": ADMIN_KEY,
        "FRAUDOPS_FEEDBACK_API_KEY": FEEDBACK_KEY,
        "FRAUDOPS_RELOAD_INTERVAL_S": "0",
        "FRAUDOPS_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app", "--port", str(port)]
    cmd += ["--no-access-log", "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=project.dir)
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"the server was not ready within 60 s: {log.read_text()[-2000:]}")


@dataclass
class Load:
    """What the clients saw: acknowledged predictions in order, failures, and transport errors."""

    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    refused: int = 0  # connections refused or dropped once the server stopped listening
    by_client: list[list[str]] = field(default_factory=lambda: [[] for _ in range(CONCURRENCY)])


async def run_load(
    url: str, requests: list[dict[str, Any]], prefix: str, stop: asyncio.Event, load: Load
) -> None:
    """8 clients post distinct transactions back to back until ``stop`` is set or requests run out."""
    queue = iter(enumerate(requests))

    async def client(index: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for n, body in queue:
                if stop.is_set():
                    return
                body = {**body, "transaction_id": f"{prefix}-{n}"}
                try:
                    response = await http.post("/v1/score", json=body)
                except httpx.TransportError:
                    load.refused += 1
                    return
                if response.status_code == 200:
                    load.acknowledged.append(response.json())
                    load.by_client[index].append(response.json()["model_version"])
                else:
                    load.failures.append(f"{response.status_code} {response.text[:200]}")

    await asyncio.gather(*(client(i) for i in range(CONCURRENCY)))


def stream(project: Project) -> list[dict[str, Any]]:
    """Many time-ordered raw transactions (the replay day, repeated with fresh ids by the load)."""
    day = bodies(project.replay.sort_values("tx_datetime", kind="stable"))
    return day * 50


@pytest.fixture(scope="module")
def server(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(project, tmp_path_factory.mktemp("server") / "api.log")
    yield running
    running.stop()
    project.set_champion("1")


def test_three_promotions_under_load_fail_no_request(server: Server, project: Project) -> None:
    versions = [project.register_version() for _ in range(3)]
    load = Load()

    async def scenario() -> None:
        stop = asyncio.Event()
        clients = asyncio.create_task(run_load(server.url, stream(project), "swap", stop, load))
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=30) as admin:
            for version in versions:
                await asyncio.sleep(0.7)
                await asyncio.to_thread(project.set_champion, version)
                reloaded = await admin.post("/admin/reload")
                assert reloaded.json() == {"changed": True, "version": version}, reloaded.text
            await asyncio.sleep(0.7)
        stop.set()
        await clients

    asyncio.run(scenario())
    assert load.failures == [] and load.refused == 0
    assert len(load.acknowledged) > 200
    served = [response["model_version"] for response in load.acknowledged]
    assert set(served) == {"1", *versions}
    order = ["1", *versions]
    for seen in load.by_client:  # an atomic swap: no client goes back to an older version
        ranks = [order.index(v) for v in seen]
        assert ranks == sorted(ranks)


def test_clean_shutdown_under_load_logs_every_acknowledged_prediction(
    project: Project, tmp_path: Path
) -> None:
    server = start_server(project, tmp_path / "api.log")
    load = Load()

    async def scenario() -> None:
        stop = asyncio.Event()
        clients = asyncio.create_task(run_load(server.url, stream(project), "shutdown", stop, load))
        await asyncio.sleep(1.5)
        server.proc.send_signal(signal.SIGTERM)
        await clients

    try:
        asyncio.run(scenario())
    finally:
        code = server.stop()
    # uvicorn re-raises the signal it handled once its graceful shutdown is done
    assert code in (0, -signal.SIGTERM), server.log.read_text()[-2000:]
    assert load.failures == []
    assert len(load.acknowledged) > 100
    assert load.refused > 0  # the clients were still sending when the server went away
    logged = read_predictions(project.settings().prediction_log).set_index("transaction_id")
    acknowledged = {r["transaction_id"]: r for r in load.acknowledged}
    missing = sorted(set(acknowledged) - set(logged.index))
    assert missing == [], f"{len(missing)} acknowledged predictions are not in the log: {missing[:5]}"
    for tid, response in acknowledged.items():
        row = logged.loc[tid]
        assert row["fraud_probability"] == pytest.approx(response["fraud_probability"], abs=1e-12)
        assert str(row["model_version"]) == response["model_version"]
