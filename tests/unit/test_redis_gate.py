"""The Redis gate: bounded calls, a breaker that skips Redis while it is down, and the calls that
need an answer raising instead of falling back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import fakeredis
import pytest

from cache.breaker import CircuitBreaker
from cache.errors import SharedUnavailable
from cache.redis import SharedRedis


async def test_a_call_returns_the_default_when_redis_is_down() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    gate = SharedRedis(fakeredis.FakeAsyncRedis(server=server), timeout=0.5)
    assert await gate.run("get", lambda r: r.get("k"), "default") == "default"


async def test_a_slow_call_is_cut_at_the_timeout() -> None:
    gate = SharedRedis(fakeredis.FakeAsyncRedis(), timeout=0.1)

    async def slow(_client: Any) -> str:
        await asyncio.sleep(5)
        return "late"

    started = time.monotonic()
    assert await gate.run("slow", slow, "default") == "default"
    assert time.monotonic() - started < 0.5


async def test_an_open_breaker_skips_redis_at_once() -> None:
    calls = 0

    async def counted(_client: Any) -> str:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    gate = SharedRedis(fakeredis.FakeAsyncRedis(), breaker=CircuitBreaker(threshold=2, cooloff=60))
    for _ in range(10):
        assert await gate.run("op", counted, None) is None
    assert calls == 2
    assert gate.status() == "unavailable"


async def test_without_redis_every_call_is_the_default() -> None:
    gate = SharedRedis(None)
    assert await gate.run("get", lambda r: r.get("k"), 7) == 7
    assert gate.status() == "disabled"


def test_keys_are_prefixed_and_versioned() -> None:
    assert SharedRedis(None, prefix="acme").key("tok", "ab") == "acme:v1:tok:ab"


async def test_a_call_that_needs_its_answer_gets_it() -> None:
    gate = SharedRedis(fakeredis.FakeAsyncRedis())
    await gate.execute(lambda r: r.set("k", b"v"))
    assert await gate.execute(lambda r: r.get("k")) == b"v"


async def test_a_call_that_needs_its_answer_raises_when_redis_is_down() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    gate = SharedRedis(fakeredis.FakeAsyncRedis(server=server))
    with pytest.raises(SharedUnavailable):
        await gate.execute(lambda r: r.get("k"))


async def test_a_call_that_needs_its_answer_raises_without_redis() -> None:
    with pytest.raises(SharedUnavailable):
        await SharedRedis(None).execute(lambda r: r.get("k"))


async def test_a_call_that_needs_its_answer_is_not_skipped_by_an_open_breaker() -> None:
    gate = SharedRedis(fakeredis.FakeAsyncRedis(), breaker=CircuitBreaker(threshold=1, cooloff=60))
    gate.breaker.failed()
    assert gate.status() == "unavailable"
    assert await gate.execute(lambda r: r.ping()) is True


async def test_a_subscription_receives_what_is_published_on_its_channel() -> None:
    server = fakeredis.FakeServer()
    gate = SharedRedis(fakeredis.FakeAsyncRedis(server=server))
    async with gate.subscribe("news") as subscription:
        await fakeredis.FakeAsyncRedis(server=server).publish("news", b"hello")
        assert await subscription.message(wait=1.0) == b"hello"
        assert await subscription.message(wait=0.05) is None


async def test_subscribing_with_redis_down_raises() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    gate = SharedRedis(fakeredis.FakeAsyncRedis(server=server))
    with pytest.raises(SharedUnavailable):
        async with gate.subscribe("news"):
            pass
