"""`build_service(settings)`: the one place that wires the service together.

The stages (mcp_service.stages) build the parts; `layers()` declares the middleware stack
once, outermost first, as Starlette's `build_middleware_stack` does; the MCP app (FastMCP's
streamable HTTP app, stateless with JSON responses) is innermost. docs/architecture.md
describes each layer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastmcp import FastMCP
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from cache.jwks import JwksCache, JwksFetch
from cache.redis import SharedRedis
from cache.revocations import RevocationListener
from cache.windows import parse_limits
from mcp_service.authenticator import Authenticator
from mcp_service.bearer import BearerAuth
from mcp_service.bodylimit import BodyLimit
from mcp_service.challenge import Challenge
from mcp_service.fastpath import fast_path_layers
from mcp_service.heap import freeze_startup_heap
from mcp_service.issuer import LocalIssuer
from mcp_service.limiter import SubjectLimiter
from mcp_service.metadata import ResourceMetadata
from mcp_service.overload import InFlightLimit
from mcp_service.ratelimit import IpRateLimit, SubjectRateLimit
from mcp_service.routes import add_public_routes
from mcp_service.scopes import ToolScopeCheck, ToolScopes
from mcp_service.settings import Settings
from mcp_service.stages import (
    Authentication,
    Limits,
    Observed,
    authenticate,
    limit,
    observe,
    running_all,
    share,
)
from mcp_service.tools import TOOL_NAMES, register_tools
from observability.health import Readiness
from observability.http import ObserveRequests
from observability.metrics import Metrics
from observability.tools import ToolCallMetrics

MCP_PATH = "/mcp"
CORS_HEADERS = (
    "authorization",
    "content-type",
    "accept",
    "last-event-id",
    "mcp-protocol-version",
    "mcp-session-id",
    "mcp-method",
    "mcp-name",
)
CORS_EXPOSED = (
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


@dataclass(frozen=True, kw_only=True)
class Service:
    """The ASGI app and the parts tests and the CLI reach into."""

    app: ASGIApp
    settings: Settings
    layers: tuple[Middleware, ...]
    jwks: JwksCache
    authenticator: Authenticator
    issuer: LocalIssuer | None
    shared: SharedRedis
    revocations: RevocationListener | None
    metrics: Metrics | None
    readiness: Readiness
    limiter: SubjectLimiter | None


def build_service(
    settings: Settings, *, jwks_fetch: JwksFetch | None = None, hot_paths: bool = True
) -> Service:
    """Wire the service. `jwks_fetch` replaces the JWKS download (tests, emulators);
    `hot_paths=False` leaves only the general twin of each hot path (the behaviour suite runs
    through both)."""
    tool_scopes = {s for scopes in settings.tool_scopes.values() for s in scopes}
    observed = observe(settings, TOOL_NAMES)
    shared = share(settings, observed)
    auth = authenticate(settings, observed, shared, scopes=tool_scopes, jwks_fetch=jwks_fetch)
    limits = limit(settings, observed)

    @asynccontextmanager
    async def lifespan(_server: FastMCP[Any]) -> AsyncIterator[dict[str, Any]]:
        async with running_all(
            shared.running(),
            auth.running(),
            limits.running(),
            observed.running(settings.readiness_interval_seconds),
        ):
            yield {}

    mcp: FastMCP[Any] = FastMCP("mcp-service", lifespan=lifespan)
    register_tools(mcp, settings.tool_scopes, timeout=settings.tool_timeout_seconds or None)
    if observed.metrics is not None:
        mcp.add_middleware(ToolCallMetrics(observed.metrics))
    challenge = Challenge(settings.public_base_url, MCP_PATH, settings.required_scopes)
    scopes = {*settings.required_scopes, *tool_scopes, *(auth.issuer.scopes if auth.issuer else ())}
    public = add_public_routes(
        mcp,
        settings,
        metadata=ResourceMetadata(challenge, settings.issuer, scopes),
        readiness=observed.readiness,
        metrics=observed.metrics,
        issuer=auth.issuer,
    )
    stack = layers(settings, observed, auth, limits, challenge, public, hot_paths=hot_paths)
    fast = fast_path_layers(mcp, MCP_PATH) if settings.fast_path else []
    inner: ASGIApp = mcp.http_app(
        path=MCP_PATH, stateless_http=True, json_response=True, middleware=fast
    )
    return Service(
        app=build_stack(inner, stack),
        settings=settings,
        layers=stack,
        jwks=auth.jwks,
        authenticator=auth.authenticator,
        issuer=auth.issuer,
        shared=shared.redis,
        revocations=auth.listener,
        metrics=observed.metrics,
        readiness=observed.readiness,
        limiter=limits.subject,
    )


def layers(
    settings: Settings,
    observed: Observed,
    auth: Authentication,
    limits: Limits,
    challenge: Challenge,
    public: Iterable[str],
    *,
    hot_paths: bool = True,
) -> tuple[Middleware, ...]:
    """The middleware stack, outermost first; a layer a setting switches off is left out."""
    hooks = observed.hooks
    public = sorted(public)
    tool_scopes = ToolScopes(settings.tool_scopes)
    stack: list[Middleware | None] = [
        # Request id, HTTP metrics, the access log, the log context of every line.
        Middleware(
            ObserveRequests,
            metrics=observed.metrics,
            routes=[MCP_PATH, *public],
            access_log=settings.access_log,
        ),
        # The client address and scheme from X-Forwarded-* of TRUSTED_PROXIES only.
        Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
        if settings.trusted_proxies
        else None,
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=list(CORS_HEADERS),
            expose_headers=list(CORS_EXPOSED),
            max_age=600,
        )
        if settings.cors_allow_origins
        else None,
        Middleware(IpRateLimit, parse_limits(settings.ip_rate_limit), on_decision=hooks.ip_decision)
        if settings.ip_rate_limit != "off"
        else None,
        Middleware(InFlightLimit, settings.max_in_flight, on_shed=hooks.request_shed)
        if settings.max_in_flight
        else None,
        Middleware(
            BearerAuth,
            auth.authenticator,
            challenge,
            public_paths=public,
            on_outcome=hooks.auth_outcome,
            hot_path=hot_paths,
        ),
        # Bodies: nothing unauthenticated is buffered; the body limit bounds what the layers
        # below read.
        Middleware(BodyLimit, settings.max_body_bytes),
        Middleware(ToolScopeCheck, tool_scopes, challenge, on_outcome=hooks.auth_outcome)
        if tool_scopes
        else None,
        Middleware(SubjectRateLimit, limits.subject) if limits.subject else None,
    ]
    return tuple(layer for layer in stack if layer is not None)


def build_stack(app: ASGIApp, stack: Sequence[Middleware]) -> ASGIApp:
    """Wrap `app` in `stack`, the first layer outermost."""
    for cls, args, kwargs in reversed(stack):
        app = cls(app, *args, **kwargs)
    return app


def build_app(settings: Settings) -> ASGIApp:
    return build_service(settings).app


def create_app() -> ASGIApp:
    """Factory for uvicorn workers: settings come from the environment the CLI checked."""
    from mcp_service.edge import configure_edge
    from mcp_service.settings import load_settings
    from observability.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    configure_edge(settings)
    app = build_app(settings)
    freeze_startup_heap()
    return app
