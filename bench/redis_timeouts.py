"""How long Redis calls take on a replica under load, and how late its event loop runs.

    uv run python bench/redis_timeouts.py [--seconds 15] [--connections 32]

Starts the service in this process (uvicorn, one worker) with REDIS_URL on the local Redis and
the token L2 on (so every request that misses L1 talks to Redis), drives it with wrk (Debian's
`wrk`, a C load generator in its own process) with a fresh token per request, and reports:
  loop lag   how late a 10 ms timer fires on the loaded event loop (p50, p99, p99.9, max)
  redis op   the duration of each Redis call as the gate measured it, lag included
REDIS_TIMEOUT_SECONDS must sit well above the loaded p99.9 of a Redis call, or a busy replica
would open its breaker on a healthy Redis. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn

from mcp_service.app import build_service
from tests.support.processes import free_port
from tests.support.service import FakeJwks, make_settings
from tests.support.tokens import TokenFactory

WRK_SCRIPT = """
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = line end
local n = 0
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
  .. '"params":{"name":"add","arguments":{"a":5,"b":3}}}'
request = function()
  n = n + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Authorization"] = "Bearer " .. tokens[(n %% #tokens) + 1],
  }
  return wrk.format(nil, "/mcp", headers)
end
"""


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


async def run(seconds: int, connections: int, redis_url: str) -> dict[str, object]:
    port = free_port()
    settings = make_settings(
        redis_url=redis_url,
        redis_key_prefix=f"bench-{time.time_ns()}",
        token_cache_secret="t" * 32,
        token_cache_l2=True,
        redis_timeout_seconds=5.0,  # generous: we measure, we do not cut
        token_cache_max_entries=100,  # most requests miss L1 and go to Redis
    )
    service = build_service(settings, jwks_fetch=FakeJwks())
    redis_ops: list[float] = []
    service.shared.on_operation = lambda _op, outcome, secs: redis_ops.append(secs)
    server = uvicorn.Server(
        uvicorn.Config(service.app, port=port, log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.05)

    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - started - 0.01)

    factory = TokenFactory()
    with tempfile.TemporaryDirectory() as workdir:
        token_file = Path(workdir) / "tokens.txt"
        token_file.write_text("\n".join(factory.token() for _ in range(5000)))
        script = Path(workdir) / "calls.lua"
        script.write_text(WRK_SCRIPT % token_file)
        probing = asyncio.create_task(probe())
        wrk = await asyncio.create_subprocess_exec(
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            stdout=subprocess.PIPE,
        )
        output, _ = await wrk.communicate()
        stop.set()
        await probing
    server.should_exit = True
    await serving
    client = service.shared.client
    assert client is not None
    keys = [key async for key in client.scan_iter(match=f"{settings.redis_key_prefix}:*")]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])
    await service.shared.close()
    return {
        "wrk": output.decode().strip().splitlines()[-2:],
        "loop_lag": percentiles(lags),
        "redis_op": percentiles(redis_ops),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    result = asyncio.run(run(args.seconds, args.connections, args.redis))
    print(f"wrk -c{args.connections} for {args.seconds}s: {' | '.join(result['wrk'])}")  # type: ignore[arg-type]
    print(f"{'what':<10} {'n':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}")
    for name in ("loop_lag", "redis_op"):
        row = result[name]
        assert isinstance(row, dict)
        print(
            f"{name:<10} {row['n']:>7} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['p999_ms']:>9.2f} {row['max_ms']:>8.2f}"
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "redis_timeouts.json").write_text(json.dumps(result, indent=2))
