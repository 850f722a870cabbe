"""What sharing through Redis buys a fleet: IdP JWKS fetches per key rotation, and how exactly
one subject's rate limit holds when its calls are spread over the replicas.

    uv run python bench/fleet.py [--sizes 1 2 4 8] [--rl-sizes 1 2 4] [--rotations 3]
                                 [--cooldown 1] [--limit 50] [--calls 250] [--rl-rounds 3]
                                 [--no-baseline]

For each fleet size N, N real `mcp-service serve` processes (started at once, then waited on
until /readyz says ok) share one Redis (127.0.0.1:6379 or REDIS_URL, keys under a prefix of
their own, deleted afterwards) and one TOKEN_CACHE_SECRET, and verify tokens against a JWKS
server on loopback (tests.support.processes.JwksServer) that counts its hits.

JWKS (every size in --sizes):
  cold      IdP fetches from launching the fleet to every replica having answered one call
  rotation  the JWKS gains a new key; a token signed with it (an unknown kid to every replica)
            goes to all N replicas at the same moment; the IdP fetches that caused, and how
            many of those N calls were admitted. A replica that refused it is then called
            every 50 ms until it admits it: `refused for` is the time from the rotation's
            calls until the last replica admitted the token, `+fetches` the IdP fetches that
            took. Repeated --rotations times, each after the kid-miss cooldown
            (JWKS_KID_MISS_COOLDOWN_SECONDS, --cooldown: 1 s, not the default 10, so
            rotations can follow each other quickly) has passed.
Rate limit (every size in --rl-sizes): RATE_LIMIT=<limit>/minute; --calls calls of one fresh
subject, round-robin over the replicas, 32 in flight at once; admitted (200) against the limit.
Repeated --rl-rounds times with a new subject each time.

Baseline (unless --no-baseline): the same fleets with no REDIS_URL, i.e. each replica on its
own: N fetches per rotation and N x limit admitted are what sharing is there to prevent.
The per-replica `mcp_jwks_fetches_total` (from /metrics) is recorded next to the server's count.
Writes bench/results/fleet.json. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import redis

from tests.support.pool import ADD_CALL, JWKS_PATH, bearer_headers, pool_env
from tests.support.processes import JwksServer, ServiceProcess
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

SECRET = "bench-fleet-secret-" + "x" * 24
IN_FLIGHT = 32
_FETCHES = re.compile(r'^mcp_jwks_fetches_total\{result="(\w+)"\} ([0-9.e+]+)$', re.MULTILINE)


@dataclass
class Fleet:
    """N replicas, the JWKS server they read, and where their keys live in Redis."""

    size: int
    shared: bool
    replicas: list[ServiceProcess]
    jwks: JwksServer
    prefixes: tuple[str, str]
    started_in: float = 0.0

    @property
    def urls(self) -> list[str]:
        return [f"{replica.url}/mcp" for replica in self.replicas]


@dataclass
class Results:
    jwks: list[dict[str, Any]] = field(default_factory=list)
    rate_limit: list[dict[str, Any]] = field(default_factory=list)


def fleet_env(
    jwks: JwksServer, redis_url: str, shared: bool, limit: int, cooldown: float
) -> dict[str, str]:
    tag = uuid.uuid4().hex[:12]
    extra = {
        "JWKS_KID_MISS_COOLDOWN_SECONDS": str(cooldown),
        "RATE_LIMIT": f"{limit}/minute",
        "IP_RATE_LIMIT": "off",  # every call comes from 127.0.0.1
        "LOG_LEVEL": "WARNING",
        "REDIS_KEY_PREFIX": f"bench-fleet-{tag}",
        "RATE_LIMIT_KEY_PREFIX": f"bench:fleet:{tag}:rl:",
    }
    if shared:
        extra.update(REDIS_URL=redis_url, TOKEN_CACHE_SECRET=SECRET)
    return pool_env(jwks.url, **extra)


def wait_ok(replica: ServiceProcess, timeout: float = 90) -> None:
    """/healthz, then /readyz until every check is ok (keys loaded, Redis and listener in sync)."""
    replica.wait_ready(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = httpx.get(f"{replica.url}/readyz", timeout=2)
            if response.status_code == 200 and response.json().get("status") == "ok":
                return
        time.sleep(0.1)
    raise RuntimeError(f"replica on {replica.port} not ready:\n{replica.log()}")


@contextlib.contextmanager
def fleet_of(
    size: int, shared: bool, redis_url: str, limit: int, cooldown: float, workdir: Path
) -> Iterator[Fleet]:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH).start()
    env = fleet_env(jwks, redis_url, shared, limit, cooldown)
    replicas = [ServiceProcess(env, workdir) for _ in range(size)]
    fleet = Fleet(
        size, shared, replicas, jwks, (env["REDIS_KEY_PREFIX"], env["RATE_LIMIT_KEY_PREFIX"])
    )
    started = time.monotonic()
    try:
        for replica in replicas:
            replica.launch()
        with ThreadPoolExecutor(size) as pool:
            list(pool.map(wait_ok, replicas))
        fleet.started_in = time.monotonic() - started
        yield fleet
    finally:
        with ThreadPoolExecutor(size) as pool:
            list(pool.map(ServiceProcess.stop, replicas))
        jwks.stop()
        if shared:
            drop_keys(redis_url, fleet.prefixes)


def drop_keys(redis_url: str, prefixes: tuple[str, str]) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in (f"{prefixes[0]}:*", f"{prefixes[1]}*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def replica_fetches(fleet: Fleet) -> list[int]:
    """Each replica's own count of IdP fetches (mcp_jwks_fetches_total, all results)."""
    counts = []
    for replica in fleet.replicas:
        text = httpx.get(f"{replica.url}/metrics", timeout=5).text
        counts.append(int(sum(float(value) for _, value in _FETCHES.findall(text))))
    return counts


