"""Revoked tokens: written to Redis by `mcp-service revoke`, known to every replica in memory.

A revocation names a `jti` (matching a token's `jti` or Cognito's `origin_jti`, so revoking a
refresh-token family kills the access tokens issued from it) or a `sub` (refusing every token
of that subject issued before the revocation, as Cognito's global sign-out does; later sign-ins
work). Entries live in Redis for `ttl` seconds, the longest a token can live, and are announced
on one pub/sub channel. Each replica keeps a `RevocationSet` in memory (the hot path asks it,
never Redis), applies announcements as they come, and reloads the whole set whenever its
subscription (re)connects and every `reload_interval` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from cache.breaker import CircuitBreaker
from cache.errors import RevocationError, SharedUnavailable
from cache.redis import SharedRedis, Subscription
from observability.health import CheckResult

log = logging.getLogger(__name__)

Kind = Literal["jti", "sub"]
KINDS: tuple[Kind, ...] = ("jti", "sub")


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: Kind
    value: str
    revoked_at: float
    expires_at: float
    reason: str = ""
    by: str = ""

    @property
    def field(self) -> str:
        return f"{self.kind}:{self.value}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Revocation:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("kind") not in KINDS:
            raise ValueError("not a revocation")
        value = data.get("value")
        if not isinstance(value, str) or not value:
            raise ValueError("revocation without a value")
        return cls(
            kind=data["kind"],
            value=value,
            revoked_at=float(data["revoked_at"]),
            expires_at=float(data["expires_at"]),
            reason=str(data.get("reason", "")),
            by=str(data.get("by", "")),
        )


class RevocationSet:
    """What the hot path asks: a set of jtis and a map of sub -> revoked-at, in memory."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._jtis: dict[str, float] = {}  # jti -> expires_at
        self._subs: dict[str, tuple[float, float]] = {}  # sub -> (revoked_at, expires_at)
        # Whether anything is revoked: a plain attribute, so the hot path's "nothing revoked"
        # answer is one load rather than a call to __bool__ (kept in step by every change).
        self.active = False

    def __bool__(self) -> bool:
        return self.active

    def __len__(self) -> int:
        return len(self._jtis) + len(self._subs)

    def add(self, revocation: Revocation) -> None:
        if revocation.expires_at <= self._clock():
            return
        if revocation.kind == "jti":
            self._jtis[revocation.value] = revocation.expires_at
            self.active = True
        else:
            previous = self._subs.get(revocation.value)
            if previous is None or previous[0] < revocation.revoked_at:
                self._subs[revocation.value] = (revocation.revoked_at, revocation.expires_at)
                self.active = True

    def replace(self, revocations: Iterable[Revocation]) -> None:
        """Hold exactly `revocations` (no await in between: readers never see a partial set)."""
        self._jtis, self._subs, self.active = {}, {}, False
        for revocation in revocations:
            self.add(revocation)

    def prune(self) -> None:
        now = self._clock()
        self._jtis = {k: exp for k, exp in self._jtis.items() if exp > now}
        self._subs = {k: v for k, v in self._subs.items() if v[1] > now}
        self.active = bool(self._jtis or self._subs)

    def is_revoked(
        self, *, jti: str | None, origin_jti: str | None, sub: str | None, iat: float | None
    ) -> bool:
        """The hot path's check: a few dict lookups, no I/O."""
        jtis = self._jtis
        if jtis and (jti in jtis or origin_jti in jtis):
            return True
        if self._subs and sub is not None:
            revoked = self._subs.get(sub)
            # A token with no iat cannot prove it was issued after the revocation.
            return revoked is not None and (iat is None or iat < revoked[0])
        return False


NOT_CONFIGURED = "REDIS_URL is not set: revocations need Redis"


