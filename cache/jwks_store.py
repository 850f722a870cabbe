"""The JWKS as the fleet shares it in Redis (L2 behind `JwksCache`'s in-process keys).

Three keys per JWKS address, under one hash tag so a Redis Cluster keeps them together: the
sealed document with the time it was fetched, a short lock held by the replica fetching from
the IdP (fleet-wide single flight), and a kid-miss marker that lets one replica per cooldown
window refresh for an unknown `kid` (the fleet-wide penalty box). Every call degrades to "no
L2": a replica that cannot reach Redis fetches for itself, as a single replica would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from redis.exceptions import WatchError

from cache.redis import Client, SharedRedis
from cache.seal import Sealer

EventHook = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class KidMissClaim:
    """Another replica's claim on this window's kid-miss refresh."""

    age: float  # seconds since it was claimed
    had: float  # when the keys that replica held at its claim were fetched


@dataclass(frozen=True, slots=True)
class SharedDocument:
    document: bytes
    fetched_at: float


class SharedJwks:
    def __init__(
        self,
        shared: SharedRedis,
        sealer: Sealer,
        source: str,
        *,
        lock_ttl: float = 10.0,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
        on_event: EventHook | None = None,
    ) -> None:
        tag = hashlib.sha256(source.encode()).hexdigest()[:16]
        self._shared = shared
        self._sealer = sealer
        self._doc_key = shared.key("jwks", f"{{{tag}}}", "doc")
        self._lock_key = shared.key("jwks", f"{{{tag}}}", "lock")
        self._miss_key = shared.key("jwks", f"{{{tag}}}", "kidmiss")
        self._lock_ttl_ms = int(lock_ttl * 1000)
        self._poll = poll_interval
        self._clock = clock
        self._on_event = on_event
        self._lock_token = b""

    @property
    def enabled(self) -> bool:
        return self._shared.enabled

    async def read(self) -> SharedDocument | None:
        raw = await self._shared.run("jwks_read", lambda r: r.get(self._doc_key), None)
        if raw is None:
            return None
        payload = self._sealer.unseal(raw, self._doc_key.encode())
        if payload is None:
            self._event("forged")
            return None
        try:
            entry = json.loads(payload)
            return SharedDocument(entry["document"].encode(), float(entry["fetched_at"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            self._event("forged")
            return None

    async def store(self, document: bytes, fetched_at: float, ttl: float) -> None:
        payload = json.dumps({"document": document.decode(), "fetched_at": fetched_at}).encode()
        sealed = self._sealer.seal(payload, self._doc_key.encode())
        milliseconds = max(1000, int(ttl * 1000))
        await self._shared.run(
            "jwks_store", lambda r: r.set(self._doc_key, sealed, px=milliseconds), None
        )

    async def try_lock(self) -> bool:
        """True if this replica should fetch: it holds the lock, or Redis cannot arbitrate."""
        self._lock_token = secrets.token_hex(8).encode()
        token = self._lock_token

        async def acquire(client: Client) -> bool:
            return bool(await client.set(self._lock_key, token, nx=True, px=self._lock_ttl_ms))

        return await self._shared.run("jwks_lock", acquire, True)

    async def release(self) -> None:
        """Delete the lock if it is still ours (compare-and-delete in a WATCH transaction)."""
        token = self._lock_token

        async def unlock(client: Client) -> None:
            async with client.pipeline(transaction=True) as pipe:
                await pipe.watch(self._lock_key)
                if await pipe.get(self._lock_key) == token:
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.delete(self._lock_key)
                    with suppress(WatchError):  # it expired and someone else took it: theirs
                        await pipe.execute()

        await self._shared.run("jwks_unlock", unlock, None)

    async def locked(self) -> bool:
        return bool(await self._shared.run("jwks_locked", lambda r: r.exists(self._lock_key), 0))

    async def claim_kid_miss(self, cooldown: float, have: float) -> KidMissClaim | None:
        """Claim this window's refresh for an unknown kid (one per window, fleet-wide).

        `have` is when the keys this replica holds were fetched. None if this replica claimed
        the window (or Redis cannot arbitrate, and it refreshes for itself); otherwise the
        other replica's claim, which tells whether its fetch may still be under way.
        """
        milliseconds = max(1, int(cooldown * 1000))

        async def claim(client: Client) -> KidMissClaim | None:
            async with client.pipeline(transaction=False) as pipe:
                pipe.set(self._miss_key, repr(have).encode(), nx=True, px=milliseconds)
                pipe.pttl(self._miss_key)
                pipe.get(self._miss_key)
                claimed, left, value = await pipe.execute()
            if claimed:
                return None
            try:
                had = float(value)
            except (TypeError, ValueError):
                had = math.inf  # unreadable: treat the claimant as still fetching
            age = (milliseconds - int(left)) / 1000 if int(left) > 0 else cooldown
            return KidMissClaim(age=max(0.0, age), had=had)

        return await self._shared.run("jwks_kidmiss", claim, None)

    async def wait_for_newer(self, than: float, patience: float) -> SharedDocument | None:
        """Poll briefly for a document fetched after `than` (another replica is fetching)."""
        deadline = time.monotonic() + patience
        while True:
            document = await self.read()
            if document is not None and document.fetched_at > than:
                return document
            if time.monotonic() >= deadline or not self._shared.available:
                return None
            await asyncio.sleep(self._poll)

    def _event(self, event: str) -> None:
        if self._on_event is not None:
            self._on_event(event)
