"""The data version a model records leads back to its data: the steps of docs/course/data-versioning.md.

A training run records ``raw:<12 hex>/labels:<12 hex>`` (``pipelines.versioning.data_version``). When the
``data/*.dvc`` pointers of that moment were never committed (``make demo`` commits nothing), the
walkthrough finds each folder's full hash in DVC's cache by that prefix, writes the pointer files and
runs ``dvc checkout``. This test runs those steps in a throwaway git + DVC repository: two data
versions, then back to the first one, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from pipelines.ingest import ingest_batch
from pipelines.versioning import TRACKED, data_version, ensure_dvc_repo, track_data

DELAY = 7


@pytest.fixture
def settings(project_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The throwaway project, with DVC's site cache inside the test folder."""
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(tmp_path / "dvc-site"))
    return project_settings


def ingest_days(settings: Settings, sim_dir: Path, days: list[dt.date], today: dt.date) -> None:
    """Ingest the transactions and labels of ``days`` into the raw stores."""
    for day in days:
        name = f"{day}.parquet"
        tx = ingest_batch("transactions", sim_dir / "transactions" / name, settings.raw_dir, today, DELAY)
        labels = ingest_batch("labels", sim_dir / "labels" / name, settings.labels_dir, today, DELAY)
        assert (tx.status, labels.status) == ("ingested", "ingested")


def data_bytes(root: Path) -> dict[str, bytes]:
    """Every file of the tracked folders, by its path in the project."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for folder in TRACKED
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


def cached_dir_hashes(root: Path, prefix: str) -> list[str]:
    """The full md5 of the directory objects in DVC's cache whose hash starts with ``prefix``.

    The walkthrough's `ls .dvc/cache/files/md5/<2 hex>/<10 hex>*.dir`.
    """
    folder = root / ".dvc" / "cache" / "files" / "md5" / prefix[:2]
    return sorted(prefix[:2] + p.name.removesuffix(".dir") for p in folder.glob(f"{prefix[2:]}*.dir"))


def restore_pointers(root: Path, recorded: str) -> None:
    """Write ``data/raw.dvc`` and ``data/labels.dvc`` for a recorded data version (the walkthrough's step 2)."""
    for part in recorded.split("/"):
        name, prefix = part.split(":")
        found = cached_dir_hashes(root, prefix)
        assert len(found) == 1, f"{prefix} should name one directory in the cache, found {found}"
        pointer = f"outs:\n- md5: {found[0]}.dir\n  hash: md5\n  path: {name}\n"
        (root / "data" / f"{name}.dvc").write_text(pointer, encoding="utf-8")


def dvc(root: Path, *args: str) -> str:
    """Run the ``dvc`` command line of this environment in ``root``; its output."""
    dvc_bin = Path(sys.executable).parent / "dvc"
    out = subprocess.run(
        [str(dvc_bin), *args], cwd=root, capture_output=True, text=True, check=True, env=os.environ.copy()
    )
    return out.stdout


def test_a_recorded_data_version_checks_out_the_data_it_names(
    settings: Settings, sim_dir: Path, sim_days: list[dt.date]
) -> None:
    project = settings.project_dir
    today = sim_days[-1] + dt.timedelta(days=DELAY + 1)
    ensure_dvc_repo(project)
    ingest_days(settings, sim_dir, sim_days[:3], today)
    recorded = track_data(project)  # what the first model's run would record
    first = data_bytes(project)

    ingest_days(settings, sim_dir, sim_days[3:5], today)
    newer = track_data(project)
    assert newer != recorded and data_bytes(project) != first

    restore_pointers(project, recorded)
    dvc(project, "checkout", "data/raw.dvc", "data/labels.dvc")

    assert data_version(project) == recorded
    assert data_bytes(project) == first  # the two newer days are gone, the first three are as they were
    assert "up to date" in dvc(project, "status", "data/raw.dvc", "data/labels.dvc")
