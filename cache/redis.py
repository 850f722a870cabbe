"""The one Redis client of a process, and the gate every shared-cache call goes through.

Redis is an optimisation and a channel, never a single point of failure: every call is bounded
by a timeout, failures open a circuit breaker so that while Redis is down requests skip it at
once instead of each waiting out the timeout, and after a cool-off one probe is let through to
find out whether it is back. Nothing here raises into a request: a failed or skipped call
returns the caller's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from observability.health import CheckResult

log = logging.getLogger(__name__)

T = TypeVar("T")
KEY_VERSION = "v1"


def create_redis(
    url: str,
    *,
    socket_timeout: float,
    connect_timeout: float,
    max_connections: int = 64,
) -> Redis:
    """A pooled redis.asyncio client (hiredis parser when installed; `rediss://` for TLS and an
    AUTH token in the URL, as ElastiCache wants). No retries here: the gate decides."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        max_connections=max_connections,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
        client_name="mcp-service",
    )


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooloff` seconds one probe passes."""

    def __init__(
        self,
        *,
        threshold: int = 2,
        cooloff: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooloff = cooloff
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._failures < self.threshold:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooloff:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def succeeded(self) -> None:
        self._failures = 0
        self._probing = False

    def failed(self) -> None:
        self._failures += 1
        self._probing = False
        if self._failures >= self.threshold:
            self._opened_at = self._clock()


OperationHook = Callable[[str, str, float], None]  # (operation, outcome, seconds)


class SharedRedis:
    """Prefixed keys, bounded calls and the breaker around one client (or none at all)."""

    def __init__(
        self,
        client: Redis | None,
        *,
        prefix: str = "mcp",
        timeout: float = 1.0,
        breaker: CircuitBreaker | None = None,
        on_operation: OperationHook | None = None,
    ) -> None:
        self.client = client
        self.prefix = f"{prefix}:{KEY_VERSION}"
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.on_operation = on_operation

    @property
    def enabled(self) -> bool:
        return self.client is not None

    @property
    def available(self) -> bool:
        """False while the breaker keeps calls away from Redis."""
        return self.client is not None and self.breaker.state is not BreakerState.OPEN

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def run(self, operation: str, call: Callable[[Redis], Awaitable[T]], default: T) -> T:
        """`call(client)` within the timeout, or `default` if Redis is off, open or failing."""
        client = self.client
        if client is None or not self.breaker.allow():
            self._report(operation, "skipped", 0.0)
            return default
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                result = await call(client)
        except (RedisError, OSError, TimeoutError) as exc:
            self.breaker.failed()
            self._report(operation, "error", time.perf_counter() - started)
            log.warning(
                "redis %s failed: %s",
                operation,
                type(exc).__name__,
                extra={"operation": operation, "breaker": self.breaker.state.value},
            )
            return default
        self.breaker.succeeded()
        self._report(operation, "ok", time.perf_counter() - started)
        return result

    def _report(self, operation: str, outcome: str, seconds: float) -> None:
        if self.on_operation is not None:
            self.on_operation(operation, outcome, seconds)

    async def readiness(self) -> CheckResult:
        """Readiness: a PING through the gate, so the breaker hears the answer. Redis down is
        degraded, not down: tokens are verified locally, and a 503 here would empty the load
        balancer of every replica at once."""
        if await self.run("ping", _ping, False):
            return CheckResult.ok("reachable")
        return CheckResult.degraded(f"unreachable (breaker {self.breaker.state.value}); fail-open")

    def status(self) -> str:
        """For readiness: "disabled" (no REDIS_URL), "ok", or "unavailable" (breaker open)."""
        if not self.enabled:
            return "disabled"
        return "ok" if self.available else "unavailable"

    async def close(self) -> None:
        """Close the pool; bounded, so a hung Redis cannot hold up shut-down."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await self.client.aclose()


async def _ping(client: Redis) -> bool:
    return bool(await client.ping())
