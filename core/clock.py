"""The simulated calendar: what "today" is, and which days' labels have been released by it."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path


def read_today(clock_file: Path) -> dt.date | None:
    """The simulated date, or None before anything set it."""
    if not clock_file.exists():
        return None
    return dt.date.fromisoformat(json.loads(clock_file.read_text(encoding="utf-8"))["today"])


def set_today(clock_file: Path, today: dt.date) -> None:
    """Move the simulated calendar to ``today`` (written atomically)."""
    clock_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = clock_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"today": today.isoformat()}), encoding="utf-8")
    tmp.replace(clock_file)


def last_labelled_day(today: dt.date, delay_days: int) -> dt.date:
    """Labels of day ``d`` are released on day ``d + delay``: the newest labelled day by ``today``."""
    return today - dt.timedelta(days=delay_days)


def labels_released(day: dt.date, today: dt.date, delay_days: int) -> bool:
    """Whether the labels of ``day`` are known on ``today``."""
    return day <= last_labelled_day(today, delay_days)


class ClockWatch:
    """:func:`read_today` for a hot path: the file is read again only when it changed (one stat a call)."""

    def __init__(self, clock_file: Path) -> None:
        self._file = clock_file
        self._stamp: tuple[int, int, int] | None = None
        self._today: dt.date | None = None

    def today(self) -> dt.date | None:
        """The simulated date, or None before anything set it."""
        try:
            stat = os.stat(self._file)
        except FileNotFoundError:
            self._stamp, self._today = None, None
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._today, self._stamp = read_today(self._file), stamp
        return self._today