class RevocationStore:
    """Revocations in Redis: a hash of entries, a sorted set of expiries, one channel."""

    def __init__(
        self, shared: SharedRedis, *, ttl: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._shared = shared
        self.ttl = ttl
        self._clock = clock
        self.entries_key = shared.key("{rev}", "entries")
        self.expiry_key = shared.key("{rev}", "expiry")
        self.channel = shared.key("revocations")

    async def close(self) -> None:
        await self._shared.close()

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """The announcements channel (`SharedRedis.subscribe`)."""
        if not self._shared.enabled:
            raise RevocationError(NOT_CONFIGURED)
        return self._shared.subscribe(self.channel)

    async def revoke(self, kind: Kind, value: str, *, reason: str = "", by: str = "") -> Revocation:
        now = self._clock()
        revocation = Revocation(kind, value, now, now + self.ttl, reason, by)

        async def write(client: Redis) -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(self.entries_key, revocation.field, revocation.to_json())
                pipe.zadd(self.expiry_key, {revocation.field: revocation.expires_at})
                await pipe.execute()
            await client.publish(self.channel, revocation.to_json())

        await self._execute(write, "cannot write to Redis")
        return revocation

    async def load(self) -> list[Revocation]:
        """Every revocation in force; expired ones are removed on the way."""
        now = self._clock()

        async def read(client: Redis) -> Any:
            expired = await client.zrangebyscore(self.expiry_key, "-inf", now)
            if expired:
                async with client.pipeline(transaction=True) as pipe:
                    pipe.hdel(self.entries_key, *expired)
                    pipe.zrem(self.expiry_key, *expired)
                    await pipe.execute()
            return await client.hgetall(self.entries_key)

        raw = await self._execute(read, "cannot read from Redis")
        if not isinstance(raw, dict):
            raise RevocationError("unexpected reply to HGETALL")
        revocations = []
        for value in raw.values():
            try:
                revocation = Revocation.from_json(value)
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring an unreadable revocation entry")
                continue
            if revocation.expires_at > now:
                revocations.append(revocation)
        return sorted(revocations, key=lambda r: r.revoked_at)

    async def _execute(self, call: Callable[[Redis], Any], failing: str) -> Any:
        """Through the gate, bounded by at least 2 s: an operator's command and a reload are
        not on a request's time, and a whole set of revocations may take a while to read."""
        if not self._shared.enabled:
            raise RevocationError(NOT_CONFIGURED)
        try:
            return await self._shared.execute(call, seconds=max(self._shared.timeout, 2.0))
        except SharedUnavailable as exc:
            raise RevocationError(f"{failing}: {exc}") from None


class RevocationListener:
    """Keeps a replica's `RevocationSet` in step with Redis, reconnecting on its own: after a
    failure its breaker (cache.breaker) holds it off for `retry_delay`, doubled after each
    failed attempt up to 4x, and the first attempt that gets in sync resets it."""

    def __init__(
        self,
        store: RevocationStore,
        revoked: RevocationSet,
        *,
        on_revoked: Callable[[Revocation], object] | None = None,
        reload_interval: float = 60.0,
        retry_delay: float = 1.0,
    ) -> None:
        self._store = store
        self._revoked = revoked
        self._on_revoked = on_revoked
        self._reload_interval = reload_interval
        self.breaker = CircuitBreaker(threshold=1, cooloff=retry_delay, max_cooloff=4 * retry_delay)
        self.synced = asyncio.Event()

    async def readiness(self) -> CheckResult:
        """Readiness: out of step with Redis is degraded (the revocations known here apply)."""
        if self.synced.is_set():
            return CheckResult.ok("in sync")
        return CheckResult.degraded("not in sync with Redis; applying the revocations known here")

    async def run(self) -> None:
        """Subscribe, load, apply; on any failure wait out the breaker's cool-off and start
        again."""
        while True:
            await self.breaker.until_allowed()
            try:
                await self._follow()
            except Exception as exc:  # never let the listener die: retry whatever went wrong
                if self.synced.is_set():
                    log.warning("revocation channel lost (%s); reconnecting", type(exc).__name__)
                self.synced.clear()
                self.breaker.failed()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancellation can arrive while a bounded close is timing out and be folded
                # into that TimeoutError (Python 3.11); honour it rather than sleep through it.
                raise asyncio.CancelledError

    async def _follow(self) -> None:
        async with self._store.subscribe() as subscription:
            await self._reload()  # after subscribing, so nothing published meanwhile is lost
            next_reload = time.monotonic() + self._reload_interval
            while True:
                data = await subscription.message(wait=1.0)
                if data is not None:
                    self._apply(data)
                if time.monotonic() >= next_reload:
                    await self._reload()
                    next_reload = time.monotonic() + self._reload_interval

    async def _reload(self) -> None:
        revocations = await self._store.load()
        self._revoked.replace(revocations)
        for revocation in revocations:
            self._notify(revocation)
        self.synced.set()
        self.breaker.succeeded()

    def _apply(self, raw: bytes | str) -> None:
        try:
            revocation = Revocation.from_json(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable revocation message")
            return
        self._revoked.add(revocation)
        log.info(
            "revocation received",
            extra={
                "kind": revocation.kind,
                "value": revocation.value,
                "reason": revocation.reason,
                "by": revocation.by,
            },
        )
        self._notify(revocation)

    def _notify(self, revocation: Revocation) -> None:
        if self._on_revoked is not None:
            self._on_revoked(revocation)