@dataclass
class Answer:
    status: int
    seconds: float
    reason: str  # a refusal's reason code ("" for a 200)


async def call(client: httpx.AsyncClient, url: str, token: str) -> Answer:
    started = time.perf_counter()
    response = await client.post(url, json=ADD_CALL, headers=bearer_headers(token))
    reason = ""
    if response.status_code != 200:
        with contextlib.suppress(ValueError):
            reason = str(response.json().get("reason", ""))
    return Answer(response.status_code, time.perf_counter() - started, reason)


async def call_all(client: httpx.AsyncClient, urls: list[str], token: str) -> list[Answer]:
    """One call to each URL, all sent at once."""
    return await asyncio.gather(*(call(client, url, token) for url in urls))


async def recover(
    client: httpx.AsyncClient, urls: list[str], token: str, sent: float, patience: float
) -> float | None:
    """Call each refusing replica every 50 ms until it admits the token: seconds from the
    rotation's calls to the last replica admitting it (None: one never did within patience)."""
    last = 0.0
    for url in urls:
        while (await call(client, url, token)).status != 200:
            if time.perf_counter() - sent > patience:
                return None
            await asyncio.sleep(0.05)
        last = max(last, time.perf_counter() - sent)
    return last


async def jwks_run(fleet: Fleet, rotations: int, cooldown: float) -> dict[str, Any]:
    jwks = fleet.jwks
    ready_fetches = jwks.requests
    async with httpx.AsyncClient(timeout=30) as client:
        warm = await call_all(client, fleet.urls, TokenFactory().token(sub="bench-warm"))
        cold = jwks.requests
        rounds = []
        for number in range(1, rotations + 1):
            key = rsa_key(f"rotation-{number}")
            jwks.document = jwks_of(rsa_key(), key)  # two keys side by side, as Cognito does
            await asyncio.sleep(cooldown + 0.2)  # the previous rotation's kid-miss window ends
            before = jwks.requests
            token = TokenFactory(key=key).token(sub=f"bench-rotation-{number}")
            sent = time.perf_counter()
            answers = await call_all(client, fleet.urls, token)
            await asyncio.sleep(0.3)  # anything the rotation set off in the background
            fetches = jwks.requests - before
            refusing = [u for u, a in zip(fleet.urls, answers, strict=True) if a.status != 200]
            recovered = await recover(client, refusing, token, sent, 4 * cooldown + 5)
            rounds.append(
                {
                    "fetches": fetches,
                    "admitted": sum(1 for a in answers if a.status == 200),
                    "statuses": dict(Counter(str(a.status) for a in answers)),
                    "refusals": dict(Counter(a.reason for a in answers if a.status != 200)),
                    "slowest_ms": max(a.seconds for a in answers) * 1000,
                    "refused_for_s": recovered if refusing else 0.0,
                    "fetches_while_recovering": jwks.requests - before - fetches,
                }
            )
    return {
        "replicas": fleet.size,
        "shared": fleet.shared,
        "started_in_s": fleet.started_in,
        "cold_fetches_at_ready": ready_fetches,
        "cold_fetches": cold,
        "warm_statuses": dict(Counter(str(a.status) for a in warm)),
        "rotations": rounds,
        "fetches_per_rotation": [r["fetches"] for r in rounds],
        "replica_fetch_counters": replica_fetches(fleet),
        "server_requests": jwks.requests,
    }


async def rate_limit_run(fleet: Fleet, limit: int, calls: int, round_: int) -> dict[str, Any]:
    token = TokenFactory().token(sub=f"bench-rl-{uuid.uuid4().hex[:8]}")
    gate = asyncio.Semaphore(IN_FLIGHT)
    urls = fleet.urls
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:

        async def one(i: int) -> tuple[int, int]:
            async with gate:
                response = await client.post(
                    urls[i % len(urls)], json=ADD_CALL, headers=bearer_headers(token)
                )
                return response.status_code, i % len(urls)

        started = time.perf_counter()
        answers = await asyncio.gather(*(one(i) for i in range(calls)))
        seconds = time.perf_counter() - started
    admitted = sum(1 for status, _ in answers if status == 200)
    return {
        "replicas": fleet.size,
        "shared": fleet.shared,
        "round": round_,
        "limit": limit,
        "calls": calls,
        "admitted": admitted,
        "over_limit": admitted - limit,
        "statuses": dict(Counter(str(status) for status, _ in answers)),
        "admitted_per_replica": [
            sum(1 for status, n in answers if status == 200 and n == k) for k in range(len(urls))
        ],
        "seconds": seconds,
    }


