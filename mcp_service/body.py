"""Reading a request body once and handing it on: for the layers that must look inside it."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.types import Message, Receive

from mcp_service.errors import BodyTooLarge

MAX_FORM_BYTES = 8192


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


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """An urlencoded form of at most `limit` bytes, each field once: `ValueError` (or
    `BodyTooLarge`) otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise ValueError("Content-Type must be application/x-www-form-urlencoded")
    body = await read_body(request.receive, limit)
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ValueError("form body is not ASCII") from None
    if any(len(values) > 1 for values in fields.values()):
        raise ValueError("a form parameter is repeated")
    return {name: values[0] for name, values in fields.items()}
