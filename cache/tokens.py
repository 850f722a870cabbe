"""Verified tokens, remembered in process (L1) and, optionally, across the fleet (L2).

Keys are sha256 digests of the token, never the token itself. An entry lives no longer than
its token (TTL <= exp - now, capped by `max_ttl`), and the cache is bounded (least recently
used entries go first), so neither a long-lived token nor a flood of distinct ones can grow it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from cachetools import TLRUCache

from cache.redis import SharedRedis
from cache.seal import Sealer

V = TypeVar("V")


def token_key(token: str) -> bytes:
    """The cache key of a token: its sha256 digest."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class LocalTokenCache(Generic[V]):
    def __init__(
        self,
        maxsize: int = 10_000,
        *,
        max_ttl: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._max_ttl = max_ttl
        self._enabled = maxsize > 0
        self._entries: TLRUCache[bytes, tuple[V, float]] = TLRUCache(
            maxsize=max(maxsize, 1), ttu=self._expiry, timer=clock
        )

    @staticmethod
    def _expiry(_key: bytes, value: tuple[V, float], _now: float) -> float:
        return value[1]

    def get(self, key: bytes) -> V | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: bytes, value: V, expires_at: float) -> None:
        """Remember `value` until `expires_at` (epoch seconds), never longer than `max_ttl`."""
        now = self._clock()
        until = min(expires_at, now + self._max_ttl)
        if self._enabled and until > now:
            self._entries[key] = (value, until)

    def discard(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[V], bool]) -> int:
        """Drop every entry whose value matches (used when a token is revoked)."""
        doomed = [key for key, (value, _) in list(self._entries.items()) if predicate(value)]
        for key in doomed:
            self._entries.pop(key, None)
        return len(doomed)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        self._entries.expire()
        return len(self._entries)

    def __iter__(self) -> Iterator[bytes]:
        return iter(list(self._entries))


class SharedTokenStore:
    """Verified claims shared through Redis (L2), sealed and bound to their token's digest.

    An entry that does not unseal, forged or altered in Redis, is ignored and counted: the
    caller verifies the token afresh. Write access to Redis is never enough to mint an identity.
    """

    def __init__(
        self,
        shared: SharedRedis,
        sealer: Sealer,
        *,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self._shared = shared
        self._sealer = sealer
        self._clock = clock
        self._on_event = on_event

    @property
    def enabled(self) -> bool:
        return self._shared.enabled

    def _key(self, digest: bytes) -> str:
        return self._shared.key("tok", digest.hex())

    async def get(self, digest: bytes) -> dict[str, Any] | None:
        key = self._key(digest)
        raw = await self._shared.run("token_get", lambda r: r.get(key), None)
        if raw is None:
            return None
        payload = self._sealer.unseal(raw, key.encode())
        claims = _json_object(payload) if payload is not None else None
        if claims is None:
            self._event("forged")
        return claims

    async def put(self, digest: bytes, claims: dict[str, Any], expires_at: float) -> None:
        milliseconds = int((expires_at - self._clock()) * 1000)
        if milliseconds <= 0:
            return
        key = self._key(digest)
        sealed = self._sealer.seal(json.dumps(claims, separators=(",", ":")).encode(), key.encode())
        await self._shared.run("token_put", lambda r: r.set(key, sealed, px=milliseconds), None)

    def _event(self, event: str) -> None:
        if self._on_event is not None:
            self._on_event(event)


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
