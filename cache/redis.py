"""The one redis-py client of a process, and the gate every shared-cache call goes through.

Nothing else holds the client. Request-path calls (`run`) are bounded by REDIS_TIMEOUT_SECONDS
and go through the gate's circuit breaker (cache.breaker): while Redis is down they skip it at
once, and after the cool-off one probe finds out whether it is back. None of them raises into a
request: a failed or skipped call returns the caller's default. The calls that need an answer
(`execute`: the revocation CLI, the listener's reload) and the pub/sub subscription raise
`SharedUnavailable` instead, and leave retrying to their caller's own breaker. After a failure
shaped like a failover (`READONLY`, `LOADING`, `MASTERDOWN`, `MOVED`, a reset) every pooled
connection is dropped, so nothing keeps talking to a demoted node. The client is redis-py's
`Redis`, or its `RedisCluster` with REDIS_CLUSTER=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    MasterDownError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

from cache.breaker import BreakerState, CircuitBreaker
from cache.errors import SharedUnavailable
from cache.tls import RedisTls, describe, without_tls_parameters
from observability.health import CheckResult

log = logging.getLogger(__name__)

T = TypeVar("T")
KEY_VERSION = "v1"
READY_PROBE_MS = 30_000  # the readiness probe's key expires on its own


Client = Redis | RedisCluster
# What a call to Redis can fail with: redis-py's errors (its cluster client's "cannot connect"
# is not a RedisError), the OS's, and the gate's own timeout.
FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


def create_redis(
    url: str,
    *,
    socket_timeout: float,
    connect_timeout: float,
    max_connections: int = 64,
    tls: RedisTls | None = None,
    cluster: bool = False,
) -> Client:
    """A pooled redis.asyncio client (hiredis parser when installed; `rediss://` for TLS and an
    AUTH token in the URL, as ElastiCache wants), or with `cluster` a `RedisCluster` that reads
    the slot map from the node `url` names and follows `MOVED` and `ASK`. `tls` is the
    process's one TLS decision (cache.tls). No retries here: the gate decides."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "max_connections": max_connections,
        "client_name": "mcp-service",
    }
    if tls is not None:
        url = without_tls_parameters(url)
        options.update(tls.redis_kwargs())
    if cluster:
        return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0), **options)
    return Redis.from_url(url, retry=Retry(NoBackoff(), 0), health_check_interval=30, **options)


# Replies and failures after which no pooled connection is trusted: a failover demoted the node
# (READONLY, MASTERDOWN; in a cluster MOVED, CLUSTERDOWN), it is loading its data after a
# restart (LOADING), or the connection was reset. The pool is emptied, so the next call connects
# afresh (ElastiCache's endpoint then names the new primary; a cluster client re-reads its slot
# map).
FAILOVER_ERRORS: tuple[type[Exception], ...] = (
    AskError,  # MOVED too
    ClusterDownError,
    ReadOnlyError,
    BusyLoadingError,
    ConnectionError,
    MasterDownError,
)


def _after_failover(exc: BaseException) -> bool:
    if isinstance(exc, (*FAILOVER_ERRORS, OSError)):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(
        ("READONLY", "LOADING", "MASTERDOWN", "MOVED", "CLUSTERDOWN")
    )


OperationHook = Callable[[str, str, float], None]  # (operation, outcome, seconds)


