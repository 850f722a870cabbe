"""The outermost ASGI layer: request id, HTTP metrics, the access log and unhandled errors.

It is a plain ASGI middleware (no BaseHTTPMiddleware: that one costs a task and a stream per
request) doing a fixed, small amount of work per request: one header scan, one dict lookup
for the route template, one contextvar set, one histogram observation on a pre-bound child.
The access-log line is optional (ACCESS_LOG) because formatting and writing it costs more
than all of the rest together; the request id, refusals and errors are logged either way.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from time import perf_counter
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability.asgi import direct
from observability.logs import REQUEST_ID, ROUTE, enter_request, leave_request, redact

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
    """New request ids: 32 random hex digits each, made 1,024 at a time from one read of
    os.urandom and handed out by `next(_ids.new, None)`, which runs in C (no Python frame, no
    formatting per request). None when a batch is used up: `refill()` then makes the next."""

    BATCH = 1024
    SIZE = 32  # hex digits

    def __init__(self) -> None:
        self.new: Iterator[str] = iter(())
        os.register_at_fork(after_in_child=self.reset)  # a child never reuses its parent's

    def reset(self) -> None:
        self.new = iter(())

    def refill(self) -> str:
        digits = os.urandom(self.BATCH * self.SIZE // 2).hex()
        size = self.SIZE
        ends = range(size, len(digits) + 1, size)
        self.new = map(digits.__getitem__, map(slice, range(0, len(digits), size), ends))
        return next(self.new)


_ids = _Ids()


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-Id when it is sane (1-128 of [A-Za-z0-9._:-]), else a new one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SANE_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return next(_ids.new, None) or _ids.refill()


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
        self.app = direct(app)  # a bound __call__: cheaper to call per request
        self.metrics = metrics
        self.routes: dict[str, str] = (
            dict(routes) if isinstance(routes, Mapping) else {path: path for path in routes}
        )
        self.access_log = access_log
        self.timed = metrics is not None or access_log  # else no clock is read at all

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timed = self.timed
        started = perf_counter() if timed else 0.0
        rid = request_id(scope["headers"])
        route = self.routes.get(scope["path"], "other")
        scope[REQUEST_ID] = rid  # the request's log context (observability.logs)
        scope[ROUTE] = route
        token = enter_request(scope)
        echo = (REQUEST_ID_HEADER, rid.encode("ascii"))
        status = 0

        def send_with_id(message: Message) -> Awaitable[None]:
            # Not a coroutine: it hands back `send`'s own, adding no frame to each message.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echo]
            return send(message)

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
            if timed:  # before leaving: the access-log line carries the request id
                self._record(scope, route, status or CLIENT_CLOSED, perf_counter() - started)
            leave_request(token)

    def _record(self, scope: Scope, route: str, status: int, elapsed: float) -> None:
        if self.metrics is not None:
            self.metrics.http_request(scope["method"], route, status, elapsed)
        if self.access_log:
            self._log(scope, status, elapsed)

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
