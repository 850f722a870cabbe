"""The Redis gate: bounded calls, a breaker that skips Redis while it is down, and recovery."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import fakeredis

from cache.redis import BreakerState, CircuitBreaker, SharedRedis


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_consecutive_failures() -> None:
    breaker = CircuitBreaker(threshold=2, cooloff=5, clock=Clock())
    breaker.failed()
    assert breaker.allow()
    breaker.failed()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(threshold=2, cooloff=5, clock=Clock())
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    assert breaker.state is BreakerState.CLOSED


def test_after_the_cooloff_exactly_one_probe_passes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooloff=5, clock=clock)
    breaker.failed()
    clock.now += 5
    assert breaker.allow()
    assert not breaker.allow()
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED


def test_a_failed_probe_opens_the_breaker_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooloff=5, clock=clock)
    breaker.failed()
    clock.now += 5
    assert breaker.allow()
    breaker.failed()
    assert breaker.state is BreakerState.OPEN


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
