"""``make audit`` (fraudops.audit): a service that cannot vouch for every locked package is a failure.

Every test runs the real pip-audit as a process. The real advisory services are not reachable from
these machines (docs/dependencies.md), so the tests that need a service answering use a small OSV
endpoint served from the test (``--osv-url``); the unreachable cases point pip-audit at a closed port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fraudops.audit import audit_requirements, export_lock, read_findings, read_pins

ROOT = Path(__file__).resolve().parents[2]
GHSA = "GHSA-test-0001"


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def makefile_uv() -> str:
    """The uv the Makefile uses: from PATH, else the one ``make setup`` bootstrapped into .uv/."""
    uv = shutil.which("uv") or str(ROOT / ".uv" / "bin" / "uv")
    assert Path(uv).exists(), "no uv: run `make setup` first"
    return uv


def write_requirements(path: Path, *lines: str) -> Path:
    """A pinned, hashed requirements file as ``uv export`` writes them (the hashes are not checked)."""
    hashed = [f"{line} \\\n    --hash=sha256:{str(i) * 64}" for i, line in enumerate(lines)]
    path.write_text("\n".join(hashed) + "\n", encoding="utf-8")
    return path


class Osv(ThreadingHTTPServer):
    """An OSV query endpoint on 127.0.0.1: ``vulnerable`` packages get one advisory; ``status`` forces errors."""

    vulnerable: frozenset[str] = frozenset()
    status: int = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/query"


class OsvHandler(BaseHTTPRequestHandler):
    server: Osv

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["content-length"])))
        name = query["package"]["name"]
        body: dict[str, Any] = {}
        if name in self.server.vulnerable:
            body = {"vulns": [advisory(name)]}
        data = json.dumps(body).encode()
        self.send_response(self.server.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def advisory(package: str) -> dict[str, Any]:
    """An OSV record affecting every version of ``package`` below 99.0."""
    events = [{"introduced": "0"}, {"fixed": "99.0"}]
    return {
        "id": GHSA,
        "summary": "a planted advisory",
        "aliases": ["CVE-0000-0001"],
        "affected": [
            {
                "package": {"name": package, "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
        ],
    }


@pytest.fixture
def osv() -> Iterator[Osv]:
    server = Osv(("127.0.0.1", 0), OsvHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    # the third line holds for no Python this runs on: the lock's forks for other versions look like it
    return write_requirements(
        tmp_path / "requirements.txt",
        "pyyaml==6.0.3",
        "rich==15.0.0",
        'no-such-fork==1.0 ; python_version < "3.0"',
    )


def run_audit(
    *args: str, env: dict[str, str] | None = None, project: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``make audit``'s command, as a process."""
    command = [
        sys.executable,
        "-m",
        "fraudops.audit",
        "--uv",
        makefile_uv(),
        "--project",
        str(project),
        *args,
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


def test_an_unreachable_pypi_fails_the_audit_of_the_lock_and_says_why(tmp_path: Path) -> None:
    """The whole lock, the default service, behind a proxy that refuses: exit 1 and the reason, never a pass."""
    pinned = read_pins(export_lock(makefile_uv(), ROOT, tmp_path / "lock.txt"))
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "https_proxy", "http_proxy"}}
    env |= {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy}
    done = run_audit("--timeout", "5", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{len(pinned)} pinned packages" in done.stdout
    assert "service: pypi" in done.stdout
    [reason] = [line for line in done.stdout.splitlines() if line.startswith("could not check: ")]
    assert "proxy" in reason.lower(), reason
    assert "no known vulnerabilities" not in done.stdout and "packages checked" not in done.stdout


def test_an_unreachable_osv_fails_and_says_why(requirements: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1/query"
    done = run_audit(
        "--requirements", str(requirements), "--service", "osv", "--osv-url", url, "--timeout", "5"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"service: osv ({url})" in done.stdout
    [reason] = [line for line in done.stdout.splitlines() if line.startswith("could not check: ")]
    assert "Connection refused" in reason, reason


def test_a_service_that_answers_with_an_error_is_not_a_pass(requirements: Path, osv: Osv) -> None:
    osv.status = 503
    result = audit_requirements(requirements, "osv", osv_url=osv.url, timeout_s=5)
    assert not result.passed
    assert result.error is not None and "503" in result.error


def test_a_package_pypi_does_not_know_is_not_a_pass(tmp_path: Path) -> None:
    """PyPI answers 404 for it, and pip-audit without --strict would skip it and exit 0.

    Without pypi.org (or with a mirror that serves only the index, as here) the reason is the
    connection or the 404 of the first package; either way the audit must not pass.
    """
    path = write_requirements(tmp_path / "requirements.txt", "fraudops-no-such-package-7f3a==0.0.1")
    result = audit_requirements(path, "pypi", timeout_s=10)
    assert not result.passed
    assert result.error and result.checked == 0, result


def test_a_clean_answer_for_every_pinned_package_passes(requirements: Path, osv: Osv) -> None:
    done = run_audit("--requirements", str(requirements), "--service", "osv", "--osv-url", osv.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 pinned packages" in done.stdout and "packages checked: 2" in done.stdout
    assert "no known vulnerabilities" in done.stdout


def test_a_finding_fails_with_the_package_the_advisory_and_the_fix(requirements: Path, osv: Osv) -> None:
    osv.vulnerable = frozenset({"pyyaml"})
    done = run_audit("--requirements", str(requirements), "--service", "osv", "--osv-url", osv.url)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("open: ")]
    assert line.startswith("open: pyyaml 6.0.3: ") and line.endswith(", fixed in 99.0"), line
    assert GHSA in line and "CVE-0000-0001" in line  # pip-audit names it by either, the other as alias
    assert "1 finding(s), 1 open: bump them" in done.stdout


def test_an_accepted_finding_passes_with_its_reason(requirements: Path, osv: Osv) -> None:
    osv.vulnerable = frozenset({"pyyaml", "rich"})
    accepted = {GHSA: "only reached from the docs build"}
    result = audit_requirements(requirements, "osv", accepted=accepted, osv_url=osv.url)
    assert result.error is None and result.checked == 2
    assert [f.package for f in result.findings] == ["pyyaml", "rich"]
    assert all(f.accepted == "only reached from the docs build" for f in result.findings)
    assert result.passed
    assert not audit_requirements(requirements, "osv", accepted={"GHSA-other": "x"}, osv_url=osv.url).passed


def test_the_accepted_list_comes_from_pyproject(tmp_path: Path, requirements: Path, osv: Osv) -> None:
    osv.vulnerable = frozenset({"pyyaml"})
    reason = "no fixed release; only the docs build parses YAML from outside"
    (tmp_path / "pyproject.toml").write_text(f'[tool.fraudops.audit.accepted]\n"{GHSA}" = "{reason}"\n')
    done = run_audit(
        "--requirements", str(requirements), "--service", "osv", "--osv-url", osv.url, project=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("accepted: ")]
    assert line.startswith("accepted: pyyaml 6.0.3: ") and line.endswith(f"99.0; why it stays: {reason}"), (
        line
    )
    assert "1 finding(s), 0 open" in done.stdout


def test_a_skipped_package_in_a_report_is_an_error() -> None:
    """What pip-audit reports without --strict when PyPI answers 404: not a clean package."""
    report = {
        "dependencies": [
            {"name": "rich", "version": "15.0.0", "vulns": []},
            {"name": "x", "skip_reason": "404"},
        ]
    }
    with pytest.raises(ValueError, match="x: 404"):
        read_findings(report, {})


def test_only_the_pins_for_this_python_count(requirements: Path) -> None:
    assert read_pins(requirements) == {"pyyaml": "6.0.3", "rich": "15.0.0"}
