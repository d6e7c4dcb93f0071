"""Data versioning with a real DVC repository in a throwaway project (never the checkout itself).

``pipelines.flows.run_ingest`` is not called here: its Prefect task starts a temporary Prefect server
(about 15 s), so the steps it wraps, ``ingest_batch`` and ``track_data``, are called directly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from core.settings import Settings
from pipelines.ingest import ingest_batch
from pipelines.versioning import data_version, ensure_dvc_repo, pull_data, reproduce, track_data

DELAY = 7
VERSION = re.compile(r"raw:[0-9a-f]{12}/labels:[0-9a-f]{12}")


@pytest.fixture
def settings(project_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The throwaway project, with DVC's site cache inside the test folder and PATH restored afterwards."""
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(tmp_path / "dvc-site"))
    monkeypatch.setenv("PATH", os.environ["PATH"])  # reproduce() prepends this python's bin folder
    return project_settings


def ingest_days(settings: Settings, sim_dir: Path, days: list[dt.date], today: dt.date) -> int:
    """Ingest the transactions and labels of ``days``; returns the transaction rows ingested."""
    rows = 0
    for day in days:
        name = f"{day}.parquet"
        tx = ingest_batch("transactions", sim_dir / "transactions" / name, settings.raw_dir, today, DELAY)
        labels = ingest_batch("labels", sim_dir / "labels" / name, settings.labels_dir, today, DELAY)
        assert (tx.status, labels.status) == ("ingested", "ingested")
        rows += tx.rows
    return rows


def pushed_to_remote(root: Path) -> dict[str, int]:
    """Per tracked folder, how many of its files the local remote holds (DVC stores them by md5)."""
    remote = root / "stores" / "dvc-remote" / "files" / "md5"
    counts = {}
    for folder in ("raw", "labels"):
        hashes = [hashlib.md5(p.read_bytes()).hexdigest() for p in (root / "data" / folder).glob("*.parquet")]
        counts[folder] = sum((remote / h[:2] / h[2:]).is_file() for h in hashes)
    return counts


def test_ensure_dvc_repo_sets_up_the_local_remote_once(settings: Settings) -> None:
    project = settings.project_dir
    ensure_dvc_repo(project)
    config = (project / ".dvc" / "config").read_text(encoding="utf-8")
    assert "remote = local" in config
    assert "url = ../stores/dvc-remote" in config
    ensure_dvc_repo(project)  # a second call leaves the repository as it is
    assert (project / ".dvc" / "config").read_text(encoding="utf-8") == config


def test_ensure_dvc_repo_needs_git(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="is not a git repository"):
        ensure_dvc_repo(tmp_path)
    assert not (tmp_path / ".dvc").exists()


def test_tracking_versions_and_reproduces_the_data(
    settings: Settings, sim_dir: Path, sim_days: list[dt.date]
) -> None:
    project = settings.project_dir
    today = sim_days[-1] + dt.timedelta(days=DELAY + 1)
    rows = ingest_days(settings, sim_dir, sim_days[:3], today)
    ensure_dvc_repo(project)
    assert data_version(project) == "untracked"

    first = track_data(project)

    assert VERSION.fullmatch(first)
    assert (project / "data" / "raw.dvc").exists() and (project / "data" / "labels.dvc").exists()
    assert pushed_to_remote(project) == {"raw": 3, "labels": 3}
    assert not (project.parent / "stores").exists()  # the remote lives inside the project
    assert track_data(project) == first  # nothing new: same version

    rows += ingest_days(settings, sim_dir, sim_days[3:4], today)
    second = track_data(project)
    assert second != first
    assert second.split("/")[0] != first.split("/")[0] and second.split("/")[1] != first.split("/")[1]
    assert data_version(project) == second
    assert pushed_to_remote(project) == {"raw": 4, "labels": 4}

    assert reproduce(project, "features") == ["validate", "features"]
    report = json.loads((project / "data" / "quarantine" / "report.json").read_text(encoding="utf-8"))
    assert report["rows_in"] == rows == report["accepted"] + report["quarantined"]
    features = pd.read_parquet(project / "data" / "features" / "features.parquet")
    assert len(features) == report["accepted"]
    assert reproduce(project, "features") == []  # nothing changed: no stage runs again

    # round trip: lose the data and the cache, pull them back from the remote, nothing to redo
    before = {p.relative_to(project): p.read_bytes() for p in (project / "data").rglob("*.parquet")}
    for folder in ("raw", "labels", "validated", "features"):
        shutil.rmtree(project / "data" / folder)
    shutil.rmtree(project / ".dvc" / "cache")
    pull_data(project, ["data/raw.dvc", "data/labels.dvc", "validate", "features"])
    after = {p.relative_to(project): p.read_bytes() for p in (project / "data").rglob("*.parquet")}
    assert after.keys() >= {k for k in before if k.parts[1] != "quarantine"}
    assert all(after[k] == v for k, v in before.items() if k in after)
    assert reproduce(project, "features") == []
