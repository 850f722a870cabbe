"""What the rate limiting costs per request, piece by piece, next to no limiter (not a test).

    uv run python bench/ratelimit.py                  # wall time per request: quick, noisy
    uv run python bench/ratelimit.py --instructions   # CPU instructions per request (callgrind)
    uv run python bench/ratelimit.py --only stack     # one table: stack | subject | ip | accuracy
    uv run python bench/ratelimit.py --uvloop         # on uvloop, as uvicorn runs the service
    REDIS_CLUSTER_URL=redis://127.0.0.1:7000 uv run python bench/ratelimit.py --only subject
                                                      # adds the cluster rows

The stack rows drive the whole ASGI app in process (a `tools/call` of `add` with a cached,
verified token, as bench/callgrind.py sends it) with one limiter piece switched on at a time; the
subject and ip rows time one limit check alone, for each way of doing it that was considered;
the accuracy table counts what each strategy admits when a burst straddles a window boundary.
Instructions are those of this process only (Redis's own work is not counted), and only while
a row's measured loop runs: callgrind collects inside one C function the loop is started from,
so neither start-up nor set-up is in them, and the heap left by both is frozen out of the
garbage collector's way first. Redis rows need Redis on REDIS_URL (default
redis://127.0.0.1:6379/0); they use keys under `bench:<uuid>:` and delete them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from cache.redisline import RedisAddress
from cache.windows import (
    SCRIPT,
    MemoryWindows,
    RedisWindows,
    outcome_of,
    parse_limits,
    script_args,
    window_keys,
)
from mcp_service.app import build_service
from mcp_service.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inprocess import Driver

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
PREFIX = os.environ.get("BENCH_KEY_PREFIX") or f"bench:{uuid.uuid4().hex[:12]}:"
HIGH = "1000000/minute"  # never reached: the admitted path is the hot path
CALL = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 5, "b": 3}},
    }
).encode()

Op = Callable[[int], Awaitable[Any]]


@dataclass
class Scenario:
    table: str
    name: str
    setup: Callable[[], Awaitable[tuple[Op, Callable[[], Awaitable[None]]]]]


SCENARIOS: dict[str, Scenario] = {}


def scenario(table: str, name: str) -> Callable[..., Any]:
    def register(setup: Callable[[], Awaitable[tuple[Op, Any]]]) -> Any:
        SCENARIOS[setup.__name__] = Scenario(table, name, setup)
        return setup

    return register


async def _nothing() -> None:
    return None


def mcp_headers(token: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"content-length", b"%d" % len(CALL)),
    ]
    if token:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    return headers


async def _service(**overrides: Any) -> tuple[Op, Callable[[], Awaitable[None]]]:
    """The service with every limiter piece off, then `overrides` on."""
    folder = Path(tempfile.mkdtemp(prefix="bench-rl-"))
    values: dict[str, Any] = {
        "app_env": "local",
        "local_issuer_key_file": folder / "issuer-key.pem",
        "log_level": "WARNING",
        "redis_url": "",
        "rate_limit": "off",
        "ip_rate_limit": "off",
        "max_in_flight": 0,
        "tool_timeout_seconds": 0,
        "rate_limit_key_prefix": PREFIX,
    }
    values.update(overrides)
    service = build_service(Settings(_env_file=None, **values))  # type: ignore[call-arg]
    assert service.issuer is not None
    driver = Driver(service.app)
    await driver.start()
    headers = mcp_headers(service.issuer.issue())

    async def op(_: int) -> None:
        status = await driver.post(headers, CALL)
        assert status == 200, status

    return op, driver.stop


async def _plain(
    tool: Callable[..., Any], tool_timeout: float | None = None
) -> tuple[Op, Callable[[], Awaitable[None]]]:
    from fastmcp import FastMCP

    mcp: FastMCP[Any] = FastMCP("plain")
    mcp.tool(tool, name="add", timeout=tool_timeout)
    driver = Driver(mcp.http_app(path="/mcp", stateless_http=True, json_response=True))
    await driver.start()
    headers = mcp_headers()

    async def op(_: int) -> None:
        status = await driver.post(headers, CALL)
        assert status == 200, status

    return op, driver.stop


async def async_add(a: int | float, b: int | float) -> int | float:
    """Add two numbers and return the sum."""
    return a + b


@scenario("stack", "plain FastMCP (no auth, no limits)")
async def stack_plain() -> tuple[Op, Callable[[], Awaitable[None]]]:
    from mcp_service.demo import add

    return await _plain(add)


@scenario("stack", "plain FastMCP, add as an async tool")
async def stack_plain_async() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _plain(async_add)


@scenario("stack", "plain FastMCP, add as an async tool, FastMCP's timeout=25")
async def stack_plain_async_timeout() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _plain(async_add, tool_timeout=25)


@scenario("stack", "service, every limiter piece off (auth only)")
async def stack_off() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _service()


@scenario("stack", "+ in-flight cap (MAX_IN_FLIGHT=256)")
async def stack_in_flight() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _service(max_in_flight=256)


@scenario("stack", "+ per-IP limit (IP_RATE_LIMIT, in process)")
async def stack_ip() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _service(ip_rate_limit=HIGH)


@scenario("stack", "+ TOOL_TIMEOUT_SECONDS=25 (add is sync: it gets none)")
async def stack_timeout() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _service(tool_timeout_seconds=25)


@scenario("stack", "+ per-subject limit, no REDIS_URL (in process)")
async def stack_subject_local() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _service(rate_limit=HIGH)


@scenario("stack", "+ per-subject limit on Redis (the default)")
async def stack_subject_redis() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _service(rate_limit=HIGH, redis_url=REDIS_URL)


@scenario("stack", "+ per-subject limit on Redis, with a tool cost (body parsed)")
async def stack_subject_costs() -> tuple[Op, Callable[[], Awaitable[None]]]:
    costs = json.dumps({"get_user_info": 5})
    return await _service(rate_limit=HIGH, redis_url=REDIS_URL, rate_limit_tool_costs=costs)


@scenario("stack", "everything on (IP, in-flight, timeout, subject on Redis)")
async def stack_all() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _service(
        rate_limit=HIGH,
        redis_url=REDIS_URL,
        ip_rate_limit=HIGH,
        max_in_flight=256,
        tool_timeout_seconds=25,
    )


@scenario("stack", "everything on, Redis down (fail open, in-process fallback)")
async def stack_redis_down() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _service(
        rate_limit=HIGH,
        redis_url="redis://127.0.0.1:9/0",  # discard port: refused at once
        ip_rate_limit=HIGH,
        max_in_flight=256,
        tool_timeout_seconds=25,
        rate_limit_redis_cooldown_seconds=300,
    )


# One per-subject check, with what the response fields need -------------------------------


LIMITS = parse_limits(HIGH)


async def _limits_aio(kind: str, stats: bool) -> tuple[Op, Callable[[], Awaitable[None]]]:
    from limits import parse
    from limits.aio import strategies
    from limits.aio.storage import RedisStorage

    storage = RedisStorage(
        "async+" + REDIS_URL, implementation="redispy", key_prefix=PREFIX + "limits"
    )
    kinds: dict[str, Any] = {
        "fixed": strategies.FixedWindowRateLimiter,
        "moving": strategies.MovingWindowRateLimiter,
        "sliding": strategies.SlidingWindowCounterRateLimiter,
    }
    limiter = kinds[kind](storage)
    item = parse(HIGH)

    async def op(_: int) -> None:
        assert await limiter.hit(item, kind)
        if stats:
            await limiter.get_window_stats(item, kind)

    return op, _nothing


@scenario("subject", "limits.aio fixed window, hit + window stats (3 round trips)")
async def subject_limits_fixed() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _limits_aio("fixed", stats=True)


@scenario("subject", "limits.aio moving window, hit + window stats (2 round trips)")
async def subject_limits_moving() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _limits_aio("moving", stats=True)


@scenario("subject", "limits.aio sliding window counter, hit + window stats (2)")
async def subject_limits_sliding() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _limits_aio("sliding", stats=True)


@scenario("subject", "limits.aio sliding window counter, hit only: no headers (1)")
async def subject_limits_sliding_hit() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _limits_aio("sliding", stats=False)


async def _script_through(client: Any, tag: str) -> tuple[Op, Callable[[], Awaitable[None]]]:
    """Our script's EVALSHA through a redis-py client (standalone or cluster)."""
    script = client.register_script(SCRIPT)
    keys = window_keys((PREFIX + tag).encode(), LIMITS)
    args = script_args(LIMITS, 1)

    async def op(_: int) -> None:
        allowed, _usages = outcome_of(await script(keys=keys, args=args), LIMITS)
        assert allowed

    async def close() -> None:
        await client.aclose()

    return op, close


