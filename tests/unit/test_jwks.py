"""The in-process JWKS key source: validation, single flight, kid-miss cooldown, stale keys."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cache.errors import InvalidJwksError, JwksUnavailableError, UnknownKeyError
from cache.jwks import JwksCache, parse_jwks
from mcp_service.issuer import public_jwk
from tests.support.fleet import Clock, Endpoint
from tests.support.tokens import jwks_of, kid_of, rsa_key


def cache(endpoint: Endpoint, clock: Clock, **options: float) -> JwksCache:
    settings = {"kid_miss_cooldown": 10.0, "failure_backoff": 2.0, "max_age": 3600.0}
    settings.update(options)
    return JwksCache(endpoint, clock=clock, **settings)


PRIMARY = kid_of(rsa_key())


async def test_the_first_lookup_fetches_and_later_ones_do_not() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    keys = cache(endpoint, clock)
    first = await keys.get_key(PRIMARY)
    assert await keys.get_key(PRIMARY) is first
    assert endpoint.fetches == 1


async def test_concurrent_cold_lookups_share_one_fetch() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    endpoint.delay = 0.05
    keys = cache(endpoint, clock)
    results = await asyncio.gather(*(keys.get_key(PRIMARY) for _ in range(50)))
    assert len({id(key) for key in results}) == 1
    assert endpoint.fetches == 1


async def test_concurrent_unknown_kids_share_one_refresh() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    keys = cache(endpoint, clock)
    await keys.get_key(PRIMARY)
    endpoint.delay = 0.05
    outcomes = await asyncio.gather(
        *(keys.get_key(f"random-{n}") for n in range(50)), return_exceptions=True
    )
    assert all(isinstance(outcome, UnknownKeyError) for outcome in outcomes)
    assert endpoint.fetches == 2


async def test_a_rotated_key_is_picked_up_at_once_in_quiet_times() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    keys = cache(endpoint, clock)
    await keys.get_key(PRIMARY)
    endpoint.document = jwks_of(rsa_key(), rsa_key("rotated"))
    clock.now += 1  # well inside any cooldown: quiet times are no kid misses, not time passed
    assert await keys.get_key(kid_of(rsa_key("rotated")))
    assert endpoint.fetches == 2


async def test_unknown_kids_refresh_at_most_once_per_cooldown_window() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    keys = cache(endpoint, clock, kid_miss_cooldown=10.0)
    await keys.get_key(PRIMARY)
    start = clock.now
    for second in range(30):
        clock.now = start + second
        for n in range(20):
            with pytest.raises(UnknownKeyError):
                await keys.get_key(f"junk-{second}-{n}")
    assert endpoint.fetches == 1 + 3  # the cold load, then one refresh per 10 s window


async def test_a_rotated_key_is_picked_up_within_one_window_during_a_flood() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    keys = cache(endpoint, clock, kid_miss_cooldown=10.0)
    await keys.get_key(PRIMARY)
    with pytest.raises(UnknownKeyError):
        await keys.get_key("junk")  # the flood starts and spends this window's refresh
    endpoint.document = jwks_of(rsa_key(), rsa_key("rotated"))
    clock.now += 5
    with pytest.raises(UnknownKeyError):
        await keys.get_key(kid_of(rsa_key("rotated")))
    clock.now += 5
    assert await keys.get_key(kid_of(rsa_key("rotated")))


async def test_known_keys_keep_serving_while_the_endpoint_is_down() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    keys = cache(endpoint, clock, max_age=60)
    key = await keys.get_key(PRIMARY)
    endpoint.down = True
    clock.now += 10_000  # long past max_age: a background refresh is tried and fails
    assert await keys.get_key(PRIMARY) is key
    await asyncio.sleep(0)
    assert await keys.get_key(PRIMARY) is key


async def test_stale_keys_are_refreshed_in_the_background() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    keys = cache(endpoint, clock, max_age=60)
    await keys.get_key(PRIMARY)
    endpoint.document = jwks_of(rsa_key("rotated"))
    clock.now += 61
    assert await keys.get_key(PRIMARY)  # served from what we have, refresh started
    for _ in range(5):
        await asyncio.sleep(0)
    assert keys.kids == {kid_of(rsa_key("rotated"))}


async def test_a_cold_lookup_with_the_endpoint_down_is_unavailable() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    endpoint.down = True
    with pytest.raises(JwksUnavailableError) as caught:
        await cache(endpoint, clock).get_key(PRIMARY)
    assert caught.value.retry_after >= 1


async def test_failed_cold_loads_back_off_instead_of_fetching_per_request() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    endpoint.down = True
    keys = cache(endpoint, clock, failure_backoff=2.0)
    for _ in range(100):
        with pytest.raises(JwksUnavailableError):
            await keys.get_key(PRIMARY)
    assert endpoint.fetches == 1
    endpoint.down = False
    clock.now += 2.0
    assert await keys.get_key(PRIMARY)
    assert endpoint.fetches == 2


async def test_an_unknown_kid_while_the_endpoint_is_down_is_unavailable() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    keys = cache(endpoint, clock)
    await keys.get_key(PRIMARY)
    endpoint.down = True
    with pytest.raises(JwksUnavailableError):
        await keys.get_key(kid_of(rsa_key("rotated")))
    assert await keys.get_key(PRIMARY)


async def test_an_unusable_jwks_never_replaces_good_keys() -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    keys = cache(endpoint, clock)
    await keys.get_key(PRIMARY)
    endpoint.document = {"keys": []}
    with pytest.raises(UnknownKeyError):
        await keys.get_key("new-kid")
    assert keys.kids == {PRIMARY}


def test_a_jwks_with_usable_keys_parses_to_them() -> None:
    parsed = parse_jwks(jwks_of(rsa_key(), rsa_key("rotated")))
    assert set(parsed) == {kid_of(rsa_key()), kid_of(rsa_key("rotated"))}


def _jwk(**changes: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = dict(public_jwk(rsa_key()))
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not None}


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b"[]",
        {"keys": "nope"},
        {},
        {"keys": []},
        {"keys": [_jwk(kty="EC")]},
        {"keys": [_jwk(alg="HS256")]},
        {"keys": [_jwk(use="enc")]},
        {"keys": [_jwk(key_ops=["encrypt"])]},
        {"keys": [_jwk(kid=None)]},
        {"keys": [_jwk(kid="")]},
        {"keys": [_jwk(n="AQAB")]},
        {"keys": [_jwk(n="!!not-base64!!")]},
        {"keys": [_jwk(d="AQAB")]},
        {"keys": ["string"]},
    ],
    ids=[
        "not-json",
        "list",
        "keys-not-list",
        "no-keys",
        "empty",
        "ec",
        "hs256",
        "enc-use",
        "encrypt-ops",
        "no-kid",
        "empty-kid",
        "weak-modulus",
        "bad-modulus",
        "private-key",
        "string-entry",
    ],
)
def test_a_jwks_without_a_usable_rsa_signing_key_is_invalid(document: Any) -> None:
    with pytest.raises(InvalidJwksError):
        parse_jwks(document)


def test_unusable_entries_are_skipped_beside_usable_ones() -> None:
    parsed = parse_jwks({"keys": [_jwk(kty="EC", kid="ec"), _jwk()]})
    assert set(parsed) == {PRIMARY}


def test_a_small_rsa_key_is_not_usable() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidJwksError):
        parse_jwks(jwks_of(small))
