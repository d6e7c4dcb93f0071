"""The prediction log and the feedback log: schema, writer and reader in one place.

Serving appends one JSON line per scored transaction (features included, so monitoring sees exactly
what the model saw) into a file per transaction day; feedback labels go to a parallel log. Monitoring
reads both. JSON lines keep appends cheap and a crash loses at most the line being written.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from core.schemas import LABEL_COLUMNS, SCORE_COLUMNS, TRANSACTION_COLUMNS

_lock = threading.Lock()


def prediction_columns(features: list[str]) -> list[str]:
    """Columns of a prediction-log record."""
    return TRANSACTION_COLUMNS + [f"f_{name}" for name in features] + SCORE_COLUMNS


def _append(folder: Path, records: Iterable[dict[str, object]], day_key: str) -> int:
    by_day: dict[str, list[str]] = {}
    for rec in records:
        by_day.setdefault(str(rec[day_key])[:10], []).append(json.dumps(rec, default=str))
    folder.mkdir(parents=True, exist_ok=True)
    with _lock:
        for day, lines in by_day.items():
            with (folder / f"{day}.jsonl").open("a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
    return sum(len(v) for v in by_day.values())


def append_predictions(folder: Path, records: Iterable[dict[str, object]]) -> int:
    """Append scored transactions (dicts with :func:`prediction_columns`); returns rows written."""
    return _append(folder, records, "tx_datetime")


def append_feedback(folder: Path, records: Iterable[dict[str, object]]) -> int:
    """Append fraud labels, filed by the day they were received."""
    return _append(folder, records, "received_on")


def _read(folder: Path, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    frames = []
    for path in sorted(folder.glob("*.jsonl")) if folder.exists() else []:
        day = dt.date.fromisoformat(path.stem)
        if (start is None or day >= start) and (end is None or day <= end):
            frames.append(pd.read_json(path, lines=True, dtype=False, precise_float=True))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_predictions(folder: Path, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
    """Scored transactions whose transaction day lies in [start, end]; the newest score per id wins."""
    frame = _read(folder, start, end)
    if frame.empty:
        return frame
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], utc=True)
    return frame.drop_duplicates("transaction_id", keep="last").reset_index(drop=True)


def read_feedback(folder: Path) -> pd.DataFrame:
    """All labels received so far; the newest label per transaction wins."""
    frame = _read(folder, None, None)
    if frame.empty:
        return pd.DataFrame(columns=LABEL_COLUMNS)
    return frame.drop_duplicates("transaction_id", keep="last")[LABEL_COLUMNS].reset_index(drop=True)
