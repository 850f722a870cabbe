"""The one failure mechanism of every Redis user: the circuit breaker and the background
reconnect."""

from __future__ import annotations

import asyncio

import pytest

from cache.breaker import BreakerState, CircuitBreaker, Reconnect


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
    assert breaker.retry_in() == 5


def test_closed_is_a_flag_kept_in_step_with_the_state() -> None:
    breaker = CircuitBreaker(threshold=1, cooloff=5, clock=Clock())
    assert breaker.closed
    breaker.failed()
    assert not breaker.closed
    breaker.succeeded()
    assert breaker.closed


def test_with_a_cap_each_failed_probe_doubles_the_cooloff_up_to_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooloff=1, max_cooloff=4, clock=clock)
    waits = []
    for _ in range(4):
        breaker.failed()
        waits.append(breaker.retry_in())
        clock.now += waits[-1]
    assert waits == [1, 2, 4, 4]


def test_a_success_brings_the_cooloff_back_to_its_base() -> None:
    breaker = CircuitBreaker(threshold=1, cooloff=1, max_cooloff=4, clock=Clock())
    breaker.failed()
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    assert breaker.retry_in() == 1


async def test_waiting_for_the_probe_takes_the_cooloff() -> None:
    breaker = CircuitBreaker(threshold=1, cooloff=0.1)
    breaker.failed()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await breaker.until_allowed()
    assert loop.time() - started >= 0.09
    assert breaker.state is BreakerState.HALF_OPEN


class Connection:
    """A connect that fails `failures` times, then succeeds, recording when it was tried."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.tries: list[float] = []

    async def __call__(self) -> None:
        self.tries.append(asyncio.get_running_loop().time())
        if len(self.tries) <= self.failures:
            raise ConnectionError("refused")


async def test_reconnect_tries_after_each_cooloff_until_it_connects() -> None:
    breaker = CircuitBreaker(threshold=1, cooloff=0.05)
    connect, reported = Connection(failures=2), []
    reconnect = Reconnect(breaker, connect, errors=(ConnectionError,), on_failure=reported.append)
    breaker.failed()
    started = asyncio.get_running_loop().time()
    reconnect.start()
    reconnect.start()  # already running: no second task
    deadline = started + 3
    while reconnect.running:
        assert asyncio.get_running_loop().time() < deadline, "still reconnecting"
        await asyncio.sleep(0.01)
    assert breaker.closed
    assert len(connect.tries) == 3
    assert connect.tries[0] - started >= 0.04
    assert all(b - a >= 0.04 for a, b in zip(connect.tries, connect.tries[1:], strict=False))
    assert [type(error) for error in reported] == [ConnectionError, ConnectionError]


async def test_reconnect_stops_when_closed() -> None:
    breaker = CircuitBreaker(threshold=1, cooloff=60)
    connect = Connection(failures=0)
    reconnect = Reconnect(breaker, connect, errors=(ConnectionError,))
    breaker.failed()
    reconnect.start()
    await reconnect.close()
    assert not reconnect.running
    assert connect.tries == []


async def test_a_reconnect_that_died_of_a_bug_says_so_and_can_be_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = 0

    async def buggy_then_fine() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ValueError("a bug")

    breaker = CircuitBreaker(threshold=1, cooloff=0.01)
    reconnect = Reconnect(breaker, buggy_then_fine, errors=(ConnectionError,))
    breaker.failed()
    for _ in range(2):
        reconnect.start()
        deadline = asyncio.get_running_loop().time() + 3
        while reconnect.running:
            assert asyncio.get_running_loop().time() < deadline, "still reconnecting"
            await asyncio.sleep(0.01)
    assert breaker.closed
    assert attempts == 2
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [ValueError]
