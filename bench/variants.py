"""The servers the benchmarks compare, each an ASGI app served by the same uvicorn set-up.

    python bench/variants.py VARIANT PORT

  plain        plain FastMCP: the same `add` tool, stateless JSON responses, no auth
  fastmcp-jwt  plain FastMCP behind FastMCP's own JWTVerifier (static RS256 public key)
  auth         this service, authentication only (no Redis, no rate limits)
  full         this service with everything on: Redis (JWKS, revocations), rate limits, metrics

Tokens for the authenticated variants come from `tests.support.tokens.TokenFactory` (the test
pool's key); `bench/variants.py token` prints one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bench_key() -> Any:
    """One RSA key shared by the processes of a benchmark run (the token minter, the servers)."""
    from mcp_service.issuer import load_or_create_key

    default = Path(__file__).parent / "results" / "bench-key.pem"
    return load_or_create_key(Path(os.environ.get("BENCH_KEY_FILE", default)))


def plain_app(auth: Any = None) -> Any:
    from fastmcp import FastMCP

    mcp: FastMCP[Any] = FastMCP("plain", auth=auth)

    @mcp.tool
    def add(a: int | float, b: int | float) -> int | float:
        """Add two numbers and return the sum."""
        return a + b

    return mcp.http_app(path="/mcp", stateless_http=True, json_response=True)


def fastmcp_jwt_app() -> Any:
    from fastmcp.server.auth.providers.jwt import JWTVerifier

    from tests.support.tokens import ISSUER, public_pem

    verifier = JWTVerifier(public_key=public_pem(bench_key()).decode(), issuer=ISSUER)
    return plain_app(auth=verifier)


def service_app(full: bool) -> Any:
    from mcp_service.app import build_service
    from tests.support.service import make_settings
    from tests.support.tokens import jwks_of

    extra: dict[str, Any] = {}
    if full:
        extra = {
            "redis_url": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "redis_key_prefix": os.environ.get("BENCH_PREFIX", "bench"),
            "token_cache_secret": "b" * 32,
        }
    document = json.dumps(jwks_of(bench_key())).encode()

    async def jwks() -> bytes:  # the pool's keys, without a network hop or a key generation
        return document

    return build_service(make_settings(**extra), jwks_fetch=jwks).app


def build(variant: str) -> Any:
    if variant == "plain":
        return plain_app()
    if variant == "fastmcp-jwt":
        return fastmcp_jwt_app()
    if variant in ("auth", "full"):
        return service_app(full=variant == "full")
    raise SystemExit(f"unknown variant {variant!r}")


def main() -> None:
    if sys.argv[1] == "token":
        from tests.support.tokens import TokenFactory

        print(TokenFactory(key=bench_key()).token(exp=2_000_000_000))
        return
    import uvicorn

    variant, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(build(variant), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
