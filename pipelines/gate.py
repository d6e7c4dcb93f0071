"""The promotion gate: a challenger replaces the champion only when it is measurably better.

Both are scored on the same newest labelled window, held out of the challenger's training. The first
model must beat the random baseline by a margin. The ``champion`` alias moves in one registry call;
otherwise the new version is tagged ``challenger`` and the champion stays.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.params import GateParams
from core.registry import CHALLENGER, CHAMPION

log = logging.getLogger(__name__)


class GateDecision(BaseModel):
    """Whether to promote, and why."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    promote: bool
    """Whether the new version becomes the champion."""
    reasons: list[str] = []
    """Each rule the gate applied, with the numbers it compared."""


def judge(challenger: dict[str, float], champion: dict[str, float] | None, gate: GateParams) -> GateDecision:
    """Decide on average precision (with a margin) and card precision@k (no worse than a tolerance)."""
    decision = _judge(challenger, champion, gate)
    log.info(
        "gate: %s (%s)", "promote" if decision.promote else "keep the champion", "; ".join(decision.reasons)
    )
    return decision


def _judge(challenger: dict[str, float], champion: dict[str, float] | None, gate: GateParams) -> GateDecision:
    ap = challenger["average_precision"]
    if champion is None:
        floor = challenger["average_precision_random"] + gate.first_model_ap_margin
        ok = ap >= floor
        verdict = "beats" if ok else "does not beat"
        reason = f"first model: AP {ap:.3f} {verdict} random baseline + margin ({floor:.3f})"
        return GateDecision(promote=ok, reasons=[reason])
    need_ap = champion["average_precision"] + gate.ap_margin
    need_cpk = champion["card_precision_at_k"] - gate.cpk_tolerance
    cpk = challenger["card_precision_at_k"]
    reasons = [
        f"AP {ap:.3f} {'>=' if ap >= need_ap else '<'} champion {champion['average_precision']:.3f} + margin {gate.ap_margin}",
        f"CP@k {cpk:.3f} {'>=' if cpk >= need_cpk else '<'} champion {champion['card_precision_at_k']:.3f} - tolerance {gate.cpk_tolerance}",
    ]
    return GateDecision(promote=ap >= need_ap and cpk >= need_cpk, reasons=reasons)


def apply_decision(client: Any, name: str, version: str, decision: GateDecision) -> str:
    """Point ``champion`` (one call) or ``challenger`` at ``version``; returns the alias set."""
    alias = CHAMPION if decision.promote else CHALLENGER
    client.set_registered_model_alias(name, alias, version)
    return alias
