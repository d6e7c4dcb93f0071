"""Which DVC remote the settings choose, in a throwaway project: the bucket goes to the git-ignored
``.dvc/config.local``, the tracked ``.dvc/config`` never changes, and what a user set by hand stays.

No bucket is contacted here (tests/integration/test_object_storage.py pushes to one).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.settings import Settings
from pipelines.versioning import LOCAL_REMOTE, SETTINGS_REMOTE, ensure_dvc_repo

BUCKET = "s3://fraudops-data/dvc"
ENDPOINT = "http://127.0.0.1:9000"


@pytest.fixture
def project(project_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(tmp_path / "dvc-site"))
    return project_settings.project_dir


def default_remote(root: Path) -> tuple[str, str]:
    """The remote DVC uses by default in ``root`` and its url, as the `dvc` command sees them."""
    from dvc.config import Config

    config = Config(str(root / ".dvc"))
    name = config["core"]["remote"]
    return name, config["remote"][name]["url"]


def test_the_bucket_shadows_the_folder_remote_in_the_ignored_local_config(project: Path) -> None:
    ensure_dvc_repo(project)
    tracked = (project / ".dvc" / "config").read_text(encoding="utf-8")
    assert not (project / ".dvc" / "config.local").exists()  # solo writes nothing there
    assert default_remote(project) == ("local", str(project / LOCAL_REMOTE))

    ensure_dvc_repo(project, BUCKET, ENDPOINT)

    assert default_remote(project) == (SETTINGS_REMOTE, BUCKET)
    assert (project / ".dvc" / "config").read_text(encoding="utf-8") == tracked
    local = (project / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert f"endpointurl = {ENDPOINT}" in local
    ignored = subprocess.run(["git", "check-ignore", "-q", ".dvc/config.local"], cwd=project)
    assert ignored.returncode == 0


def test_unsetting_the_bucket_goes_back_to_the_folder_and_keeps_what_the_user_added(project: Path) -> None:
    ensure_dvc_repo(project, BUCKET, ENDPOINT)
    from dvc.config import Config

    with Config(str(project / ".dvc")).edit("local") as conf:  # `dvc remote modify --local storage ...`
        conf["remote"][SETTINGS_REMOTE]["profile"] = "fraudops"

    ensure_dvc_repo(project, BUCKET)  # AWS S3 now: no endpoint
    local = Config(str(project / ".dvc")).read("local")
    assert local["remote"][SETTINGS_REMOTE] == {"url": BUCKET, "profile": "fraudops"}

    ensure_dvc_repo(project)
    assert default_remote(project) == ("local", str(project / LOCAL_REMOTE))
    assert Config(str(project / ".dvc")).read("local")["remote"][SETTINGS_REMOTE]["profile"] == "fraudops"


def test_an_unchanged_setting_leaves_the_local_config_untouched(project: Path) -> None:
    ensure_dvc_repo(project, BUCKET, ENDPOINT)
    local = project / ".dvc" / "config.local"
    local.touch()
    before = local.stat().st_mtime_ns
    ensure_dvc_repo(project, BUCKET, ENDPOINT)  # every ingest calls it: the user's file is not rewritten
    assert local.stat().st_mtime_ns == before
