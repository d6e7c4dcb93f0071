"""DVC stage ``validate``: raw days -> validated store and quarantine, every row accounted for.

Raw days are immutable; this stage re-derives the validated data from them, so it is reproducible.
Run by ``dvc repro`` as ``python -m pipelines.validate`` from the project root.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors as pa_errors

from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS, LabelSchema, TransactionSchema
from core.settings import get_settings

log = logging.getLogger(__name__)


INTEGER_COLUMNS = frozenset({"customer_id", "terminal_id", "tx_fraud", "tx_fraud_scenario"})


class BatchRejected(ValueError):
    """A whole batch is unusable (unreadable, missing columns, empty): nothing downstream changes."""


@dataclass(frozen=True)
class ValidationResult:
    """Valid rows, and the invalid ones with a reason per row."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame


def read_batch(path: Path, columns: list[str]) -> pd.DataFrame:
    """Read one parquet batch; reject it whole when it cannot be used at all."""
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise BatchRejected(f"{path}: not a readable parquet file ({exc.__class__.__name__})") from exc
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

    With ``day``, a transaction timestamped on another day is quarantined too.
    """
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
    return ValidationResult(valid, quarantined)


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
            reasons.setdefault(int(idx), []).append(f"{column}: {check}")
        return reasons
    return {}


def validate_days(
    folder: Path, columns: list[str], schema: type[TransactionSchema] | type[LabelSchema]
) -> ValidationResult:
    """Validate every day file of ``folder``; an id seen on an earlier day is quarantined too."""
    valid, bad = [], []
    for path in sorted(folder.glob("*.parquet")):
        day = dt.date.fromisoformat(path.stem) if schema is TransactionSchema else None
        result = validate_rows(read_batch(path, columns), schema, day)
        valid.append(result.valid.assign(source=path.name))
        bad.append(result.quarantined.assign(source=path.name))
    accepted = _concat(valid, [*columns, "source"])
    repeated = accepted.duplicated("transaction_id", keep="first")
    bad.append(accepted[repeated].assign(reason="transaction_id: already seen on an earlier day"))
    quarantined = pd.concat(
        [b.astype(str) for b in bad if not b.empty] or [pd.DataFrame(columns=["source", "reason"])],
        ignore_index=True,
    )
    return ValidationResult(accepted[~repeated].reset_index(drop=True), quarantined)


def batch_accounts(result: ValidationResult) -> dict[str, dict[str, int]]:
    """Per source file: rows in = accepted + quarantined."""
    accepted = result.valid["source"].value_counts()
    quarantined = result.quarantined["source"].value_counts()
    return {
        str(src): {
            "rows": int(accepted.get(src, 0) + quarantined.get(src, 0)),
            "accepted": int(accepted.get(src, 0)),
            "quarantined": int(quarantined.get(src, 0)),
        }
        for src in sorted(set(accepted.index) | set(quarantined.index))
    }


def validate_store(raw_dir: Path, labels_dir: Path, out_dir: Path, quarantine_dir: Path) -> dict[str, int]:
    """Validate all raw days and label days; write the validated store, the quarantine and a report."""
    tx = validate_days(raw_dir, TRANSACTION_COLUMNS, TransactionSchema)
    labels = validate_days(labels_dir, LABEL_COLUMNS, LabelSchema)
    out_dir.mkdir(parents=True, exist_ok=True)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    tx.valid.drop(columns="source").sort_values("tx_datetime", kind="stable").to_parquet(
        out_dir / "transactions.parquet", index=False
    )
    labels.valid.drop(columns="source").to_parquet(out_dir / "labels.parquet", index=False)
    tx.quarantined.to_parquet(quarantine_dir / "transactions.parquet", index=False)
    labels.quarantined.to_parquet(quarantine_dir / "labels.parquet", index=False)
    counts = {
        "rows_in": len(tx.valid) + len(tx.quarantined),
        "accepted": len(tx.valid),
        "quarantined": len(tx.quarantined),
        "labels_in": len(labels.valid) + len(labels.quarantined),
        "labels_accepted": len(labels.valid),
        "labels_quarantined": len(labels.quarantined),
    }
    report = {**counts, "batches": {"transactions": batch_accounts(tx), "labels": batch_accounts(labels)}}
    (quarantine_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return counts


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


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
