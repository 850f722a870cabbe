"""A cap on the requests one replica works on at once: past it, 503 at once, never a queue.

A replica that accepts everything under overload only grows its queue: every request gets
slower until all of them time out. Refusing the excess immediately with `Retry-After` keeps the
admitted requests fast and lets the load balancer and clients go elsewhere or back off. Health
and metrics probes are never refused, so an overloaded replica is not also declared dead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_service.refusals import REDUCED_CAPACITY, problem
from observability.asgi import direct

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class InFlightLimit:
    """ASGI middleware: at most `limit` HTTP requests in progress (MAX_IN_FLIGHT)."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        *,
        exempt_paths: Iterable[str] = PROBE_PATHS,
        retry_after: int = 1,
        on_shed: Callable[[], None] | None = None,
    ) -> None:
        self.app = direct(app)  # a bound __call__: cheaper to call per request
        self.limit = limit
        self.exempt_paths = frozenset(exempt_paths)
        self.refusal = problem(
            503,
            "overloaded",
            "This replica is at its limit of requests in flight; retry shortly.",
            kind=REDUCED_CAPACITY,
            title="Server overloaded",
            headers={"retry-after": str(retry_after)},
        )
        self.on_shed = on_shed
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            if self.on_shed is not None:
                self.on_shed()
            await self.refusal.send(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
