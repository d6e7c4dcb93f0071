"""Scoring and feedback: raw transactions in, online features, champion verdicts, logs out.

Both batch forms (rows, :class:`~serving.schemas.BatchIn`; columns, :class:`~serving.schemas.ColumnsIn`)
and the single transaction become one :class:`Transactions` and take the same path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi.responses import Response

from core.features import AMOUNT_SCALE
from core.online import EPOCH, HeldRow, Row
from core.predlog import PredictionBatch, PredictionLogError
from serving.deps import Services
from serving.model_store import LoadedModel
from serving.schemas import ColumnsIn, LabelIn, TransactionIn

ONE_MICROSECOND = dt.timedelta(microseconds=1)
VERDICT_FIELDS = ("fraud_probability", "is_fraud", "threshold", "model_version")  # a log record's verdict
FLUSH_TIMEOUT_S = 2.0  # how long a resubmission waits for the log to hold the verdicts queued before it
USED_ID = "transaction ids already used by a different transaction (another time, card, terminal or amount)"
RELABELLED = "transactions already labelled differently (a label, once recorded, is not replaced)"


@dataclass(frozen=True)
class Transactions:
    """Validated transactions as columns; ``micros`` are epoch microseconds (UTC)."""

    ids: list[str]
    micros: np.ndarray
    customers: list[int]
    terminals: list[int]
    amounts: list[float]

    @classmethod
    def of(
        cls,
        ids: list[str],
        times: Sequence[dt.datetime],
        customers: list[int],
        terminals: list[int],
        amounts: list[float],
    ) -> Transactions:
        # aware datetimes subtract in UTC whatever their offsets: exact integer microseconds
        micros = np.array([(when - EPOCH) // ONE_MICROSECOND for when in times], dtype=np.int64)
        return cls(ids, micros, customers, terminals, amounts)

    @classmethod
    def from_rows(cls, transactions: list[TransactionIn]) -> Transactions:
        return cls.of(
            [t.transaction_id for t in transactions],
            [t.tx_datetime for t in transactions],
            [t.customer_id for t in transactions],
            [t.terminal_id for t in transactions],
            [t.tx_amount for t in transactions],
        )

    @classmethod
    def from_columns(cls, columns: ColumnsIn) -> Transactions:
        return cls.of(
            columns.transaction_id,
            columns.tx_datetime,
            columns.customer_id,
            columns.terminal_id,
            columns.tx_amount,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: list[int]) -> Transactions:
        """The transactions at ``indices``, in that order."""
        return Transactions(
            [self.ids[i] for i in indices],
            self.micros[indices],
            [self.customers[i] for i in indices],
            [self.terminals[i] for i in indices],
            [self.amounts[i] for i in indices],
        )


@dataclass(frozen=True)
class Verdicts:
    """The champion's answers for :class:`Transactions`, in their order.

    ``threshold`` and ``version`` hold one value for all rows, or one per row when a resubmitted
    transaction's stored verdict came from another model than the fresh ones.
    """

    ids: list[str]
    probabilities: list[float]
    flags: list[bool]
    threshold: float | list[float]
    version: str | list[str]

    def rows(self) -> list[dict[str, Any]]:
        """As :class:`~serving.schemas.ScoreOut` dicts."""
        n = len(self.ids)
        thresholds = self.threshold if isinstance(self.threshold, list) else [self.threshold] * n
        versions = self.version if isinstance(self.version, list) else [self.version] * n
        return [
            {
                "transaction_id": tid,
                "fraud_probability": p,
                "is_fraud": flag,
                "threshold": threshold,
                "model_version": version,
            }
            for tid, p, flag, threshold, version in zip(
                self.ids, self.probabilities, self.flags, thresholds, versions, strict=True
            )
        ]

    def columns(self) -> dict[str, Any]:
        """As a :class:`~serving.schemas.ColumnsOut` dict."""
        return {
            "transaction_id": self.ids,
            "fraud_probability": self.probabilities,
            "is_fraud": self.flags,
            "threshold": self.threshold,
            "model_version": self.version,
        }

    def rows_by_id(self) -> dict[str, dict[str, Any]]:
        """:meth:`rows` keyed by transaction id."""
        return {row["transaction_id"]: row for row in self.rows()}

    @classmethod
    def merge(cls, ids: list[str], parts: dict[str, dict[str, Any]]) -> Verdicts:
        """The verdicts of ``ids`` from per-id answers (:meth:`rows` dicts), one value kept when uniform."""
        rows = [parts[tid] for tid in ids]
        thresholds = [row["threshold"] for row in rows]
        versions = [row["model_version"] for row in rows]
        return cls(
            ids,
            [row["fraud_probability"] for row in rows],
            [row["is_fraud"] for row in rows],
            thresholds[0] if len(set(thresholds)) == 1 else thresholds,
            versions[0] if len(set(versions)) == 1 else versions,
        )


class ConflictError(Exception):
    """Transaction ids or labels already used by something different (the API answers 409)."""

    def __init__(self, what: str, ids: Sequence[str]) -> None:
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        super().__init__(f"{what}: {shown}")
        self.ids = list(ids)


def json_response(content: Any) -> Response:
    """``content`` serialised by orjson: the verdicts are built to the response schema already, so they
    skip FastAPI's validate-and-serialise pass (which costs more than the scoring itself)."""
    return Response(orjson.dumps(content), media_type="application/json")


