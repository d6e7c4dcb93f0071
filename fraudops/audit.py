"""``make audit``: the locked dependencies checked against a vulnerability service; no answer is a failure.

pip-audit alone can pass without having checked anything. With the PyPI service, a package whose
``/pypi/<name>/<version>/json`` page answers 404 (as it does for every package behind a mirror that
serves only the package index) is skipped, and without ``--strict`` the run still prints "No known
vulnerabilities found" and exits 0. So this wrapper exports ``uv.lock`` to a requirements file, runs
pip-audit with ``--strict`` and JSON output, and passes only when every package the lock pins for this
Python was checked and every finding is either gone or accepted, with its reason, under
``[tool.fraudops.audit.accepted]`` in pyproject.toml. Anything else prints ``could not check: <reason>``
and exits 1.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import typer
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from rich.console import Console
from rich.markup import escape

Service = Literal["pypi", "osv"]
SERVICE_URLS: dict[str, str] = {
    "pypi": "https://pypi.org/pypi/<name>/<version>/json",
    "osv": "https://api.osv.dev/v1/query",
}
# every group: the dev tools (pytest, mkdocs, ...) run in CI with the same rights as the service
# a traceback's "package.module.SomeError: what happened" line
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception|Timeout): \S")
EXPORT_ARGS = ("export", "--frozen", "--all-groups", "--no-emit-project", "--format", "requirements-txt")

app = typer.Typer(add_completion=False)


@dataclass(frozen=True)
class Finding:
    """One known vulnerability of one pinned package, as the service reported it."""

    package: str
    version: str
    ids: tuple[str, ...]  # pip-audit's id first, then its aliases
    fix_versions: tuple[str, ...]
    description: str
    accepted: str | None  # why it stays, when pyproject.toml accepts one of its ids


@dataclass(frozen=True)
class AuditResult:
    """What one audit checked and found, or why it could not check."""

    service: str
    url: str
    pinned: int  # packages the lock pins for this Python
    checked: int
    findings: tuple[Finding, ...] = ()
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(f.accepted for f in self.findings)


def export_lock(uv: str, project: Path, out: Path) -> Path:
    """Write ``uv.lock`` as a hashed requirements file (``uv export --frozen``: the lock as it is)."""
    command = [uv, *EXPORT_ARGS, "--no-header", "--output-file", str(out)]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"uv export failed ({done.returncode}): {done.stderr.strip()}")
    return out


def read_pins(requirements: Path) -> dict[str, str]:
    """The ``name==version`` pins of a requirements file whose markers hold for this Python."""
    pins: dict[str, str] = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        text = line.split(" #", 1)[0].rstrip(" \\")
        if not text or text[0] in "#- \t":  # comments, options and --hash continuation lines
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise ValueError(f"{requirements}: not a pinned requirement: {text!r}") from exc
        if requirement.marker is None or requirement.marker.evaluate():
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def read_accepted(pyproject: Path) -> dict[str, str]:
    """Vulnerability ids that stay, each with why: ``[tool.fraudops.audit.accepted]`` of pyproject.toml."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    accepted = data.get("tool", {}).get("fraudops", {}).get("audit", {}).get("accepted", {})
    return {str(k): str(v) for k, v in accepted.items()}


def why_it_failed(returncode: int, stderr: str) -> str:
    """The line of pip-audit's error output that says why it stopped.

    Its own refusals are logged as ``ERROR:``; otherwise the last exception in a traceback that carries
    a message (a bare ``ServiceError`` at the end of a chain says less than the HTTP error before it).
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    logged = [line.removeprefix("ERROR:pip_audit._cli:") for line in lines if line.startswith("ERROR:")]
    raised = [line for line in lines if EXCEPTION_LINE.match(line)]
    reason = (logged or raised or lines or [f"pip-audit exited {returncode} without saying why"])[-1]
    return reason.strip()


def read_findings(report: Mapping[str, Any], accepted: Mapping[str, str]) -> tuple[list[str], list[Finding]]:
    """The packages pip-audit's JSON report says it checked, and what it found in them."""
    checked: list[str] = []
    findings: list[Finding] = []
    for dep in report.get("dependencies", []):
        if "skip_reason" in dep:  # not checked, whatever the exit code says
            raise ValueError(f"{dep['name']}: {dep['skip_reason']}")
        checked.append(canonicalize_name(dep["name"]))
        for vuln in dep.get("vulns", []):
            ids = (vuln["id"], *vuln.get("aliases", []))
            reason = next((accepted[i] for i in ids if i in accepted), None)
            fixes = tuple(vuln.get("fix_versions", []))
            findings.append(
                Finding(dep["name"], dep["version"], ids, fixes, vuln.get("description", ""), reason)
            )
    return checked, findings


def pip_audit_command(
    requirements: Path, service: Service, osv_url: str | None, cache_dir: Path, timeout_s: int, report: Path
) -> list[str]:
    """pip-audit on a pinned, hashed file: no resolver (``--disable-pip``), a skipped package fails."""
    command = [sys.executable, "-m", "pip_audit", "--strict", "--disable-pip", "-r", str(requirements)]
    command += ["--vulnerability-service", service, "--timeout", str(timeout_s)]
    command += ["--cache-dir", str(cache_dir)]
    command += ["--format", "json", "--output", str(report), "--progress-spinner", "off"]
    if osv_url:
        command += ["--osv-url", osv_url]
    return command


