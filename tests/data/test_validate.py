"""Validation: every row is either valid or quarantined with a reason; an unusable batch is rejected whole."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from core.schemas import (
    LABEL_COLUMNS,
    OPTIONAL_LABEL_COLUMNS,
    TRANSACTION_COLUMNS,
    LabelSchema,
    TransactionSchema,
)
from pipelines.validate import BatchRejected, read_batch, validate_rows, validate_store


def transactions(
    ids: Sequence[str | None], amounts: Sequence[float], times: Sequence[str] | None = None
) -> pd.DataFrame:
    """Transactions as the switch sends them: ISO timestamps as text, one customer and terminal per row."""
    n = len(ids)
    return pd.DataFrame(
        {
            "transaction_id": list(ids),
            "tx_datetime": list(times)
            if times is not None
            else [f"2026-03-01T{10 + i:02d}:00:00Z" for i in range(n)],
            "customer_id": list(range(n)),
            "terminal_id": list(range(n)),
            "tx_amount": list(amounts),
        }
    )


def test_validate_rows_quarantines_every_bad_row_with_its_column() -> None:
    frame = transactions(
        ids=["T1", "T2", None, "T4", "T4", "T6", "T7", None],
        amounts=[1.0, -5.0, 3.0, 4.0, 5.0, 6.0, 7.0, -1.0],
        times=[f"2026-03-01T{h:02d}:00:00Z" for h in range(10, 15)]
        + ["not a time", "2026-03-01T16:00:00Z", "2026-03-01T17:00:00Z"],
    )
    result = validate_rows(frame, TransactionSchema)

    assert result.valid["transaction_id"].tolist() == ["T1", "T7"]
    reasons = result.quarantined["reason"].to_dict()
    assert list(reasons) == [1, 2, 3, 4, 5, 7]
    assert reasons[1] == "tx_amount: greater_than_or_equal_to(0)"
    assert reasons[2] == "transaction_id: not_nullable"
    # both rows of an id with two different rows: nothing says which of the two is the real one
    assert reasons[3] == reasons[4] == "transaction_id: conflict: other rows with this id differ"
    assert reasons[5].startswith("tx_datetime: coerce_dtype(")
    assert reasons[7] == "transaction_id: not_nullable; tx_amount: greater_than_or_equal_to(0)"
    assert len(result.valid) + len(result.quarantined) == len(frame)


def test_validate_rows_coerces_valid_rows_and_keeps_an_empty_quarantine() -> None:
    result = validate_rows(transactions(["T1", "T2"], [1.5, 0.0]), TransactionSchema)
    assert len(result.valid) == 2
    assert str(result.valid["tx_datetime"].dtype) == "datetime64[us, UTC]"
    assert result.quarantined.empty
    assert "reason" in result.quarantined.columns


def test_validate_rows_checks_labels() -> None:
    labels = pd.DataFrame(
        {"transaction_id": ["a", "b", "c"], "tx_fraud": [0, 2, 1], "tx_fraud_scenario": [0, 0, -1]}
    )
    result = validate_rows(labels, LabelSchema)
    assert result.valid["transaction_id"].tolist() == ["a"]
    assert result.quarantined["reason"].to_dict() == {
        1: "tx_fraud: isin([0, 1])",
        2: "tx_fraud_scenario: greater_than_or_equal_to(0)",
    }


def test_read_batch_rejects_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"\x00garbage, not parquet\xff" * 10)
    with pytest.raises(BatchRejected, match="not a readable parquet file"):
        read_batch(path, TRANSACTION_COLUMNS)


def test_read_batch_rejects_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "2026-03-01.parquet"
    transactions(["T1"], [1.0]).drop(columns=["tx_amount"]).to_parquet(path)
    with pytest.raises(BatchRejected, match=r"missing column\(s\) tx_amount$"):
        read_batch(path, TRANSACTION_COLUMNS)


def test_read_batch_rejects_an_empty_batch(tmp_path: Path) -> None:
    path = tmp_path / "2026-03-01.parquet"
    transactions([], []).to_parquet(path)
    with pytest.raises(BatchRejected, match="empty batch"):
        read_batch(path, TRANSACTION_COLUMNS)


def test_read_batch_returns_a_usable_batch(tmp_path: Path) -> None:
    path = tmp_path / "2026-03-01.parquet"
    transactions(["T1", "T2"], [1.0, 2.0]).to_parquet(path)
    assert read_batch(path, TRANSACTION_COLUMNS)["transaction_id"].tolist() == ["T1", "T2"]


def write_day(folder: Path, day: str, ids: list[str], amounts: list[float]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    times = [f"{day}T{10 + i:02d}:00:00Z" for i in range(len(ids))]
    transactions(ids, amounts, times).to_parquet(folder / f"{day}.parquet", index=False)


def test_validate_store_quarantines_an_id_repeated_on_a_later_day(tmp_path: Path) -> None:
    raw, labels = tmp_path / "raw", tmp_path / "labels"
    write_day(raw, "2026-03-01", ["A", "B"], [1.0, 2.0])
    write_day(raw, "2026-03-02", ["B", "C", "D"], [3.0, 4.0, -1.0])
    labels.mkdir()
    pd.DataFrame({"transaction_id": ["A", "B"], "tx_fraud": [0, 1], "tx_fraud_scenario": [0, 1]}).to_parquet(
        labels / "2026-03-01.parquet", index=False
    )
    pd.DataFrame({"transaction_id": ["B", "C"], "tx_fraud": [0, 0], "tx_fraud_scenario": [0, 0]}).to_parquet(
        labels / "2026-03-02.parquet", index=False
    )
    out, quarantine = tmp_path / "validated", tmp_path / "quarantine"

    counts = validate_store(raw, labels, out, quarantine)

    assert counts == {
        "rows_in": 5,
        "accepted": 3,
        "duplicates": 0,
        "quarantined": 2,
        "labels_in": 4,
        "labels_accepted": 3,
        "labels_duplicates": 0,
        "labels_quarantined": 1,
    }
    report = json.loads((quarantine / "report.json").read_text(encoding="utf-8"))
    assert {key: report[key] for key in counts} == counts
    batches = report["batches"]["transactions"]
    assert sum(b["rows"] for b in batches.values()) == counts["rows_in"]
    assert all(b["rows"] == b["accepted"] + b["duplicates"] + b["quarantined"] for b in batches.values())
    valid = pd.read_parquet(out / "transactions.parquet")
    assert valid["transaction_id"].tolist() == ["A", "B", "C"]
    # the first sighting wins: B keeps its amount and time of 1 March
    assert valid.loc[1, "tx_amount"] == 2.0
    assert valid["tx_datetime"].dt.strftime("%Y-%m-%d").tolist() == ["2026-03-01", "2026-03-01", "2026-03-02"]
    bad = pd.read_parquet(quarantine / "transactions.parquet").set_index("transaction_id")
    assert sorted(bad.index) == ["B", "D"]
    assert bad.loc["B", "reason"] == (
        "transaction_id: conflict with the row accepted from 2026-03-01.parquet (that one stays)"
    )
    assert bad.loc["D", "reason"] == "tx_amount: greater_than_or_equal_to(0)"
    assert bad.loc["D", "source"] == "2026-03-02.parquet"
    kept_labels = pd.read_parquet(out / "labels.parquet")
    assert kept_labels.set_index("transaction_id")["tx_fraud"].to_dict() == {"A": 0, "B": 1, "C": 0}
    assert list(kept_labels.columns) == LABEL_COLUMNS


def test_validate_store_rejects_the_run_on_an_unreadable_day(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_day(raw, "2026-03-01", ["A"], [1.0])
    (raw / "2026-03-02.parquet").write_bytes(b"not parquet")
    (tmp_path / "labels").mkdir()
    with pytest.raises(BatchRejected, match=r"2026-03-02\.parquet: not a readable parquet file"):
        validate_store(raw, tmp_path / "labels", tmp_path / "validated", tmp_path / "quarantine")
    assert not (tmp_path / "validated").exists()


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (float("nan"), "tx_amount: not_nullable"),
        (float("inf"), "tx_amount: less_than_or_equal_to(10000000.0)"),
        (-0.01, "tx_amount: greater_than_or_equal_to(0)"),
    ],
)
def test_bad_amounts_are_quarantined_with_their_reason(amount: float, reason: str) -> None:
    result = validate_rows(transactions(["T1", "T2"], [10.0, amount]), TransactionSchema)
    assert result.valid["transaction_id"].tolist() == ["T1"]
    assert result.quarantined["reason"].tolist() == [reason]


def test_wrong_types_are_quarantined_per_row() -> None:
    frame = transactions(["T1", "T2", "T3"], [10.0, 11.0, 12.0]).astype({"customer_id": object})
    frame.loc[1, "customer_id"] = "abc"
    result = validate_rows(frame, TransactionSchema)
    assert result.valid["transaction_id"].tolist() == ["T1", "T3"]
    assert result.quarantined["reason"].tolist()[0].startswith("customer_id: coerce_dtype('int64')")


def test_a_transaction_from_another_day_is_quarantined() -> None:
    import datetime as dt

    frame = transactions(["T1", "T2"], [1.0, 2.0], ["2026-03-01T10:00:00Z", "2026-03-02T00:00:01Z"])
    result = validate_rows(frame, TransactionSchema, day=dt.date(2026, 3, 1))
    assert result.valid["transaction_id"].tolist() == ["T1"]
    assert result.quarantined["reason"].tolist() == ["tx_datetime: outside the batch's day 2026-03-01"]


def test_unknown_columns_reject_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "2026-03-01.parquet"
    transactions(["T1"], [1.0]).assign(tx_fraud=[1]).to_parquet(path)
    with pytest.raises(BatchRejected, match=r"unexpected column\(s\) tx_fraud; expected transaction_id"):
        read_batch(path, TRANSACTION_COLUMNS)


def test_fractional_ids_are_quarantined_not_truncated() -> None:
    frame = transactions(["T1", "T2"], [1.0, 2.0]).astype({"customer_id": float})
    frame.loc[1, "customer_id"] = 1.5
    result = validate_rows(frame, TransactionSchema)
    assert result.valid["transaction_id"].tolist() == ["T1"]
    assert result.quarantined["reason"].tolist() == ["customer_id: not a whole number"]


# --- one rule per conflict: an exact copy is a duplicate, a different row under a used id a conflict ---

CONFLICT = "transaction_id: conflict: other rows with this id differ"


def test_an_exact_copy_in_a_day_file_is_kept_once_and_counted_as_a_duplicate() -> None:
    """A replayed export: the copy is neither accepted twice nor quarantined."""
    frame = transactions(["T1", "T2", "T3"], [1.0, 2.0, 3.0])
    frame = pd.concat([frame, frame.iloc[[0, 0, 2]]], ignore_index=True)
    result = validate_rows(frame, TransactionSchema)
    assert result.valid["transaction_id"].tolist() == ["T1", "T2", "T3"]
    assert result.duplicates.index.tolist() == [3, 4, 5]
    assert result.quarantined.empty
    assert len(result.valid) + len(result.duplicates) + len(result.quarantined) == len(frame)


def test_rows_sharing_an_id_but_differing_are_all_quarantined_as_a_conflict() -> None:
    frame = transactions(["T1", "T1", "T1", "T2"], [1.0, 1.0, 9.0, 2.0])
    frame.loc[1] = frame.loc[0]  # row 1: an exact copy of row 0; row 2 differs from both
    result = validate_rows(frame, TransactionSchema)
    assert result.valid["transaction_id"].tolist() == ["T2"]
    assert result.duplicates.index.tolist() == [1]
    assert result.quarantined["reason"].to_dict() == {0: CONFLICT, 2: CONFLICT}


def test_a_repeated_label_is_kept_once_and_a_different_label_is_a_conflict() -> None:
    labels = pd.DataFrame(
        {
            "transaction_id": ["a", "a", "b", "b", "c"],
            "tx_fraud": [1, 1, 0, 1, 0],
            "tx_fraud_scenario": [2, 2, 0, 2, 0],
        }
    )
    result = validate_rows(labels, LabelSchema)
    assert result.valid["transaction_id"].tolist() == ["a", "c"]
    assert result.duplicates.index.tolist() == [1]
    assert result.quarantined["reason"].to_dict() == {2: CONFLICT, 3: CONFLICT}


def write_labels(folder: Path, day: str, ids: list[str], fraud: list[int], scenario: bool = True) -> None:
    """A label day file; without ``scenario`` as a real export, which has no fraud-scenario column."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"transaction_id": ids, "tx_fraud": fraud})
    frame = frame.assign(tx_fraud_scenario=fraud) if scenario else frame
    frame.to_parquet(folder / f"{day}.parquet", index=False)


