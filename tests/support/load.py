"""A small async load generator for the fault and soak tests.

It sends the calls a plan gives it, a bounded number at a time, until a request budget, a time
budget or a stop signal ends the run, and records every request's outcome (status, latency, when,
whether it was what the plan expected) for the test to judge. It never asserts anything itself,
and it measures no throughput: tests judge outcomes and generous "nothing hangs" bounds only.

`BackgroundLoad` runs it on a thread of its own, so a synchronous test can kill Redis or restart
replicas while the load goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.pool import ADD_CALL, bearer_headers

NO_ANSWER = 0  # the status recorded when no HTTP answer came (refused, reset, timed out)


def answered_with_sum(response: httpx.Response) -> bool:
    """`add(5, 3)` succeeded: HTTP 200 and the tool's result, not a JSON-RPC or tool error."""
    if response.status_code != 200:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    result = body.get("result") if isinstance(body, dict) else None
    return isinstance(result, dict) and result.get("structuredContent") == {"result": 8}


@dataclass(frozen=True)
class Call:
    """One request of a plan, and what its answer must be to count as expected."""

    url: str
    headers: Mapping[str, str]
    body: Any = field(default_factory=lambda: ADD_CALL)
    kind: str = "valid"
    expect: Callable[[httpx.Response], bool] = answered_with_sum


def add_call(base_url: str, token: str, kind: str = "valid") -> Call:
    """`add(5, 3)` on BASE_URL/mcp with `token`, expected to succeed."""
    return Call(f"{base_url}/mcp", bearer_headers(token), kind=kind)


Plan = Callable[[int], Call]  # request number -> the call to make


@dataclass(frozen=True)
class Outcome:
    kind: str
    url: str
    status: int  # NO_ANSWER when the request got no HTTP answer
    started: float  # time.monotonic() when it was sent
    latency: float  # seconds until the whole answer was read (or the request failed)
    expected: bool  # the plan's `expect` held
    detail: str = ""  # the transport error, or the start of an unexpected answer
    headers: Mapping[str, str] = field(default_factory=dict)  # those asked for, when present

    @property
    def finished(self) -> float:
        return self.started + self.latency


@dataclass
class LoadReport:
    outcomes: list[Outcome]
    started: float
    ended: float

    def of(self, kind: str | None = None) -> list[Outcome]:
        return [o for o in self.outcomes if kind is None or o.kind == kind]

    def statuses(self, kind: str | None = None) -> Counter[int]:
        return Counter(o.status for o in self.of(kind))

    def unexpected(self, kind: str | None = None) -> list[Outcome]:
        return [o for o in self.of(kind) if not o.expected]

    def slowest(self, kind: str | None = None) -> float:
        return max((o.latency for o in self.of(kind)), default=0.0)

    def sent_between(self, start: float, end: float, kind: str | None = None) -> list[Outcome]:
        return [o for o in self.of(kind) if start <= o.started < end]

    def summary(self, kind: str | None = None) -> str:
        """For assertion messages: counts by status and the first few surprises."""
        bad = self.unexpected(kind)
        shown = "; ".join(f"{o.kind} {o.url} -> {o.status} {o.detail}" for o in bad[:5])
        return (
            f"{len(self.of(kind))} requests in {self.ended - self.started:.1f} s, "
            f"statuses {dict(self.statuses(kind))}, {len(bad)} unexpected: {shown}"
        )


async def run_load(
    plan: Plan,
    *,
    concurrency: int = 8,
    max_requests: int = 100_000,
    duration: float = 10.0,
    rate: float | None = None,
    request_timeout: float = 30.0,
    keepalive: bool = True,
    local_address: str | None = None,
    record_headers: Iterable[str] = (),
    stop: threading.Event | None = None,
) -> LoadReport:
    """Send `plan(0)`, `plan(1)`, ... with `concurrency` requests in flight at most, until
    `max_requests` were sent, `duration` seconds passed or `stop` is set (whichever is first).

    `rate` paces the starts (requests per second, all workers together); `keepalive=False`
    opens a connection per request; `local_address` picks the client address (e.g. 127.0.0.2,
    to be another client IP on loopback).
    """
    names = tuple(name.lower() for name in record_headers)
    stop = stop or threading.Event()
    numbers = itertools.count()
    outcomes: list[Outcome] = []
    started = time.monotonic()
    deadline = started + duration
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency if keepalive else 0
    )
    transport = httpx.AsyncHTTPTransport(limits=limits, local_address=local_address, retries=0)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            n = next(numbers)
            if n >= max_requests or stop.is_set() or time.monotonic() >= deadline:
                return
            if rate:
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                if stop.is_set() or time.monotonic() >= deadline:
                    return
            outcomes.append(await _send(client, plan(n), names))

    async with httpx.AsyncClient(transport=transport, timeout=request_timeout) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return LoadReport(outcomes, started, time.monotonic())


async def _send(client: httpx.AsyncClient, call: Call, names: tuple[str, ...]) -> Outcome:
    sent = time.monotonic()
    try:
        response = await client.post(call.url, json=call.body, headers=dict(call.headers))
    except httpx.HTTPError as exc:
        return Outcome(
            call.kind,
            call.url,
            NO_ANSWER,
            sent,
            time.monotonic() - sent,
            expected=False,
            detail=f"{type(exc).__name__}: {exc}",
        )
    latency = time.monotonic() - sent
    try:
        expected = call.expect(response)
    except ValueError:  # e.g. a body that is not the JSON the check reads: not what was expected
        expected = False
    return Outcome(
        call.kind,
        call.url,
        response.status_code,
        sent,
        latency,
        expected,
        detail="" if expected else response.text[:200],
        headers={name: response.headers[name] for name in names if name in response.headers},
    )


class BackgroundLoad:
    """`run_load` on a thread of its own: start it, do something to the system, then `stop()`
    (or let it end by its own budget) and read `report()`."""

    def __init__(self, plan: Plan, **options: Any) -> None:
        self._stop = threading.Event()
        self._plan = plan
        self._options = options
        self._report: LoadReport | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        try:
            self._report = asyncio.run(run_load(self._plan, stop=self._stop, **self._options))
        except BaseException as exc:  # handed to the test thread by report()
            self._error = exc

    def start(self) -> BackgroundLoad:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()

    def report(self, timeout: float = 60.0, *, stop: bool = True) -> LoadReport:
        """Stop the load (or, with `stop=False`, let it reach its own budget), wait for the
        requests in flight, and return what happened."""
        if stop:
            self.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the load did not end within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report

    def __enter__(self) -> BackgroundLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._thread.join(60)
