"""Verified tokens, remembered in process (L1) and, optionally, across the fleet (L2).

In process, the key is a plain string the caller derives from the token (mcp_service.auth keys
by the token's signature tail and checks the whole token on a hit): the cached identity holds
the token anyway (FastMCP's AccessToken carries it), and hashing a short str for a dict is far
cheaper than a sha256 digest (bench/callgrind.py: ~33 k instructions, ~0.9 % of a tool call,
for a 1 KB token). In Redis the key is always the sha256 digest, never the token (`token_key`,
computed only on an in-process miss). An entry lives no longer than its token (TTL <= exp -
now, capped by `max_ttl`), and the cache is bounded (least recently used entries go first), so
neither a long-lived token nor a flood of distinct ones can grow it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from cache.redis import SharedRedis
from cache.seal import Sealer

V = TypeVar("V")
MAX_SHARED_TTL = 86_400.0  # seconds an L2 entry may live, its token's exp notwithstanding
Key = str | bytes  # the token (in process) or its digest


def token_key(token: str) -> bytes:
    """The cache key of a token: its sha256 digest."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class LocalTokenCache(Generic[V]):
    """A bounded LRU whose entries each expire at their own time, bounded by entries and by
    bytes, with O(1) work per insert.

    Hand-written rather than cachetools' TLRUCache: a hit here is a dict lookup and a
    `move_to_end` (~0.2 us), where TLRUCache's bookkeeping costs ~2.4 us, on the path every
    authenticated request takes. Past a bound, the least recently used entries go, one
    `popitem` each; expired ones are dropped when they are looked up or reach that end (never
    by a scan, which cost 43 ms an insert at 200,000 entries). `weigh(value)` estimates an
    entry's bytes for `max_bytes`.
    """

    def __init__(
        self,
        maxsize: int = 10_000,
        *,
        max_bytes: int = 0,
        weigh: Callable[[V], int] | None = None,
        max_ttl: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._max_ttl = max_ttl
        self._maxsize = maxsize
        self._max_bytes = max_bytes if weigh is not None else 0
        self._weigh = weigh
        self._entries: OrderedDict[Key, tuple[V, float, int]] = OrderedDict()
        self.bytes = 0  # the weight of what is held (0 without a byte bound)

    def get(self, key: Key) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Key, value: V, expires_at: float) -> None:
        """Remember `value` until `expires_at` (epoch seconds), never longer than `max_ttl`."""
        now = self._clock()
        until = min(expires_at, now + self._max_ttl)
        if self._maxsize <= 0 or until <= now:
            return
        weight = 0
        if self._max_bytes:
            assert self._weigh is not None
            weight = self._weigh(value)
            if weight > self._max_bytes:
                return  # it would push out everything else and still not fit
        entries = self._entries
        if key in entries:
            self._drop(key)
        entries[key] = (value, until, weight)
        self.bytes += weight
        while len(entries) > self._maxsize or self.bytes > self._max_bytes > 0:
            _, (_, _, dropped) = entries.popitem(last=False)
            self.bytes -= dropped

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[2]

    def discard(self, key: Key) -> None:
        self._drop(key)

    def discard_where(self, predicate: Callable[[V], bool]) -> int:
        """Drop every entry whose value matches (used when a token is revoked)."""
        doomed = [key for key, (value, _, _) in self._entries.items() if predicate(value)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for _, until, _ in self._entries.values() if until > now)

    def __iter__(self) -> Iterator[Key]:
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
        # Never longer than a day: whatever `exp` said, Redis is asked for a sane TTL.
        milliseconds = int(min(expires_at - self._clock(), MAX_SHARED_TTL) * 1000)
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