def test_a_later_day_repeats_a_row_as_a_duplicate_and_a_changed_row_as_a_conflict(tmp_path: Path) -> None:
    """The row accepted first stays: versioned training data never changes under a trained model."""
    raw, labels = tmp_path / "raw", tmp_path / "labels"
    write_day(raw, "2026-03-01", ["A", "B"], [1.0, 2.0])
    first = pd.read_parquet(raw / "2026-03-01.parquet")
    write_day(raw, "2026-03-02", ["A", "C", "C"], [5.0, 3.0, 3.0])
    later = pd.read_parquet(raw / "2026-03-02.parquet")
    later.loc[2] = later.loc[1]  # C twice in one file, exactly
    # B replayed from 1 March exactly (its timestamp too); A sent again with another amount and time
    pd.concat([later, first.iloc[[1]]], ignore_index=True).to_parquet(raw / "2026-03-02.parquet", index=False)
    write_labels(labels, "2026-03-01", ["A", "B"], [0, 1])
    write_labels(labels, "2026-03-02", ["B", "A", "C"], [1, 1, 0])
    out, quarantine = tmp_path / "validated", tmp_path / "quarantine"

    counts = validate_store(raw, labels, out, quarantine)

    assert (counts["rows_in"], counts["accepted"], counts["duplicates"], counts["quarantined"]) == (
        6,
        3,
        2,
        1,
    )
    assert (counts["labels_in"], counts["labels_accepted"]) == (5, 3)
    assert (counts["labels_duplicates"], counts["labels_quarantined"]) == (1, 1)
    report = json.loads((quarantine / "report.json").read_text(encoding="utf-8"))
    assert report["batches"]["transactions"]["2026-03-02.parquet"] == {
        "rows": 4,
        "accepted": 1,
        "duplicates": 2,
        "quarantined": 1,
    }
    valid = pd.read_parquet(out / "transactions.parquet").set_index("transaction_id")
    assert valid["tx_amount"].to_dict() == {"A": 1.0, "B": 2.0, "C": 3.0}
    stays = "transaction_id: conflict with the row accepted from 2026-03-01.parquet (that one stays)"
    bad = pd.read_parquet(quarantine / "transactions.parquet")
    assert bad[["transaction_id", "tx_amount", "source", "reason"]].values.tolist() == [
        ["A", "5.0", "2026-03-02.parquet", stays]
    ]
    kept = pd.read_parquet(out / "labels.parquet").set_index("transaction_id")["tx_fraud"].to_dict()
    assert kept == {"A": 0, "B": 1, "C": 0}
    bad_labels = pd.read_parquet(quarantine / "labels.parquet")
    assert bad_labels[["transaction_id", "tx_fraud", "reason"]].values.tolist() == [["A", "1", stays]]