@scenario("subject", "our script through redis-py's asyncio client (1)")
async def subject_script_redispy() -> tuple[Op, Callable[[], Awaitable[None]]]:
    import redis.asyncio

    return await _script_through(redis.asyncio.Redis.from_url(REDIS_URL), "{s:redispy}")


@scenario("subject", "our script through RedisLine (1, what the service uses)")
async def subject_script_line() -> tuple[Op, Callable[[], Awaitable[None]]]:
    windows = RedisWindows(
        RedisAddress.from_url(REDIS_URL), prefix=PREFIX, reply_timeout=1, connect_timeout=1
    )
    await windows.connect()

    async def op(_: int) -> None:
        allowed, _usages = await windows.hit("{s:line}", LIMITS)
        assert allowed

    async def close() -> None:
        windows.close()

    return op, close


# With REDIS_CLUSTER_URL (any node of a Redis Cluster), the cluster twin of the row above.
REDIS_CLUSTER_URL = os.environ.get("REDIS_CLUSTER_URL", "")
if REDIS_CLUSTER_URL:

    @scenario("subject", "our script through ClusterWindows (cluster: one RedisLine per primary)")
    async def subject_script_cluster() -> tuple[Op, Callable[[], Awaitable[None]]]:
        from cache.cluster import ClusterWindows

        windows = ClusterWindows(
            RedisAddress.from_url(REDIS_CLUSTER_URL),
            prefix=PREFIX,
            reply_timeout=1,
            connect_timeout=1,
        )
        await windows.connect()

        async def op(_: int) -> None:
            allowed, _usages = await windows.hit("{s:cluster}", LIMITS)
            assert allowed

        async def close() -> None:
            windows.close()

        return op, close

    @scenario("subject", "our script through redis-py's RedisCluster (cluster)")
    async def subject_script_redispy_cluster() -> tuple[Op, Callable[[], Awaitable[None]]]:
        import redis.asyncio

        client = redis.asyncio.RedisCluster.from_url(REDIS_CLUSTER_URL)
        return await _script_through(client, "{s:redispy-cluster}")


