"""Microseconds per operation on the auth and rate-limit path, through the project's classes.

    uv run python bench/micro.py [--repeats 7] [--scale 1.0] [--loop uvloop|asyncio]
                                 [--redis redis://127.0.0.1:6379/0] [--only NAME ...]

Each row is one public class doing its job, never a re-implementation of it:
  l1-header          Authenticator.cached() of an Authorization header whose token is in the
                     in-process cache: what BearerAuth does per request (key from the header's
                     tail, LRU lookup, the whole token compared in place, revocation and scope
                     checks), no coroutine
  l1-hit             Authenticator.authenticate() of a token already in the in-process cache
                     (the same, as a coroutine, from the token string)
  l2-hit             Authenticator.authenticate() with L1 off and L2 on: SharedTokenStore GET on
                     Redis, unseal (HMAC), JSON, the claim rules, building the identity
  l2-get             SharedTokenStore.get() alone (redis-py GET + unseal + JSON)
  verify-local       CognitoVerifier.verify(): RS256 with the JWKS already loaded, all the rules
  l1-miss            Authenticator.authenticate() with L1 off and no L2: verify + identity
  jwks-parse         parse_jwks() of a two-key document (the part of a fetch that is ours)
  jwks-fetch         HttpJwksFetch() + parse_jwks() of a two-key JWKS from a loopback server
                     (tests.support.processes.JwksServer in a child process, so its CPU is not
                     in the cpu column; HTTP/1.0: a new connection per fetch)
  jwks-cold          a new JwksCache's first get_key(): the fetch, parse, single-flight plumbing
  revoked-empty      RevocationSet.is_revoked() with nothing revoked (the common case)
  revoked-miss       ... with 10 000 jtis and 1 000 subjects revoked, the token not among them
  revoked-hit        ... the token's origin_jti revoked
  rl-redis           SubjectLimiter.check() on Redis: RedisWindows' Lua sliding window
  rl-memory          SubjectLimiter.check() with no Redis (the in-process fallback's counter)
  rl-ip              IpRateLimit, the ASGI middleware, admitting a request to a no-op app

Every row is timed `--repeats` times over a batch (the `median` and `spread` columns are over
the repeats' means: min..max); `p50`/`p90`/`p99` time each call of one more batch on its own, so
they include the timer (~0.1 us) and matter for the I/O rows. `cpu` is process time per
operation (median of repeats): on a CPU-bound replica it is what costs throughput; for the Redis
and HTTP rows the wall time also holds the server's side of the round trip, and it depends on
the machine more than on our code: on this 2-vCPU VM a loopback round trip to Redis took
~100 us when the machine was idle and ~16 us when other work kept it busy (likely an idle
vCPU's wake-up time), so compare the cpu column across runs. Redis rows use keys under
`bench:micro:<random>:` and delete them. Writes bench/results/micro.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from starlette.types import Message

from cache.jwks import HttpJwksFetch, JwksCache, parse_jwks
from cache.redis import SharedRedis, create_redis
from cache.redisline import RedisAddress
from cache.revocations import Revocation, RevocationSet
from cache.seal import Sealer
from cache.tokens import LocalTokenCache, SharedTokenStore, token_key
from cache.windows import MemoryWindows, RedisWindows, parse_limits
from mcp_service.authenticator import Authenticator
from mcp_service.identity import Identity
from mcp_service.limiter import SubjectLimiter
from mcp_service.policies import Policies
from mcp_service.ratelimit import IpRateLimit
from mcp_service.verifier import CognitoVerifier, VerifierConfig
from tests.support.tokens import CLIENT_ID, ISSUER, TokenFactory, jwks_of, kid_of, rsa_key

HIGH = "100000000/minute"  # never reached: the admitted path is the hot path
Op = Callable[[], Any]  # sync, or returning an awaitable (then awaited)


@dataclass
class Row:
    name: str
    what: str
    op: Op
    batch: int  # operations per repeat at --scale 1
    is_async: bool = True
    result: dict[str, float] = field(default_factory=dict)


@dataclass
class Bench:
    """What the rows share: tokens, a verifier with keys loaded, Redis, a JWKS server."""

    redis_url: str
    prefix: str = field(default_factory=lambda: f"bench:micro:{uuid.uuid4().hex[:12]}")
    rows: list[Row] = field(default_factory=list)
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def add(self, name: str, what: str, op: Op, batch: int, *, is_async: bool = True) -> None:
        self.rows.append(Row(name, what, op, batch, is_async))


class JwksProcess:
    """tests.support.processes.JwksServer serving `document`, run in a child process."""

    CHILD = (
        "import json, sys\n"
        "from tests.support.pool import JWKS_PATH\n"
        "from tests.support.processes import JwksServer\n"
        "server = JwksServer(json.loads(sys.argv[1]), JWKS_PATH).start()\n"
        "print(server.url, flush=True)\n"
        "sys.stdin.read()\n"
    )

    def __init__(self, document: bytes) -> None:
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.CHILD, document.decode()],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError("the JWKS server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the child exits when its stdin ends
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def verifier_with(keys: JwksCache) -> CognitoVerifier:
    return CognitoVerifier(VerifierConfig(issuer=ISSUER, client_ids=frozenset({CLIENT_ID})), keys)


async def setup(bench: Bench) -> None:
    factory = TokenFactory()
    document = json.dumps(jwks_of(rsa_key(), rsa_key("second"))).encode()

    async def serve_document() -> bytes:
        return document

    keys = JwksCache(serve_document)
    await keys.refresh()
    verifier = verifier_with(keys)
    token = factory.token()
    claims = await verifier.verify(token)

    # L1: the Authenticator as the app builds it, the token already cached.
    l1 = Authenticator(verifier, LocalTokenCache[Identity](10_000))
    await l1.authenticate(token)
    header = b"Bearer " + token.encode()
    bench.add(
        "l1-header",
        "Authenticator.cached, header in L1",
        lambda: l1.cached(header),
        1_000_000,
        is_async=False,
    )
    bench.add("l1-hit", "Authenticator, token in L1", lambda: l1.authenticate(token), 200_000)

    # L2: the same Authenticator with an L1 that keeps nothing, over the real Redis.
    shared = SharedRedis(
        create_redis(bench.redis_url, socket_timeout=1, connect_timeout=1),
        prefix=bench.prefix,
        timeout=1,
    )
    store = SharedTokenStore(shared, Sealer(["b" * 32]))
    digest = token_key(token)
    await store.put(digest, claims, claims["exp"])
    l2 = Authenticator(verifier, LocalTokenCache[Identity](0), shared=store)
    assert await store.get(digest) == claims
    bench.add("l2-hit", "Authenticator, L1 off, L2 on Redis", lambda: l2.authenticate(token), 3000)
    bench.add("l2-get", "SharedTokenStore.get on Redis", lambda: store.get(digest), 3000)

    async def drop_keys() -> None:
        client = shared.client
        assert client is not None
        found = [key async for key in client.scan_iter(match=f"{bench.prefix}:*", count=1000)]
        if found:
            await client.delete(*found)
        await shared.close()

    bench.cleanups.append(drop_keys)

    bench.add(
        "verify-local", "CognitoVerifier.verify, keys loaded", lambda: verifier.verify(token), 3000
    )
    miss = Authenticator(verifier, LocalTokenCache[Identity](0))
    bench.add("l1-miss", "Authenticator, L1 off, no L2", lambda: miss.authenticate(token), 3000)

    # JWKS from a real HTTP server on loopback, in a process of its own (its CPU is not ours).
    server = JwksProcess(document)
    http = httpx.AsyncClient()
    fetch = HttpJwksFetch(server.url, timeout=5, client=http)

    async def fetch_and_parse() -> None:
        parse_jwks(await fetch())

    kid = kid_of(rsa_key())

    async def cold_cache() -> None:
        await JwksCache(fetch).get_key(kid)

    async def stop_server() -> None:
        await http.aclose()
        server.stop()

    bench.cleanups.append(stop_server)
    bench.add(
        "jwks-parse",
        "parse_jwks of the two-key document",
        lambda: parse_jwks(document),
        2000,
        is_async=False,
    )
    bench.add("jwks-fetch", "HttpJwksFetch + parse_jwks, loopback", fetch_and_parse, 300)
    bench.add("jwks-cold", "new JwksCache, first get_key (fetch)", cold_cache, 300)

    revocations(bench, claims)
    await rate_limits(bench, claims)


def revocations(bench: Bench, claims: dict[str, Any]) -> None:
    jti, origin, sub, iat = claims["jti"], claims["origin_jti"], claims["sub"], claims["iat"]
    now = time.time()
    empty = RevocationSet()
    full = RevocationSet()
    for i in range(10_000):
        full.add(Revocation("jti", f"revoked-{i}", now, now + 3600))
    for i in range(1_000):
        full.add(Revocation("sub", f"subject-{i}", now, now + 3600))
    hit = RevocationSet()
    hit.add(Revocation("jti", origin, now, now + 3600))

    def check(revoked: RevocationSet) -> Callable[[], bool]:
        return lambda: revoked.is_revoked(jti=jti, origin_jti=origin, sub=sub, iat=iat)

    assert not check(empty)()
    assert not check(full)()
    assert check(hit)()
    bench.add(
        "revoked-empty", "RevocationSet, nothing revoked", check(empty), 1_000_000, is_async=False
    )
    bench.add(
        "revoked-miss", "RevocationSet, 11k entries, miss", check(full), 1_000_000, is_async=False
    )
    bench.add(
        "revoked-hit", "RevocationSet, origin_jti revoked", check(hit), 1_000_000, is_async=False
    )


async def rate_limits(bench: Bench, claims: dict[str, Any]) -> None:
    policies = Policies(parse_limits(HIGH))
    windows = RedisWindows(
        RedisAddress.from_url(bench.redis_url),
        prefix=f"{bench.prefix}:rl:",
        reply_timeout=1.0,
        connect_timeout=1.0,
    )
    on_redis = SubjectLimiter(policies, windows)
    await on_redis.start()
    assert windows.ready, "Redis did not answer"
    assert (await on_redis.check(claims)).outcome == "allowed"
    bench.add(
        "rl-redis", "SubjectLimiter.check, Lua on Redis", lambda: on_redis.check(claims), 5000
    )

    async def close_limiter() -> None:
        await on_redis.close()

    bench.cleanups.insert(0, close_limiter)  # before the keys are dropped

    in_memory = SubjectLimiter(policies, None, local=MemoryWindows())
    assert (await in_memory.check(claims)).outcome == "allowed"
    bench.add(
        "rl-memory", "SubjectLimiter.check, in process", lambda: in_memory.check(claims), 200_000
    )

    async def admitted(_scope: Any, _receive: Any, _send: Any) -> None:
        return None

    ip_limit = IpRateLimit(admitted, parse_limits(HIGH))
    scope: dict[str, Any] = {
        "type": "http",
        "path": "/mcp",
        "headers": [],
        "client": ("203.0.113.7", 50000),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Message) -> None:
        return None

    bench.add(
        "rl-ip",
        "IpRateLimit middleware, admitted",
        lambda: ip_limit(scope, receive, send),
        200_000,
    )


def measure_sync(op: Op, n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        op()
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def measure_async(op: Op, n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await op()
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def each_call(row: Row, n: int) -> list[float]:
    samples: list[float] = []
    clock = time.perf_counter_ns
    op = row.op
    if row.is_async:
        for _ in range(n):
            started = clock()
            await op()
            samples.append((clock() - started) / 1000)
    else:
        for _ in range(n):
            started = clock()
            op()
            samples.append((clock() - started) / 1000)
    return sorted(samples)


async def run_row(row: Row, repeats: int, scale: float) -> dict[str, float]:
    n = max(20, int(row.batch * scale))
    warm = max(10, n // 10)
    if row.is_async:
        await measure_async(row.op, warm)
    else:
        measure_sync(row.op, warm)
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(repeats):
        gc.collect()
        wall, cpu = await measure_async(row.op, n) if row.is_async else measure_sync(row.op, n)
        walls.append(wall)
        cpus.append(cpu)
    samples = await each_call(row, min(n, 20_000))

    def pick(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))]

    return {
        "ops_per_repeat": n,
        "repeats": repeats,
        "median_us": statistics.median(walls),
        "mean_us": statistics.fmean(walls),
        "stdev_us": statistics.stdev(walls) if len(walls) > 1 else 0.0,
        "min_us": min(walls),
        "max_us": max(walls),
        "cpu_median_us": statistics.median(cpus),
        "p50_us": pick(0.5),
        "p90_us": pick(0.9),
        "p99_us": pick(0.99),
    }


async def main(args: argparse.Namespace) -> Bench:
    bench = Bench(args.redis)
    try:
        await setup(bench)
        for row in bench.rows:
            if args.only and row.name not in args.only:
                continue
            row.result = await run_row(row, args.repeats, args.scale)
    finally:
        for cleanup in bench.cleanups:
            await cleanup()
    return bench


def number(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def report(bench: Bench, args: argparse.Namespace, seconds: float) -> None:
    header = (
        f"{'operation':<14} {'median':>8} {'spread':>17} {'cpu':>8} "
        f"{'p50':>8} {'p90':>8} {'p99':>8}  what (us per operation)"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, "
        f"{platform.python_implementation()} {platform.python_version()}, loop {args.loop}, "
        f"redis {args.redis}, {args.repeats} repeats, {seconds:.0f} s, "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )
    print(header)
    for row in bench.rows:
        r = row.result
        if not r:
            continue
        spread = f"{number(r['min_us'])}..{number(r['max_us'])}"
        print(
            f"{row.name:<14} {number(r['median_us']):>8} {spread:>17} "
            f"{number(r['cpu_median_us']):>8} {number(r['p50_us']):>8} "
            f"{number(r['p90_us']):>8} {number(r['p99_us']):>8}  {row.what}"
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    document = {
        "machine": {
            "arch": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loop": args.loop,
        },
        "redis": args.redis,
        "seconds": seconds,
        "load_average_1m_at_end": os.getloadavg()[0],
        "rows": {row.name: {"what": row.what, **row.result} for row in bench.rows if row.result},
    }
    (out / "micro.json").write_text(json.dumps(document, indent=2) + "\n")


def run(coroutine: Coroutine[Any, Any, Bench], loop: str) -> Bench:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--redis", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="batch size factor")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--only", nargs="*", default=[], help="row names to run")
    arguments = parser.parse_args()
    started = time.perf_counter()
    result = run(main(arguments), arguments.loop)
    report(result, arguments, time.perf_counter() - started)
