"""The monitor's memory: one JSON line per run in ``stores/monitoring/decisions.jsonl``.

The cool-down reads it back: the last retrain is the newest simulated day on which a retrain that
the monitor started completed.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from core.settings import Settings


def history_file(settings: Settings) -> Path:
    """Where the decisions are kept."""
    return settings.stores_dir / "monitoring" / "decisions.jsonl"


def append_decision(settings: Settings, record: dict[str, Any]) -> Path:
    """Append one run's record (JSON-serialisable values; dates and paths become strings)."""
    path = history_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
    return path


def read_history(settings: Settings) -> list[dict[str, Any]]:
    """Every recorded run, oldest first (empty before the first run)."""
    path = history_file(settings)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def last_retrain_day(history: list[dict[str, Any]], today: dt.date) -> dt.date | None:
    """The newest simulated day, not after ``today``, on which a retrain completed."""
    days = [
        dt.date.fromisoformat(rec["today"])
        for rec in history
        if rec.get("action") == "retrain" and (rec.get("retrain") or {}).get("completed")
    ]
    past = [d for d in days if d <= today]
    return max(past) if past else None
