"""Two replicas starting together against a real Redis: one JWKS download, every time."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio

from cache.breaker import CircuitBreaker
from cache.jwks import JwksCache
from cache.jwks_store import SharedJwks
from cache.redis import SharedRedis
from cache.seal import Sealer
from tests.support.fleet import JWKS_URL, SECRET, Endpoint
from tests.support.tokens import rsa_key

pytestmark = pytest.mark.redis

COLD_STARTS = 24
STAGGER = 0.0004  # seconds between the two starts grow by this each time: some land on the
# moment the first replica has stored its download and released the lock


async def later(cache: JwksCache, delay: float) -> None:
    await asyncio.sleep(delay)
    await cache.refresh()


async def test_every_cold_start_of_two_replicas_fetches_the_jwks_once(
    redis_url: str, redis_prefix: str
) -> None:
    fetches = []
    for start in range(COLD_STARTS):
        endpoint = Endpoint(rsa_key())
        clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(2)]
        prefix = f"{redis_prefix}:{start}-{uuid.uuid4().hex[:6]}"
        fleet = [
            JwksCache(
                endpoint,
                shared=SharedJwks(
                    SharedRedis(client, prefix=prefix, breaker=CircuitBreaker(threshold=100)),
                    Sealer((SECRET,)),
                    JWKS_URL,
                ),
            )
            for client in clients
        ]
        await asyncio.gather(fleet[0].refresh(), later(fleet[1], start * STAGGER))
        fetches.append(endpoint.fetches)
        for client in clients:
            await client.aclose()
    assert fetches == [1] * COLD_STARTS
