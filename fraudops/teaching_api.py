"""The demo's ``--feature-mismatch`` switch: the real API, with one online feature computed wrongly.

A teaching switch, never a production path: only ``fraudops demo --feature-mismatch`` starts the API
through this module (``python -m fraudops.teaching_api``), and it sets FRAUDOPS_TEACHING_MISMATCH in
that process alone. The mismatch is a classic one: serving receives amounts in cents while training
used currency units, so the ``tx_amount`` feature the model sees is 100 times too large. Everything
else (the model, the registry, the prediction log) is the real thing, so the demo shows what a
training/serving skew costs; tests/api/test_api_parity.py is what catches it in the real pipeline.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.online import OnlineFeatures

ENV = "FRAUDOPS_TEACHING_MISMATCH"
MODES = {"tx_amount_cents": ("tx_amount", 100.0)}


def skew(method: Callable[..., np.ndarray], column: str, factor: float) -> Callable[..., np.ndarray]:
    """``method``'s features with ``column`` multiplied by ``factor``."""

    def skewed(self: OnlineFeatures, rows: Sequence[Any]) -> np.ndarray:
        out = method(self, rows)
        if len(out):
            out[:, self.names.index(column)] *= np.float32(factor)
        return out

    return skewed


def inject(mode: str) -> None:
    """Make the online feature state compute ``mode``'s feature wrongly, in this process only."""
    if mode not in MODES:
        raise SystemExit(f"{ENV}={mode!r} is not a teaching mismatch: choose from {', '.join(MODES)}")
    column, factor = MODES[mode]
    OnlineFeatures.add_transactions = skew(OnlineFeatures.add_transactions, column, factor)  # type: ignore[method-assign]
    OnlineFeatures.features_of = skew(OnlineFeatures.features_of, column, factor)  # type: ignore[method-assign]


def main() -> None:
    """``fraudops serve`` with the mismatch named by FRAUDOPS_TEACHING_MISMATCH injected first."""
    inject(os.environ.get(ENV, "tx_amount_cents"))
    from fraudops.cli import main as cli_main

    sys.argv = ["fraudops", "serve", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