def audit_requirements(
    requirements: Path,
    service: Service = "pypi",
    *,
    accepted: Mapping[str, str] | None = None,
    osv_url: str | None = None,
    timeout_s: int = 15,
    env: Mapping[str, str] | None = None,
) -> AuditResult:
    """Run pip-audit on a pinned requirements file; any package left unchecked makes it an error."""
    url = (osv_url or SERVICE_URLS["osv"]) if service == "osv" else SERVICE_URLS[service]
    pins = read_pins(requirements)
    with tempfile.TemporaryDirectory(prefix="fraudops-audit-") as tmp:
        # a fresh HTTP cache each run: every answer comes from the service now, none from an earlier run
        report_path, cache_dir = Path(tmp) / "report.json", Path(tmp) / "cache"
        command = pip_audit_command(requirements, service, osv_url, cache_dir, timeout_s, report_path)
        done = subprocess.run(command, capture_output=True, text=True, env=None if env is None else dict(env))
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    result = AuditResult(service, url, pinned=len(pins), checked=0)
    if report is None:  # pip-audit writes its report only once every package was answered for
        return dataclasses.replace(result, error=why_it_failed(done.returncode, done.stderr))
    try:
        checked, findings = read_findings(report, accepted or {})
    except ValueError as exc:
        return dataclasses.replace(result, error=str(exc))
    result = dataclasses.replace(result, checked=len(set(checked)), findings=tuple(findings))
    missing = sorted(set(pins) - set(checked))
    if missing:
        return dataclasses.replace(
            result, error=f"{len(missing)} pinned package(s) not in the report: {', '.join(missing[:5])}"
        )
    if done.returncode != 0 and not findings:
        return dataclasses.replace(result, error=why_it_failed(done.returncode, done.stderr))
    return result


def print_result(result: AuditResult, source: str, console: Console) -> None:
    """Say what was checked, against what, and what came of it, in plain lines."""
    python = f"Python {sys.version_info.major}.{sys.version_info.minor} on {sys.platform}"
    console.print(f"checked: {source}: {result.pinned} pinned packages for {python}", highlight=False)
    console.print(f"service: {result.service} ({result.url})")
    if result.error is not None:
        console.print(f"[red]could not check:[/] {escape(result.error)}", highlight=False)
        console.print("nothing was vouched for: this is a failure, not a pass (docs/dependencies.md)")
        return
    console.print(f"packages checked: {result.checked}")
    if not result.findings:
        console.print("[green]no known vulnerabilities[/]")
        return
    for f in result.findings:  # one line each: whole lines stay greppable in a CI log
        fixed = f"fixed in {', '.join(f.fix_versions)}" if f.fix_versions else "no fixed release"
        line = f"{f.package} {f.version}: {' / '.join(f.ids)}, {fixed}"
        if f.accepted:
            console.print(f"accepted: {line}; why it stays: {f.accepted}", markup=False, highlight=False)
        else:
            console.print(f"[red]open:[/] {escape(line)}", highlight=False)
    open_count = sum(not f.accepted for f in result.findings)
    advice = (
        ": bump them in uv.lock or accept them in pyproject.toml (docs/dependencies.md)" if open_count else ""
    )
    console.print(f"{len(result.findings)} finding(s), {open_count} open{advice}")


@app.command()
def main(
    service: Annotated[str, typer.Option(help="Vulnerability service: pypi or osv.")] = "pypi",
    uv: Annotated[str, typer.Option(help="The uv that exports the lock (the Makefile's).")] = "uv",
    project: Annotated[Path, typer.Option(help="The folder holding uv.lock and pyproject.toml.")] = Path("."),
    requirements: Annotated[
        Path | None, typer.Option(help="Audit this pinned, hashed file instead of exporting uv.lock.")
    ] = None,
    osv_url: Annotated[str | None, typer.Option(help="Another OSV endpoint (with --service osv).")] = None,
    timeout: Annotated[int, typer.Option(help="Seconds to wait for each answer.")] = 15,
) -> None:
    """Audit the locked dependencies; exit 1 on an open finding or when the service cannot vouch for all."""
    if service not in SERVICE_URLS:
        raise typer.BadParameter(f"--service must be one of {sorted(SERVICE_URLS)}, not {service!r}")
    console = Console(soft_wrap=True)  # whole lines: a reason stays greppable in a CI log
    accepted = read_accepted(project / "pyproject.toml")
    with tempfile.TemporaryDirectory(prefix="fraudops-audit-") as tmp:
        source = (
            f"{requirements}" if requirements else f"{project / 'uv.lock'} (uv export --frozen, all groups)"
        )
        try:
            path = requirements or export_lock(uv, project, Path(tmp) / "requirements.txt")
        except (OSError, RuntimeError) as exc:
            console.print(
                f"[red]could not check:[/] the lock could not be exported: {escape(str(exc))}",
                highlight=False,
            )
            raise typer.Exit(1) from None
        chosen = cast(Service, service)
        result = audit_requirements(path, chosen, accepted=accepted, osv_url=osv_url, timeout_s=timeout)
    print_result(result, source, console)
    if not result.passed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
