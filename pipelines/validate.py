"""DVC stage ``validate``: raw days -> validated store and quarantine, every row accounted for.

Raw days are immutable; this stage re-derives the validated data from them, so it is reproducible.
Run by ``dvc repro`` as ``python -m pipelines.validate`` from the project root.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.errors as pa_errors

from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS, LabelSchema, TransactionSchema
from core.settings import get_settings

log = logging.getLogger(__name__)


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
    if frame.empty:
        raise BatchRejected(f"{path}: empty batch")
    return frame


def validate_rows(
    frame: pd.DataFrame, schema: type[TransactionSchema] | type[LabelSchema]
) -> ValidationResult:
    """Validate lazily (all errors collected); split valid rows from quarantined ones with reasons."""
    try:
        return ValidationResult(schema.validate(frame, lazy=True), frame.iloc[0:0].assign(reason=[]))
    except pa_errors.SchemaErrors as err:
        cases = err.failure_cases.dropna(subset=["index"])
        reasons = cases.groupby("index").apply(
            lambda g: "; ".join(f"{c}: {chk}" for c, chk in zip(g["column"], g["check"], strict=True)),
            include_groups=False,
        )
        bad = frame.index.isin(reasons.index)
        quarantined = frame[bad].assign(reason=reasons.reindex(frame.index[bad]).to_numpy())
        valid = schema.validate(frame[~bad], lazy=True) if (~bad).any() else frame.iloc[0:0]
        return ValidationResult(valid, quarantined)


def validate_days(
    folder: Path, columns: list[str], schema: type[TransactionSchema] | type[LabelSchema]
) -> ValidationResult:
    """Validate every day file of ``folder``; an id seen on an earlier day is quarantined too."""
    valid, bad = [], []
    for path in sorted(folder.glob("*.parquet")):
        result = validate_rows(read_batch(path, columns), schema)
        valid.append(result.valid)
        bad.append(result.quarantined.assign(source=path.name))
    accepted = _concat(valid, columns)
    repeated = accepted.duplicated("transaction_id", keep="first")
    bad.append(accepted[repeated].assign(reason="transaction_id: already seen on an earlier day", source=""))
    quarantined = pd.concat(
        [b.astype(str) for b in bad if not b.empty] or [pd.DataFrame()], ignore_index=True
    )
    return ValidationResult(accepted[~repeated].reset_index(drop=True), quarantined)


def validate_store(raw_dir: Path, labels_dir: Path, out_dir: Path, quarantine_dir: Path) -> dict[str, int]:
    """Validate all raw days and label days; write the validated store, the quarantine and a report."""
    tx = validate_days(raw_dir, TRANSACTION_COLUMNS, TransactionSchema)
    labels = validate_days(labels_dir, LABEL_COLUMNS, LabelSchema)
    out_dir.mkdir(parents=True, exist_ok=True)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    tx.valid.sort_values("tx_datetime", kind="stable").to_parquet(
        out_dir / "transactions.parquet", index=False
    )
    labels.valid.to_parquet(out_dir / "labels.parquet", index=False)
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
    (quarantine_dir / "report.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")
    return counts


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def main() -> None:
    """Entry point of the DVC stage."""
    settings = get_settings()
    data = settings.data_dir
    counts = validate_store(settings.raw_dir, settings.labels_dir, data / "validated", data / "quarantine")
    log.info("validate: %s", ", ".join(f"{k} {v:,}" for k, v in counts.items()))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
