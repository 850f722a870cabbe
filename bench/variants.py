"""The servers the benchmarks compare, each an ASGI app served by the same uvicorn set-up.

    python bench/variants.py VARIANT PORT [--workers N]
    python bench/variants.py token          # a token the authenticated variants accept

  plain        plain FastMCP: the same `add` tool (mcp_service.demo.add), stateless JSON
               responses, no auth
  plain-gcfreeze  plain, with the heap treatment `mcp-service serve` applies after start-up
               (mcp_service/heap.py: gc.freeze() and a higher young-generation threshold),
               to show that lever apart from the rest of the service
  fastmcp-jwt  plain FastMCP behind FastMCP's own JWTVerifier (static RS256 public key)
  auth         this service with authentication alone: RS256 verification, the in-process
               token cache, the revocation check; no Redis, RATE_LIMIT=off, IP_RATE_LIMIT=off,
               MAX_IN_FLIGHT=0, METRICS_ENABLED=false
  full         this service with everything on: REDIS_URL (real Redis, default
               redis://127.0.0.1:6379/0, key prefixes of its own) with TOKEN_CACHE_SECRET
               (shared JWKS, revocation listener), the per-subject limit on Redis (so high it
               never refuses, so the Lua round trip happens on every call), the per-IP limit
               (high), the in-flight cap (256) and metrics
  auth-sdk, full-sdk  auth and full with FAST_PATH=false: every request through FastMCP's
               SDK transport, as before the fast path (auth and full take the fast path)

Every variant runs under `uvicorn` with the same options (uvloop and httptools when installed,
no access log); the service variants with the bounded httptools protocol `mcp-service serve`
runs (mcp_service/edge.py), so their figures include its cost. With `--workers N` (N > 1)
uvicorn starts N worker processes from the import string `bench.variants:factory`, the variant
passed in BENCH_VARIANT; the service variants with metrics then use prometheus-client's multiprocess
mode, as `mcp-service serve --workers N` does.

Tokens for the authenticated variants are signed with one RSA key shared by the processes of a
run (BENCH_KEY_FILE, default bench/results/bench-key.pem) in the test pool's shape
(`tests.support.tokens`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("plain", "plain-gcfreeze", "fastmcp-jwt", "auth", "full", "auth-sdk", "full-sdk")
SERVICE = frozenset({"auth", "full", "auth-sdk", "full-sdk"})
AUTHENTICATED = SERVICE | {"fastmcp-jwt"}
# The service variants that send everything through the SDK transport (FAST_PATH=false).
SDK_SUFFIX = "-sdk"
# The request every benchmark sends: one tools/call of `add`.
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 5, "b": 3}},
}
VARIANT_ENV = "BENCH_VARIANT"
# Never reached during a run, so every request still makes the limiter's Redis round trip.
NEVER_LIMITING = "999999999/minute"


def bench_key() -> Any:
    """One RSA key shared by the processes of a benchmark run (the token minter, the servers)."""
    from mcp_service.issuer import load_or_create_key

    default = ROOT / "bench" / "results" / "bench-key.pem"
    return load_or_create_key(Path(os.environ.get("BENCH_KEY_FILE", default)))


def bench_token() -> str:
    from tests.support.tokens import TokenFactory

    return TokenFactory(key=bench_key()).token(exp=2_000_000_000)


def call_headers(variant: str, bearer: str) -> dict[str, str]:
    """The headers of CALL for `variant`: the bearer token only where the variant checks one."""
    headers = {"Accept": "application/json, text/event-stream"}
    if variant in AUTHENTICATED:
        headers["Authorization"] = f"Bearer {bearer}"
    return headers


def plain_app(auth: Any = None, gc_freeze: bool = False) -> Any:
    from contextlib import asynccontextmanager

    from fastmcp import FastMCP

    from mcp_service.demo import READ_ONLY, add

    @asynccontextmanager
    async def lifespan(_server: Any) -> Any:
        if gc_freeze:  # what `mcp-service serve` does to its heap, applied to plain FastMCP
            from mcp_service.heap import freeze_startup_heap

            freeze_startup_heap()
        yield {}

    mcp: FastMCP[Any] = FastMCP("plain", auth=auth, lifespan=lifespan)
    mcp.tool(add, annotations=READ_ONLY)
    return mcp.http_app(path="/mcp", stateless_http=True, json_response=True)


def fastmcp_jwt_app() -> Any:
    from fastmcp.server.auth.providers.jwt import JWTVerifier

    from tests.support.tokens import ISSUER, public_pem

    verifier = JWTVerifier(public_key=public_pem(bench_key()).decode(), issuer=ISSUER)
    return plain_app(auth=verifier)


def service_settings(variant: str) -> Any:
    from tests.support.service import make_settings

    fast_path = not variant.endswith(SDK_SUFFIX)
    if variant.removesuffix(SDK_SUFFIX) == "auth":
        return make_settings(
            rate_limit="off",
            ip_rate_limit="off",
            max_in_flight=0,
            metrics_enabled=False,
            fast_path=fast_path,
        )
    # A prefix of this run's own (inherited by its workers): a shared JWKS left in Redis by an
    # earlier run, signed for another bench key, must not be adopted.
    prefix = os.environ.setdefault("BENCH_PREFIX", f"mcpbench-{uuid.uuid4().hex[:12]}")
    return make_settings(
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_key_prefix=prefix,
        token_cache_secret="b" * 32,
        rate_limit=NEVER_LIMITING,
        rate_limit_key_prefix=f"{prefix}:v1:rl:",
        ip_rate_limit="999999999/second",
        max_in_flight=256,
        metrics_enabled=True,
        fast_path=fast_path,
    )


def service_app(variant: str) -> Any:
    from mcp_service.app import build_service
    from mcp_service.heap import freeze_startup_heap
    from tests.support.tokens import jwks_of

    document = json.dumps(jwks_of(bench_key())).encode()

    async def jwks() -> bytes:  # the pool's keys, without a network hop
        return document

    from mcp_service.edge import configure_edge

    settings = service_settings(variant)
    configure_edge(settings)  # the bounds `serve` applies to every connection (its protocol)
    app = build_service(settings, jwks_fetch=jwks).app
    freeze_startup_heap()  # as `mcp-service serve` does once the app is built
    return app


def build(variant: str) -> Any:
    if variant == "plain":
        return plain_app()
    if variant == "plain-gcfreeze":
        return plain_app(gc_freeze=True)
    if variant == "fastmcp-jwt":
        return fastmcp_jwt_app()
    if variant in SERVICE:
        return service_app(variant)
    raise SystemExit(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")


def factory() -> Any:
    """uvicorn's app factory for `--workers N`: the variant comes from BENCH_VARIANT."""
    return build(os.environ[VARIANT_ENV])


def serve(variant: str, port: int, workers: int = 1) -> None:
    import uvicorn

    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "log_level": "warning",
        "access_log": False,
    }
    if variant in SERVICE:  # the HTTP protocol `mcp-service serve` runs
        from mcp_service.edge import PROTOCOL

        options["http"] = PROTOCOL
    if workers == 1:
        uvicorn.run(build(variant), **options)
        return
    os.environ[VARIANT_ENV] = variant
    bench_key()  # create the key file once, before the workers race to
    if variant in SERVICE and service_settings(variant).metrics_enabled:
        from observability.metrics import multiprocess_mode

        with multiprocess_mode():
            uvicorn.run("bench.variants:factory", factory=True, workers=workers, **options)
        return
    uvicorn.run("bench.variants:factory", factory=True, workers=workers, **options)


def main() -> None:
    if sys.argv[1:2] == ["token"]:
        print(bench_token())
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("port", type=int)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve(args.variant, args.port, args.workers)


if __name__ == "__main__":
    main()
