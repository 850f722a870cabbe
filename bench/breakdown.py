"""Where the CPU instructions of a fast-path tool call go, piece by piece, under callgrind.

    uv run python bench/breakdown.py [--calls 200:600] [--only NAME ...]

The `auth` variant of bench/variants.py (the whole service, authentication only, the fast
path's hot twin) is built and started in process; each row repeats one piece of what a
`tools/call` of `add` runs through, N times, with what it needs prepared once (uncounted),
in a process under `valgrind --tool=callgrind --instr-atstart=no` (bench/instrument.py). For
the pair (N1, N2), (I(N2) - I(N1)) / (N2 - N1) is the cost of one call of that piece. The
rows nest (each names what it contains); a row repeated alone costs a little more than
inside its parent (its own coroutine, ~1 k), and the pieces of FastMCP's tool call are
measured alone, so they show what each costs, not an exact partition.

  request        the whole ASGI request, from the outermost layer (no HTTP)
  fast-path      the FastPath layer and everything inside it
  shell          FastPath's own work: classification, the exchange, the answer written (the
                 hot twin replaced by a canned result)
  hot-twin       FastPath._call_tool: the typed params, the request context, the root
                 dispatch, FastMCP's handler and the SDK's per-version result sieve
  handler        FastMCP's tools/call handler (`_on_call_tool`), FastMCP.call_tool inside it
  call-tool      FastMCP.call_tool("add"): its middleware chain, tool lookup and run
  get-tool       FastMCP.get_tool("add"): providers, session visibility, `auth=` checks
  gather-one     fastmcp.utilities.async_utils.gather of one awaitable (a task group), as
                 the tool lookup runs it over the server's single provider
  state-read     one read of FastMCP's session state store (the visibility rules' read)
  tool-run       FunctionTool.run: argument validation, the body, result conversion
  thread-hop     anyio.to_thread.run_sync of a no-op, as a sync tool's body is run
  convert        Tool.convert_result of `add`'s integer result
  sieve          the SDK's per-version result sieve (ServerRunner._serialize) of the result

Writes bench/results/breakdown.json. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.inprocess import Driver, post_scope  # noqa: E402
from bench.instrument import instructions, switch_on  # noqa: E402
from bench.variants import CALL, bench_token, build, call_headers  # noqa: E402

CASES = (
    "request",
    "fast-path",
    "shell",
    "hot-twin",
    "handler",
    "call-tool",
    "get-tool",
    "gather-one",
    "state-read",
    "tool-run",
    "thread-hop",
    "convert",
    "sieve",
)
PROTOCOL = "2025-11-25"
Piece = Callable[[], Awaitable[Any]]


def _fast_path(app: Any) -> Any:
    """The FastPath layer inside the built app (after its first request built the stacks)."""
    from mcp_service.fastpath import FastPath

    seen: set[int] = set()
    todo = [app]
    while todo:
        layer = todo.pop()
        layer = getattr(layer, "__self__", layer)  # a bound `__call__` or method
        if layer is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, FastPath):
            return layer
        for name in ("app", "middleware_stack", "router"):
            if (inner := getattr(layer, name, None)) is not None:
                todo.append(inner)
        todo.extend(getattr(route, "app", None) for route in getattr(layer, "routes", ()))
    raise RuntimeError("no FastPath layer in the app")


async def pieces() -> tuple[dict[str, Piece], Callable[[], Awaitable[None]]]:
    """Each case's piece, prepared; and the app's shut-down."""
    import anyio
    from fastmcp.telemetry import suppress_fastmcp_telemetry
    from fastmcp.utilities.async_utils import gather
    from mcp.server.runner import ServerRunner, _dump_result
    from mcp.shared.message import ServerMessageMetadata
    from starlette.requests import Request

    from mcp_service import fastpath

    app = build("auth")
    driver = Driver(app)
    await driver.start()
    body = json.dumps(CALL).encode()
    headers = {
        **call_headers("auth", bench_token()),
        "content-type": "application/json",
        "host": "127.0.0.1:8000",
    }
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))

    def scope() -> dict[str, Any]:
        return post_scope(raw)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    answers: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            answers[:] = [message["body"]]

    await app(scope(), receive, send)
    if b'"isError":false' not in answers[0]:
        raise RuntimeError(f"not a tool result: {answers[0][:200]!r}")
    layer = _fast_path(app)
    server = layer.server
    root = fastpath._root_dispatch(server)
    lifespan = layer._lifespan_state(scope())[0]
    params = CALL["params"]
    assert isinstance(params, dict)
    connection = fastpath._stateless_connection(PROTOCOL)
    runner = ServerRunner(server._mcp_server, connection, lifespan)
    metadata = ServerMessageMetadata(
        request_context=Request(scope(), receive), can_send_request=False
    )
    dctx = fastpath._ExchangeContext(fastpath._TRANSPORT, 1, metadata)
    entry = server._mcp_server.get_request_handler("tools/call")
    assert entry is not None
    assert root is not None
    typed = entry.params_type.model_validate(params, by_name=False)
    ctx = runner._make_context(dctx, "tools/call", params, None, PROTOCOL)
    with root._apply_shared_context(server), suppress_fastmcp_telemetry():
        result = await entry.handler(ctx, typed)
    tool = await server.local_provider.get_tool("add")
    assert tool is not None
    canned = _dump_result(runner._serialize("tools/call", PROTOCOL, result))

    class Shell(type(layer)):  # type: ignore[misc]
        async def _call_tool(self, *args: Any) -> dict[str, Any]:
            return canned

    shell = Shell(layer.app, server=server, path=layer.path)
    shell._endpoint = layer._endpoint

    async def within(piece: Piece) -> Any:
        with root._apply_shared_context(server), suppress_fastmcp_telemetry():
            return await piece()

    async def one() -> int:
        return 1

    async def gather_one() -> Any:
        return await gather((one() for _ in range(1)), return_exceptions=True)

    async def sieve() -> Any:
        return runner._serialize("tools/call", PROTOCOL, result)

    async def convert() -> Any:
        return tool.convert_result(8)

    table: dict[str, Piece] = {
        "request": lambda: app(scope(), receive, send),
        "fast-path": lambda: layer(scope(), receive, send),
        "shell": lambda: shell(scope(), receive, send),
        "hot-twin": lambda: layer._call_tool(root, runner, dctx, params, PROTOCOL),
        "handler": lambda: within(lambda: entry.handler(ctx, typed)),
        "call-tool": lambda: within(lambda: server.call_tool("add", {"a": 5, "b": 3})),
        "get-tool": lambda: within(lambda: server.get_tool("add")),
        "gather-one": gather_one,
        "state-read": lambda: server._state_store.get(key="nobody:_visibility_rules"),
        "tool-run": lambda: tool.run({"a": 5, "b": 3}),
        "thread-hop": lambda: anyio.to_thread.run_sync(int),
        "convert": convert,
        "sieve": sieve,
    }
    return table, driver.stop


def inner(name: str, calls: int) -> None:
    """Inside valgrind: set up, switch counting on, run the piece `calls` times."""

    async def run() -> None:
        table, stop = await pieces()
        piece = table[name]
        for _ in range(20):  # caches filled, lazy imports done
            await piece()
        switch_on()
        for _ in range(calls):
            await piece()
        await stop()

    asyncio.run(run())


def main() -> None:
    if sys.argv[1:2] == ["--inner"]:
        inner(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="200:600")
    parser.add_argument("--only", nargs="*", choices=CASES)
    args = parser.parse_args()
    low, high = (int(n) for n in args.calls.split(":"))
    results: dict[str, float] = {}
    print(f"| piece | k instr/call (N={low}->{high}) |\n| --- | ---: |")
    for name in args.only or CASES:
        a = instructions(__file__, "--inner", name, str(low))
        b = instructions(__file__, "--inner", name, str(high))
        results[name] = (b - a) / (high - low)
        print(f"| {name} | {results[name] / 1e3:.1f} |", flush=True)
    out = ROOT / "bench" / "results" / "breakdown.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"calls": [low, high], "instructions": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
