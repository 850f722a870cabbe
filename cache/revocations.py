"""Revoked tokens: written to Redis by `mcp-service revoke`, known to every replica in memory.

A revocation names a `jti` (matching a token's `jti` or Cognito's `origin_jti`, so revoking a
refresh-token family kills the access tokens issued from it) or a `sub` (refusing every token
of that subject issued before the revocation, as Cognito's global sign-out does; later sign-ins
work). Entries live in Redis for `ttl` seconds, the longest a token can live, and are announced
on one pub/sub channel. Each replica keeps a `RevocationSet` in memory (the hot path asks it,
never Redis), applies announcements as they come, and reloads the whole set whenever its
subscription (re)connects and every `reload_interval` seconds. The set carries a generation
(`StoredRevocations`), by which a replica tells a set Redis lost from one an operator edited,
and writes back what Redis lost (`RevocationListener`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from typing import Any, Literal

from cache.breaker import CircuitBreaker
from cache.errors import RevocationError, SharedUnavailable
from cache.redis import Client, SharedRedis, Subscription
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


@dataclass(frozen=True, slots=True)
class StoredRevocations:
    """The revocations Redis holds, and the generation of that set: `epoch` is drawn when the
    set is first written (None: Redis holds no set, it is new or lost its data) and `version`
    grows with every write, so a replica that saw a higher version knows Redis went back in
    time (a failover that lost the latest writes)."""

    revocations: list[Revocation]
    epoch: str | None
    version: int


class RevocationStore:
    """Revocations in Redis: a hash of entries, a sorted set of expiries and the set's
    generation (one hash tag, one cluster slot), and one channel."""

    def __init__(
        self, shared: SharedRedis, *, ttl: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._shared = shared
        self.ttl = ttl
        self._clock = clock
        self.entries_key = shared.key("{rev}", "entries")
        self.expiry_key = shared.key("{rev}", "expiry")
        self.generation_key = shared.key("{rev}", "generation")
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

        async def write(client: Client) -> None:
            epoch, version = await self._write(client, [revocation], overwrite=True)
            announcement = {**asdict(revocation), "epoch": epoch, "version": version}
            await client.publish(self.channel, json.dumps(announcement, separators=(",", ":")))

        await self._execute(write, "cannot write to Redis")
        return revocation

    async def restore(self, revocations: list[Revocation]) -> tuple[str, int]:
        """Write back revocations Redis lost (an entry Redis holds meanwhile is kept), and
        give the set a generation if it has none; the set's (epoch, version)."""

        async def write(client: Client) -> tuple[str, int]:
            return await self._write(client, revocations, overwrite=False)

        result: tuple[str, int] = await self._execute(write, "cannot write to Redis")
        return result

    async def _write(
        self, client: Client, revocations: list[Revocation], *, overwrite: bool
    ) -> tuple[str, int]:
        async with client.pipeline(transaction=True) as pipe:
            for revocation in revocations:
                if overwrite:
                    pipe.hset(self.entries_key, revocation.field, revocation.to_json())
                else:
                    pipe.hsetnx(self.entries_key, revocation.field, revocation.to_json())
                pipe.zadd(
                    self.expiry_key, {revocation.field: revocation.expires_at}, nx=not overwrite
                )
            pipe.hsetnx(self.generation_key, "epoch", secrets.token_hex(8))
            pipe.hincrby(self.generation_key, "version", 1)
            pipe.hget(self.generation_key, "epoch")
            *_, version, epoch = await pipe.execute()
        return _text(epoch), int(version)

    async def load(self) -> list[Revocation]:
        """Every revocation in force; expired ones are removed on the way."""
        return (await self.load_stored()).revocations

    async def load_stored(self) -> StoredRevocations:
        """Every revocation in force, with the set's generation."""
        now = self._clock()

        async def read(client: Client) -> Any:
            expired = await client.zrangebyscore(self.expiry_key, "-inf", now)
            async with client.pipeline(transaction=True) as pipe:
                if expired:
                    pipe.hdel(self.entries_key, *expired)
                    pipe.zrem(self.expiry_key, *expired)
                pipe.hgetall(self.entries_key)
                pipe.hmget(self.generation_key, ["epoch", "version"])
                return (await pipe.execute())[-2:]

        raw, (epoch, version) = await self._execute(read, "cannot read from Redis")
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
        revocations.sort(key=lambda r: r.revoked_at)
        return StoredRevocations(
            revocations, None if epoch is None else _text(epoch), int(version or 0)
        )

    async def _execute(self, call: Callable[[Client], Any], failing: str) -> Any:
        """Through the gate, bounded by at least 2 s: an operator's command and a reload are
        not on a request's time, and a whole set of revocations may take a while to read."""
        if not self._shared.enabled:
            raise RevocationError(NOT_CONFIGURED)
        try:
            return await self._shared.execute(call, seconds=max(self._shared.timeout, 2.0))
        except SharedUnavailable as exc:
            raise RevocationError(f"{failing}: {exc}") from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RevocationListener:
    """Keeps a replica's `RevocationSet` in step with Redis, reconnecting on its own: after a
    failure its breaker (cache.breaker) holds it off for `retry_delay`, doubled after each
    failed attempt up to 4x, and the first attempt that gets in sync resets it.

    A revocation is never undone by Redis losing its data. On each reload the set's
    generation tells an edited set (same epoch, a version at least the one this replica saw:
    Redis is the truth, an entry removed there is removed here) from a set Redis lost (no or
    another epoch: restarted empty, flushed, replaced; or a lower version: a failover lost the
    latest writes). For a lost set the replica keeps what it knew and writes back to Redis
    what Redis no longer holds, with each entry's reason and author, so the other replicas,
    replicas started later and `revoke --list` see it again.
    """

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
        self._known: dict[str, Revocation] = {}  # by field: what this replica enforces
        self._epoch: str | None = None
        self._version = 0
        self.restored = 0  # revocations written back after Redis lost them

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
        stored = await self._store.load_stored()
        revocations, epoch, version = stored.revocations, stored.epoch, stored.version
        lost = epoch is None or (
            self._epoch is not None and (epoch != self._epoch or version < self._version)
        )
        if lost:
            now = time.time()
            held = {revocation.field for revocation in revocations}
            missing = [
                revocation
                for field, revocation in self._known.items()
                if field not in held and revocation.expires_at > now
            ]
            epoch, version = await self._store.restore(missing)
            if missing:
                self.restored += len(missing)
                log.warning(
                    "Redis lost %d revocations (restarted empty, flushed or failed over); "
                    "written back from this replica",
                    len(missing),
                )
            revocations = [*revocations, *missing]
        self._revoked.replace(revocations)
        self._known = {revocation.field: revocation for revocation in revocations}
        self._epoch, self._version = epoch, version
        for revocation in revocations:
            self._notify(revocation)
        self.synced.set()
        self.breaker.succeeded()

    def _apply(self, raw: bytes | str) -> None:
        try:
            revocation = Revocation.from_json(raw)
            generation = json.loads(raw)
            epoch, version = generation.get("epoch"), int(generation.get("version", 0))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable revocation message")
            return
        self._revoked.add(revocation)
        self._known[revocation.field] = revocation
        if epoch is not None and epoch == self._epoch:
            self._version = max(self._version, version)
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