@scenario("subject", "in process: MemoryWindows (fallback, and no REDIS_URL)")
async def subject_memory() -> tuple[Op, Callable[[], Awaitable[None]]]:
    windows = MemoryWindows()

    async def op(_: int) -> None:
        allowed, _usages = windows.hit("{s:memory}", LIMITS)
        assert allowed

    return op, _nothing


# One per-IP check -------------------------------------------------------------------------


IPS = [f"10.0.{i // 250}.{i % 250}" for i in range(1000)]


@scenario("ip", "limits.storage.MemoryStorage + fixed window")
async def ip_limits_fixed() -> tuple[Op, Callable[[], Awaitable[None]]]:
    from limits import parse, strategies
    from limits.storage import MemoryStorage

    limiter = strategies.FixedWindowRateLimiter(MemoryStorage())
    item = parse(HIGH)

    async def op(i: int) -> None:
        assert limiter.hit(item, IPS[i % len(IPS)])

    return op, _nothing


@scenario("ip", "limits.storage.MemoryStorage + sliding window counter")
async def ip_limits_sliding() -> tuple[Op, Callable[[], Awaitable[None]]]:
    from limits import parse, strategies
    from limits.storage import MemoryStorage

    limiter = strategies.SlidingWindowCounterRateLimiter(MemoryStorage())
    item = parse(HIGH)

    async def op(i: int) -> None:
        assert limiter.hit(item, IPS[i % len(IPS)])

    return op, _nothing


