"""The JWKS shared by a fleet through Redis (fakeredis): one fetch per event, fleet-wide."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import fakeredis
import pytest

from cache.errors import JwksUnavailableError, UnknownKeyError
from cache.jwks import JwksCache
from cache.jwks_store import SharedJwks
from cache.seal import Sealer
from tests.support.fleet import (
    JWKS_URL,
    OTHER_SECRET,
    SECRET,
    Clock,
    Endpoint,
    replica,
    shared_redis,
)
from tests.support.tokens import jwks_of, kid_of, rsa_key

PRIMARY = kid_of(rsa_key())
ROTATED = kid_of(rsa_key("rotated"))


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


async def test_a_fleet_cold_start_fetches_once(server: fakeredis.FakeServer) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    endpoint.delay = 0.05
    fleet = [replica(server, endpoint, clock) for _ in range(8)]
    await asyncio.gather(*(cache.refresh() for cache in fleet))
    assert endpoint.fetches == 1
    assert all(cache.kids == {PRIMARY} for cache in fleet)


class LateLock(SharedJwks):
    """A replica whose lock attempt comes just after another replica fetched, stored and
    released: the moment a fleet starting together can fetch twice."""

    def __init__(self, *args: Any, first: JwksCache, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first = first

    async def try_lock(self) -> bool:
        await self.first.refresh()
        return await super().try_lock()


async def test_a_replica_that_wins_the_lock_after_another_fetched_adopts_its_keys(
    server: fakeredis.FakeServer,
) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    first = replica(server, endpoint, clock)
    store = LateLock(shared_redis(server), Sealer((SECRET,)), JWKS_URL, clock=clock, first=first)
    second = JwksCache(endpoint, shared=store, clock=clock)
    await second.refresh()
    assert endpoint.fetches == 1
    assert second.kids == first.kids == {PRIMARY}


async def test_a_replica_started_later_adopts_the_shared_keys(server: fakeredis.FakeServer) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    await replica(server, endpoint, clock).get_key(PRIMARY)
    clock.now += 600
    assert await replica(server, endpoint, clock).get_key(PRIMARY)
    assert endpoint.fetches == 1


async def test_a_key_rotation_costs_the_fleet_one_fetch(server: fakeredis.FakeServer) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    fleet = [replica(server, endpoint, clock) for _ in range(3)]
    await asyncio.gather(*(cache.refresh() for cache in fleet))
    endpoint.document = jwks_of(rsa_key(), rsa_key("rotated"))
    endpoint.delay = 0.05
    clock.now += 1
    keys = await asyncio.gather(*(cache.get_key(ROTATED) for cache in fleet))
    assert len(keys) == 3
    assert endpoint.fetches == 2


async def test_random_kids_refresh_once_per_window_fleet_wide(
    server: fakeredis.FakeServer,
) -> None:
    """Redis keeps the window (in real time), so this test runs on the real clock."""
    endpoint = Endpoint(rsa_key())
    fleet = [replica(server, endpoint, time.time, kid_miss_cooldown=0.25) for _ in range(3)]
    await asyncio.gather(*(cache.refresh() for cache in fleet))
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 1.0:
        for cache in fleet:
            n += 1
            with pytest.raises(UnknownKeyError):
                await cache.get_key(f"junk-{n}")
        await asyncio.sleep(0.005)
    windows = (time.monotonic() - started) / 0.25
    assert n > 300
    assert 2 <= endpoint.fetches - 1 <= int(windows) + 1


async def test_the_idp_down_serves_the_fleets_last_good_keys(server: fakeredis.FakeServer) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    await replica(server, endpoint, clock, max_age=60).refresh()
    endpoint.down = True
    clock.now += 3600  # the shared document is past max_age but within stale_max
    late = replica(server, endpoint, clock, max_age=60)
    assert await late.get_key(PRIMARY)


async def test_keys_past_the_stale_limit_are_not_served(server: fakeredis.FakeServer) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    cache = replica(server, endpoint, clock, max_age=60, stale_max=600)
    await cache.refresh()
    endpoint.down = True
    clock.now += 60 + 601
    with pytest.raises(JwksUnavailableError):
        await cache.get_key(PRIMARY)
    with pytest.raises(JwksUnavailableError):
        await replica(server, endpoint, clock, max_age=60, stale_max=600).get_key(PRIMARY)


async def test_an_unsealed_jwks_in_redis_is_ignored_and_refetched(
    server: fakeredis.FakeServer,
) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    events: list[str] = []
    attacker = SharedJwks(shared_redis(server), Sealer([OTHER_SECRET]), JWKS_URL, clock=clock)
    attacker_doc = str(jwks_of(rsa_key("attacker"))).replace("'", '"').encode()
    await attacker.store(attacker_doc, clock.now, 3600)  # sealed with a secret we do not accept
    store = SharedJwks(
        shared_redis(server), Sealer([SECRET]), JWKS_URL, clock=clock, on_event=events.append
    )
    from cache.jwks import JwksCache

    cache = JwksCache(endpoint, shared=store, clock=clock)
    assert await cache.get_key(PRIMARY)
    with pytest.raises(UnknownKeyError):
        await cache.get_key(kid_of(rsa_key("attacker")))
    assert endpoint.fetches >= 1
    assert "forged" in events


@pytest.mark.parametrize("garbage", [b"", b"not sealed", b"v1.AAAA.{}", b"v1..", b"v2.x.y"])
async def test_garbage_in_the_shared_jwks_is_ignored(
    server: fakeredis.FakeServer, garbage: bytes
) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    first = replica(server, endpoint, clock)
    await first.refresh()
    client = fakeredis.FakeAsyncRedis(server=server)
    keys = [key async for key in client.scan_iter("test:v1:jwks:*:doc")]
    assert len(keys) == 1
    await client.set(keys[0], garbage)
    assert await replica(server, endpoint, clock).get_key(PRIMARY)
    assert endpoint.fetches == 2


async def test_a_sealed_entry_survives_secret_rotation(server: fakeredis.FakeServer) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    await replica(server, endpoint, clock, secrets=(OTHER_SECRET,)).refresh()
    rotated = replica(server, endpoint, clock, secrets=(SECRET, OTHER_SECRET))
    assert await rotated.get_key(PRIMARY)
    assert endpoint.fetches == 1


async def test_redis_down_each_replica_fetches_for_itself(server: fakeredis.FakeServer) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    server.connected = False
    fleet = [replica(server, endpoint, clock) for _ in range(3)]
    for cache in fleet:
        assert await cache.get_key(PRIMARY)
    assert endpoint.fetches == 3


async def test_a_waiting_replica_falls_back_to_fetching_when_the_holder_stalls(
    server: fakeredis.FakeServer,
) -> None:
    endpoint, clock = Endpoint(rsa_key()), Clock()
    client = fakeredis.FakeAsyncRedis(server=server)
    store = SharedJwks(shared_redis(server), Sealer([SECRET]), JWKS_URL, clock=clock)
    assert await store.try_lock()  # a replica took the lock and then died
    assert await client.exists(*[k async for k in client.scan_iter("test:v1:jwks:*:lock")])
    cache = replica(server, endpoint, Clock(), shared_wait=0.2)
    assert await asyncio.wait_for(cache.get_key(PRIMARY), 5)
    assert endpoint.fetches == 1


async def test_a_replica_that_loses_the_kid_miss_claim_waits_for_the_winners_fetch(
    server: fakeredis.FakeServer,
) -> None:
    """The winner claims the window, then takes the fetch lock one round trip later: a loser
    looking in between sees no lock, yet must wait for the winner's keys, not refuse the kid."""
    endpoint = Endpoint(rsa_key())
    loser = replica(server, endpoint, time.time)
    await loser.refresh()
    winner = SharedJwks(shared_redis(server), Sealer([SECRET]), JWKS_URL)
    current = await winner.read()
    assert current is not None
    assert await winner.claim_kid_miss(10.0, current.fetched_at) is None  # not yet locked

    async def winner_lands() -> None:
        await asyncio.sleep(0.05)
        rotated = json.dumps(jwks_of(rsa_key(), rsa_key("rotated"))).encode()
        await winner.store(rotated, time.time(), 3600)

    landing = asyncio.create_task(winner_lands())
    assert await asyncio.wait_for(loser.get_key(ROTATED), 5)
    await landing
    assert endpoint.fetches == 1  # the loser's start-up fetch only


async def test_a_kid_miss_after_the_winner_landed_is_refused_without_waiting(
    server: fakeredis.FakeServer,
) -> None:
    endpoint = Endpoint(rsa_key())
    winner = replica(server, endpoint, time.time)
    await winner.refresh()
    with pytest.raises(UnknownKeyError):
        await winner.get_key("junk-1")  # claims this window and refreshes
    late = replica(server, endpoint, time.time, shared_wait=2.0)
    await late.refresh()  # adopts the winner's document
    started = time.monotonic()
    with pytest.raises(UnknownKeyError):
        await late.get_key("junk-2")
    assert time.monotonic() - started < 1.0  # nothing is under way: no shared_wait
    assert endpoint.fetches == 2
