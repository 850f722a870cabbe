"""A revocation is never undone by Redis losing its data, and an edited set is followed: the
set's generation (epoch, version) tells the two apart (fakeredis; the listener reloads often)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import fakeredis
import pytest

from cache.revocations import RevocationListener, RevocationSet, RevocationStore
from tests.support.fleet import shared_redis


@dataclass
class Replica:
    store: RevocationStore  # the operator's
    held: RevocationSet  # the replica's
    listener: RevocationListener
    client: fakeredis.FakeAsyncRedis  # Redis itself, to damage it

    def revokes(self, jti: str) -> bool:
        return self.held.is_revoked(jti=jti, origin_jti=None, sub=None, iat=None)


async def until(check: Callable[[], object]) -> None:
    """Poll `check` until it holds, for up to 3 s (the listener reloads about every second)."""
    async with asyncio.timeout(3.0):
        while not check():  # noqa: ASYNC110 (polling a condition nothing signals)
            await asyncio.sleep(0.01)


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    server = fakeredis.FakeServer()
    held = RevocationSet()
    listener = RevocationListener(
        RevocationStore(shared_redis(server), ttl=3600), held, reload_interval=0.05
    )
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.synced.wait(), 3)
    try:
        yield Replica(
            RevocationStore(shared_redis(server), ttl=3600),
            held,
            listener,
            fakeredis.FakeAsyncRedis(server=server),
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def in_redis(replica: Replica) -> dict[str, str]:
    """What `revoke --list` would show: field -> reason."""
    return {f"{r.kind}:{r.value}": r.reason for r in await replica.store.load()}


async def test_revocations_redis_lost_are_kept_and_written_back(replica: Replica) -> None:
    await replica.store.revoke("jti", "a", reason="stolen laptop")
    await until(lambda: replica.revokes("a"))
    await replica.client.flushall()  # restarted empty
    await until(lambda: replica.listener.restored == 1)
    assert replica.revokes("a")
    assert await in_redis(replica) == {"jti:a": "stolen laptop"}


async def test_an_entry_removed_from_the_same_generation_is_removed_here(
    replica: Replica,
) -> None:
    for jti in ("a", "b"):
        await replica.store.revoke("jti", jti)
    await until(lambda: replica.revokes("a") and replica.revokes("b"))
    await replica.client.hdel(replica.store.entries_key, "jti:b")  # an operator's edit
    await until(lambda: not replica.revokes("b"))
    assert replica.revokes("a")
    assert replica.listener.restored == 0


async def test_writes_a_failover_lost_are_written_back(replica: Replica) -> None:
    await replica.store.revoke("jti", "a")
    await replica.store.revoke("jti", "b")
    await until(lambda: replica.revokes("b"))
    # The new primary had replicated the first write only.
    await replica.client.hdel(replica.store.entries_key, "jti:b")
    await replica.client.zrem(replica.store.expiry_key, "jti:b")
    await replica.client.hset(replica.store.generation_key, "version", 1)
    await until(lambda: replica.listener.restored == 1)
    assert replica.revokes("b")
    assert set(await in_redis(replica)) == {"jti:a", "jti:b"}


async def test_an_announcement_carries_the_version_it_wrote(replica: Replica) -> None:
    async with replica.store.subscribe() as subscription:
        await replica.store.revoke("jti", "a")
        message = await subscription.message(wait=2)
    assert message is not None
    assert json.loads(message)["version"] == 2  # the listener's first sync made version 1
