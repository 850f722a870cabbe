"""CPU instructions per call of each hot path and of its general twin, side by side, and of
the bounded HTTP protocol beside uvicorn's own.

    uv run python bench/twins.py [--calls 2000:6000] [--only NAME ...]

A hot path is kept only for what it saves; this prints what it saves. Each row runs one
public function (or ASGI layer) on the request it is built for, in a process under
`valgrind --tool=callgrind --instr-atstart=no`: set-up runs uncounted, counting is switched on
(`callgrind_control --instr=on`), then the call is repeated N times. For the pair (N1, N2),
(I(N2) - I(N1)) / (N2 - N1) is the cost of one call; set-up and the switch cancel out.
PYTHONHASHSEED=0 keeps runs repeatable (the counts repeat within ~1 %).

  bearer-hot        BearerAuth, hot_path=True: one `Bearer <token>` header whose token is
                    cached (single_bearer + Authenticator.cached), to a no-op app
  bearer-general    the same request with hot_path=False (bearer_token + authenticate)
  fields-admitted   Decision.headers() admitted under one limit: admitted_fields()
  fields-general    Decision.fields() for the same decision
  protocol-bounded  one keep-alive request (a 1 KB token among 10 headers, a small body)
                    through mcp_service.edge's protocol, to an ASGI app that answers at once
  protocol-uvicorn  the same through uvicorn's HttpToolsProtocol: the difference is what the
                    edge's bounds cost

Writes bench/results/twins.json. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.instrument import instructions, switch_on  # noqa: E402

PAIRS = {
    "bearer-hot": "bearer-general",
    "fields-admitted": "fields-general",
}
ADDED = {"protocol-bounded": "protocol-uvicorn"}  # a bounded twin: what it adds, not saves
CASES = (
    "bearer-hot",
    "bearer-general",
    "fields-admitted",
    "fields-general",
    "protocol-bounded",
    "protocol-uvicorn",
)


def _drive(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine that never waits on anything (no event loop's cost in the count)."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise RuntimeError("the call waited on something: not a pure hot path")


def _bearer(hot_path: bool) -> Callable[[], None]:
    from cache.jwks import JwksCache
    from cache.tokens import LocalTokenCache
    from mcp_service.authenticator import Authenticator
    from mcp_service.bearer import BearerAuth
    from mcp_service.challenge import Challenge
    from mcp_service.identity import Identity
    from mcp_service.verifier import CognitoVerifier, VerifierConfig
    from tests.support.tokens import CLIENT_ID, ISSUER, TokenFactory, jwks_of, rsa_key

    async def fetch() -> bytes:
        return json.dumps(jwks_of(rsa_key())).encode()

    verifier = CognitoVerifier(
        VerifierConfig(issuer=ISSUER, client_ids=frozenset({CLIENT_ID})), JwksCache(fetch)
    )
    authenticator = Authenticator(verifier, LocalTokenCache[Identity]())
    token = TokenFactory().token(exp=2_000_000_000, scope="mcp/tools mcp/math")
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{}}}'

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        return None

    layer = BearerAuth(
        app,
        authenticator,
        Challenge("", "/mcp"),
        public_paths=(),
        hot_path=hot_path,
    )
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"accept", b"application/json, text/event-stream"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer " + token.encode()),
    ]
    import asyncio

    asyncio.run(authenticator.authenticate(token))  # cached from here on

    def call() -> None:
        scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}
        _drive(layer(scope, receive, send))  # type: ignore[arg-type]

    return call


def _fields(general: bool) -> Callable[[], None]:
    from cache.windows import Limit, Usage
    from mcp_service.ratefields import Decision, Policy

    limit = Limit(600, 60)
    policy = Policy("default", (limit,))
    decision = Decision("allowed", True, policy, [Usage(limit, 120, 37, 41.5)])
    return decision.fields if general else decision.headers  # type: ignore[return-value]


REQUEST = (
    b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:8000\r\naccept: application/json, text/event-stream"
    b"\r\ncontent-type: application/json\r\nauthorization: Bearer " + b"x" * 900 + b"\r\n"
    b"mcp-protocol-version: 2025-06-18\r\nuser-agent: python-httpx/0.28\r\n"
    b"accept-encoding: gzip\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n{}"
)


def _protocol(bounded: bool) -> Callable[[], None]:
    import asyncio

    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from mcp_service.edge import BoundedHttpToolsProtocol

    class Transport(asyncio.Transport):
        def write(self, data: Any) -> None:
            pass

        def is_closing(self) -> bool:
            return False

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}.get(name)

        def pause_reading(self) -> None:
            pass

        def resume_reading(self) -> None:
            pass

    loop = asyncio.new_event_loop()
    answered = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        answered.set()

    config = Config(app=app, http="httptools", access_log=False, lifespan="off")
    config.load()
    cls = BoundedHttpToolsProtocol if bounded else HttpToolsProtocol
    protocol = cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    protocol.connection_made(Transport())

    def call() -> None:
        protocol.data_received(REQUEST)
        loop.run_until_complete(answered.wait())
        answered.clear()

    return call


def case(name: str) -> Callable[[], None]:
    if name == "bearer-hot":
        return _bearer(True)
    if name == "bearer-general":
        return _bearer(False)
    if name == "fields-admitted":
        return _fields(False)
    if name == "fields-general":
        return _fields(True)
    if name in ("protocol-bounded", "protocol-uvicorn"):
        return _protocol(name == "protocol-bounded")
    raise SystemExit(f"unknown case {name!r}")


def inner(name: str, calls: int) -> None:
    """Inside valgrind: set up, switch counting on, call `calls` times."""
    call = case(name)
    for _ in range(50):  # warm: lazy imports, caches, the specialising interpreter
        call()
    switch_on()
    for _ in range(calls):
        call()


def count(name: str, calls: int) -> int:
    return instructions(__file__, "--inner", name, str(calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="2000:6000", help="N1:N2 (default 2000:6000)")
    parser.add_argument("--only", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--inner", nargs=2, metavar=("CASE", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.inner[0], int(args.inner[1]))
        return
    n1, n2 = (int(n) for n in args.calls.split(":"))
    per_call: dict[str, float] = {}
    for name in args.only:
        started = time.monotonic()
        per_call[name] = (count(name, n2) - count(name, n1)) / (n2 - n1)
        print(
            f"{name:<18} {per_call[name]:>10,.0f} instr/call  ({time.monotonic() - started:.0f} s)",
            file=sys.stderr,
        )
    print("\n| case | instructions per call | general twin | saved |\n| --- | ---: | ---: | ---: |")
    for name in args.only:
        twin = PAIRS.get(name)
        if name in PAIRS and twin in per_call:
            saved = per_call[twin] - per_call[name]
            print(f"| {name} | {per_call[name]:,.0f} | {per_call[twin]:,.0f} | {saved:,.0f} |")
        elif name not in PAIRS.values() and name not in ADDED and name not in ADDED.values():
            print(f"| {name} | {per_call[name]:,.0f} | | |")
    bounded = [name for name in args.only if name in ADDED and ADDED[name] in per_call]
    if bounded:
        print("\n| case | instructions per call | unbounded | added |")
        print("| --- | ---: | ---: | ---: |")
    for name in bounded:
        base = per_call[ADDED[name]]
        print(f"| {name} | {per_call[name]:,.0f} | {base:,.0f} | {per_call[name] - base:,.0f} |")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "twins.json").write_text(json.dumps({"calls": [n1, n2], "per_call": per_call}))


if __name__ == "__main__":
    main()
