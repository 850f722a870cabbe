"""Two replicas starting together against a real Redis: one JWKS download, every time, wherever
the second replica's lock attempt falls in the first one's fetch (before it, during it, or just
after the first stored the keys and released the lock)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

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
STEP = 0.0005  # seconds: the second replica's lock attempt comes this much later each time


class LateLock(SharedJwks):
    """A replica whose lock attempt comes `delay` seconds after it found no shared copy."""

    def __init__(self, *args: Any, delay: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay = delay

    async def try_lock(self) -> bool:
        await asyncio.sleep(self.delay)
        return await super().try_lock()


async def test_every_cold_start_of_two_replicas_fetches_the_jwks_once(
    redis_url: str, redis_prefix: str
) -> None:
    fetches = []
    for start in range(COLD_STARTS):
        endpoint = Endpoint(rsa_key())
        endpoint.delay = 0.002  # the download itself
        clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(2)]
        prefix = f"{redis_prefix}:{start}-{uuid.uuid4().hex[:6]}"
        gates = [
            SharedRedis(client, prefix=prefix, breaker=CircuitBreaker(threshold=100))
            for client in clients
        ]
        first = JwksCache(endpoint, shared=SharedJwks(gates[0], Sealer((SECRET,)), JWKS_URL))
        second = JwksCache(
            endpoint,
            shared=LateLock(gates[1], Sealer((SECRET,)), JWKS_URL, delay=start * STEP),
        )
        await asyncio.gather(first.refresh(), second.refresh())
        fetches.append(endpoint.fetches)
        for client in clients:
            await client.aclose()
    assert fetches == [1] * COLD_STARTS
