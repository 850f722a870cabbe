"""What observability costs per MCP tool call, side by side with plain FastMCP.

Every variant drives the same `add` tool through FastMCP's stateless JSON streamable-HTTP
app in process (no sockets), so the figures are the cost of the layers themselves:

  plain        FastMCP's http_app alone
  passthrough  + an ASGI middleware that does nothing but await the app (the noise floor:
               a tool call suspends its request task only ~4 times, so a layer is nearly free)
  tools        + ToolCallMetrics (FastMCP middleware: tool, outcome, duration)
  observed     + ObserveRequests outside (request id, HTTP histogram), access log off
  access_log   + the access-log line (JSON, to a file), i.e. ACCESS_LOG=true

Each layer alone, in instructions per request or per tool call (`--group layer`: the ASGI
layer around an app that answers at once; `--group tool`: FastMCP's `call_tool` with no
middleware, with ToolCallMetrics, and with a do-nothing `on_call_tool` middleware).

CPU instructions under callgrind (each variant run twice with different call counts and
subtracted, so start-up cancels out; PYTHONHASHSEED fixed so runs are comparable):
    uv run python bench/metrics_overhead.py callgrind --low 50 --high 150
    uv run python bench/metrics_overhead.py callgrind --group layer --low 1000 --high 3000
    uv run python bench/metrics_overhead.py callgrind --group tool --low 200 --high 600
Wall clock (interleaved rounds, best of each; noisy on a shared machine):
    uv run python bench/metrics_overhead.py timeit --calls 2000 --rounds 5

Measured here (2 cores shared with other work, Python 3.11, FastMCP 4.2.3, prometheus-client
0.26; instruction counts do not depend on the load):
  app    plain 3.915 M, tools 3.940 M (0.994x), observed 3.970 M (0.986x),
         passthrough 3.940 M (0.994x: the noise floor of this comparison),
         access_log 4.194 M (0.933x, before the redaction pre-check; the layer figure below
         is current)
  layer  bare 6.3 k; ObserveRequests without metrics 27.8 k, with metrics 38.3 k, and with
         the access-log line 207.9 k instructions per request
  tool   none 1271.6 k, ToolCallMetrics 1293.5 k (+21.9 k), a no-op on_call_tool middleware
         1305.8 k (+34.2 k)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inprocess import post_scope

BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 5, "b": 3}},
    }
).encode()
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-type", b"application/json"),
    (b"accept", b"application/json, text/event-stream"),
    (b"mcp-protocol-version", b"2025-06-18"),
    (b"content-length", str(len(BODY)).encode()),
]
GROUPS = {
    "app": ("plain", "passthrough", "tools", "observed", "access_log"),
    "layer": ("bare", "no_metrics", "metrics", "access_log"),
    "tool": ("none", "metrics", "noop_hook"),
}
VARIANTS = GROUPS["app"]

Call = Callable[[], Awaitable[int]]


def build(variant: str) -> tuple[Any, Any]:
    """(outer ASGI app, inner Starlette app whose lifespan must run)."""
    from fastmcp import FastMCP

    from observability.http import ObserveRequests
    from observability.logs import configure_logging
    from observability.metrics import Metrics
    from observability.tools import ToolCallMetrics

    mcp: FastMCP[Any] = FastMCP("bench")

    @mcp.tool
    def add(a: int, b: int) -> int:
        return a + b

    metrics = Metrics(tools=["add"])
    if variant != "plain":
        mcp.add_middleware(ToolCallMetrics(metrics))
    inner = mcp.http_app(path="/mcp", stateless_http=True, json_response=True)
    app: Any = inner
    if variant == "passthrough":

        async def passthrough(scope: Any, receive: Any, send: Any) -> None:
            await inner(scope, receive, send)

        app = passthrough
    if variant in ("observed", "access_log"):
        app = ObserveRequests(
            inner, metrics=metrics, routes=["/mcp"], access_log=variant == "access_log"
        )
    # Every variant logs as `mcp-service serve` does (JSON, INFO), to /dev/null.
    configure_logging("INFO", open(os.devnull, "w"))  # noqa: SIM115
    return app, inner


def caller(app: Any) -> Call:
    async def call() -> int:
        status = 0
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(post_scope(HEADERS), receive, send)
        return status

    return call


async def run(variants: list[str], calls: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    built = {v: build(v) for v in variants}
    for _ in range(rounds):
        for variant in variants:
            app, inner = built[variant]
            call = caller(app)
            async with inner.router.lifespan_context(inner):
                for _ in range(50):
                    assert await call() == 200
                started = time.perf_counter()
                for _ in range(calls):
                    await call()
                per_call = (time.perf_counter() - started) / calls
            best[variant] = min(best.get(variant, per_call), per_call)
    return best


async def drive(group: str, variant: str, calls: int) -> None:
    if group == "layer":
        await drive_layer(variant, calls)
        return
    if group == "tool":
        await drive_tool(variant, calls)
        return
    app, inner = build(variant)
    call = caller(app)
    async with inner.router.lifespan_context(inner):
        for _ in range(calls):
            status = await call()
            if status != 200:
                raise SystemExit(f"{variant}: HTTP {status}")


async def drive_layer(variant: str, calls: int) -> None:
    from observability.http import ObserveRequests
    from observability.logs import configure_logging
    from observability.metrics import Metrics

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    configure_logging("INFO", open(os.devnull, "w"))  # noqa: SIM115, ASYNC230
    metrics = None if variant == "no_metrics" else Metrics()
    app: Any = answer
    if variant != "bare":
        access_log = variant == "access_log"
        app = ObserveRequests(answer, metrics=metrics, routes=["/mcp"], access_log=access_log)
    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": HEADERS}
    for _ in range(calls):
        await app(dict(scope), receive, send)


async def drive_tool(variant: str, calls: int) -> None:
    from fastmcp import FastMCP
    from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

    from observability.metrics import Metrics
    from observability.tools import ToolCallMetrics

    class NoopHook(Middleware):
        async def on_call_tool(
            self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
        ) -> Any:
            return await call_next(context)

    mcp: FastMCP[Any] = FastMCP("bench")

    @mcp.tool
    def add(a: int, b: int) -> int:
        return a + b

    if variant == "metrics":
        mcp.add_middleware(ToolCallMetrics(Metrics(tools=["add"])))
    elif variant == "noop_hook":
        mcp.add_middleware(NoopHook())
    for _ in range(calls):
        await mcp.call_tool("add", {"a": 1, "b": 2})


def instructions(group: str, variant: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "drive",
                "--group",
                group,
                variant,
                "--calls",
                str(calls),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # same dict layouts run to run
        )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise SystemExit(result.stderr[-2000:])
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("timeit")
    t.add_argument("--calls", type=int, default=2000)
    t.add_argument("--rounds", type=int, default=5)
    t.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    c = sub.add_parser("callgrind")
    c.add_argument("--group", choices=GROUPS, default="app")
    c.add_argument("--low", type=int, default=50)
    c.add_argument("--high", type=int, default=150)
    c.add_argument("--variants", nargs="+", default=None)
    d = sub.add_parser("drive")
    d.add_argument("--group", choices=GROUPS, default="app")
    d.add_argument("variant")
    d.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()

    if args.command == "drive":
        asyncio.run(drive(args.group, args.variant, args.calls))
    elif args.command == "timeit":
        best = asyncio.run(run(args.variants, args.calls, args.rounds))
        base = best.get("plain")
        for variant, seconds in best.items():
            extra = f"  {base / seconds:.3f}x plain throughput" if base else ""
            print(f"{variant:12s} {seconds * 1e6:8.1f} us/call{extra}")
    else:
        base = None
        for variant in args.variants or GROUPS[args.group]:
            low = instructions(args.group, variant, args.low)
            high = instructions(args.group, variant, args.high)
            per_call = (high - low) / (args.high - args.low)
            base = base or per_call
            print(
                f"{variant:12s} {per_call / 1e3:9.1f} k instructions per call"
                f"  {base / per_call:.3f}x the first variant's throughput",
                flush=True,
            )


if __name__ == "__main__":
    main()
