"""The monitoring timeline as a PNG: drift share and live average precision over the simulated days.

One run's reports say what happened on one day; the timeline shows the story: drift rising as the
season changes, live AP falling under the floor a label delay later, the retrain that brought it back.
It is rewritten from the history (:mod:`monitoring.history`) at every run, into
``reports/monitoring/timeline.png``, and logged as an artifact of that run's MLflow run.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from monitoring.history import read_history
from monitoring.summary import MonitoringSummary
from pipelines.plots import DPI, pyplot

TIMELINE_PNG = "timeline.png"
SIZE_INCHES = (9.0, 4.8)  # 900 x 480 pixels


@dataclass(frozen=True)
class TimelinePoint:
    """One monitored day: what the plot draws (None: not measured that day)."""

    day: dt.date
    drift_share: float | None
    drift_threshold: float | None
    live_average_precision: float | None
    floor: float | None
    action: str
    retrained: bool


def timeline_file(settings: Settings) -> Path:
    """Where the timeline is written (beside the runs' HTML reports)."""
    return settings.reports_dir / "monitoring" / TIMELINE_PNG


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def timeline_series(runs: list[MonitoringSummary]) -> list[TimelinePoint]:
    """One point per simulated day, oldest first; a day monitored twice keeps its latest run.

    A retrain writes a started line and then a finished one for the same day: the later one wins.
    """
    latest: dict[dt.date, MonitoringSummary] = {}
    for run in runs:
        latest[run.today] = run
    points = []
    for day in sorted(latest):
        run = latest[day]
        retrained = run.retrain is not None and run.retrain.completed
        points.append(
            TimelinePoint(
                day=day,
                drift_share=_finite(run.drift.share) if run.drift else None,
                drift_threshold=run.drift.drift_share if run.drift else None,
                live_average_precision=_finite(run.performance.average_precision),
                floor=_finite(run.performance.floor),
                action=run.decision.action,
                retrained=retrained,
            )
        )
    return points


def save_timeline(points: list[TimelinePoint], path: Path) -> Path:
    """Drift share and live AP on one axis (both 0-1), with the lines they are judged by; retrains marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE_INCHES)
    days = [p.day for p in points]
    for attr, label, style in (
        ("drift_share", "drift share (columns drifted)", {"color": "tab:orange", "marker": "o"}),
        ("drift_threshold", "drift-share threshold", {"color": "tab:orange", "linestyle": ":"}),
        ("live_average_precision", "live average precision", {"color": "tab:blue", "marker": "s"}),
        ("floor", "AP floor", {"color": "tab:red", "linestyle": "--", "drawstyle": "steps-post"}),
    ):
        values = [getattr(p, attr) for p in points]
        ys = [math.nan if v is None else v for v in values]
        if any(v is not None for v in values):
            ax.plot(days, ys, label=label, **style)
    for n, p in enumerate(q for q in points if q.retrained):
        ax.axvline(p.day, color="tab:green", alpha=0.6, label="retrained" if n == 0 else None)
    ax.set(xlabel="simulated day", ylim=(0, 1.02), title="Monitoring: drift share and live AP per run")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="upper left")
    else:  # no run measured anything yet (no drift, no labelled traffic): say so rather than draw blank
        ax.text(0.5, 0.5, "nothing measured yet", transform=ax.transAxes, ha="center", color="grey")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_timeline(settings: Settings, summary: MonitoringSummary) -> Path:
    """Redraw the timeline from the recorded runs and this one (not in the history yet)."""
    return save_timeline(timeline_series([*read_history(settings), summary]), timeline_file(settings))
