"""The rate-limit script on a real Redis: the same decisions as the in-process counter, keys
laid out for a shared Redis (and Redis Cluster), and the way back after Redis fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from cache.redisline import RedisAddress
from cache.windows import Limit, MemoryWindows, RedisWindows, parse_limits
from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.processes import RedisServer
from tests.support.redisdouble import RedisProxy
from tests.support.service import make_service
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.redis

ADD = rpc("tools/call", {"name": "add", "arguments": {"a": 5, "b": 3}})


@pytest.fixture
async def windows(redis_url: str, key_prefix: str) -> AsyncIterator[RedisWindows]:
    store = RedisWindows(
        RedisAddress.from_url(redis_url), prefix=key_prefix, reply_timeout=2, connect_timeout=2
    )
    await store.connect()
    yield store
    store.close()


SEQUENCES = {
    "one limit": ("5/minute", [1] * 8),
    "costs": ("10/minute", [3, 3, 3, 3, 1, 1, 2]),
    "two limits": ("3/second;5/minute", [1] * 6),
    "cost over a limit": ("4/minute", [5, 4, 1]),
}


@pytest.mark.parametrize("case", sorted(SEQUENCES))
async def test_the_script_decides_as_the_in_process_counter_does(
    windows: RedisWindows, case: str
) -> None:
    text, costs = SEQUENCES[case]
    limits = parse_limits(text)
    memory = MemoryWindows()
    on_redis, in_process = [], []
    for cost in costs:
        allowed, usages = await windows.hit("{s:alice}", limits, cost)
        on_redis.append((allowed, [u.remaining for u in usages]))
        allowed, usages = memory.hit("{s:alice}", limits, cost)
        in_process.append((allowed, [u.remaining for u in usages]))
    assert on_redis == in_process


async def test_subjects_are_counted_apart(windows: RedisWindows) -> None:
    limits = (Limit(1, 60),)
    assert (await windows.hit("{s:alice}", limits))[0]
    assert not (await windows.hit("{s:alice}", limits))[0]
    assert (await windows.hit("{s:bob}", limits))[0]


async def test_a_rolled_window_counts_the_previous_one_by_its_overlap(
    windows: RedisWindows,
) -> None:
    limits = (Limit(10, 2),)
    for _ in range(10):
        assert (await windows.hit("{s:alice}", limits))[0]
    await asyncio.sleep(3)  # a second into the next window
    allowed, (usage,) = await windows.hit("{s:alice}", limits)
    assert allowed
    assert usage.previous == 10
    assert 0 < usage.left < 2
    admitted = 1
    while (await windows.hit("{s:alice}", limits))[0]:
        admitted += 1
    still_counted = int(10 * usage.left / 2)
    assert abs(admitted - (10 - still_counted)) <= 1  # the time between hits moves the weight


async def test_keys_are_prefixed_hash_tagged_and_expire(redis_url: str, key_prefix: str) -> None:
    service = make_service(redis_url=redis_url, rate_limit_key_prefix=key_prefix)
    token = TokenFactory().token(sub="alice")
    async with running(service.app) as client:
        response = await client.post(
            "/mcp", json=ADD, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200
    assert response.headers["ratelimit"] == '"default";r=599;t=60'
    store = redis.Redis.from_url(redis_url)
    keys = sorted(key.decode() for key in store.scan_iter(match=key_prefix + "*"))
    assert keys == [f"{key_prefix}{{s:alice}}:60"]
    assert 60_000 < store.pttl(keys[0]) <= 120_000
    assert store.get(keys[0]) == b"1"


async def test_after_redis_comes_back_its_count_resumes(redis_url: str, key_prefix: str) -> None:
    address = RedisAddress.from_url(redis_url)
    proxy = RedisProxy(address.host, address.port)
    await proxy.start()
    service = make_service(
        redis_url=proxy.url,
        rate_limit="100/minute",
        rate_limit_key_prefix=key_prefix,
        rate_limit_redis_timeout_seconds=0.2,
        rate_limit_redis_cooldown_seconds=0.5,
    )
    outcomes: list[str] = []
    assert service.limiter is not None
    service.limiter.on_decision = outcomes.append
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {TokenFactory().token()}"}
    try:
        async with running(service.app) as client:
            await client.post("/mcp", json=ADD, headers=headers)
            await proxy.set_mode("hang")
            start = time.monotonic()
            during = [await client.post("/mcp", json=ADD, headers=headers) for _ in range(3)]
            took = time.monotonic() - start
            await proxy.set_mode("up")
            deadline = time.monotonic() + 10
            while outcomes[-1] != "allowed" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                after = await client.post("/mcp", json=ADD, headers=headers)
    finally:
        await proxy.stop()
    assert [r.status_code for r in during] == [200] * 3
    assert took < 0.2 + 2.0  # one timeout, then the cool-off: no request waits on Redis again
    assert "fallback_allowed" in outcomes
    assert outcomes[-1] == "allowed"
    assert after.headers["ratelimit-remaining"] == "98"  # the second hit Redis has seen


async def test_readiness_recovers_after_a_redis_restart_without_traffic(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        service = make_service(
            redis_url=server.url,
            rate_limit="100/minute",
            rate_limit_redis_cooldown_seconds=0.2,
        )
        limiter = service.limiter
        assert limiter is not None

        async def readiness_becomes(state: str) -> bool:
            deadline = time.monotonic() + 5
            while (await limiter.readiness()).state.value != state:
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.1)
            return True

        await limiter.start()
        try:
            assert await readiness_becomes("ok")
            server.kill()
            assert await readiness_becomes("degraded")
            server.start()  # same port, empty; no request arrives meanwhile
            assert await readiness_becomes("ok")
        finally:
            await limiter.close()