@scenario("ip", "MemoryWindows (what IpRateLimit uses)")
async def ip_memory_windows() -> tuple[Op, Callable[[], Awaitable[None]]]:
    windows = MemoryWindows()

    async def op(i: int) -> None:
        allowed, _usages = windows.hit(IPS[i % len(IPS)], LIMITS)
        assert allowed

    return op, _nothing


async def _starlette(middleware: bool) -> tuple[Op, Callable[[], Awaitable[None]]]:
    """A one-route Starlette app, bare or behind slowapi's ASGI middleware (memory storage)."""
    from slowapi import Limiter
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    stack = [Middleware(SlowAPIASGIMiddleware)] if middleware else []
    app = Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])], middleware=stack)
    app.state.limiter = Limiter(
        key_func=get_remote_address, default_limits=[HIGH], storage_uri="memory://"
    )
    driver = Driver(app)
    await driver.start()
    headers = mcp_headers()

    async def op(_: int) -> None:
        assert await driver.post(headers, CALL) == 200

    return op, driver.stop


@scenario("ip", "a bare Starlette route (reference for the slowapi row)")
async def ip_starlette_bare() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _starlette(middleware=False)


@scenario("ip", "the same route behind slowapi's ASGI middleware (memory)")
async def ip_starlette_slowapi() -> tuple[Op, Callable[[], Awaitable[None]]]:
    return await _starlette(middleware=True)


# Running ----------------------------------------------------------------------------------


def iterations(name: str, instructions: bool) -> int:
    if SCENARIOS[name].table == "stack":
        return 400 if instructions else 500
    return 1000 if instructions else 5000


async def repeat(op: Op, n: int) -> None:
    for i in range(n):
        await op(i)


def new_loop() -> asyncio.AbstractEventLoop:
    """The default asyncio loop, or uvloop (what uvicorn runs on) when BENCH_LOOP=uvloop."""
    if os.environ.get("BENCH_LOOP") == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def measure(names: list[str], instructions: bool) -> dict[str, float]:
    """Set each scenario up, warm it up, then run it: timed here, or counted by callgrind.

    Under callgrind, collection is on only inside `itertools.dropwhile`'s C function, and the
    measured loop is the only code run from there: each scenario's count is one dump of its
    own (see `count_instructions`), with neither start-up nor set-up in it."""
    loop = new_loop()
    asyncio.set_event_loop(loop)
    per_op: dict[str, float] = {}
    try:
        for name in names:
            op, close = loop.run_until_complete(SCENARIOS[name].setup())
            try:
                n = iterations(name, instructions)
                loop.run_until_complete(repeat(op, 20))
                gc.collect()
                gc.freeze()  # what start-up leaves is not rescanned: less noise between rows

                def run(op: Op = op, n: int = n) -> None:
                    loop.run_until_complete(repeat(op, n))

                def counted(_: int, run: Callable[[], None] = run) -> bool:
                    run()
                    return False

                if instructions:
                    next(itertools.dropwhile(counted, [0]))
                else:
                    per_op[name] = min(_timed(run) for _ in range(3)) / n
            finally:
                gc.unfreeze()
                loop.run_until_complete(close())
    finally:
        loop.close()
    return per_op


def _timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def count_instructions(names: list[str]) -> dict[str, float]:
    """Run `measure` under callgrind in a child and read one dump per scenario."""
    with tempfile.TemporaryDirectory(prefix="bench-cg-") as folder:
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={folder}/cg.%p",
                "--collect-atstart=no",
                "--toggle-collect=dropwhile_next",
                "--dump-after=dropwhile_next",
                sys.executable,
                __file__,
                "--child",
                *names,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "BENCH_KEY_PREFIX": PREFIX},
        )
        if result.returncode != 0:
            raise RuntimeError(f"callgrind run failed:\n{result.stderr[-3000:]}")
        dumps = sorted(Path(folder).glob("cg.*.*"), key=lambda p: int(p.suffix[1:]))
        counts = [_total(dump) for dump in dumps]
    if len(counts) != len(names):
        raise RuntimeError(f"expected {len(names)} callgrind dumps, found {len(counts)}")
    return {name: count / iterations(name, True) for name, count in zip(names, counts, strict=True)}


