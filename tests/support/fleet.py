"""Several replicas' caches over one fake Redis: the unit-test stand-in for a fleet."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import fakeredis
from cryptography.hazmat.primitives.asymmetric import rsa

from cache.breaker import CircuitBreaker
from cache.errors import JwksFetchError
from cache.jwks import JwksCache
from cache.jwks_store import SharedJwks
from cache.redis import SharedRedis
from cache.seal import Sealer
from tests.support.tokens import jwks_of

SECRET = "s" * 32
OTHER_SECRET = "o" * 32
JWKS_URL = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool1/.well-known/jwks.json"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Endpoint:
    """The IdP's JWKS endpoint: counts fetches, can be slow, can be down."""

    def __init__(self, *keys: rsa.RSAPrivateKey) -> None:
        self.document: Any = jwks_of(*keys)
        self.fetches = 0
        self.down = False
        self.delay = 0.0

    async def __call__(self) -> bytes:
        self.fetches += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise JwksFetchError("endpoint down")
        return json.dumps(self.document).encode()


def shared_redis(server: fakeredis.FakeServer, prefix: str = "test") -> SharedRedis:
    client = fakeredis.FakeAsyncRedis(server=server)
    return SharedRedis(client, prefix=prefix, timeout=0.5, breaker=CircuitBreaker(threshold=1000))


def replica(
    server: fakeredis.FakeServer,
    endpoint: Endpoint,
    clock: Callable[[], float],
    *,
    secrets: tuple[str, ...] = (SECRET,),
    **options: Any,
) -> JwksCache:
    settings: dict[str, Any] = {
        "kid_miss_cooldown": 10.0,
        "failure_backoff": 2.0,
        "max_age": 3600.0,
        "stale_max": 86_400.0,
        "shared_wait": 2.0,
    }
    settings.update(options)
    store = SharedJwks(shared_redis(server), Sealer(secrets), JWKS_URL, clock=clock)
    return JwksCache(endpoint, shared=store, clock=clock, **settings)
