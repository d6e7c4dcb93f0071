"""Request body size limit: a pure ASGI middleware, so a request under the limit pays one header scan.

A body whose ``Content-Length`` is over the limit is refused before the app reads a byte of it. A
body without one (chunked transfer) is counted while the app reads it and refused as soon as it
grows past the limit, so the app never holds more than the limit plus one chunk.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings, get_settings

CONTENT_TOO_LARGE = 413


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (FastAPI answers it as a 413)."""

    def __init__(self, received: int, limit: int) -> None:
        super().__init__(CONTENT_TOO_LARGE, detail=too_large(f"{received} bytes read so far", limit))


def too_large(size: str, limit: int) -> str:
    """The 413 message: how large, the limit, and what to do."""
    return f"{size} exceed the limit of {limit} bytes per request body: split the batch"


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodySizeLimit:
    """Answer 413 to a request whose body is larger than ``settings.max_body_bytes``.

    ``settings`` default to the process settings, read when the app builds its middleware stack
    (at startup, like the rest of the app's settings).
    """

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        self.app = app
        self.limit = (settings or get_settings()).max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = _declared_length(scope)
        if declared is not None:  # the server reads no more than Content-Length: nothing to count
            if declared <= limit:
                await self.app(scope, receive, send)
                return
            detail = too_large(f"{declared} bytes", limit)
            await JSONResponse({"detail": detail}, CONTENT_TOO_LARGE)(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(received, limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside FastAPI's handlers (e.g. by a middleware)
            if started:
                raise
            await JSONResponse({"detail": exc.detail}, CONTENT_TOO_LARGE)(scope, receive, send)
