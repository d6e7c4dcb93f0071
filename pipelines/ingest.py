"""Ingest daily batches into the immutable raw store: check, copy once, never rewrite.

Transactions land in ``data/raw/YYYY-MM-DD.parquet``; labels in ``data/labels/`` only once the
simulated clock has released them (a day's labels arrive a label delay later). Row-level problems
are counted here and quarantined by the ``validate`` stage; an unusable batch is rejected whole.
Counts here are per file: an id already used on another day is the ``validate`` stage's to settle
(its ``data/quarantine/report.json`` counts duplicates and conflicts per file across the days).
A file in the folders given whose name is not a day is listed in the report and left alone.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import logging
import shutil
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.clock import labels_released
from core.schemas import (
    LABEL_COLUMNS,
    OPTIONAL_LABEL_COLUMNS,
    TRANSACTION_COLUMNS,
    LabelSchema,
    TransactionSchema,
)
from pipelines.validate import BatchRejected, read_batch, validate_rows

log = logging.getLogger(__name__)


Kind = Literal["transactions", "labels"]
Status = Literal["ingested", "already ingested", "pending", "rejected"]
DAY_FILE = "YYYY-MM-DD.parquet"
EXPECTED_NAMES = f"transactions/{DAY_FILE} and labels/{DAY_FILE}"


class BatchOutcome(BaseModel):
    """What happened to one file: ingested, already there, pending (labels not released) or rejected."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    path: str
    """The file as given."""
    kind: Kind
    status: Status
    rows: int = 0
    """Rows read (0 when the file was rejected before reading them): accepted + duplicates + quarantined."""
    accepted: int = 0
    """Rows that pass validation."""
    duplicates: int = 0
    """Exact copies of another row of the file (a replayed export): one copy counts, the others are dropped."""
    quarantined: int = 0
    """Rows the ``validate`` stage sets aside, with their reason: invalid, or one of several different
    rows under one ``transaction_id`` (a conflict)."""
    reason: str = ""
    """Why the file was rejected or is pending."""


class IngestReport(BaseModel):
    """Every batch's outcome and the data version after the run (``reports/ingest/<UTC time>.json``)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    outcomes: list[BatchOutcome]
    """One per file, in the order they were found."""
    data_version: str
    """The DVC hashes of the raw days and labels after the run."""
    ignored: list[str] = []
    """Files in the folders given whose names are not days (YYYY-MM-DD.parquet): not read, not stored."""

    @property
    def rejected(self) -> list[BatchOutcome]:
        return [o for o in self.outcomes if o.status == "rejected"]

    @property
    def ingested(self) -> list[BatchOutcome]:
        return [o for o in self.outcomes if o.status == "ingested"]


def save_report(reports_dir: Path, report: IngestReport, now: dt.datetime | None = None) -> Path:
    """Write the report to ``reports/ingest/<UTC time>.json`` (schema: docs/schemas)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    path = reports_dir / "ingest" / f"{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return path


def find_batches(paths: list[Path]) -> list[tuple[Kind, Path]]:
    """(kind, file) pairs from files or folders in the ``fraudops simulate`` layout."""
    found: list[tuple[Kind, Path]] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: pass day files or a folder made by `fraudops simulate`"
            )
        if path.is_file():
            found.append(("labels" if path.parent.name == "labels" else "transactions", path))
            continue
        for kind, folder in batch_folders(path):
            found += [(kind, p) for p in sorted(folder.iterdir()) if _is_day(p)]
    return found


def find_ignored(paths: list[Path]) -> list[Path]:
    """Entries of the folders :func:`find_batches` reads that are not day files (hidden ones aside)."""
    ignored: list[Path] = []
    for path in (p for p in paths if p.is_dir()):
        folders = batch_folders(path)
        scanned = {folder for _, folder in folders}
        for _, folder in folders:
            ignored += [
                p
                for p in sorted(folder.iterdir())
                if not (p.name.startswith(".") or p in scanned or _is_day(p))
            ]
    return ignored


def batch_folders(path: Path) -> list[tuple[Kind, Path]]:
    """The day folders of a folder: its ``transactions/`` (else itself) and ``labels/``; a ``labels`` folder."""
    if path.name == "labels":
        return [("labels", path)]
    folders: list[tuple[Kind, Path]] = [
        ("transactions", path / "transactions" if (path / "transactions").is_dir() else path)
    ]
    if (path / "labels").is_dir():
        folders.append(("labels", path / "labels"))
    return folders


def _is_day(path: Path) -> bool:
    # strict: fromisoformat also takes 20260301 and 2026-W09-7, which would name one day twice
    try:
        day = dt.date.fromisoformat(path.stem)
    except ValueError:
        return False
    return path.suffix == ".parquet" and day.isoformat() == path.stem and path.is_file()


def ingest_batch(kind: Kind, path: Path, dest_dir: Path, today: dt.date, delay_days: int) -> BatchOutcome:
    """Check one day file and copy it into the store unless it is there already."""
    outcome = partial(BatchOutcome, path=str(path), kind=kind)
    if not _is_day(path):
        return outcome(status="rejected", reason=f"file name must be the day: {DAY_FILE}")
    if kind == "labels" and not labels_released(dt.date.fromisoformat(path.stem), today, delay_days):
        return outcome(status="pending", reason=f"labels not released before {today}")
    columns, optional, schema = (
        (LABEL_COLUMNS, OPTIONAL_LABEL_COLUMNS, LabelSchema)
        if kind == "labels"
        else (TRANSACTION_COLUMNS, [], TransactionSchema)
    )
    day = dt.date.fromisoformat(path.stem) if kind == "transactions" else None
    try:
        frame = read_batch(path, columns, optional)
        result = validate_rows(frame, schema, day)
    except BatchRejected as exc:
        return outcome(status="rejected", reason=str(exc))
    counted = partial(
        outcome,
        rows=len(frame),
        accepted=len(result.valid),
        duplicates=len(result.duplicates),
        quarantined=len(result.quarantined),
    )
    dest = dest_dir / path.name
    if dest.exists():
        if filecmp.cmp(path, dest, shallow=False):
            return counted(status="already ingested")
        return counted(status="rejected", reason=f"{dest} exists with other content: raw days are immutable")
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    shutil.copyfile(path, tmp)
    tmp.replace(dest)
    return counted(status="ingested")