def test_label_files_without_a_fraud_scenario_are_accepted_with_a_null_scenario(tmp_path: Path) -> None:
    """Only the simulator knows scenarios: a real label export has none, and features still build."""
    from core.params import load_params
    from pipelines.features import build_feature_table

    raw, labels = tmp_path / "raw", tmp_path / "labels"
    write_day(raw, "2026-03-01", ["A", "B"], [1.0, 2.0])
    write_labels(labels, "2026-03-01", ["A"], [1], scenario=False)
    write_labels(labels, "2026-03-02", ["B"], [0])
    out = tmp_path / "validated"

    counts = validate_store(raw, labels, out, tmp_path / "quarantine")

    assert (counts["labels_in"], counts["labels_accepted"], counts["labels_quarantined"]) == (2, 2, 0)
    kept = pd.read_parquet(out / "labels.parquet")
    assert list(kept.columns) == LABEL_COLUMNS
    assert kept["tx_fraud_scenario"].isna().tolist() == [True, False]
    params = load_params(Path(__file__).parents[2] / "params.yaml")
    table = build_feature_table(pd.read_parquet(out / "transactions.parquet"), kept, params)
    assert table.set_index("transaction_id")["tx_fraud"].to_dict() == {"A": 1, "B": 0}


def test_a_label_file_still_needs_its_label(tmp_path: Path) -> None:
    path = tmp_path / "2026-03-01.parquet"
    pd.DataFrame({"transaction_id": ["A"]}).to_parquet(path)
    with pytest.raises(BatchRejected, match=r"missing column\(s\) tx_fraud$"):
        read_batch(path, LABEL_COLUMNS, OPTIONAL_LABEL_COLUMNS)
