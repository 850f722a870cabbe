"""When Redis fails: fail open (a per-replica budget) or fail closed (503), never a hang, and back
to the shared budget on its own. Redis here is a stand-in on loopback whose failures the tests
switch (tests/support/redisdouble.py); the real Redis is in tests/integration/."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mcp_service.app import Service
from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.redisdouble import FakeRedis
from tests.support.service import make_service
from tests.support.tokens import TokenFactory

ADD = rpc("tools/call", {"name": "add", "arguments": {"a": 5, "b": 3}})
TIMEOUT = 0.2
COOLDOWN = 0.5


@pytest.fixture
async def redis() -> AsyncIterator[FakeRedis]:
    fake = FakeRedis()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def headers() -> dict[str, str]:
    return {**MCP_HEADERS, "Authorization": f"Bearer {TokenFactory().token()}"}


def requests(outcomes: list[str]) -> list[str]:
    """The per-request outcomes, without the Redis errors reported along the way."""
    return [outcome for outcome in outcomes if outcome != "redis_error"]


def service(redis: FakeRedis, **overrides: Any) -> tuple[Service, list[str]]:
    values: dict[str, Any] = {
        "redis_url": redis.url,
        "rate_limit": "3/minute",
        "rate_limit_redis_timeout_seconds": TIMEOUT,
        "rate_limit_redis_cooldown_seconds": COOLDOWN,
    }
    built = make_service(**{**values, **overrides})
    outcomes: list[str] = []
    assert built.limiter is not None
    built.limiter.on_decision = outcomes.append
    return built, outcomes


async def statuses_of(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[int]:
    return [(await client.post("/mcp", json=ADD, headers=headers)).status_code for _ in range(n)]


async def timed_post(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[int, float]:
    start = time.monotonic()
    response = await client.post("/mcp", json=ADD, headers=headers)
    return response.status_code, time.monotonic() - start


async def test_while_redis_answers_the_budget_is_counted_there(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    built, outcomes = service(redis)
    async with running(built.app) as client:
        statuses = await statuses_of(client, headers, 4)
    assert statuses == [200, 200, 200, 429]
    assert outcomes == ["allowed"] * 3 + ["limited"]
    assert redis.commands.count(b"EVALSHA") == 4


async def test_down_at_start_the_service_fails_open_with_its_own_budget(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    await redis.set_mode("down")
    built, outcomes = service(redis, rate_limit_fallback="2/minute")
    async with running(built.app) as client:
        responses = [await client.post("/mcp", json=ADD, headers=headers) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["ratelimit-policy"] == '"fallback";q=2;w=60'
    assert requests(outcomes) == ["fallback_allowed", "fallback_allowed", "fallback_limited"]
    assert "redis_error" in outcomes


async def test_without_a_fallback_limit_the_normal_limit_applies_per_replica(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    await redis.set_mode("down")
    built, _ = service(redis)
    async with running(built.app) as client:
        statuses = await statuses_of(client, headers, 4)
    assert statuses == [200, 200, 200, 429]


async def test_fail_closed_answers_503_with_retry_after(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    await redis.set_mode("down")
    built, outcomes = service(redis, rate_limit_failure_mode="closed")
    async with running(built.app) as client:
        response = await client.post("/mcp", json=ADD, headers=headers)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["reason"] == "rate_limit_unavailable"
    assert "ratelimit" not in response.headers
    assert requests(outcomes) == ["unavailable"]


async def test_a_redis_that_stops_answering_costs_a_request_at_most_the_timeout(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    built, outcomes = service(redis)
    async with running(built.app) as client:
        assert (await client.post("/mcp", json=ADD, headers=headers)).status_code == 200
        await redis.set_mode("hang")
        status, took = await timed_post(client, headers)
    assert status == 200
    assert took < TIMEOUT + 1.0
    assert outcomes[:3] == ["allowed", "redis_error", "fallback_allowed"]


async def test_a_hang_fails_closed_within_the_timeout_too(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    built, _ = service(redis, rate_limit_failure_mode="closed")
    async with running(built.app) as client:
        await redis.set_mode("hang")
        status, took = await timed_post(client, headers)
    assert status == 503
    assert took < TIMEOUT + 1.0


async def test_requests_in_flight_when_redis_hangs_all_end_within_the_timeout(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    built, _ = service(redis, rate_limit="100/minute")
    async with running(built.app) as client:
        await client.post("/mcp", json=ADD, headers=headers)
        await redis.set_mode("hang")
        start = time.monotonic()
        results = await asyncio.gather(*(timed_post(client, headers) for _ in range(10)))
    assert [status for status, _ in results] == [200] * 10
    assert time.monotonic() - start < TIMEOUT + 2.0


async def test_after_a_failure_redis_is_left_alone_for_the_cool_off(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    built, outcomes = service(redis, rate_limit="100/minute", rate_limit_redis_cooldown_seconds=30)
    async with running(built.app) as client:
        await client.post("/mcp", json=ADD, headers=headers)
        await redis.set_mode("hang")
        await timed_post(client, headers)  # waits out the timeout once
        connections = redis.connections
        later = [await timed_post(client, headers) for _ in range(5)]
    assert all(status == 200 and took < TIMEOUT for status, took in later)
    assert requests(outcomes)[-5:] == ["fallback_allowed"] * 5
    assert redis.connections == connections  # nobody knocked


async def test_the_shared_budget_comes_back_on_its_own(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    built, outcomes = service(redis, rate_limit="100/minute")
    async with running(built.app) as client:
        await client.post("/mcp", json=ADD, headers=headers)
        await redis.set_mode("down")
        for _ in range(3):  # counted in process: 97 left there
            await client.post("/mcp", json=ADD, headers=headers)
        await redis.set_mode("up")
        deadline = time.monotonic() + COOLDOWN + 5
        while requests(outcomes)[-1] != "allowed" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            response = await client.post("/mcp", json=ADD, headers=headers)
    assert requests(outcomes)[-1] == "allowed"
    assert response.status_code == 200
    assert response.headers["ratelimit-remaining"] == "98"  # Redis's count resumed at 1 of 100


async def test_a_redis_that_forgot_the_script_is_sent_it_again(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    built, outcomes = service(redis)
    async with running(built.app) as client:
        redis.forget_scripts = True  # as after a Redis restart
        response = await client.post("/mcp", json=ADD, headers=headers)
    assert response.status_code == 200
    assert outcomes == ["allowed"]
    assert redis.session_with(b"EVAL")[-2:] == [b"EVALSHA", b"EVAL"]


async def test_the_connection_authenticates_and_selects_the_database(
    redis: FakeRedis, headers: dict[str, str]
) -> None:
    url = redis.url.replace("redis://", "redis://app:secret@").replace("/0", "/4")
    built, outcomes = service(redis, redis_url=url)
    async with running(built.app) as client:
        response = await client.post("/mcp", json=ADD, headers=headers)
    assert response.status_code == 200
    assert redis.session_with(b"SCRIPT")[:3] == [b"AUTH", b"SELECT", b"SCRIPT"]
    assert outcomes == ["allowed"]