class SharedRedis:
    """Prefixed keys, bounded calls and the breaker around one client (or none at all)."""

    def __init__(
        self,
        client: Client | None,
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
        self.last_error = ""  # how the last failed call failed, for readiness and logs

    @property
    def enabled(self) -> bool:
        return self.client is not None

    @property
    def available(self) -> bool:
        """False while the breaker keeps calls away from Redis."""
        return self.client is not None and self.breaker.state is not BreakerState.OPEN

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def run(self, operation: str, call: Callable[[Client], Awaitable[T]], default: T) -> T:
        """`call(client)` within the timeout, or `default` if Redis is off, open or failing."""
        client = self.client
        if client is None or not self.breaker.allow():
            self._report(operation, "skipped", 0.0)
            return default
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                result = await call(client)
        except FAILURES as exc:
            self.breaker.failed()
            self._report(operation, "error", time.perf_counter() - started)
            await self._failed(exc)
            log.warning(
                "redis %s failed: %s",
                operation,
                self.last_error,
                extra={"operation": operation, "breaker": self.breaker.state.value},
            )
            return default
        self.breaker.succeeded()
        self._report(operation, "ok", time.perf_counter() - started)
        return result

    async def execute(
        self, call: Callable[[Client], Awaitable[T]], *, seconds: float | None = None
    ) -> T:
        """`call(client)` within `seconds` (default: the gate's timeout) for a caller that needs
        the answer: raises `SharedUnavailable` if Redis is not configured or the call fails.
        The gate's breaker is neither asked nor told: it guards the request path, and these
        callers retry (or not) by their own."""
        client = self.client
        if client is None:
            raise SharedUnavailable("REDIS_URL is not set")
        try:
            async with asyncio.timeout(self.timeout if seconds is None else seconds):
                return await call(client)
        except FAILURES as exc:
            await self._failed(exc)
            raise SharedUnavailable(self.last_error) from None

    async def _failed(self, exc: BaseException) -> None:
        """Remember how the call failed; after a failover-shaped failure, drop every pooled
        connection (bounded), so no later call goes to the node that refused."""
        self.last_error = describe(exc)
        if isinstance(exc, AskError) and not isinstance(self.client, RedisCluster):
            self.last_error = "MOVED: this Redis is a cluster node (set REDIS_CLUSTER=true)"
        if isinstance(exc, TimeoutError) or not _after_failover(exc):
            return
        client = self.client
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                if isinstance(client, RedisCluster):
                    await client.aclose()  # the slot map is read again on the next call
                elif client is not None:
                    await client.connection_pool.disconnect()

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """Subscribed to `channel` for the block, on a connection of its own; leaving closes it,
        within the gate's timeout (a hung Redis must not hang shut-down or a reconnect). Raises
        `SharedUnavailable` as `execute` does."""
        if self.client is None:
            raise SharedUnavailable("REDIS_URL is not set")
        if isinstance(self.client, RedisCluster):
            # Its pub/sub picks a node from the slot map, which a fresh client has not read.
            try:
                async with asyncio.timeout(self.timeout):
                    await self.client.initialize()
            except FAILURES as exc:
                await self._failed(exc)
                raise SharedUnavailable(self.last_error) from None
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            subscription = Subscription(pubsub, self.timeout)
            await subscription.start(channel)
            yield subscription
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _report(self, operation: str, outcome: str, seconds: float) -> None:
        if self.on_operation is not None:
            self.on_operation(operation, outcome, seconds)

    async def readiness(self) -> CheckResult:
        """Readiness: a write probe through the gate, so the breaker hears the answer. Redis
        down, or refusing writes, is degraded, not down: tokens are verified locally, and a 503
        here would empty the load balancer of every replica at once."""
        if await self.run("ping", self._probe, False):
            return CheckResult.ok("reachable, accepts writes")
        if self.last_error.startswith(("ReadOnlyError", "MasterDownError", "BusyLoadingError")):
            return CheckResult.degraded(f"answers but refuses writes ({self.last_error})")
        state = self.breaker.state.value
        return CheckResult.degraded(f"unreachable ({self.last_error}; breaker {state}); fail-open")

    async def _probe(self, client: Client) -> bool:
        """Write a short-lived key (a node that a failover demoted still answers PING, but
        refuses the write); in a cluster, PING every primary first."""
        if isinstance(client, RedisCluster):
            await client.ping(target_nodes=RedisCluster.PRIMARIES)
        await client.set(self.key("ready"), b"1", px=READY_PROBE_MS)
        return True

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


class Subscription:
    """The messages of one subscribed channel (see `SharedRedis.subscribe`)."""

    def __init__(self, pubsub: PubSub, timeout: float) -> None:
        self._pubsub = pubsub
        self._timeout = timeout

    async def start(self, channel: str) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._pubsub.subscribe(channel)
        except FAILURES as exc:
            raise SharedUnavailable(type(exc).__name__) from None

    async def message(self, wait: float) -> bytes | None:
        """The next message's data, or None if none came within `wait` seconds (the
        subscription's own confirmations are passed over)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            try:
                message = await self._pubsub.get_message(timeout=left)
            except FAILURES as exc:
                raise SharedUnavailable(type(exc).__name__) from None
            if message is not None and message.get("type") == "message":
                data = message["data"]
                return data if isinstance(data, bytes) else str(data).encode()
        return None
