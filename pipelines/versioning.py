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
SETTINGS_REMOTE = "storage"  # the remote FRAUDOPS_DVC_REMOTE_URL names, in .dvc/config.local


def _repo(root: Path) -> Any:
    from dvc.repo import Repo  # imported here: DVC is slow to import and only some commands need it

    repo = Repo(str(root))
    quiet_dvc()  # after Repo(): opening a repository sets DVC's own log levels
    return repo


def quiet_dvc() -> None:
    """DVC logs every step at INFO (with advice to `git add`): keep warnings; callers summarise."""
    logging.getLogger("dvc").setLevel(logging.WARNING)


def ensure_dvc_repo(root: Path, remote_url: str | None = None, endpoint_url: str | None = None) -> None:
    """Initialise DVC with the local remote when the project has no ``.dvc`` yet (git must exist), then
    make ``remote_url`` (settings: ``dvc_remote_url``, ``s3_endpoint_url``) the default remote, or
    the local folder again when it is unset (see :func:`use_remote`)."""
    if not (root / ".dvc").exists():
        _init_dvc(root)
    use_remote(root, remote_url, endpoint_url)


def _init_dvc(root: Path) -> None:
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


def use_remote(root: Path, remote_url: str | None, endpoint_url: str | None = None) -> None:
    """Point DVC at ``remote_url`` (e.g. ``s3://bucket/dvc``) through the git-ignored ``.dvc/config.local``.

    The tracked ``.dvc/config`` keeps the solo folder remote, so a clone works anywhere; the remote of
    this machine (remote ``storage``, with ``endpointurl`` for an S3-compatible store) shadows it
    locally. Credentials are never written: DVC reads them from the AWS variables or ``~/.aws``, and
    what a user added to the remote by hand (``dvc remote modify --local storage ...``) is kept. With
    no ``remote_url`` only the default goes back to the folder remote.
    """
    from dvc.config import Config

    if remote_url is not None and "://" not in remote_url:
        remote_url = str(root / remote_url)  # a folder: relative to the project, as the settings say
    config = Config(str(root / ".dvc"))
    local = {section: values for section, values in config.read("local").items() if values}
    wanted = _local_remote_config(local, remote_url, endpoint_url)
    if wanted != local:  # write the user's file only when the settings change it
        with config.edit("local") as conf:
            # every section stays a key (empty ones are dropped on writing)
            conf.update({section: wanted.get(section, {}) for section in {*conf, *wanted}})
        log.info("DVC remote: %s", remote_url or LOCAL_REMOTE)


def _local_remote_config(
    local: dict[str, Any], remote_url: str | None, endpoint_url: str | None
) -> dict[str, Any]:
    """``local`` (a parsed config.local) with the remote the settings name as its default."""
    wanted = {section: dict(values) for section, values in local.items()}
    core = wanted.setdefault("core", {})
    remotes = wanted.setdefault("remote", {})
    if remote_url is None:
        if core.get("remote") == SETTINGS_REMOTE:
            del core["remote"]
    else:
        core["remote"] = SETTINGS_REMOTE
        remote = {**remotes.get(SETTINGS_REMOTE, {}), "url": remote_url}
        remote.pop("endpointurl", None)
        if endpoint_url:
            remote["endpointurl"] = endpoint_url
        remotes[SETTINGS_REMOTE] = remote
    return {section: values for section, values in wanted.items() if values}


def track_data(root: Path) -> str:
    """``dvc add`` the raw days and labels, push them to the remote, and return the data version."""
    for folder in TRACKED:
        (root / folder).mkdir(parents=True, exist_ok=True)
    repo = _repo(root)
    try:
        repo.add([str(root / folder) for folder in TRACKED])
    finally:
        repo.close()
    push_data(root)
    return data_version(root)


def push_data(root: Path) -> int:
    """``dvc push``: send the remote what it lacks of the tracked data; the number of files sent.

    Also what an earlier push left behind when the remote was out of reach: the data waited in the
    cache, and nothing is sent twice."""
    repo = _repo(root)
    try:
        return int(repo.push())
    finally:
        repo.close()


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
