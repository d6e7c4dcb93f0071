"""DVC stage ``validate``: raw days -> validated store and quarantine, every row accounted for.

Raw days are immutable; this stage re-derives the validated data from them, so it is reproducible.
Run by ``dvc repro`` as ``python -m pipelines.validate`` from the project root.

One rule per conflict, for transactions and labels alike (the API answers the same cases with 409):

- an exact copy of a row (a replayed export), in one day file or on a later day, is a duplicate:
  one copy is kept, the others are counted as ``duplicates``, neither accepted nor quarantined;
- rows of one day file that share a ``transaction_id`` but differ are all quarantined: nothing says
  which one is true;
- a row that differs from the one accepted under its id from an earlier day is quarantined; the
  earlier row stays, since versioned training data must not change under a model trained on it.

Per source file: rows in = accepted + duplicates + quarantined.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors as pa_errors

from core.schemas import (
    LABEL_COLUMNS,
    OPTIONAL_LABEL_COLUMNS,
    TRANSACTION_COLUMNS,
    LabelSchema,
    TransactionSchema,
)
from core.settings import get_settings

log = logging.getLogger(__name__)


INTEGER_COLUMNS = frozenset({"customer_id", "terminal_id", "tx_fraud", "tx_fraud_scenario"})
# pandera's check names, where a person needs more than the check's name
CHECK_NAMES = {"field_uniqueness": "conflict: other rows with this id differ"}


class BatchRejected(ValueError):
    """A whole batch is unusable (unreadable, missing columns, empty): nothing downstream changes."""


@dataclass(frozen=True)
class ValidationResult:
    """Valid rows, the invalid ones with a reason per row, and the exact copies set aside."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame
    duplicates: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Exact copies of a row kept in ``valid`` or ``quarantined``: counted, never stored."""


def read_batch(path: Path, columns: list[str], optional: list[str] | None = None) -> pd.DataFrame:
    """Read one parquet batch; reject it whole when it cannot be used at all.

    A column of ``optional`` (a subset of ``columns``) may be left out: it is read as null.
    """
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise BatchRejected(f"{path}: not a readable parquet file ({exc.__class__.__name__})") from exc
    for column in optional or []:
        if column not in frame.columns:
            frame[column] = pd.NA
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BatchRejected(f"{path}: missing column(s) {', '.join(missing)}")
    unexpected = [str(c) for c in frame.columns if c not in columns]
    if unexpected:
        raise BatchRejected(
            f"{path}: unexpected column(s) {', '.join(unexpected)}; expected {', '.join(columns)}"
        )
    if frame.empty:
        raise BatchRejected(f"{path}: empty batch")
    return frame.reset_index(drop=True)


def validate_rows(
    frame: pd.DataFrame, schema: type[TransactionSchema] | type[LabelSchema], day: dt.date | None = None
) -> ValidationResult:
    """Validate lazily (all errors collected); split valid rows from quarantined ones with reasons.

    Exact copies of a row are set aside first (one copy goes on); rows that then still share an id
    differ, and are all quarantined. With ``day``, a transaction timestamped on another day is
    quarantined too.
    """
    copies = frame.duplicated(keep="first").to_numpy()
    duplicates, frame = frame[copies], frame[~copies]
    reasons = _schema_failures(frame, schema)
    for column in sorted(INTEGER_COLUMNS.intersection(frame.columns)):
        # coercion would truncate 1.5 to 1 without a word: a fractional id or label is an error
        numbers = pd.to_numeric(frame[column], errors="coerce")
        for idx in np.flatnonzero((numbers.notna() & (numbers % 1 != 0)).to_numpy()):
            reasons.setdefault(int(frame.index[int(idx)]), []).append(f"{column}: not a whole number")
    if day is not None and "tx_datetime" in frame.columns:
        stamps = pd.to_datetime(frame["tx_datetime"], utc=True, errors="coerce")
        for idx in np.flatnonzero((stamps.notna() & (stamps.dt.date != day)).to_numpy()):
            reasons.setdefault(int(frame.index[int(idx)]), []).append(
                f"tx_datetime: outside the batch's day {day}"
            )
    bad = frame.index.isin(list(reasons))
    quarantined = frame[bad].assign(reason=["; ".join(reasons[int(i)]) for i in frame.index[bad]])
    valid = schema.validate(frame[~bad]) if (~bad).any() else frame.iloc[0:0]
    return ValidationResult(valid, quarantined, duplicates)


def _schema_failures(
    frame: pd.DataFrame, schema: type[TransactionSchema] | type[LabelSchema]
) -> dict[int, list[str]]:
    """Per row index, every check it fails ("column: check"); a failure of a whole column rejects the batch."""
    try:
        schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as err:
        cases = err.failure_cases
        row_level = cases[cases["index"].notna()]
        # a column-wide failure that follows from rows already failing (e.g. a range check erroring on
        # a text value that could not be coerced) adds nothing; any other one rejects the batch
        whole = cases[cases["index"].isna() & ~cases["column"].isin(row_level["column"])]
        cases = row_level
        if not whole.empty:
            problems = "; ".join(
                f"{c}: {chk}" for c, chk in zip(whole["column"], whole["check"], strict=True)
            )
            raise BatchRejected(f"the batch as a whole fails validation: {problems}") from err
        reasons: dict[int, list[str]] = {}
        for idx, column, check in zip(cases["index"], cases["column"], cases["check"], strict=True):
            reasons.setdefault(int(idx), []).append(f"{column}: {CHECK_NAMES.get(check, check)}")
        return reasons
    return {}


def validate_days(
    folder: Path,
    columns: list[str],
    schema: type[TransactionSchema] | type[LabelSchema],
    optional: list[str] | None = None,
) -> ValidationResult:
    """Validate every day file of ``folder``, oldest first; an id accepted on an earlier day keeps that row.

    A later copy of that row is a duplicate; a later row that differs is quarantined as a conflict.
    """
    batches = [(path, read_batch(path, columns, optional)) for path in sorted(folder.glob("*.parquet"))]
    valid, bad, copies = [], [], []
    for (path, frame), copy in zip(batches, exact_copies([f for _, f in batches]), strict=True):
        day = dt.date.fromisoformat(path.stem) if schema is TransactionSchema else None
        result = validate_rows(frame[~copy], schema, day)
        valid.append(result.valid.assign(source=path.name))
        bad.append(result.quarantined.assign(source=path.name))
        copies.append(frame[copy].assign(source=path.name))
    accepted = _concat(valid, [*columns, "source"])
    later, first_source = _repeats(accepted, columns)
    conflict = later & first_source.notna()
    bad.append(
        accepted[conflict].assign(
            reason="transaction_id: conflict with the row accepted from "
            + first_source[conflict]
            + " (that one stays)"
        )
    )
    copies.append(accepted[later & ~conflict])
    return ValidationResult(
        accepted[~later].reset_index(drop=True),
        _concat_text(bad, ["source", "reason"]),
        _concat(copies, ["source"]),
    )


def exact_copies(frames: list[pd.DataFrame]) -> list[np.ndarray]:
    """Per frame, a mask of its rows that repeat an earlier row exactly, in it or in an earlier frame.

    Values as sent are compared, so a copy of a row from another day is found before the day check
    would quarantine it for its timestamp.
    """
    if not frames:
        return []
    flags = pd.concat(frames, ignore_index=True).duplicated(keep="first").to_numpy()
    return np.split(flags, np.cumsum([len(f) for f in frames])[:-1])


def _repeats(accepted: pd.DataFrame, columns: list[str]) -> tuple[pd.Series, pd.Series]:
    """Rows whose id was accepted from an earlier file, and for those that differ from it, its source.

    The second series is null where a row is an exact copy of the first one (or not repeated at all).
    """
    later = accepted.duplicated("transaction_id", keep="first")
    first = accepted[~later]
    # the first accepted row of each row's id, aligned with ``accepted`` (a left merge keeps its order)
    ref = accepted[["transaction_id"]].merge(first[[*columns, "source"]], on="transaction_id", how="left")
    ref.index = accepted.index
    data = [c for c in columns if c != "transaction_id"]
    same = (accepted[data] == ref[data]).fillna(False) | (accepted[data].isna() & ref[data].isna())
    return later, ref["source"].where(~same.all(axis=1))


def batch_accounts(result: ValidationResult) -> dict[str, dict[str, int]]:
    """Per source file: rows in = accepted + duplicates + quarantined."""
    counts = {
        name: frame["source"].value_counts() if "source" in frame.columns else pd.Series(dtype=int)
        for name, frame in (
            ("accepted", result.valid),
            ("duplicates", result.duplicates),
            ("quarantined", result.quarantined),
        )
    }
    sources = sorted(set().union(*(c.index for c in counts.values())))
    return {
        str(src): {
            "rows": sum(int(c.get(src, 0)) for c in counts.values()),
            **{name: int(c.get(src, 0)) for name, c in counts.items()},
        }
        for src in sources
    }


def validate_store(raw_dir: Path, labels_dir: Path, out_dir: Path, quarantine_dir: Path) -> dict[str, int]:
    """Validate all raw days and label days; write the validated store, the quarantine and a report."""
    tx = validate_days(raw_dir, TRANSACTION_COLUMNS, TransactionSchema)
    labels = validate_days(labels_dir, LABEL_COLUMNS, LabelSchema, OPTIONAL_LABEL_COLUMNS)
    out_dir.mkdir(parents=True, exist_ok=True)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    tx.valid.drop(columns="source").sort_values("tx_datetime", kind="stable").to_parquet(
        out_dir / "transactions.parquet", index=False
    )
    labels.valid.drop(columns="source").to_parquet(out_dir / "labels.parquet", index=False)
    tx.quarantined.to_parquet(quarantine_dir / "transactions.parquet", index=False)
    labels.quarantined.to_parquet(quarantine_dir / "labels.parquet", index=False)
    counts = {
        "rows_in": len(tx.valid) + len(tx.duplicates) + len(tx.quarantined),
        "accepted": len(tx.valid),
        "duplicates": len(tx.duplicates),
        "quarantined": len(tx.quarantined),
        "labels_in": len(labels.valid) + len(labels.duplicates) + len(labels.quarantined),
        "labels_accepted": len(labels.valid),
        "labels_duplicates": len(labels.duplicates),
        "labels_quarantined": len(labels.quarantined),
    }
    report = {**counts, "batches": {"transactions": batch_accounts(tx), "labels": batch_accounts(labels)}}
    (quarantine_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return counts


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _concat_text(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    # quarantined rows keep what was sent, as text: they failed the types the schema would give them
    return _concat([f.astype(str) for f in frames], columns)


def main() -> None:
    """Entry point of the DVC stage."""
    settings = get_settings()
    counts = validate_store(
        settings.raw_dir, settings.labels_dir, settings.validated_dir, settings.quarantine_dir
    )
    log.info("validate: %s", ", ".join(f"{k} {v:,}" for k, v in counts.items()))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
