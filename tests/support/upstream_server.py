"""An upstream MCP server for UPSTREAMS tests: plain FastMCP on loopback, reachable under
several path prefixes (`/<via>/mcp`, one per upstream entry pointing at it), recording the
Authorization and Cookie headers each request brought, and an OAuth token endpoint of its own
for the client-credentials grant.

    python -m tests.support.upstream_server PORT

`GET /seen` answers what was recorded: `{"requests": [{"via", "authorization", "cookie"}],
"tokens_issued": N}`.
"""

from __future__ import annotations

import base64
import sys
from typing import Any

import uvicorn
from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

CLIENT_ID = "upstream-client"
CLIENT_SECRET = "upstream-secret-value"
STATIC_TOKEN = "static-upstream-token"

seen: list[dict[str, Any]] = []
issued: list[str] = []


def create_server() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("upstream")

    @mcp.tool
    def search(query: str) -> str:
        """Search the upstream's documents."""
        return f"found {query}"

    @mcp.custom_route("/seen", methods=["GET"])
    async def report(_request: Request) -> JSONResponse:
        return JSONResponse({"requests": seen, "tokens_issued": len(issued)})

    @mcp.custom_route("/token", methods=["POST"])
    async def token(request: Request) -> JSONResponse:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        issued.append(f"upstream-cc-token-{len(issued) + 1}")
        return JSONResponse(
            {"access_token": issued[-1], "expires_in": 3600, "scope": form.get("scope")}
        )

    return mcp


class Recorder:
    """Strips the `/<via>` prefix off `/<via>/mcp` and records the request's credentials."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/mcp"):
            via = scope["path"][: -len("/mcp")].strip("/")
            headers = dict(scope["headers"])
            seen.append(
                {
                    "via": via,
                    "authorization": _text(headers.get(b"authorization")),
                    "cookie": _text(headers.get(b"cookie")),
                }
            )
            scope = {**scope, "path": "/mcp", "raw_path": b"/mcp"}
        await self.app(scope, receive, send)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


if __name__ == "__main__":
    app = Recorder(create_server().http_app(path="/mcp", stateless_http=True, json_response=True))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
