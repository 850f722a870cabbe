"""How every Redis user fails: bounded calls, a circuit breaker, reconnecting in the background.

Redis is an optimisation and a channel, never a single point of failure. Each user bounds its
calls by a timeout, counts failures in a `CircuitBreaker` of its own, and while that breaker is
open does without Redis at once instead of each call waiting out the timeout:

- the gate of the shared caches (cache.redis.SharedRedis: JWKS, verified tokens, revocations)
  falls back to its caller's default, and after the cool-off lets one call through as a probe;
- the revocation listener (cache.revocations) waits out the cool-off, doubled after each
  failed attempt up to a cap, before it subscribes again;
- the rate limiter's RESP connection (cache.windows, mcp_service.limiter) counts in process or
  refuses, while `Reconnect` connects again in the background after each cool-off: its probe
  is never a request's.

The two timeouts differ on purpose: REDIS_TIMEOUT_SECONDS (1 s) bounds the shared caches'
calls, because under load a replica's event loop runs up to ~0.3 s late (bench/redis_timeouts.py)
and a tighter bound would fail calls that Redis answered in time; RATE_LIMIT_REDIS_TIMEOUT_SECONDS
(0.25 s) bounds the rate-limit round trip, which is on every request's time, and failing open to
a count in process is cheap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

log = logging.getLogger(__name__)

MAX_DOUBLINGS = 16  # a cool-off is never more than 2**16 times its base, whatever the cap


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed -> open after `threshold` consecutive failures -> half-open after the cool-off,
    when `allow()` lets exactly one probe through; its success closes the breaker, its failure
    opens it again. Each failed probe doubles the cool-off, up to `max_cooloff` (default: no
    doubling). `closed` is a plain attribute, kept in step, for a hot path to read."""

    def __init__(
        self,
        *,
        threshold: int = 2,
        cooloff: float = 2.0,
        max_cooloff: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooloff = cooloff
        self.max_cooloff = cooloff if max_cooloff is None else max(cooloff, max_cooloff)
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._wait = cooloff
        self._probing = False
        self.closed = True

    @property
    def state(self) -> BreakerState:
        if self.closed:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._wait:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether a call may go to Redis now: always while closed, once after the cool-off."""
        if self.closed:
            return True
        if not self._probing and self.state is BreakerState.HALF_OPEN:
            self._probing = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until the cool-off ends (0 while closed or half-open)."""
        if self.closed:
            return 0.0
        return max(0.0, self._opened_at + self._wait - self._clock())

    async def until_allowed(self) -> None:
        """Wait out the cool-off and take the probe (at once while closed). For an owner that
        makes every probe itself; were another's under way, this waits a cool-off more."""
        while True:
            if self.allow():
                return
            await asyncio.sleep(self.retry_in() or self.cooloff)

    def succeeded(self) -> None:
        self._failures = 0
        self._probing = False
        self.closed = True

    def failed(self) -> None:
        self._failures += 1
        self._probing = False
        if self._failures >= self.threshold:
            doublings = min(self._failures - self.threshold, MAX_DOUBLINGS)
            self._wait = min(self.cooloff * 2**doublings, self.max_cooloff)
            self._opened_at = self._clock()
            self.closed = False


class Reconnect:
    """While `breaker` is open, `connect()` in the background after each cool-off, until it
    succeeds (closing the breaker). For a connection whose probe must not be a request's: the
    requests ask `breaker.closed` and do without Redis until then."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        connect: Callable[[], Awaitable[object]],
        *,
        errors: tuple[type[Exception], ...],
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self.breaker = breaker
        self._connect = connect
        self._errors = errors
        self._on_failure = on_failure
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start reconnecting, unless it already is (idempotent: call it on every failure)."""
        if not self.running:
            self._task = asyncio.create_task(self._run())
            self._task.add_done_callback(_log_failure)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        breaker = self.breaker
        while not breaker.closed:
            await breaker.until_allowed()
            try:
                await self._connect()
            except self._errors as exc:
                breaker.failed()
                if self._on_failure is not None:
                    self._on_failure(exc)
            except BaseException:  # cancelled, or a bug: the probe is over, and not a success
                breaker.failed()
                raise
            else:
                breaker.succeeded()


def _log_failure(task: asyncio.Task[None]) -> None:
    """A reconnect that died of something unexpected says so (and can be started again)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("reconnecting failed unexpectedly", exc_info=error)
