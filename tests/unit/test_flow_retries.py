"""Flow tasks retry only what can heal by waiting: a service that did not answer.

The retries are Prefect's, so they are checked on real task runs in a real flow (session Prefect server).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from prefect import flow
from prefect.states import State

from core.settings import Settings
from pipelines.flows import is_transient, tasks
from pipelines.train import NotEnoughData
from pipelines.validate import BatchRejected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError("tracking server down"), True),
        (TimeoutError("slow"), True),
        (MlflowException("API request failed"), True),
        (FileNotFoundError("no data in data/raw"), False),  # an OSError, yet waiting will not create it
        (NotEnoughData("no labelled fraud"), False),
        (BatchRejected("empty batch"), False),
        (ValueError("bad params"), False),
        (None, False),
    ],
)
def test_only_transient_failures_are_retried(exc: BaseException | None, expected: bool) -> None:
    assert is_transient(exc) is expected


def failing(times: int, exc: Exception, calls: list[int]) -> Callable[[], str]:
    """A step that raises ``exc`` on its first ``times`` calls, then answers."""

    def step() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= times:
            raise exc
        return "done"

    return step


def run_in_flow(tmp_path: Path, step: Callable[[], str], retry: bool) -> State[str]:
    """Run ``step`` as the flows do (``pipelines.flows.tasks``) in a one-task flow; its final state."""
    settings = Settings(project_dir=tmp_path, task_retries=2, retry_delay_s=0)

    @flow(name="retry check")
    def one_step() -> str:
        return tasks(settings)("flaky step", step, retry=retry)()

    return one_step(return_state=True)


def test_a_service_that_answers_on_the_third_try_completes_the_flow(
    tmp_path: Path, prefect_server: None
) -> None:
    calls: list[int] = []
    state = run_in_flow(tmp_path, failing(2, ConnectionError("tracking server down"), calls), retry=True)
    assert state.is_completed() and state.result() == "done"
    assert calls == [1, 2, 3]  # the first try and FRAUDOPS_TASK_RETRIES=2 retries


def test_a_service_that_never_answers_fails_the_flow_after_the_retries(
    tmp_path: Path, prefect_server: None
) -> None:
    calls: list[int] = []
    state = run_in_flow(tmp_path, failing(9, ConnectionRefusedError("refused"), calls), retry=True)
    assert state.is_failed() and calls == [1, 2, 3]
    with pytest.raises(ConnectionRefusedError, match="refused"):
        state.result()


def test_bad_data_is_not_retried(tmp_path: Path, prefect_server: None) -> None:
    calls: list[int] = []
    state = run_in_flow(tmp_path, failing(2, ValueError("amount is negative"), calls), retry=True)
    assert state.is_failed() and calls == [1]
    with pytest.raises(ValueError, match="amount is negative"):
        state.result()


def test_a_step_not_safe_to_repeat_runs_once_even_when_the_failure_is_transient(
    tmp_path: Path, prefect_server: None
) -> None:
    calls: list[int] = []
    state = run_in_flow(tmp_path, failing(2, ConnectionError("tracking server down"), calls), retry=False)
    assert state.is_failed() and calls == [1]
