"""Verified tokens, remembered in process so that a repeated token costs microseconds.

Keys are sha256 digests of the token, never the token itself. An entry lives no longer than
its token (TTL <= exp - now, capped by `max_ttl`), and the cache is bounded (least recently
used entries go first), so neither a long-lived token nor a flood of distinct ones can grow it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from cachetools import TLRUCache

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
