"""The routes that need no token, added to the MCP app: probes, metrics, the RFC 9728
metadata, in local mode the embedded issuer and, with OAUTH_PROXY, the login facade. Their
paths are BearerAuth's allow-list: anything not registered here is authenticated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import Response

from mcp_service.issuer import LocalIssuer
from mcp_service.metadata import ResourceMetadata
from mcp_service.settings import Settings
from observability.health import Readiness, healthz
from observability.metrics import Metrics

Endpoint = Callable[[Request], Awaitable[Response]]


def add_public_routes(
    mcp: FastMCP[Any],
    settings: Settings,
    *,
    metadata: ResourceMetadata,
    readiness: Readiness,
    metrics: Metrics | None,
    issuer: LocalIssuer | None,
    facade: Iterable[tuple[str, list[str], Endpoint]] = (),
) -> frozenset[str]:
    """Register the public routes on `mcp` and return their paths."""
    public: set[str] = set()

    def route(path: str, methods: list[str], endpoint: Endpoint) -> None:
        mcp.custom_route(path, methods=methods)(endpoint)
        public.add(path)

    route("/healthz", ["GET"], healthz)
    route("/readyz", ["GET"], readiness.endpoint)
    if metrics is not None and not settings.metrics_port:  # else on a port of its own (cli.py)
        route("/metrics", ["GET"], metrics.endpoint)
    for path in metadata.paths:
        route(path, ["GET"], metadata.endpoint)
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
        route(path, methods, endpoint)
    return frozenset(public)
