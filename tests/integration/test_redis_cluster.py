"""Cluster mode (REDIS_CLUSTER=true) against a 3-primary Redis Cluster the module creates: every
shared feature works, the rate limiter follows MOVED and ASK on its own RESP connections, and
readiness looks at every primary."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from cache.cluster import ClusterWindows
from cache.redis import SharedRedis, create_redis
from cache.redisline import RedisAddress
from cache.windows import parse_limits
from mcp_service.oauth.state import Box, RedisState, digest
from tests.support.pool import call_add
from tests.support.redistopologies import ClusterNodes
from tests.support.service import make_service
from tests.support.sharedfleet import (
    Fleet,
    admitted_across,
    fleet_on,
    seconds_until_revoked_everywhere,
)
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.redis

LIMIT = parse_limits("100/minute")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterNodes]:
    with ClusterNodes(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def fleet(cluster: ClusterNodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    cwd = tmp_path_factory.mktemp("cluster-fleet")
    with fleet_on(cluster.url, "clu", cwd, REDIS_CLUSTER="true") as fleet:
        yield fleet


async def windows_on(cluster: ClusterNodes) -> ClusterWindows:
    windows = ClusterWindows(
        RedisAddress.from_url(cluster.url),
        prefix=f"w{uuid.uuid4().hex[:6]}:rl:",
        reply_timeout=2,
        connect_timeout=2,
    )
    await windows.connect()
    return windows


def test_a_fleet_cold_start_fetches_the_jwks_once(fleet: Fleet) -> None:
    token = TokenFactory().token()
    assert {call_add(replica.url, token).status_code for replica in fleet.replicas} == {200}
    assert fleet.jwks.requests == 1


def test_a_revocation_reaches_every_replica_within_a_second(fleet: Fleet, tmp_path: Path) -> None:
    assert seconds_until_revoked_everywhere(fleet.replicas, tmp_path) < 1.0


def test_exactly_the_limit_is_admitted_across_the_fleet(fleet: Fleet) -> None:
    assert admitted_across(fleet.replicas, 30) == 10


def test_every_replica_is_ready_on_every_primary(fleet: Fleet) -> None:
    import httpx

    for replica in fleet.replicas:
        body = httpx.get(f"{replica.url}/readyz", timeout=5).json()
        assert body["status"] == "ok", body


async def test_the_limiter_connects_to_every_primary(cluster: ClusterNodes) -> None:
    windows = await windows_on(cluster)
    try:
        assert windows.primaries == sorted(("127.0.0.1", node.port) for node in cluster.nodes)
        assert windows.ready
    finally:
        windows.close()


async def test_each_caller_is_counted_on_the_primary_of_its_slot(cluster: ClusterNodes) -> None:
    windows = await windows_on(cluster)
    client = cluster.client()
    try:
        callers = [f"{{s:caller-{n}}}" for n in range(12)]
        for caller in callers:
            for _ in range(2):
                await windows.hit(caller, LIMIT)
        counts = [client.get(windows.prefix + caller.encode() + b":60") for caller in callers]
        nodes = {client.get_node_from_key(windows.prefix + c.encode()).port for c in callers}
    finally:
        windows.close()
        client.close()
    assert counts == [b"2"] * len(callers)
    assert len(nodes) > 1  # the callers were spread over several primaries


async def test_a_migrating_slot_is_followed_by_ask_then_moved(cluster: ClusterNodes) -> None:
    windows = await windows_on(cluster)
    caller = f"{{s:moving-{uuid.uuid4().hex[:6]}}}"
    base = windows.prefix + caller.encode()
    slot = key_slot(base)
    admin = cluster.client()
    source = admin.get_node_from_key(base)
    target = next(node for node in admin.get_primaries() if node.port != source.port)
    ids = {
        node.port: redis.Redis(port=node.port).execute_command("CLUSTER", "MYID").decode()
        for node in cluster.nodes
    }
    try:
        direct = {node.port: redis.Redis(port=node.port) for node in cluster.nodes}
        first = (await windows.hit(caller, LIMIT))[1][0].remaining  # on the source
        current, previous = base + b":60", base + b":60:p"
        direct[source.port].set(previous, 0, px=60_000)
        direct[target.port].execute_command(
            "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port]
        )
        direct[source.port].execute_command(
            "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port]
        )
        direct[source.port].migrate("127.0.0.1", target.port, [current, previous], 0, 5000)
        # The keys have left the source: it answers ASK, and the target runs the script.
        asked = (await windows.hit(caller, LIMIT))[1][0].remaining
        for node in direct.values():
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
        # The migration is over: the source answers MOVED, and the map is updated.
        moved = [(await windows.hit(caller, LIMIT))[1][0].remaining for _ in range(2)]
        on_target = direct[target.port].get(base + b":60")
        for node in direct.values():
            node.close()
    finally:
        windows.close()
        admin.close()
    assert [first, asked, *moved] == [99, 98, 97, 96]
    assert on_target == b"4"


async def test_after_a_failover_every_path_follows_the_new_primary(cluster: ClusterNodes) -> None:
    """The primary of a caller's slot is demoted (`CLUSTER FAILOVER` on its new replica): the
    rate limiter gets MOVED to a node it has no connection to, counts in process meanwhile,
    reads the slot map again and counts on the new primary; the shared caches' client follows
    too. Leaves the module's cluster healthy, its first node a replica."""
    admin = cluster.client()
    old = cluster.nodes[0]
    subject = next(
        f"failover-{n}"
        for n in range(1000)
        if admin.get_node_from_key(f"fo:rl:{{s:failover-{n}}}").port == old.port
    )
    admin.close()
    service = make_service(
        redis_url=cluster.url,
        redis_cluster=True,
        rate_limit="100/minute",
        rate_limit_key_prefix="fo:rl:",
        rate_limit_redis_cooldown_seconds=0.2,
    )
    limiter = service.limiter
    assert limiter is not None
    await limiter.start()
    claims = {"sub": subject, "client_id": "c"}
    try:
        assert (await limiter.check(claims)).outcome == "allowed"
        promoted = cluster.add_replica(old)
        cluster.fail_over_to(promoted)
        outcomes = []
        deadline = time.monotonic() + 10
        while not outcomes or outcomes[-1] != "allowed":
            assert time.monotonic() < deadline, outcomes
            outcomes.append((await limiter.check(claims)).outcome)
            await asyncio.sleep(0.05)
        readiness = await service.shared.readiness()
    finally:
        await limiter.close()
        await service.shared.close()
    direct = redis.Redis(port=promoted.port)
    try:
        counted = direct.get(f"fo:rl:{{s:{subject}}}:60")
    finally:
        direct.close()
    assert set(outcomes[:-1]) <= {"fallback_allowed"}
    assert counted is not None and int(counted) >= 2  # the first hit, replicated, and the last
    assert readiness.state.value == "ok", readiness


