"""`build_service(settings)`: the one place that wires the service together.

The stages (mcp_service.stages) build the parts; `layers()` declares the middleware stack
once, outermost first, as Starlette's `build_middleware_stack` does; the served server's own
streamable HTTP app (MCP_APP's `http_app`, stateless with JSON responses) is innermost, with
the stack's lifespan wrapped around its own and the public routes ahead of its routes. The
server is served itself, never mounted inside another FastMCP server (which would double the
dispatch). docs/architecture.md describes each layer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.middleware import Middleware as ServerMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from cache.jwks import JwksCache, JwksFetch
from cache.redis import SharedRedis
from cache.revocations import RevocationListener
from cache.windows import parse_limits
from mcp_service.access import HideForbiddenTools, ToolAccess
from mcp_service.audit import AuditLog
from mcp_service.authenticator import Authenticator
from mcp_service.bearer import BearerAuth
from mcp_service.bodylimit import BodyLimit
from mcp_service.challenge import Challenge
from mcp_service.components import bound_async_tools
from mcp_service.cors import cors_layer
from mcp_service.fastpath import fast_path_layers
from mcp_service.heap import freeze_startup_heap
from mcp_service.issuer import LocalIssuer
from mcp_service.limiter import SubjectLimiter
from mcp_service.metadata import ResourceMetadata
from mcp_service.oauth.facade import Facade, build_facade, own_issuer, signing_keys
from mcp_service.oauth.keys import SigningKeys
from mcp_service.overload import InFlightLimit
from mcp_service.ratelimit import IpRateLimit, SubjectRateLimit
from mcp_service.routes import add_public_routes
from mcp_service.scopes import ToolScopeCheck
from mcp_service.served import served_server
from mcp_service.settings import Settings
from mcp_service.stages import (
    Authentication,
    Limits,
    Observed,
    Shared,
    authenticate,
    limit,
    observe,
    running_all,
    share,
)
from mcp_service.upstreams import UpstreamCalls, mount_upstreams
from observability.health import Readiness
from observability.http import ObserveRequests
from observability.metrics import Metrics
from observability.tools import ToolCallMetrics

MCP_PATH = "/mcp"


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
    settings: Settings,
    *,
    server: FastMCP[Any] | None = None,
    jwks_fetch: JwksFetch | None = None,
    hot_paths: bool = True,
) -> Service:
    """Wire the service around `server`, by default the one MCP_APP names (a `SettingsError`
    if it cannot be loaded or a per-tool setting names a tool it lacks). `jwks_fetch`
    replaces the JWKS download (tests, emulators); `hot_paths=False` leaves only the general
    twin of each hot path (the behaviour suite runs through both)."""
    served = served_server(settings, server)
    mcp = served.server
    bound_async_tools(served.components, settings.tool_timeout_seconds or None)
    tool_scopes = {s for scopes in settings.tool_scopes.values() for s in scopes}
    observed = observe(settings, served.components.tool_names)
    shared = share(settings, observed)
    login = settings.oauth_proxy_enabled and bool(settings.public_base_url)
    keys = signing_keys(settings) if login else None
    own = own_issuer(settings, keys, MCP_PATH) if keys is not None else None
    auth = authenticate(
        settings, observed, shared, scopes=tool_scopes, jwks_fetch=jwks_fetch, own=own
    )
    limits = limit(settings, observed)
    access = ToolAccess(settings.tool_scopes, settings.tool_groups)
    named = {*settings.tool_scopes, *settings.tool_groups, *settings.rate_limit_tool_costs}
    mount_upstreams(
        mcp,
        settings.upstreams,
        named=named,
        readiness=observed.readiness,
        on_call=observed.hooks.upstream_call,
        on_listed=observed.hooks.tools_listed,
    )
    audit = AuditLog(served.components, settings.upstreams) if settings.audit_log else None
    install_middleware(
        mcp,
        [
            audit,
            ToolCallMetrics(observed.metrics) if observed.metrics is not None else None,
            HideForbiddenTools(access) if access else None,
            UpstreamCalls(
                {ns: up.timeout_seconds for ns, up in settings.upstreams.items()},
                on_call=observed.hooks.upstream_call,
            )
            if settings.upstreams
            else None,
        ],
    )
    fast = fast_path_layers(mcp, MCP_PATH) if settings.fast_path else []
    inner = mcp.http_app(path=MCP_PATH, stateless_http=True, json_response=True, middleware=fast)
    challenge = Challenge(settings.public_base_url, MCP_PATH, settings.required_scopes)
    scopes = {*settings.required_scopes, *tool_scopes, *(auth.issuer.scopes if auth.issuer else ())}
    facade = None
    if keys is not None:
        facade = interactive_login(settings, shared, auth, keys, MCP_PATH, sorted(scopes))
    authorization_server = settings.public_base_url if facade else settings.issuer
    public = add_public_routes(
        inner,
        settings,
        metadata=ResourceMetadata(challenge, authorization_server, scopes),
        readiness=observed.readiness,
        metrics=observed.metrics,
        issuer=auth.issuer,
        mcp_path=MCP_PATH,
        facade=facade.routes if facade else (),
    )
    wrap_lifespan(
        inner,
        lambda: running_all(
            shared.running(),
            auth.running(),
            limits.running(),
            observed.running(settings.readiness_interval_seconds),
        ),
    )
    stack = layers(
        settings, observed, auth, limits, challenge, public, hot_paths=hot_paths, audit=audit
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


# The FastMCP middleware the stack adds to a served server: a later build of the same server
# (tests, a second app in one process) replaces them rather than stacking a second set.
STACK_MIDDLEWARE: tuple[type[ServerMiddleware], ...] = (
    AuditLog,
    ToolCallMetrics,
    HideForbiddenTools,
    UpstreamCalls,
)


def install_middleware(mcp: FastMCP[Any], ours: Iterable[ServerMiddleware | None]) -> None:
    """Put `ours` outermost in `mcp`'s middleware (they see what the server's own middleware
    does), in place of any an earlier build added."""
    theirs = [m for m in mcp.middleware if not isinstance(m, STACK_MIDDLEWARE)]
    mcp.middleware[:] = [*(m for m in ours if m is not None), *theirs]


def wrap_lifespan(app: Starlette, running: Callable[[], AbstractAsyncContextManager[None]]) -> None:
    """Make `running()` the outer part of `app`'s lifespan: the stack starts before the served
    server's own lifespan (and the MCP session manager) and stops after it."""
    own = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(), own(app):
            yield

    app.router.lifespan_context = lifespan


