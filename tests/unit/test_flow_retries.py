"""Flow tasks retry only what can heal by waiting: a service that did not answer."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from pipelines.flows import is_transient
from pipelines.train import NotEnoughData
from pipelines.validate import BatchRejected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError("tracking server down"), True),
        (TimeoutError("slow"), True),
        (MlflowException("API request failed"), True),
        (FileNotFoundError("no data in data/raw"), False),
        (NotEnoughData("no labelled fraud"), False),
        (BatchRejected("empty batch"), False),
        (ValueError("bad params"), False),
        (None, False),
    ],
)
def test_only_transient_failures_are_retried(exc: BaseException | None, expected: bool) -> None:
    assert is_transient(exc) is expected
