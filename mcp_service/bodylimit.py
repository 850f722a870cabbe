"""Request bodies over a configured size are refused with 413 before anything parses them.

A declared `Content-Length` is checked before a byte is read (the server enforces that no more
than that arrives); a chunked body is read up to the limit and then replayed to the app.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_service.body import read_body, replay
from mcp_service.errors import BodyTooLarge
from mcp_service.refusals import problem
from observability.asgi import direct

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
TOO_LARGE = problem(
    413,
    "body_too_large",
    "The request body is larger than this server accepts.",
    headers={"connection": "close"},
)
BAD_LENGTH = problem(
    400,
    "invalid_content_length",
    "The Content-Length header is not one decimal number.",
    headers={"connection": "close"},
)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = direct(app)  # a bound __call__: cheaper to call per request
        self.max_bytes = max_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Not a coroutine itself: a body whose declared length is within the limit (the usual
        request) goes straight to the app's own coroutine, adding no frame. Never the
        outermost app (uvicorn tells ASGI 3 apps by an `async def __call__`)."""
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            return self.app(scope, receive, send)
        declared = None
        for name, value in scope["headers"]:  # a loop: cheaper than a comprehension here
            if name == b"content-length":
                if declared is not None:
                    return BAD_LENGTH.send(send)
                declared = value
        if declared is None:
            return self._chunked(scope, receive, send)
        if not declared.isdigit():
            return BAD_LENGTH.send(send)
        if int(declared) > self.max_bytes:
            return TOO_LARGE.send(send)
        return self.app(scope, receive, send)

    async def _chunked(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive, self.max_bytes)
        except BodyTooLarge:
            await TOO_LARGE.send(send)
            return
        await self.app(scope, replay(body, receive), send)