def interactive_login(
    settings: Settings,
    shared: Shared,
    auth: Authentication,
    keys: SigningKeys,
    mcp_path: str,
    scopes: list[str],
) -> Facade:
    """The login facade (OAUTH_PROXY) and, locally, the embedded issuer's managed login."""
    from mcp_service.managed_login import local_users

    base = settings.public_base_url
    if auth.issuer is not None and not settings.cognito_domain:
        auth.issuer.enable_login(
            base_url=base, callbacks=[f"{base}/oauth/callback"], users=local_users(settings)
        )
    return build_facade(
        settings,
        keys=keys,
        mcp_path=mcp_path,
        scopes=scopes,
        cognito=auth.authenticator.verifier,
        redis=shared.redis,
        sealer=shared.sealer,
        revoked=auth.authenticator.revoked,
        forget=auth.authenticator.forget,
        http=auth.http,
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
    audit: AuditLog | None = None,
) -> tuple[Middleware, ...]:
    """The middleware stack, outermost first; a layer a setting switches off is left out."""
    hooks = observed.hooks
    public = sorted(public)
    access = ToolAccess(settings.tool_scopes, settings.tool_groups)
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
        # Cross-origin browser clients: CORS_ALLOW_ORIGINS, and locally loopback (cors.py).
        cors_layer(settings),
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
        Middleware(
            ToolScopeCheck,
            access,
            challenge,
            on_outcome=hooks.auth_outcome,
            on_refused=audit.refused if audit is not None else None,
        )
        if access
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
