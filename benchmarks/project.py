"""Throwaway projects for the tests and the benchmarks: a copy of the project in its own git repository.

The tests leave the user's working tree as they found it and the benchmarks measure on stores of their
own, so both build a project in a temporary folder: the packages and the pipeline files copied, a git
repository with an identity of its own (DVC needs one), and this process's settings pointed at it.
This module lives with the benchmarks, outside the installed packages: nothing at run time needs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# what `dvc repro` (`python -m pipelines.*`), the flows and the command line import in the copy
PROJECT_FILES = ("core", "pipelines", "serving", "monitoring", "fraudops", "dvc.yaml", "params.yaml")
GIT_IDENTITY = {"user.name": "fraudops throwaway project", "user.email": "throwaway@fraudops.invalid"}


def make_project(root: Path) -> Path:
    """Copy the project's code and pipeline files to ``root``, in a git repository of its own (DVC is
    set up when a step needs it); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    for key, value in GIT_IDENTITY.items():
        subprocess.run(["git", "config", key, value], cwd=root, check=True, env=env)
    return root


def use_project(root: Path, **settings_env: str) -> Settings:
    """Point this process's settings and tools at the project in ``root`` (its stores, never the
    user's); ``settings_env`` adds ``FRAUDOPS_`` variables. Returns the settings."""
    from core.settings import get_settings, tool_environment

    os.environ.update({"FRAUDOPS_PROJECT_DIR": str(root), **settings_env})
    get_settings.cache_clear()
    settings = get_settings()
    os.environ.update(tool_environment(settings))
    return settings


@contextlib.contextmanager
def throwaway_folder(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary folder, removed afterwards unless ``keep``; the working directory is restored."""
    cwd = Path.cwd()
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        os.chdir(cwd)
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def worktree(commit: str) -> Path:
    """A git worktree of ``commit`` under the temporary folder (made once, reused): the code "before"
    for benchmarks that measure two commits in one run, each side's processes on its own tree."""
    tree = Path(tempfile.gettempdir()) / f"fraudops-{commit}"
    if not (tree / "core").is_dir():
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True)
    return tree


def side_env(tree: Path) -> dict[str, str]:
    """This environment with ``tree``'s packages first on the path (the venv is the same for both)."""
    return {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
