"""The routes that need no token, put ahead of the served server's own routes: probes, metrics,
the RFC 9728 metadata, in local mode the embedded issuer and, with OAUTH_PROXY, the login
facade; locally, those a browser-side OAuth flow fetches answer loopback origins' CORS
(mcp_service.cors). Their paths are BearerAuth's allow-list: anything not registered here
(the server's own custom routes included) is authenticated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mcp_service.cors import route_cors
from mcp_service.issuer import LocalIssuer
from mcp_service.metadata import ResourceMetadata
from mcp_service.oauth.metadata import CROSS_ORIGIN_PATHS
from mcp_service.settings import Settings
from observability.health import Readiness, healthz
from observability.metrics import Metrics

Endpoint = Callable[[Request], Awaitable[Response]]


def add_public_routes(
    app: Starlette,
    settings: Settings,
    *,
    metadata: ResourceMetadata,
    readiness: Readiness,
    metrics: Metrics | None,
    issuer: LocalIssuer | None,
    mcp_path: str,
    facade: Iterable[tuple[str, list[str], Endpoint]] = (),
) -> frozenset[str]:
    """Put the public routes in `app`'s router (FastMCP's `http_app`) right after the MCP
    endpoint (`mcp_path`, still the first route a request is matched against) and ahead of
    the server's own custom routes, which cannot shadow them; return their paths."""
    public: set[str] = set()
    routes: list[BaseRoute] = []

    cors = route_cors(settings)

    def route(path: str, methods: list[str], endpoint: Endpoint, *, fetched: bool = False) -> None:
        if fetched and cors:
            routes.append(Route(path, endpoint, methods=[*methods, "OPTIONS"], middleware=cors))
        else:
            routes.append(Route(path, endpoint, methods=methods))
        public.add(path)

    route("/healthz", ["GET"], healthz)
    route("/readyz", ["GET"], readiness.endpoint)
    if metrics is not None and not settings.metrics_port:  # else on a port of its own (cli.py)
        route("/metrics", ["GET"], metrics.endpoint)
    for path in metadata.paths:
        route(path, ["GET"], metadata.endpoint, fetched=True)
    if issuer is not None:
        route("/oauth2/token", ["POST"], issuer.token_endpoint)
        route("/.well-known/jwks.json", ["GET"], issuer.jwks_endpoint)
        route(f"/{settings.pool_id}/.well-known/jwks.json", ["GET"], issuer.jwks_endpoint)
        if issuer.login is not None:
            login = issuer.login
            route("/oauth2/authorize", ["GET", "POST"], login.authorize_endpoint)
            discovery = f"/{settings.pool_id}/.well-known/openid-configuration"
            route(discovery, ["GET"], login.discovery_endpoint)
    for path, methods, endpoint in facade:
        route(path, methods, endpoint, fetched=path in CROSS_ORIGIN_PATHS)
    paths = [getattr(existing, "path", None) for existing in app.router.routes]
    at = paths.index(mcp_path) + 1 if mcp_path in paths else 0
    app.router.routes[at:at] = routes
    return frozenset(public)
