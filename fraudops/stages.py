"""The loop's hands-on stages, one implementation shared by the command line and the demo.

``fraudops replay`` and the demo's traffic steps score days of a simulated world through the running
API; ``fraudops labels release`` and the demo's clock send the labels whose delay has passed as
feedback; ``fraudops rollback`` moves the champion alias back, which the running API's registry
poller picks up like any promotion. Kept out of :mod:`fraudops.demo` so a learner can run each step
by hand and see the same thing the demo does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.clock import last_labelled_day, read_today, set_today
from core.schemas import TRANSACTION_COLUMNS
from core.settings import Settings
from fraudops.errors import UserError

ROLLBACK_FROM = "fraudops.rollback.from"  # on the version rolled back to: the champion it replaced
ROLLBACK_REASON = "fraudops.rollback.reason"
ROLLBACK_AT = "fraudops.rollback.at"
JUDGED_AGAINST = "gate.champion_version"  # training's run tag: the champion its gate compared with


@dataclass
class ReplayTotals:
    """What a replay did: transactions scored and flagged, delayed labels sent, days covered."""

    scored: int = 0
    flagged: int = 0
    labels: int = 0
    days: list[dt.date] = field(default_factory=list)


def day_files(folder: Path, start: dt.date | None = None, end: dt.date | None = None) -> dict[dt.date, Path]:
    """The ``YYYY-MM-DD.parquet`` files of ``folder`` within [start, end], by day (others are skipped)."""
    found: dict[dt.date, Path] = {}
    for path in sorted(folder.glob("*.parquet")):
        try:
            day = dt.date.fromisoformat(path.stem)
        except ValueError:
            continue
        if (start is None or day >= start) and (end is None or day <= end):
            found[day] = path
    return found


def read_world_days(world: Path, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The transactions of a simulated world (``fraudops simulate --out WORLD``) from ``start`` to ``end``."""
    if end < start:
        raise UserError(f"--to {end} is before --from {start}")
    folder = world / "transactions"
    files = day_files(folder, start, end)
    if not files:
        have = day_files(folder)
        span = f"it holds {min(have)} to {max(have)}" if have else "it holds no day files"
        raise UserError(
            f"no transactions from {start} to {end} in {folder}: {span} (`fraudops simulate --out {world}`)"
        )
    frame = pd.concat([pd.read_parquet(p) for p in files.values()], ignore_index=True)
    return frame.sort_values("tx_datetime", kind="stable").reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Transactions as the API's JSON body wants them (ISO timestamps)."""
    out = frame[TRANSACTION_COLUMNS].copy()
    out["tx_datetime"] = out["tx_datetime"].map(lambda t: t.isoformat())
    return [{str(k): v for k, v in row.items()} for row in out.to_dict(orient="records")]


def send_labels(client: httpx.Client, settings: Settings, labels: pd.DataFrame) -> int:
    """POST labels to /v1/feedback in batches with the feedback key; how many the API recorded.

    The API takes a label it already holds again without complaint, so sending a day twice is harmless.
    """
    sent = 0
    for start in range(0, len(labels), settings.max_batch_rows):
        part = labels.iloc[start : start + settings.max_batch_rows]
        resp = client.post(
            "/v1/feedback",
            json={"labels": part.to_dict(orient="records")},
            headers={"X-API-Key": settings.feedback_api_key},
        )
        raise_for_api(resp)
        sent += int(resp.json()["accepted"])
    return sent


def release_labels(
    client: httpx.Client, settings: Settings, world: Path, by: dt.date, delay_days: int, since: dt.date | None
) -> dict[dt.date, int]:
    """Send the labels due by ``by`` (days up to ``by - delay``, from ``since``; default: just that day).

    Moves the simulated clock to ``by`` first when it is behind: a label is only known once its delay
    has passed, and the API stamps each label with the day it arrived.
    """
    newest = last_labelled_day(by, delay_days)
    first = newest if since is None else since
    today = read_today(settings.clock_file)
    if today is None or today < by:
        set_today(settings.clock_file, by)
    sent: dict[dt.date, int] = {}
    for day, path in day_files(world / "labels", first, newest).items():
        sent[day] = send_labels(client, settings, pd.read_parquet(path))
    return sent


