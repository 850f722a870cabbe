"""The in-process verified-token cache: bounded, and never outliving a token."""

from __future__ import annotations

import time

import pytest

from cache.tokens import LocalTokenCache, token_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_served_until_the_token_expires() -> None:
    clock = Clock()
    cache: LocalTokenCache[str] = LocalTokenCache(10, clock=clock)
    cache.put(b"k", "identity", expires_at=1060.0)
    clock.now = 1059.9
    assert cache.get(b"k") == "identity"
    clock.now = 1060.0
    assert cache.get(b"k") is None


def test_an_already_expired_token_is_not_stored() -> None:
    clock = Clock()
    cache: LocalTokenCache[str] = LocalTokenCache(10, clock=clock)
    cache.put(b"k", "identity", expires_at=999.0)
    assert cache.get(b"k") is None
    assert len(cache) == 0


def test_an_entry_never_outlives_max_ttl() -> None:
    clock = Clock()
    cache: LocalTokenCache[str] = LocalTokenCache(10, max_ttl=300, clock=clock)
    cache.put(b"k", "identity", expires_at=1_000_000.0)
    clock.now = 1300.0
    assert cache.get(b"k") is None


def test_the_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    clock = Clock()
    cache: LocalTokenCache[int] = LocalTokenCache(3, clock=clock)
    for n in range(3):
        cache.put(bytes([n]), n, expires_at=2000.0)
    assert cache.get(bytes([0])) == 0  # 0 is now the most recently used
    cache.put(bytes([3]), 3, expires_at=2000.0)
    assert len(cache) == 3
    assert cache.get(bytes([1])) is None
    assert cache.get(bytes([0])) == 0


def test_a_cache_of_size_zero_stores_nothing() -> None:
    cache: LocalTokenCache[str] = LocalTokenCache(0, clock=Clock())
    cache.put(b"k", "identity", expires_at=2000.0)
    assert cache.get(b"k") is None


def test_matching_entries_can_be_discarded() -> None:
    cache: LocalTokenCache[str] = LocalTokenCache(10, clock=Clock())
    cache.put(b"a", "alice", expires_at=2000.0)
    cache.put(b"b", "bob", expires_at=2000.0)
    assert cache.discard_where(lambda who: who == "alice") == 1
    assert cache.get(b"a") is None
    assert cache.get(b"b") == "bob"


def test_keys_are_sha256_digests_not_tokens() -> None:
    key = token_key("header.payload.signature")
    assert len(key) == 32
    assert b"payload" not in key


async def test_a_cached_token_does_not_vouch_for_a_tampered_copy() -> None:
    """The in-process cache is keyed by the whole token: a copy with one signature character
    changed, sent after the genuine token was cached, is verified afresh and refused."""
    from mcp_service.errors import InvalidToken, Reason
    from tests.support.service import make_service
    from tests.support.tokens import TokenFactory

    service = make_service()
    await service.jwks.refresh()
    genuine = TokenFactory().token()
    identity = await service.authenticator.authenticate(genuine)
    assert await service.authenticator.authenticate(genuine) is identity  # served from L1
    last = genuine[-2]
    tampered = genuine[:-2] + ("A" if last != "A" else "B") + genuine[-1]
    with pytest.raises(InvalidToken) as refused:
        await service.authenticator.authenticate(tampered)
    assert refused.value.reason is Reason.BAD_SIGNATURE
    assert await service.authenticator.authenticate(genuine) is identity


def test_a_full_cache_takes_new_entries_without_scanning_the_old_ones() -> None:
    """Eviction is O(1): 20,000 inserts into a full cache of 200,000 take a moment, not the
    minutes a scan per insert took (a generous bound: this proves nothing hangs)."""
    clock = Clock()
    cache: LocalTokenCache[int] = LocalTokenCache(200_000, clock=clock)
    for i in range(200_000):
        cache.put(f"old-{i}", i, clock.now + 3600)
    started = time.perf_counter()
    for i in range(20_000):
        cache.put(f"new-{i}", i, clock.now + 3600)
    assert time.perf_counter() - started < 5
    assert cache.get("new-19999") == 19_999 and cache.get("old-0") is None


def test_the_cache_is_bounded_by_bytes_as_well_as_entries() -> None:
    clock = Clock()
    cache: LocalTokenCache[str] = LocalTokenCache(1000, max_bytes=10_000, weigh=len, clock=clock)
    for i in range(10):
        cache.put(f"k{i}", "x" * 3000, clock.now + 60)  # 3,000 bytes each
    assert cache.bytes <= 10_000
    assert [cache.get(f"k{i}") is not None for i in range(10)] == [False] * 7 + [True] * 3


def test_an_entry_heavier_than_the_whole_bound_is_not_kept() -> None:
    clock = Clock()
    cache: LocalTokenCache[str] = LocalTokenCache(10, max_bytes=100, weigh=len, clock=clock)
    cache.put("small", "x" * 10, clock.now + 60)
    cache.put("huge", "x" * 1000, clock.now + 60)
    assert cache.get("huge") is None and cache.get("small") == "x" * 10


def test_expired_entries_stop_counting_once_seen_or_evicted() -> None:
    clock = Clock()
    cache: LocalTokenCache[str] = LocalTokenCache(10, max_bytes=100, weigh=len, clock=clock)
    cache.put("a", "x" * 60, clock.now + 1)
    clock.now += 2
    assert cache.get("a") is None
    assert cache.bytes == 0
