"""Verified tokens shared through Redis (fakeredis): sealed, bound to their token, TTL <= exp."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest

from cache.seal import Sealer
from cache.tokens import LocalTokenCache, SharedTokenStore, token_key
from mcp_service.authenticator import Authenticator
from mcp_service.errors import InvalidToken, Reason
from mcp_service.identity import Identity
from tests.support.fleet import OTHER_SECRET, SECRET, shared_redis
from tests.support.service import TWINS, FakeJwks, make_service
from tests.support.tokens import OTHER_CLIENT_ID, TokenFactory

pytestmark = TWINS  # every behaviour here, through both twins of each hot path


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def store(
    server: fakeredis.FakeServer, *secrets: str, events: list[str] | None = None
) -> SharedTokenStore:
    on_event = events.append if events is not None else None
    return SharedTokenStore(shared_redis(server), Sealer(secrets or (SECRET,)), on_event=on_event)


CLAIMS: dict[str, Any] = {"sub": "alice", "exp": 0}


async def test_claims_put_by_one_replica_are_read_by_another(server: fakeredis.FakeServer) -> None:
    digest = token_key("t1")
    claims = {**CLAIMS, "exp": time.time() + 600}
    await store(server).put(digest, claims, claims["exp"])
    assert await store(server).get(digest) == claims


async def test_the_entry_expires_with_the_token(server: fakeredis.FakeServer) -> None:
    digest = token_key("t1")
    await store(server).put(digest, CLAIMS, time.time() + 120)
    client = fakeredis.FakeAsyncRedis(server=server)
    ttl_ms = await client.pttl(f"test:v1:tok:{digest.hex()}")
    assert 0 < ttl_ms <= 120_000


async def test_an_expired_token_is_not_shared(server: fakeredis.FakeServer) -> None:
    digest = token_key("t1")
    await store(server).put(digest, CLAIMS, time.time() - 1)
    assert await store(server).get(digest) is None


async def test_a_forged_entry_is_ignored_and_counted(server: fakeredis.FakeServer) -> None:
    digest = token_key("t1")
    client = fakeredis.FakeAsyncRedis(server=server)
    await client.set(f"test:v1:tok:{digest.hex()}", b'v1.AAAA.{"sub":"admin","exp":9999999999}')
    events: list[str] = []
    assert await store(server, events=events).get(digest) is None
    assert events == ["forged"]


async def test_an_entry_sealed_with_an_unknown_secret_is_ignored(
    server: fakeredis.FakeServer,
) -> None:
    digest = token_key("t1")
    await store(server, OTHER_SECRET).put(digest, CLAIMS, time.time() + 60)
    assert await store(server, SECRET).get(digest) is None


async def test_an_entry_copied_to_another_tokens_key_is_ignored(
    server: fakeredis.FakeServer,
) -> None:
    mine, victim = token_key("attacker-token"), token_key("victim-token")
    await store(server).put(mine, {"sub": "attacker"}, time.time() + 60)
    client = fakeredis.FakeAsyncRedis(server=server)
    sealed = await client.get(f"test:v1:tok:{mine.hex()}")
    await client.set(f"test:v1:tok:{victim.hex()}", sealed)
    assert await store(server).get(victim) is None


async def test_entries_sealed_with_the_old_secret_are_accepted_after_rotation(
    server: fakeredis.FakeServer,
) -> None:
    digest = token_key("t1")
    await store(server, OTHER_SECRET).put(digest, CLAIMS, time.time() + 60)
    assert await store(server, SECRET, OTHER_SECRET).get(digest) == CLAIMS


async def test_redis_down_is_a_miss_not_an_error(server: fakeredis.FakeServer) -> None:
    server.connected = False
    digest = token_key("t1")
    await store(server).put(digest, CLAIMS, time.time() + 60)
    assert await store(server).get(digest) is None


def authenticator(server: fakeredis.FakeServer, jwks: FakeJwks, **overrides: Any) -> Authenticator:
    service = make_service(jwks, **overrides)
    return Authenticator(
        service.authenticator.verifier,
        LocalTokenCache[Identity](100),
        shared=store(server),
    )


async def test_an_l2_hit_spares_another_replica_the_verification(
    server: fakeredis.FakeServer,
) -> None:
    jwks = FakeJwks()
    token = TokenFactory().token()
    tiers: list[str] = []
    first, second = authenticator(server, jwks), authenticator(server, jwks)
    second.on_cache = tiers.append
    await first.authenticate(token)
    jwks.up = False  # the second replica could not verify on its own now
    identity = await second.authenticate(token)
    assert identity.subject == "4d1e2f3a-0000-4000-8000-00000000abcd"
    assert tiers == ["l2"]


async def test_shared_claims_are_rechecked_against_this_replicas_rules(
    server: fakeredis.FakeServer,
) -> None:
    token = TokenFactory().token()
    await authenticator(server, FakeJwks()).authenticate(token)
    stricter = authenticator(server, FakeJwks(), app_client_id=OTHER_CLIENT_ID)
    with pytest.raises(InvalidToken) as caught:
        await stricter.authenticate(token)
    assert caught.value.reason is Reason.WRONG_CLIENT
