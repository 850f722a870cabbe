"""Which browser origins may call the service cross-origin, and the CORS layer that says so.

CORS_ALLOW_ORIGINS names them. Locally (APP_ENV=local) loopback origins (`http://127.0.0.1:*`,
`http://localhost:*`, `http://[::1]:*`: the MCP Inspector and other browser-side clients on a
laptop) are allowed beside them: with CORS_ALLOW_ORIGINS set, by the one CORS layer of the
stack; without it, on the routes a browser-side OAuth flow fetches (the discovery documents,
registration, the token endpoint, the JWKS) and only there, so nothing is added in front of
`/mcp`. Elsewhere only CORS_ALLOW_ORIGINS counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_service.settings import Settings

# Starlette matches the whole origin against it (re.fullmatch).
LOOPBACK_ORIGINS = r"http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?"
ALLOW_HEADERS = (
    "authorization",
    "content-type",
    "accept",
    "last-event-id",
    "mcp-protocol-version",
    "mcp-session-id",
    "mcp-method",
    "mcp-name",
)
EXPOSE_HEADERS = (
    "www-authenticate",
    "retry-after",
    "mcp-session-id",
    "mcp-protocol-version",
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
)
METHODS = ("GET", "POST", "DELETE", "OPTIONS")


class CorsPolicy(TypedDict):
    allow_origins: Sequence[str]
    allow_origin_regex: str | None
    allow_methods: Sequence[str]
    allow_headers: Sequence[str]
    expose_headers: Sequence[str]
    max_age: int


def loopback_allowed(settings: Settings) -> bool:
    return settings.app_env == "local"


def cors_policy(settings: Settings) -> CorsPolicy:
    """CORSMiddleware's arguments for the service's policy."""
    return CorsPolicy(
        allow_origins=list(settings.cors_allow_origins),
        allow_origin_regex=LOOPBACK_ORIGINS if loopback_allowed(settings) else None,
        allow_methods=list(METHODS),
        allow_headers=list(ALLOW_HEADERS),
        expose_headers=list(EXPOSE_HEADERS),
        max_age=600,
    )


def cors_layer(settings: Settings) -> Middleware | None:
    """The stack's CORS layer, there only when CORS_ALLOW_ORIGINS names origins."""
    if not settings.cors_allow_origins:
        return None
    return Middleware(CORSMiddleware, **cors_policy(settings))


class PreflightOnly:
    """Behind a route's CORS layer: an OPTIONS request that was no preflight (the CORS layer
    answers those) is 405, never the route's endpoint."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            await PlainTextResponse("Method Not Allowed", 405)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def route_cors(settings: Settings) -> list[Middleware]:
    """The middleware of a route a browser-side OAuth flow fetches: locally, when the stack
    has no CORS layer, the loopback origins' CORS (preflight included); else nothing."""
    if not loopback_allowed(settings) or settings.cors_allow_origins:
        return []
    return [Middleware(CORSMiddleware, **cors_policy(settings)), Middleware(PreflightOnly)]