def _total(dump: Path) -> int:
    found = re.search(r"^summary: (\d+)", dump.read_text(errors="replace"), re.MULTILINE)
    if not found:
        raise RuntimeError(f"no summary line in {dump}")
    return int(found.group(1))


def accuracy() -> list[tuple[str, int]]:
    """Admitted out of 2 x 100 requests sent around a window boundary, limit 100/minute: one
    at t=0, 99 at t=59.5, 100 at t=60.5 (each strategy's first window starts at t=0)."""
    from limits import parse, strategies
    from limits.storage import MemoryStorage

    schedule = [0.0] + [59.5] * 99 + [60.5] * 100
    now = [1_000_000.0]
    results = []

    def clock() -> float:
        return now[0]

    with mock.patch("time.time", new=clock):
        for label, strategy in (
            ("fixed window (limits)", strategies.FixedWindowRateLimiter),
            ("moving window (limits)", strategies.MovingWindowRateLimiter),
        ):
            limiter = strategy(MemoryStorage())
            item = parse("100/minute")
            admitted = 0
            for at in schedule:
                now[0] = 1_000_000.0 + at
                admitted += limiter.hit(item, "k")
            results.append((label, admitted))
    windows = MemoryWindows(clock=clock)
    admitted = 0
    for at in schedule:
        now[0] = 1_000_000.0 + at
        admitted += windows.hit("k", parse_limits("100/minute"))[0]
    results.append(("sliding window counter (ours)", admitted))
    return results


TITLES = {
    "stack": "Whole request: a tools/call of add, driven in process",
    "subject": "One per-subject check (Redis unless noted), with what the headers need",
    "ip": "One per-IP check, in process",
}


def report(per_op: dict[str, float], unit: str) -> None:
    for table, title in TITLES.items():
        names = [n for n, s in SCENARIOS.items() if s.table == table and n in per_op]
        if not names:
            continue
        print(f"\n{title} ({unit} per request)\n")
        base = per_op.get("stack_off") if table == "stack" else None
        plain = per_op.get("stack_plain") if table == "stack" else None
        header = f"| {'what':<66} | {unit:>12} |"
        header += " vs auth only | vs plain |" if base else ""
        print(header)
        rule = "|" + "-" * 68 + "|" + "-" * 14 + "|"
        print(rule + ("-" * 14 + "|" + "-" * 10 + "|" if base else ""))
        for name in names:
            value = per_op[name]
            shown = f"{value / 1000:,.1f} k" if unit == "instructions" else f"{value * 1e6:,.1f} us"
            line = f"| {SCENARIOS[name].name:<66} | {shown:>12} |"
            if base and plain:
                line += f" {(value - base) / base * 100:+11.1f} % | {plain / value:7.3f}x |"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instructions", action="store_true", help="count with callgrind")
    parser.add_argument("--only", choices=[*TITLES, "accuracy"], help="one table")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as uvicorn does")
    parser.add_argument("--child", nargs="+", metavar="SCENARIO", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.uvloop:
        os.environ["BENCH_LOOP"] = "uvloop"
    if args.child:
        measure(args.child, instructions=True)
        return
    names = [n for n, s in SCENARIOS.items() if args.only in (None, s.table)]
    try:
        if names and args.instructions:
            report(count_instructions(names), "instructions")
        elif names:
            report(measure(names, instructions=False), "time")
    finally:
        asyncio.run(_clean_redis())
    if args.only in (None, "accuracy"):
        print("\nAdmitted of 200 requests around a window boundary, limit 100/minute\n")
        print(f"| {'strategy':<32} | admitted |\n|{'-' * 34}|----------|")
        for label, admitted in accuracy():
            print(f"| {label:<32} | {admitted:>8} |")


async def _clean_redis() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=PREFIX + "*")]
        if keys:
            await client.delete(*keys)
    except Exception as exc:  # no Redis: nothing was written there
        print(f"(Redis not cleaned: {exc})", file=sys.stderr)
    finally:
        await client.aclose()


if __name__ == "__main__":
    main()
