"""Each workshop exercise's check, proved three ways on a copy of this project.

The untouched project fails the check and says what is missing; the plausible wrong solution
(``wrong.patch``) fails it too; the reference solution (``reference.patch``) passes. The check runs on a
copy with that copy first on ``sys.path``, and the test verifies it imported the copy, not this tree
(the virtual environment's editable install points here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = sorted(p.parent for p in (ROOT / "exercises").glob("[0-9][0-9]-*/check.py"))
CASES = [
    pytest.param(folder, variant, id=f"{folder.name}-{variant}")
    for folder in EXERCISES
    for variant in ("untouched", "wrong", "reference")
]


def project_files() -> list[str]:
    """The working tree's tracked files, and the exercises' own files even before they are committed."""
    listed = subprocess.run(
        [
            "git",
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            ".",
            ":!docs",
            ":!benchmarks",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [name for name in listed if (ROOT / name).is_file() and not name.startswith(("data/", "stores/"))]


def copy_project(target: Path) -> Path:
    """This working tree's files (as they are now, uncommitted edits included) copied to ``target``."""
    for name in project_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


def run_check(copy: Path, number: str) -> subprocess.CompletedProcess[str]:
    """``make check-exercise`` as the Makefile runs it, in the copy."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "exercises/run.py", number],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_exercise_has_its_files() -> None:
    assert len(EXERCISES) >= 5
    for folder in EXERCISES:
        for name in ("README.md", "check.py", "reference.patch", "wrong.patch"):
            assert (folder / name).is_file(), f"{folder.name} lacks {name}"


@pytest.mark.parametrize(("folder", "variant"), CASES)
def test_check_fails_untouched_and_wrong_passes_reference(tmp_path: Path, folder: Path, variant: str) -> None:
    copy = copy_project(tmp_path / "project")
    if variant != "untouched":
        patch = folder / f"{variant}.patch"
        applied = subprocess.run(["git", "apply", str(patch)], cwd=copy, capture_output=True, text=True)
        assert applied.returncode == 0, f"{patch.name} does not apply: {applied.stderr}"
    result = run_check(copy, folder.name[:2])
    shown = result.stdout + result.stderr
    assert f"checking the project at {copy}" in result.stdout, shown  # the copy, not this tree
    if variant == "reference":
        assert result.returncode == 0, shown
        assert "all checks pass" in result.stdout
    else:
        assert result.returncode == 1, shown
        assert "[MISSING]" in result.stdout and "not done yet" in result.stdout, shown
