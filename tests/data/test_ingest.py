"""Ingestion: day files are found, copied once, never rewritten, and labels wait for the clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from core.settings import Settings
from pipelines.ingest import EXPECTED_NAMES, find_batches, find_ignored, ingest_batch
from tests.conftest import task_runs_in_order

DELAY = 7
LATE = dt.date(2027, 1, 1)  # a "today" by which every simulated label is released


def test_find_batches_lists_every_day_of_a_simulation(sim_dir: Path, sim_days: list[dt.date]) -> None:
    found = find_batches([sim_dir])
    tx = [p for kind, p in found if kind == "transactions"]
    labels = [p for kind, p in found if kind == "labels"]
    assert [p.stem for p in tx] == [str(d) for d in sim_days]
    assert [p.stem for p in labels] == [str(d) for d in sim_days]
    assert {p.parent.name for p in tx} == {"transactions"}
    assert len(found) == 20  # customers/terminals/incidents files are not batches


def test_find_batches_takes_single_files_by_their_folder(sim_dir: Path, sim_days: list[dt.date]) -> None:
    day = f"{sim_days[0]}.parquet"
    found = find_batches([sim_dir / "transactions" / day, sim_dir / "labels" / day])
    assert [kind for kind, _ in found] == ["transactions", "labels"]


def test_files_not_named_for_a_day_are_listed_not_skipped(
    sim_dir: Path, tmp_path: Path, sim_days: list[dt.date]
) -> None:
    day = f"{sim_days[0]}.parquet"
    for kind in ("transactions", "labels"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / day).write_bytes((sim_dir / kind / day).read_bytes())
    odd = ["transactions/notes.txt", "transactions/2024-13-01.parquet", "transactions/20260301.parquet"]
    odd += ["labels/export.parquet", "labels/old"]
    for name in odd:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "transactions" / ".DS_Store").write_bytes(b"")  # hidden: the file system's, not ours

    assert find_batches([tmp_path]) == [
        ("transactions", tmp_path / "transactions" / day),
        ("labels", tmp_path / "labels" / day),
    ]
    assert sorted(find_ignored([tmp_path])) == sorted(tmp_path / name for name in odd)
    assert find_ignored([sim_dir]) == []  # the population files beside the day folders belong there


def test_a_labels_folder_given_alone_holds_labels(sim_dir: Path, sim_days: list[dt.date]) -> None:
    found = find_batches([sim_dir / "labels"])
    assert [(kind, p.stem) for kind, p in found] == [("labels", str(d)) for d in sim_days]


def test_the_ingest_report_warns_of_files_left_alone() -> None:
    from rich.console import Console

    from fraudops.render import print_ingest_report
    from pipelines.ingest import IngestReport

    console = Console(record=True, width=200)
    print_ingest_report(console, IngestReport(outcomes=[], data_version="v", ignored=["in/notes.txt"]))
    text = console.export_text()
    assert f"warning: not day files, left alone (expected {EXPECTED_NAMES}):" in text
    assert "ignored in/notes.txt" in text
    assert EXPECTED_NAMES == "transactions/YYYY-MM-DD.parquet and labels/YYYY-MM-DD.parquet"


def test_find_batches_refuses_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist: pass day files or a folder"):
        find_batches([tmp_path / "nowhere"])


def test_ingest_copies_a_day_once(sim_dir: Path, tmp_path: Path, sim_days: list[dt.date]) -> None:
    src = sim_dir / "transactions" / f"{sim_days[0]}.parquet"
    dest = tmp_path / "raw"
    first = ingest_batch("transactions", src, dest, LATE, DELAY)
    rows = len(pd.read_parquet(src))
    assert (first.status, first.rows, first.accepted, first.quarantined) == ("ingested", rows, rows, 0)
    assert (dest / src.name).read_bytes() == src.read_bytes()

    again = ingest_batch("transactions", src, dest, LATE, DELAY)
    assert (again.status, again.rows) == ("already ingested", rows)
    assert [p.name for p in dest.iterdir()] == [src.name]


def test_ingest_counts_bad_rows_but_keeps_the_raw_day_as_sent(
    tmp_path: Path, sim_dir: Path, sim_days: list[dt.date]
) -> None:
    frame = pd.read_parquet(sim_dir / "transactions" / f"{sim_days[1]}.parquet")
    frame.loc[[0, 3], "tx_amount"] = -1.0
    src = tmp_path / "incoming" / f"{sim_days[1]}.parquet"
    src.parent.mkdir()
    frame.to_parquet(src, index=False)
    outcome = ingest_batch("transactions", src, tmp_path / "raw", LATE, DELAY)
    assert (outcome.status, outcome.rows, outcome.accepted, outcome.quarantined) == (
        "ingested",
        len(frame),
        len(frame) - 2,
        2,
    )
    assert (tmp_path / "raw" / src.name).read_bytes() == src.read_bytes()  # quarantine is the stage's job


def test_ingest_counts_a_copied_row_as_a_duplicate_and_a_changed_one_as_quarantined(
    tmp_path: Path, sim_dir: Path, sim_days: list[dt.date]
) -> None:
    """rows = accepted + duplicates + quarantined: the copy is neither accepted twice nor quarantined."""
    frame = pd.read_parquet(sim_dir / "transactions" / f"{sim_days[1]}.parquet")
    changed = frame.iloc[[1]].assign(tx_amount=frame.loc[1, "tx_amount"] + 1)
    sent = pd.concat([frame, frame.iloc[[0]], changed], ignore_index=True)
    src = tmp_path / "incoming" / f"{sim_days[1]}.parquet"
    src.parent.mkdir()
    sent.to_parquet(src, index=False)
    outcome = ingest_batch("transactions", src, tmp_path / "raw", LATE, DELAY)
    assert (outcome.rows, outcome.accepted, outcome.duplicates, outcome.quarantined) == (
        len(frame) + 2,
        len(frame) - 1,
        1,
        2,
    )


def test_a_label_export_without_scenarios_is_ingested(
    tmp_path: Path, sim_dir: Path, sim_days: list[dt.date]
) -> None:
    """Only the simulator knows fraud scenarios; a repeated label counts once, a changed one is a conflict."""
    labels = pd.read_parquet(sim_dir / "labels" / f"{sim_days[2]}.parquet").drop(columns="tx_fraud_scenario")
    flipped = labels.iloc[[1]].assign(tx_fraud=1 - labels.loc[1, "tx_fraud"])
    src = tmp_path / "labels" / f"{sim_days[2]}.parquet"
    src.parent.mkdir()
    pd.concat([labels, labels.iloc[[0]], flipped], ignore_index=True).to_parquet(src, index=False)
    outcome = ingest_batch("labels", src, tmp_path / "store", LATE, DELAY)
    assert (outcome.status, outcome.accepted, outcome.duplicates, outcome.quarantined) == (
        "ingested",
        len(labels) - 1,
        1,
        2,
    )


def test_ingest_refuses_other_content_under_a_stored_day(
    sim_dir: Path, tmp_path: Path, sim_days: list[dt.date]
) -> None:
    src = sim_dir / "transactions" / f"{sim_days[2]}.parquet"
    dest = tmp_path / "raw"
    assert ingest_batch("transactions", src, dest, LATE, DELAY).status == "ingested"
    stored = (dest / src.name).read_bytes()
    other = tmp_path / "other" / src.name
    other.parent.mkdir()
    pd.read_parquet(src).head(5).to_parquet(other, index=False)

    outcome = ingest_batch("transactions", other, dest, LATE, DELAY)

    assert outcome.status == "rejected"
    assert outcome.reason == f"{dest / src.name} exists with other content: raw days are immutable"
    assert (dest / src.name).read_bytes() == stored
    assert [p.name for p in dest.iterdir()] == [src.name]


def test_labels_wait_until_the_clock_releases_them(
    sim_dir: Path, tmp_path: Path, sim_days: list[dt.date]
) -> None:
    day = sim_days[3]
    src = sim_dir / "labels" / f"{day}.parquet"
    dest = tmp_path / "labels"
    one_day_early = day + dt.timedelta(days=DELAY - 1)

    pending = ingest_batch("labels", src, dest, one_day_early, DELAY)

    assert pending.status == "pending"
    assert pending.reason == f"labels not released before {one_day_early}"
    assert not dest.exists()
    released = ingest_batch("labels", src, dest, day + dt.timedelta(days=DELAY), DELAY)
    assert released.status == "ingested"
    assert released.rows == released.accepted == len(pd.read_parquet(src))


def test_transactions_do_not_wait_for_the_clock(
    sim_dir: Path, tmp_path: Path, sim_days: list[dt.date]
) -> None:
    src = sim_dir / "transactions" / f"{sim_days[4]}.parquet"
    assert ingest_batch("transactions", src, tmp_path / "raw", sim_days[4], DELAY).status == "ingested"


def test_a_corrupt_file_is_rejected_and_nothing_is_written(tmp_path: Path, sim_days: list[dt.date]) -> None:
    src = tmp_path / "incoming" / f"{sim_days[5]}.parquet"
    src.parent.mkdir()
    src.write_bytes(b"PAR1 but not really" * 50)
    dest = tmp_path / "raw"

    outcome = ingest_batch("transactions", src, dest, LATE, DELAY)

    assert outcome.status == "rejected"
    assert outcome.reason.startswith(f"{src}: not a readable parquet file (")
    assert (outcome.rows, outcome.accepted, outcome.quarantined) == (0, 0, 0)
    assert not dest.exists()


def test_a_file_not_named_for_its_day_is_rejected(
    sim_dir: Path, tmp_path: Path, sim_days: list[dt.date]
) -> None:
    src = tmp_path / "batch-7.parquet"
    src.write_bytes((sim_dir / "transactions" / f"{sim_days[6]}.parquet").read_bytes())
    outcome = ingest_batch("transactions", src, tmp_path / "raw", LATE, DELAY)
    assert outcome.status == "rejected"
    assert outcome.reason == "file name must be the day: YYYY-MM-DD.parquet"
    assert not (tmp_path / "raw").exists()


def test_run_ingest_returns_and_saves_a_typed_report(
    sim_dir: Path, project_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Validate and store per batch, version once; the report on disk is the one returned."""
    from core.params import load_params
    from pipelines.flows import run_ingest
    from pipelines.ingest import IngestReport
    from pipelines.versioning import data_version

    params = load_params(project_settings.project_dir / "params.yaml")
    extra = tmp_path_factory.mktemp("incoming")
    (extra / "notes.txt").write_text("not a day", encoding="utf-8")
    report = run_ingest(project_settings, params, [sim_dir, extra], LATE)
    assert len(report.outcomes) == 20 and {o.status for o in report.outcomes} == {"ingested"}
    assert report.ignored == [str(extra / "notes.txt")]  # listed in the report, and so in the saved JSON
    assert all(o.rows == o.accepted + o.duplicates + o.quarantined > 0 for o in report.outcomes)
    assert report.data_version == data_version(project_settings.project_dir) != "untracked"
    (saved,) = (project_settings.reports_dir / "ingest").glob("*.json")
    assert IngestReport.model_validate_json(saved.read_text(encoding="utf-8")) == report
    again = run_ingest(project_settings, params, [sim_dir], LATE)  # nothing new: the same version
    assert {o.status for o in again.outcomes} == {"already ingested"}
    assert again.data_version == report.data_version


def test_the_ingest_flow_stores_each_batch_as_a_task_and_versions_once(
    sim_dir: Path, project_settings: Settings, prefect_server: None
) -> None:
    """The Prefect UI shows one task run per day file, then one ``version`` task run."""
    from core.clock import set_today
    from pipelines.flows import ingest_flow

    set_today(project_settings.clock_file, LATE)
    state = ingest_flow([str(sim_dir)], return_state=True)
    report = state.result()
    assert len(report.outcomes) == 20 and {o.status for o in report.outcomes} == {"ingested"}
    runs = task_runs_in_order(state.state_details.flow_run_id, 21)
    names = [r.name for r in runs]
    assert names[-1].startswith("version") and len(names) == 21
    assert sorted(names[:-1]) == sorted(
        f"validate and store {Path(o.path).name} ({o.kind})" for o in report.outcomes
    )
