"""The outermost ASGI layer: request id, HTTP metrics, the access log and unhandled errors.

It is a plain ASGI middleware (no BaseHTTPMiddleware: that one costs a task and a stream per
request) doing a fixed, small amount of work per request: one header scan, one dict lookup
for the route template, one contextvar set, one histogram observation on a pre-bound child.
The access-log line is optional (ACCESS_LOG) because formatting and writing it costs more
than all of the rest together; the request id, refusals and errors are logged either way.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterable, Mapping
from time import perf_counter
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability.logs import RequestContext, enter_request, leave_request, redact

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
MAX_LOGGED_PATH = 256
CLIENT_CLOSED = 499  # the app returned without starting a response (nginx's convention)

access_log = logging.getLogger("mcp_service.access")
error_log = logging.getLogger("mcp_service.errors")


class HttpRecorder(Protocol):
    """What the middleware records into; `observability.metrics.Metrics` is one."""

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None: ...


class _Ids:
    """New request ids: 16 random hex digits per process, then a counter (32 digits in all).
    Unique across replicas and workers, and cheaper than 16 fresh random bytes per request."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFFFFFF:016x}"


_ids = _Ids()


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-Id when it is sane (1-128 of [A-Za-z0-9._:-]), else a new one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SANE_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return _ids.new()


class ObserveRequests:
    """ASGI middleware. `routes` maps exact paths to route templates; any other path is
    recorded as "other", so a scan of random URLs cannot grow the metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpRecorder | None,
        routes: Mapping[str, str] | Iterable[str],
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes: dict[str, str] = (
            dict(routes) if isinstance(routes, Mapping) else {path: path for path in routes}
        )
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        rid = None
        for name, value in scope["headers"]:  # request_id(), inline: every request runs this
            if name == REQUEST_ID_HEADER:
                if _SANE_ID.fullmatch(value):
                    rid = value.decode("ascii")
                break
        if rid is None:
            rid = _ids.new()
        route = self.routes.get(scope["path"], "other")
        context = RequestContext(rid, route, scope)
        token = enter_request(context)
        echo = (REQUEST_ID_HEADER, rid.encode("ascii"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status == 0:
                status = 500
            error_log.exception(
                "unhandled error",
                extra={"method": scope["method"], "path": _path(scope), "status": status},
            )
            raise
        finally:
            elapsed = perf_counter() - started
            status = status or CLIENT_CLOSED
            if self.metrics is not None:
                self.metrics.http_request(scope["method"], route, status, elapsed)
            if self.access_log:
                self._log(scope, status, elapsed)
            leave_request(token)

    @staticmethod
    def _log(scope: Scope, status: int, elapsed: float) -> None:
        client = scope.get("client")
        access_log.info(
            "request",
            extra={
                "method": scope["method"],
                "path": _path(scope),
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "client_ip": client[0] if client else None,
            },
        )


def _path(scope: Scope) -> str:
    """The raw path, redacted before it is cut (a token cut short is no longer recognisable)."""
    path = redact(str(scope.get("path", "")))
    return path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "..."
