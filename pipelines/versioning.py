"""Data versioning with DVC: track raw days and labels, reproduce the stages, read the data version."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)
TRACKED = ("data/raw", "data/labels")
DVC_STAGES = ("validate", "features", "train")  # dvc.yaml's stages, in order
LOCAL_REMOTE = "stores/dvc-remote"


def _repo(root: Path) -> Any:
    from dvc.repo import Repo  # imported here: DVC is slow to import and only some commands need it

    repo = Repo(str(root))
    quiet_dvc()  # after Repo(): opening a repository sets DVC's own log levels
    return repo


def quiet_dvc() -> None:
    """DVC logs every step at INFO (with advice to `git add`): keep warnings; callers summarise."""
    logging.getLogger("dvc").setLevel(logging.WARNING)


def ensure_dvc_repo(root: Path) -> None:
    """Initialise DVC with the local remote when the project has no ``.dvc`` yet (git must exist)."""
    if (root / ".dvc").exists():
        return
    from dvc.repo import Repo

    if not (root / ".git").exists():
        raise RuntimeError(f"{root} is not a git repository: run `git init` there first (DVC needs git)")
    repo = Repo.init(str(root))
    quiet_dvc()
    with repo.config.edit() as conf:
        conf["core"]["remote"] = "local"
        conf["core"]["analytics"] = False
        # DVC reads a relative url as relative to the working directory and stores it relative to .dvc/
        conf["remote"]["local"] = {"url": os.path.relpath(root / LOCAL_REMOTE)}
    repo.close()


def track_data(root: Path) -> str:
    """``dvc add`` the raw days and labels, push them to the remote, and return the data version."""
    for folder in TRACKED:
        (root / folder).mkdir(parents=True, exist_ok=True)
    repo = _repo(root)
    try:
        repo.add([str(root / folder) for folder in TRACKED])
        repo.push()
    finally:
        repo.close()
    return data_version(root)


def pull_data(root: Path, targets: list[str] | None = None) -> None:
    """``dvc pull [targets]``: restore the tracked data and stage outputs from the remote."""
    repo = _repo(root)
    try:
        repo.pull(targets=targets)
    finally:
        repo.close()


def reproduce(root: Path, target: str | None = None) -> list[str]:
    """``dvc repro [target]``: re-run the stages whose inputs changed; returns the stages that ran."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        # the stages call `python -m ...`: make it this environment's python
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    repo = _repo(root)
    try:
        stages = repo.reproduce(target)
        repo.push()
    finally:
        repo.close()
    return [stage.addressing for stage in stages]


def data_version(root: Path) -> str:
    """The DVC hashes of the tracked raw days and labels: ``raw:<md5>/labels:<md5>`` (12 hex each)."""
    parts = []
    for folder in TRACKED:
        pointer = root / f"{folder}.dvc"
        if not pointer.exists():
            return "untracked"
        md5 = yaml.safe_load(pointer.read_text(encoding="utf-8"))["outs"][0]["md5"].removesuffix(".dir")
        parts.append(f"{Path(folder).name}:{md5[:12]}")
    return "/".join(parts)
