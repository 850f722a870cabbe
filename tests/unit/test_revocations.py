"""Revocations: by jti, by origin_jti, by subject; held in memory, shared through Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import fakeredis
import pytest

from cache.errors import RevocationError
from cache.redis import SharedRedis
from cache.revocations import Revocation, RevocationListener, RevocationSet, RevocationStore
from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.fleet import shared_redis
from tests.support.service import TWINS, make_service
from tests.support.tokens import TokenFactory

pytestmark = TWINS  # every behaviour here, through both twins of each hot path

NOW = 1_800_000_000.0


def revocation(kind: str, value: str, at: float = NOW, ttl: float = 3600) -> Revocation:
    return Revocation(kind, value, at, at + ttl)  # type: ignore[arg-type]


def revoked(entries: list[Revocation], **token: Any) -> bool:
    fields = {"jti": None, "origin_jti": None, "sub": None, "iat": None, **token}
    held = RevocationSet(lambda: NOW + 1)
    held.replace(entries)
    return held.is_revoked(**fields)


def test_a_revoked_jti_is_refused() -> None:
    assert revoked([revocation("jti", "j1")], jti="j1", iat=NOW - 10)


def test_a_revoked_refresh_token_kills_its_access_tokens() -> None:
    assert revoked([revocation("jti", "refresh-1")], jti="access-9", origin_jti="refresh-1")


def test_other_tokens_are_not_affected() -> None:
    assert not revoked([revocation("jti", "j1")], jti="j2", origin_jti="o2", sub="alice")


def test_a_revoked_subject_refuses_tokens_issued_before() -> None:
    assert revoked([revocation("sub", "alice")], sub="alice", iat=NOW - 60)


def test_a_revoked_subject_accepts_tokens_issued_after() -> None:
    assert not revoked([revocation("sub", "alice")], sub="alice", iat=NOW + 1)


def test_a_revoked_subjects_token_without_iat_is_refused() -> None:
    assert revoked([revocation("sub", "alice")], sub="alice", iat=None)


def test_an_expired_revocation_is_not_held() -> None:
    assert not revoked([revocation("jti", "j1", at=NOW - 7200)], jti="j1")


def test_the_latest_subject_revocation_wins() -> None:
    entries = [revocation("sub", "alice", at=NOW - 100), revocation("sub", "alice", at=NOW)]
    assert revoked(entries, sub="alice", iat=NOW - 50)


def test_the_set_says_whether_anything_is_revoked() -> None:
    now = NOW
    held = RevocationSet(lambda: now)
    assert not held
    held.add(revocation("jti", "j1", ttl=60))
    assert held
    now += 61
    held.prune()
    assert not held
    held.replace([revocation("sub", "alice", at=now)])
    assert held
    held.replace([])
    assert not held


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


async def test_a_stored_revocation_is_loaded_back(server: fakeredis.FakeServer) -> None:
    store = RevocationStore(shared_redis(server), ttl=3600)
    await store.revoke("jti", "j1", reason="leaked", by="ops@host")
    (loaded,) = await store.load()
    assert (loaded.kind, loaded.value, loaded.reason, loaded.by) == (
        "jti",
        "j1",
        "leaked",
        "ops@host",
    )
    assert loaded.expires_at - loaded.revoked_at == 3600


async def test_expired_revocations_are_dropped_from_redis(server: fakeredis.FakeServer) -> None:
    clock = [time.time()]
    store = RevocationStore(shared_redis(server), ttl=60, clock=lambda: clock[0])
    await store.revoke("jti", "old")
    clock[0] += 61
    assert await store.load() == []
    client = fakeredis.FakeAsyncRedis(server=server)
    assert await client.hlen(store.entries_key) == 0


async def test_revoking_without_redis_is_an_error() -> None:
    with pytest.raises(RevocationError):
        await RevocationStore(SharedRedis(None), ttl=60).revoke("jti", "x")


async def test_revoking_with_redis_down_is_an_error(server: fakeredis.FakeServer) -> None:
    server.connected = False
    with pytest.raises(RevocationError):
        await RevocationStore(shared_redis(server), ttl=60).revoke("jti", "x")


async def until(condition: Any, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_listener_applies_announced_revocations(server: fakeredis.FakeServer) -> None:
    store = RevocationStore(shared_redis(server), ttl=3600)
    held, seen = RevocationSet(), []
    listener = RevocationListener(store, held, on_revoked=seen.append)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.synced.wait(), 3)
        await RevocationStore(shared_redis(server), ttl=3600).revoke("sub", "bob")
        await until(lambda: held.is_revoked(jti=None, origin_jti=None, sub="bob", iat=0))
        assert [r.value for r in seen] == ["bob"]
    finally:
        task.cancel()


async def test_a_listener_loads_what_was_revoked_before_it_started(
    server: fakeredis.FakeServer,
) -> None:
    await RevocationStore(shared_redis(server), ttl=3600).revoke("jti", "early")
    held = RevocationSet()
    listener = RevocationListener(RevocationStore(shared_redis(server), ttl=3600), held)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.synced.wait(), 3)
        assert held.is_revoked(jti="early", origin_jti=None, sub=None, iat=None)
    finally:
        task.cancel()


async def test_a_listener_reconnects_and_reloads(server: fakeredis.FakeServer) -> None:
    held = RevocationSet()
    listener = RevocationListener(
        RevocationStore(shared_redis(server), ttl=3600), held, retry_delay=0.05
    )
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.synced.wait(), 3)
        server.connected = False
        await until(lambda: not listener.synced.is_set())
        server.connected = True
        writer = RevocationStore(shared_redis(server), ttl=3600)
        await writer.revoke("jti", "while-away")
        await until(lambda: held.is_revoked(jti="while-away", origin_jti=None, sub=None, iat=None))
    finally:
        task.cancel()


async def test_a_revoked_token_gets_401_revoked_even_when_cached() -> None:
    service = make_service()
    token = TokenFactory().token()
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    call = rpc("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
    async with running(service.app) as client:
        assert (await client.post("/mcp", json=call, headers=headers)).status_code == 200
        claims = service.authenticator.cache.get(next(iter(service.authenticator.cache)))
        assert claims is not None
        revocation = Revocation("jti", str(claims.jti), time.time(), time.time() + 60)
        service.authenticator.revoked.add(revocation)
        service.authenticator.forget(revocation)
        response = await client.post("/mcp", json=call, headers=headers)
    assert response.status_code == 401
    assert response.json()["reason"] == "revoked"