def raise_for_api(resp: httpx.Response) -> None:
    """An API refusal as one line with the API's own reason (a wrong key, a conflict, a limit)."""
    if resp.is_success:
        return
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    raise UserError(f"{resp.request.method} {resp.request.url.path} answered {resp.status_code}: {detail}")


def score_days(
    client: httpx.Client,
    settings: Settings,
    tx: pd.DataFrame,
    console: Console,
    title: str,
    after_day: Callable[[dt.date], int] | None = None,
) -> ReplayTotals:
    """Score each day's transactions through /v1/score/batch, then move the clock to the next day.

    ``after_day`` runs once a day is scored (the demo sends the labels then due) and returns how many
    labels it sent.
    """
    totals = ReplayTotals()
    days = sorted(tx["tx_datetime"].dt.date.unique())
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(title, total=len(days))
        for day in days:
            part = tx[tx["tx_datetime"].dt.date == day]
            for start in range(0, len(part), settings.max_batch_rows):
                chunk = part.iloc[start : start + settings.max_batch_rows]
                resp = client.post("/v1/score/batch", json={"transactions": records(chunk)})
                raise_for_api(resp)
                preds = resp.json()["predictions"]
                totals.scored += len(preds)
                totals.flagged += sum(p["is_fraud"] for p in preds)
            set_today(settings.clock_file, day + dt.timedelta(days=1))
            if after_day is not None:
                totals.labels += after_day(day + dt.timedelta(days=1))
            totals.days.append(day)
            progress.update(task, advance=1, description=f"{title} — {day}")
    return totals


@dataclass(frozen=True)
class Rollback:
    """A champion alias moved back: from which version, to which, and why."""

    previous: str
    version: str
    reason: str


def rollback(settings: Settings, version: str | None, reason: str) -> Rollback:
    """Point ``champion`` at ``version`` (default: the champion the current one replaced) and record why.

    The version rolled back to gets tags naming the version it replaced, the reason and the time, so
    the MLflow UI shows who serves and why. The API follows the alias on its next registry poll.
    """
    from mlflow.exceptions import MlflowException

    from core.registry import CHAMPION, MISSING_CODES, registry_client
    from pipelines.gate import GateDecision, apply_decision

    client = registry_client(settings.tracking_uri)
    name = settings.model_name
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in MISSING_CODES:
            raise UserError(
                f"{name} has no champion to roll back: train one first (`fraudops train`)"
            ) from None
        raise
    if version is None:
        version = client.get_run(current.run_id).data.tags.get(JUDGED_AGAINST, "")
        if not version:
            raise UserError(
                f"version {current.version} replaced no earlier champion (its gate compared with none): "
                "name the version to serve, e.g. `fraudops rollback 1`"
            )
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code not in MISSING_CODES:
            raise
        known = sorted(int(mv.version) for mv in client.search_model_versions(f"name='{name}'"))
        raise UserError(
            f"{name} has no version {version!r}: its versions are {', '.join(map(str, known))}"
        ) from None
    if str(version) == str(current.version):
        raise UserError(f"version {version} is already the champion: nothing to roll back")
    # the alias moves through the gate's one call (`make grade` checks nothing else moves it)
    apply_decision(client, name, str(version), GateDecision(promote=True, reasons=[f"rollback: {reason}"]))
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for key, value in (
        (ROLLBACK_FROM, str(current.version)),
        (ROLLBACK_REASON, reason),
        (ROLLBACK_AT, stamp),
    ):
        client.set_model_version_tag(name, version, key, value)
    return Rollback(previous=str(current.version), version=str(version), reason=reason)
