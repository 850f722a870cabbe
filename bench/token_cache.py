"""What an L1 miss costs: reading the fleet's L2 (Redis) versus verifying the token locally.

    uv run python bench/token_cache.py [--redis redis://127.0.0.1:6379/0] [--n 3000]

Prints microseconds per operation, wall clock and CPU (process time), for:
  l1-hit         the in-process cache (what every repeated token costs)
  verify-local   full RS256 verification with the key already loaded, plus building the identity
  l2-hit         Redis GET, HMAC check, JSON parse, the claim rules, building the identity
  l2-put         what a miss adds when L2 is on (a sealed SET with a TTL)
The CPU column is what decides throughput on a CPU-bound replica; the wall column is the
latency one request sees. Writes JSON next to the table (bench/results/token_cache.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cache.redis import SharedRedis, create_redis
from cache.seal import Sealer
from cache.tokens import LocalTokenCache, SharedTokenStore, token_key
from mcp_service.authenticator import Authenticator
from mcp_service.identity import Identity
from tests.support.service import FakeJwks, make_service
from tests.support.tokens import TokenFactory


async def measure(n: int, operation: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    for i in range(min(200, n)):  # warm up
        await operation(i)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        await operation(i)
    return (
        (time.perf_counter() - wall) / n * 1e6,
        (time.process_time() - cpu) / n * 1e6,
    )


async def main(redis_url: str, n: int) -> dict[str, tuple[float, float]]:
    service = make_service(FakeJwks())
    verifier = service.authenticator.verifier
    factory = TokenFactory()
    tokens = [factory.token(jti=f"bench-{i}") for i in range(n + 200)]
    await verifier.verify(tokens[0])  # load the keys

    shared = SharedRedis(
        create_redis(redis_url, socket_timeout=1, connect_timeout=1),
        prefix=f"bench-{time.time_ns()}",
        timeout=1,
    )
    store = SharedTokenStore(shared, Sealer(["b" * 32]))
    claims = [await verifier.verify(t) for t in tokens]
    for token, claim in zip(tokens, claims, strict=True):
        await store.put(token_key(token), claim, claim["exp"])

    l1 = Authenticator(verifier, LocalTokenCache[Identity](n + 500))
    await l1.authenticate(tokens[0])

    async def l1_hit(_i: int) -> object:
        return await l1.authenticate(tokens[0])

    async def verify_local(i: int) -> object:
        token = tokens[i % len(tokens)]
        return Identity.from_claims(token, await verifier.verify(token))

    async def l2_hit(i: int) -> object:
        token = tokens[i % len(tokens)]
        found = await store.get(token_key(token))
        assert found is not None
        verifier.check_claims(found)
        return Identity.from_claims(token, found)

    async def l2_put(i: int) -> object:
        claim = claims[i % len(claims)]
        await store.put(token_key(tokens[i % len(tokens)]), claim, claim["exp"])
        return None

    results = {
        "l1-hit": await measure(n * 10, l1_hit),
        "verify-local": await measure(n, verify_local),
        "l2-hit": await measure(n, l2_hit),
        "l2-put": await measure(n, l2_put),
    }
    client = shared.client
    assert client is not None
    keys = [key async for key in client.scan_iter(match=f"{shared.prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await shared.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    results = asyncio.run(main(args.redis, args.n))
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, redis {args.redis}"
    )
    print(f"{'operation':<14} {'wall us/op':>11} {'cpu us/op':>10}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<14} {wall:>11.1f} {cpu:>10.1f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "token_cache.json").write_text(
        json.dumps({k: {"wall_us": w, "cpu_us": c} for k, (w, c) in results.items()}, indent=2)
    )
