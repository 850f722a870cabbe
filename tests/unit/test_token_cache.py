"""The in-process verified-token cache: bounded, and never outliving a token."""

from __future__ import annotations

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