def score_transactions(services: Services, champion: LoadedModel, tx: Transactions) -> Verdicts:
    """Features from the online state, the champion's verdicts, each prediction queued for the log
    and the decisions counted.

    One rule for a transaction id seen before (:func:`check_resubmissions`): the same transaction
    sent again (a client retrying after a timeout or a 503, a replay) is idempotent and gets its stored
    verdict back; a different transaction under a used id is refused (:class:`ConflictError`, 409) and
    changes nothing. The prediction log is written off the request path
    (:class:`core.predlog.PredictionWriter`); a log that cannot take rows refuses the request (503)
    rather than losing a prediction.
    """
    seconds = (tx.micros // 1_000_000).tolist()  # floored, as core.features does
    rows = list(zip(tx.ids, seconds, tx.customers, tx.terminals, tx.amounts, strict=True))
    held = services.state.held(tx.ids)  # ids are unique within a request (the schemas refuse repeats)
    if not held:  # the usual case: every transaction is new
        probabilities, threshold, version = _score(
            services, champion, tx, services.state.add_transactions(rows)
        )
        flags = probabilities >= threshold
        return Verdicts(tx.ids, probabilities.tolist(), flags.tolist(), threshold, version)
    check_resubmissions(rows, held)
    parts = stored_verdicts(services, tx, [i for i, tid in enumerate(tx.ids) if tid in held])
    for indices, add in (
        ([i for i, tid in enumerate(tx.ids) if tid not in held], services.state.add_transactions),
        ([i for i, tid in enumerate(tx.ids) if tid in held and tid not in parts], services.state.features_of),
    ):  # new transactions; then transactions ingested but never scored, already in the state
        if indices:
            part = tx.subset(indices)
            probabilities, threshold, version = _score(
                services, champion, part, add([rows[i] for i in indices])
            )
            flags = probabilities >= threshold
            parts.update(
                Verdicts(part.ids, probabilities.tolist(), flags.tolist(), threshold, version).rows_by_id()
            )
    return Verdicts.merge(tx.ids, parts)


def _score(
    services: Services, champion: LoadedModel, tx: Transactions, features: np.ndarray
) -> tuple[np.ndarray, float, str]:
    """The champion's probabilities for ``tx`` (``features``: their rows), queued for the log and counted."""
    probabilities = champion.predict_fraud(features).astype(np.float64)
    threshold, version = champion.info.threshold, champion.info.version
    flags = probabilities >= threshold
    services.predictions.submit(
        PredictionBatch(
            *(tx.ids, tx.micros, tx.customers, tx.terminals, tx.amounts, features, probabilities, flags),
            *(threshold, version, dt.datetime.now(dt.UTC).isoformat()),
        )
    )
    n_fraud = int(flags.sum())
    services.telemetry.count_decisions(n_fraud, len(tx) - n_fraud)
    return probabilities, threshold, version


def check_resubmissions(rows: list[Row], held: dict[str, HeldRow]) -> None:
    """:class:`ConflictError` for the ``rows`` whose ids name other transactions in the feature state
    (``held``: what it holds of them; the stored record's exact time is checked by :func:`stored_verdicts`)."""
    conflicts = [
        tid
        for tid, seconds, customer, terminal, amount in rows
        if tid in held and held[tid] != (seconds, customer, terminal, round(amount * AMOUNT_SCALE))
    ]
    if conflicts:
        raise ConflictError(USED_ID, conflicts)


def stored_verdicts(services: Services, tx: Transactions, indices: list[int]) -> dict[str, dict[str, Any]]:
    """The logged verdicts of transactions sent again (by id); those never scored (ingested only) are
    absent. :class:`ConflictError` when the logged transaction differs (its exact time or amount)."""
    if not indices:
        return {}
    if not services.predictions.flush(timeout=FLUSH_TIMEOUT_S):
        raise PredictionLogError(
            "the prediction log is behind: a resubmission's stored verdict cannot be read yet"
        )
    found: dict[str, dict[str, Any]] = {}
    conflicts = []
    log = services.predictions.log
    for i in indices:
        tid, micros = tx.ids[i], int(tx.micros[i])
        record = log.read_prediction(tid, EPOCH + dt.timedelta(microseconds=micros))  # the same second
        if record is None:
            continue
        logged_micros = (record["tx_datetime"] - EPOCH) // ONE_MICROSECOND
        if logged_micros != micros or record["tx_amount"] != tx.amounts[i]:
            conflicts.append(tid)
            continue
        found[tid] = {"transaction_id": tid} | {name: record[name] for name in VERDICT_FIELDS}
    if conflicts:
        raise ConflictError(USED_ID, conflicts)
    return found


def record_feedback(services: Services, labels: list[LabelIn]) -> int:
    """Append the new labels to the feedback log, then teach the feature state them; returns how many
    labels of the request are recorded (new ones and ones already recorded identically).

    One rule for a label seen before (in the feedback log, or ingested): the same label again is
    idempotent; a different label for a labelled transaction is refused (:class:`ConflictError`, 409), as ingestion quarantines it.
    Logged first: a label the log refused (:class:`~core.predlog.PredictionLogError`) leaves the
    features as they were, so a retry applies it once and monitoring judges what scoring used.
    """
    given: dict[str, LabelIn] = {}
    conflicts: dict[str, None] = {}
    for label in labels:
        if given.setdefault(label.transaction_id, label).tx_fraud != label.tx_fraud:
            conflicts[label.transaction_id] = None
    ids = list(given)
    applied = services.state.labels_of(ids)
    recorded = {**applied, **services.predictions.log.read_labels(ids)}
    conflicts.update((tid, None) for tid, fraud in recorded.items() if given[tid].tx_fraud != fraud)
    if conflicts:
        raise ConflictError(RELABELLED, list(conflicts))
    new = [label for tid, label in given.items() if tid not in recorded]
    if new:
        today = (services.clock.today() or dt.datetime.now(dt.UTC).date()).isoformat()
        services.predictions.log.append_feedback(
            [{**label.model_dump(), "received_on": today} for label in new]
        )
    # also the labels an earlier attempt logged but could not apply (a state in Redis out of reach then):
    # the retry the 503 asked for completes it (labels of transactions the state does not hold are ignored)
    unapplied = {tid: label.tx_fraud for tid, label in given.items() if tid not in applied}
    if unapplied:
        services.state.add_labels(unapplied)
    return len(given)