def run(args: argparse.Namespace) -> Results:
    results = Results()
    for number in range(1, args.rotations + 1):  # generate the rotated keys before timing
        rsa_key(f"rotation-{number}")
    modes = [True] if args.no_baseline else [True, False]
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as workdir:
        for shared in modes:
            for size in sorted(set(args.sizes) | set(args.rl_sizes)):
                with fleet_of(
                    size, shared, args.redis, args.limit, args.cooldown, Path(workdir)
                ) as fleet:
                    if size in args.sizes:
                        results.jwks.append(
                            asyncio.run(jwks_run(fleet, args.rotations, args.cooldown))
                        )
                    if size in args.rl_sizes:
                        for round_ in range(1, args.rl_rounds + 1):
                            results.rate_limit.append(
                                asyncio.run(rate_limit_run(fleet, args.limit, args.calls, round_))
                            )
                    print(f"  {'shared' if shared else 'alone'} x{size}: done", file=sys.stderr)
    return results


def mode(shared: bool) -> str:
    return "Redis" if shared else "none"


def report(results: Results, args: argparse.Namespace, seconds: float) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, "
        f"{platform.python_implementation()} {platform.python_version()}, redis {args.redis}, "
        f"{seconds:.0f} s, load average at the end {os.getloadavg()[0]:.2f}"
    )
    print()
    print(
        f"JWKS fetches from the IdP (kid-miss cooldown {args.cooldown:g} s, "
        f"{args.rotations} rotations)"
    )
    print(
        f"{'replicas':>8} {'sharing':>7} {'start s':>7} {'cold':>4} {'per rotation':>12} "
        f"{'admitted':>10} {'refused for s':>14} {'+fetches':>8} {'slowest ms':>12}  "
        "per-replica fetch counters"
    )
    for row in results.jwks:
        rounds = row["rotations"]

        def joined(name: str, spec: str, rounds: list[dict[str, Any]] = rounds) -> str:
            return "/".join("-" if r[name] is None else format(r[name], spec) for r in rounds)

        print(
            f"{row['replicas']:>8} {mode(row['shared']):>7} {row['started_in_s']:>7.1f} "
            f"{row['cold_fetches']:>4} {joined('fetches', 'd'):>12} {joined('admitted', 'd'):>10} "
            f"{joined('refused_for_s', '.1f'):>14} {joined('fetches_while_recovering', 'd'):>8} "
            f"{joined('slowest_ms', '.0f'):>12}  {row['replica_fetch_counters']}"
        )
    print()
    print(f"Rate limit {args.limit}/minute, {args.calls} calls of one subject, round-robin")
    print(
        f"{'replicas':>8} {'sharing':>7} {'admitted (rounds)':>18} {'median':>7} "
        f"{'max over':>8} {'calls/s':>8}  admitted per replica (last round)"
    )
    groups: dict[tuple[int, bool], list[dict[str, Any]]] = {}
    for row in results.rate_limit:
        groups.setdefault((row["replicas"], row["shared"]), []).append(row)
    for (size, shared), rows in groups.items():
        counts: list[int] = [row["admitted"] for row in rows]
        rate = statistics.median(row["calls"] / row["seconds"] for row in rows)
        print(
            f"{size:>8} {mode(shared):>7} {'/'.join(map(str, counts)):>18} "
            f"{statistics.median(counts):>7g} {max(counts) - args.limit:>+8} {rate:>8.0f}  "
            f"{rows[-1]['admitted_per_replica']}"
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    document = {
        "machine": {
            "arch": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "settings": {
            "kid_miss_cooldown_s": args.cooldown,
            "rotations": args.rotations,
            "limit_per_minute": args.limit,
            "calls": args.calls,
            "in_flight": IN_FLIGHT,
        },
        "seconds": seconds,
        "load_average_1m_at_end": os.getloadavg()[0],
        "jwks": results.jwks,
        "rate_limit": results.rate_limit,
    }
    (out / "fleet.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--redis", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--rl-sizes", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--cooldown", type=float, default=1.0, help="kid-miss cooldown, s")
    parser.add_argument("--rotations", type=int, default=3)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--calls", type=int, default=250)
    parser.add_argument("--rl-rounds", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="skip the fleets without Redis")
    arguments = parser.parse_args()
    started = time.perf_counter()
    outcome = run(arguments)
    report(outcome, arguments, time.perf_counter() - started)
