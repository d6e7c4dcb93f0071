"""Redis for the tests of the shared feature state: the machine's server (``FRAUDOPS_TEST_REDIS_URL``,
default the local one), or one a test starts and stops itself.

Without a reachable Redis the tests skip, saying why, except in CI (``CI=true``), where they fail: CI
must provide one. Each test works under a prefix of its own and deletes its keys afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

TEST_REDIS_URL = os.environ.get("FRAUDOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def connect_or_skip(url: str = TEST_REDIS_URL) -> redis.Redis:
    """A client of the tests' Redis; skips (fails in CI) when it does not answer."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis not reachable at {url}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must provide it)")
        pytest.skip(reason)
    return client


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Delete every key of the state under ``prefix`` (its keys share the hash tag ``{prefix}``)."""
    keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
    if keys:
        client.delete(*keys)


@contextmanager
def own_prefix(client: redis.Redis) -> Iterator[str]:
    """A key prefix no other test uses, its keys deleted afterwards."""
    prefix = f"fraudops-test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        delete_prefix(client, prefix)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(folder: Path, port: int | None = None) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A ``redis-server`` of the test's own (nothing persisted), for tests that stop it; skips (fails in
    CI) when the binary is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (CI must provide it)")
        pytest.skip("redis-server is not installed")
    port = port or free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with (folder / f"redis-{port}.log").open("wb") as out:
        proc = subprocess.Popen([*cmd, "--dir", str(folder)], stdout=out, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"redis-server on port {port} did not start") from None
                time.sleep(0.05)
        yield proc, port
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
