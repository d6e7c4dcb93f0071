"""Errors a user can cause or fix, turned into one line that says what to do next."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

err_console = Console(stderr=True)


class UserError(Exception):
    """A problem the user can fix; its message says how."""


def _expected_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause or fix. Not LookupError: a KeyError or IndexError is a bug (traceback)."""
    from pydantic import ValidationError

    from core.registry import ModelNotFound

    expected: list[type[BaseException]] = [
        UserError,
        FileNotFoundError,
        ValueError,
        ModelNotFound,
        RuntimeError,
        ConnectionError,
        ValidationError,
    ]
    try:
        from mlflow.exceptions import MlflowException

        expected.append(MlflowException)
    except ImportError:  # pragma: no cover - mlflow is a dependency
        pass
    try:
        from dvc.exceptions import DvcException

        expected.append(DvcException)
    except ImportError:  # pragma: no cover - dvc is a dependency
        pass
    import httpx

    expected.append(httpx.HTTPError)
    return tuple(expected)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print expected errors as one line and exit 1; anything else is a bug and keeps its traceback.

    ``FRAUDOPS_DEBUG=1`` shows the traceback of expected errors too.
    """
    try:
        yield
    except _expected_errors() as exc:
        if os.environ.get("FRAUDOPS_DEBUG") == "1":
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def ensure_port_free(host: str, port: int) -> None:
    """Refuse early, with advice, when something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"cannot listen on {host}:{port} ({exc.strerror}): stop what runs there or pass --port"
            ) from None
