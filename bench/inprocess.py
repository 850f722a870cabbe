"""An ASGI app driven in process, the way a server calls it: its lifespan run (`Driver`), and
the scope of a POST to the MCP endpoint (`post_scope`). For the bench scripts that measure the
request path without HTTP (bench/ratelimit.py, bench/metrics_overhead.py, bench/breakdown.py)."""

from __future__ import annotations

import asyncio
from typing import Any


def post_scope(headers: list[tuple[bytes, bytes]], path: str = "/mcp") -> dict[str, Any]:
    """The HTTP scope uvicorn gives a POST to `path` with `headers`, from a loopback client."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


class Driver:
    """An ASGI app with its lifespan running, called the way a server would call it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        assert message["type"] == "lifespan.startup.complete", message

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        assert self.task is not None
        await self.task

    async def post(self, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
        delivered = False
        sent: list[Any] = []

        async def receive() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await asyncio.get_running_loop().create_future()  # never disconnects

        async def send(message: Any) -> None:
            sent.append(message)

        await self.app(post_scope(headers), receive, send)
        return int(sent[0]["status"])