async def test_a_cluster_used_without_cluster_mode_is_degraded_and_says_so(
    cluster: ClusterNodes,
) -> None:
    states = set()
    for node in [*cluster.nodes, *cluster.replicas]:  # one serves the probe key's slot
        service = make_service(redis_url=node.url, redis_key_prefix="elsewhere")
        try:
            result = await service.shared.readiness()
        finally:
            await service.shared.close()
        states.add((result.state.value, "REDIS_CLUSTER=true" in result.detail))
    assert states == {("ok", False), ("degraded", True)}


async def test_the_login_state_is_single_use_and_rotates_on_a_cluster(
    cluster: ClusterNodes,
) -> None:
    """The facade's codes and refresh families keep one hash tag each, so their scripts run
    on one primary: a code redeems once, then reads as replayed; a rotated refresh token
    presented again ends its family."""
    client = create_redis(cluster.url, socket_timeout=2, connect_timeout=2, cluster=True)
    state = RedisState(SharedRedis(client, prefix=f"s{uuid.uuid4().hex[:6]}"), Box(["k" * 32]))
    try:
        await state.put("code", digest("the-code"), {"sub": "alice"}, 60)
        assert await state.redeem("the-code", 60) == ("redeemed", {"sub": "alice"})
        assert await state.redeem("the-code", 60) == ("replayed", {"sub": "alice"})
        await state.start_family("fam", "refresh-1", {"sub": "alice"}, 60)
        assert await state.rotate("fam", "refresh-1", "refresh-2") == ("rotated", {"sub": "alice"})
        assert (await state.rotate("fam", "refresh-1", "refresh-3"))[0] == "reused"
        assert (await state.rotate("fam", "refresh-2", "refresh-4"))[0] == "unknown"
    finally:
        await client.aclose()


async def test_readiness_is_degraded_while_one_primary_is_unreachable(
    cluster: ClusterNodes,
) -> None:
    """Last in the module: it kills one of the module's primaries."""
    service = make_service(redis_url=cluster.url, redis_cluster=True, rate_limit="100/minute")
    limiter = service.limiter
    assert limiter is not None
    await limiter.start()

    async def states() -> dict[str, str]:
        report = await service.readiness.evaluate()
        return {name: report.checks[name][0].state.value for name in ("redis", "rate_limit")}

    try:
        before = await states()
        cluster.nodes[2].kill()
        deadline = time.monotonic() + 10
        after = await states()
        while "ok" in after.values() and time.monotonic() < deadline:
            after = await states()
    finally:
        await limiter.close()
        await service.shared.close()
    assert before == {"redis": "ok", "rate_limit": "ok"}
    assert after == {"redis": "degraded", "rate_limit": "degraded"}
