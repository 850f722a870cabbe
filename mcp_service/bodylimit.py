"""Request bodies over a configured size are refused with 413 before anything parses them.

A declared `Content-Length` is checked before a byte is read (the server enforces that no more
than that arrives); a chunked body is read up to the limit and then replayed to the app.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability.asgi import direct

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int | None = None) -> bytes:
    """The whole request body; `BodyTooLarge` past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: what we have is all there is
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app a body already read, then defers to the real one."""
    pending = True

    async def receive_again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


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
                    return _refuse(send, 400, b"invalid Content-Length")
                declared = value
        if declared is None:
            return self._chunked(scope, receive, send)
        if not declared.isdigit():
            return _refuse(send, 400, b"invalid Content-Length")
        if int(declared) > self.max_bytes:
            return _refuse(send, 413, b"request body too large")
        return self.app(scope, receive, send)

    async def _chunked(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive, self.max_bytes)
        except BodyTooLarge:
            await _refuse(send, 413, b"request body too large")
            return
        await self.app(scope, replay(body, receive), send)


async def _refuse(send: Send, status: int, text: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})
