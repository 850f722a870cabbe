"""A round-robin HTTP load balancer for tests: each request goes to the next replica, so
consecutive steps of a flow land on different replicas; it records who served what. The
replicas' own calls to the embedded issuer's token endpoint take turns of their own, so a
client's steps alternate whatever the server does in between."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from tests.support.processes import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class RoundRobin:
    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.port = free_port()
        self.served: list[tuple[str, str, int]] = []  # (method, path, replica index)
        self._turns: dict[str, int] = {}
        self.steer: dict[str, int] = {}  # path -> the replica its next request goes to
        self._server: uvicorn.Server | None = None
        self._client: httpx.AsyncClient | None = None  # the server thread's own
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def replicas_of(self, method: str, path: str) -> list[int]:
        return [i for m, p, i in self.served if m == method and p == path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        steered = self.steer.pop(scope["path"], None)
        if steered is not None:
            index = steered
        else:
            turn = "upstream" if scope["path"] == "/oauth2/token" else "client"
            index = self._turns.get(turn, 0) % len(self.backends)
            self._turns[turn] = index + 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (k.decode(), v.decode()) for k, v in scope["headers"] if k.decode() not in HOP_BY_HOP
        ]
        headers.append(("host", f"127.0.0.1:{self.port}"))
        query = scope["query_string"].decode()
        url = f"{self.backends[index]}{scope['path']}" + (f"?{query}" if query else "")
        self.served.append((scope["method"], scope["path"], index))
        if self._client is None:
            # A proxy keeps no cookies: each browser's are its own.
            jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
            self._client = httpx.AsyncClient(timeout=30, cookies=jar)
        answer = await self._client.request(scope["method"], url, headers=headers, content=body)
        out = [
            (k.encode(), v.encode())
            for k, v in answer.headers.multi_items()
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"
        ]
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        await send({"type": "http.response.body", "body": answer.content})

    @contextmanager
    def running(self) -> Iterator[RoundRobin]:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()))
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            yield self
        finally:
            self._server.should_exit = True
            self._thread.join(10)
