"""The per-subject limiter: each authenticated request counted against its caller.

Against Redis, through the sliding window counter of `cache.windows` (one script, one round
trip), so every replica shares one budget. When Redis cannot answer (within
RATE_LIMIT_REDIS_TIMEOUT_SECONDS), the limiter's breaker (cache.breaker) opens: for
RATE_LIMIT_REDIS_COOLDOWN_SECONDS nobody asks Redis while `Reconnect` connects again in the
background, and meanwhile the limiter either counts in process (fail open, RATE_LIMIT_FALLBACK
per replica) or answers 503 (fail closed). No request ever waits on a connect or longer than
the timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from cache.breaker import CircuitBreaker, Reconnect
from cache.errors import RespError, RespUnavailable
from cache.windows import MemoryWindows, SharedWindows, Usage
from mcp_service.limitkeys import subject_tag
from mcp_service.policies import Policies
from mcp_service.ratefields import Decision, Policy, retry_seconds
from observability.health import CheckResult

log = logging.getLogger("mcp_service.ratelimit")

DecisionHook = Callable[[str], None]


class SubjectLimiter:
    """Decides per request, against Redis when it answers, else by RATE_LIMIT_FAILURE_MODE.

    `on_decision` hears one outcome per request -- "allowed", "limited" (shared budget),
    "fallback_allowed", "fallback_limited" (in-process budget, Redis unavailable), or
    "unavailable" (fail closed: 503) -- and "redis_error" for each Redis call or connection
    attempt that failed (while Redis is down: one per cool-off).
    """

    def __init__(
        self,
        policies: Policies,
        redis: SharedWindows | None,
        *,
        fail_open: bool = True,
        cooldown: float = 2.0,
        local: MemoryWindows | None = None,
        on_decision: DecisionHook | None = None,
    ) -> None:
        self.policies = policies
        self.redis = redis
        self.fail_open = fail_open
        self.cooldown = cooldown
        self.local = local if local is not None else MemoryWindows()
        self.on_decision = on_decision
        # One failure opens it (a request that met a broken connection has already waited);
        # its probe is the background connect, never a request.
        self.breaker = CircuitBreaker(threshold=1, cooloff=cooldown)
        self._reconnect: Reconnect | None = None
        if redis is not None:
            self._reconnect = Reconnect(
                self.breaker, redis.connect, errors=(RespError,), on_failure=self._still_down
            )
        self._degraded = False  # whether the fallback was announced in the log

    async def start(self) -> None:
        """Connect before serving; if Redis is not there yet, keep trying in the background."""
        if self.redis is None:
            return
        try:
            await self.redis.connect()
        except RespError as exc:
            self._failed(exc)

    async def readiness(self) -> CheckResult:
        """Readiness of the shared budget: degraded while counting per replica (fail open),
        down while refusing everything (fail closed)."""
        redis = self.redis
        if redis is not None and self.breaker.closed:
            if redis.ready:
                return CheckResult.ok("shared budget on Redis")
            # The connection was lost (Redis restarted) while no request came to find out:
            # reconnect now, so readiness recovers without waiting for traffic.
            self._failed(RespUnavailable("Redis connection lost"))
        if self.fail_open:
            return CheckResult.degraded("Redis unreachable: counting per replica (fail-open)")
        return CheckResult.down("Redis unreachable and RATE_LIMIT_FAILURE_MODE=closed")

    async def close(self) -> None:
        if self._reconnect is not None:
            await self._reconnect.close()
        if self.redis is not None:
            self.redis.close()

    async def check(self, claims: Mapping[str, Any], cost: int = 1) -> Decision:
        tag = subject_tag(claims)
        policy = self.policies.for_claims(claims)
        redis = self.redis
        if redis is None:
            allowed, usages = self.local.hit(tag, policy.limits, cost)
            return self._decided("allowed" if allowed else "limited", allowed, policy, usages, cost)
        if self.breaker.closed:  # an attribute, not a call: this is every request's path
            try:
                allowed, usages = await redis.hit(tag, policy.limits, cost)
            except RespError as exc:
                self._failed(exc)
            else:
                if self._degraded:
                    self._degraded = False
                    log.info("rate limits: Redis answers again; counting fleet-wide")
                outcome = "allowed" if allowed else "limited"
                return self._decided(outcome, allowed, policy, usages, cost)
        elif self._reconnect is not None:
            self._reconnect.start()  # a no-op while it runs; restarts one that died
        if not self.fail_open:
            retry = retry_seconds(self.cooldown)
            return self._decided("unavailable", False, retry_after=retry)
        policy = self.policies.fallback or policy
        allowed, usages = self.local.hit(tag, policy.limits, cost)
        outcome = "fallback_allowed" if allowed else "fallback_limited"
        return self._decided(outcome, allowed, policy, usages, cost)

    def _decided(
        self,
        outcome: str,
        allowed: bool,
        policy: Policy | None = None,
        usages: list[Usage] | None = None,
        cost: int = 1,
        retry_after: int = 0,
    ) -> Decision:
        if self.on_decision is not None:
            self.on_decision(outcome)
        return Decision(outcome, allowed, policy, usages, cost, retry_after)

    def _failed(self, error: RespError) -> None:
        """Open the breaker: Redis is left alone while `Reconnect` tries after the cool-off."""
        self.breaker.failed()
        if self.on_decision is not None:
            self.on_decision("redis_error")
        if not self._degraded:
            self._degraded = True
            mode = "counting per replica" if self.fail_open else "refusing with 503"
            log.warning("rate limits: Redis unavailable (%s); %s until it answers", error, mode)
        if self._reconnect is not None:
            self._reconnect.start()

    def _still_down(self, error: Exception) -> None:
        if self.on_decision is not None:
            self.on_decision("redis_error")
        log.debug("rate limits: Redis still unavailable: %s", error)
