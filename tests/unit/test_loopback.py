"""The servers the project starts outside containers listen on 127.0.0.1 only.

The MLflow UI, the Prefect UI, the course site and the API carry no authentication of their own (the
API guards only its admin and feedback routes), so on a laptop or a shared host they must not be
reachable from the network. The container's published ports are checked in tests/unit/test_container.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from core.settings import Settings
from fraudops import schedule
from fraudops.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
# the make targets that start a server, and the part of their command that names the interface
SERVER_TARGETS = {
    "mlflow-ui": ("mlflow ui", "--host 127.0.0.1"),
    "prefect-ui": ("prefect server start", "--host 127.0.0.1"),
    "docs": ("mkdocs serve", "--dev-addr 127.0.0.1:"),
}


def dry_run(target: str) -> list[str]:
    """The commands ``make TARGET`` would run (``make -n``), continuation lines joined."""
    done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.replace("\\\n", " ").splitlines()


@pytest.mark.parametrize("target", sorted(SERVER_TARGETS))
def test_the_make_targets_bind_their_servers_to_loopback(target: str) -> None:
    program, binding = SERVER_TARGETS[target]
    [command] = [line for line in dry_run(target) if program in line]
    assert binding in command, command
    assert "0.0.0.0" not in command, command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses process ``pid`` listens on."""
    connections = psutil.Process(pid).net_connections(kind="tcp")
    return {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}


def test_fraudops_serve_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    """A real ``fraudops serve`` without --host (no model: it starts and says so); ~2 s."""
    assert Settings.model_fields["api_host"].default == "127.0.0.1"
    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FRAUDOPS_API_HOST"}
    env |= {"FRAUDOPS_PROJECT_DIR": str(tmp_path), "FRAUDOPS_RELOAD_INTERVAL_S": "0"}
    fraudops = str(Path(sys.executable).with_name("fraudops"))
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [fraudops, "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not answers(f"http://127.0.0.1:{port}/health/live"):
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        assert listening(process.pid) == {("127.0.0.1", port)}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


class Exited:
    """Stands in for the ``prefect server start`` process: it exits at once, before any health check."""

    returncode = 1

    def poll(self) -> int:
        return self.returncode


def test_fraudops_schedule_starts_its_prefect_server_on_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command it would start, read without starting Prefect (a real start takes 10 s or more here)."""
    started: list[list[str]] = []

    def record(command: list[str], **kwargs: Any) -> Exited:
        started.append(command)
        return Exited()

    monkeypatch.setattr(schedule.subprocess, "Popen", record)
    settings = Settings(project_dir=tmp_path, _env_file=None)
    with pytest.raises(UserError, match="exited with code 1"):
        schedule.start_server(settings, 4321, timeout_s=5)
    [command] = started
    assert command[command.index("--host") + 1] == "127.0.0.1", command
