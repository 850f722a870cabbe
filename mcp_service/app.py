"""build_app(settings): the one place that wires the service together.

Request path, outside in: request id + HTTP metrics + access log -> [CORS] -> body limit (413)
-> per-IP rate limit (429, in process) -> cap on requests in flight (503) -> bearer
authentication (401/403/503) -> per-subject rate limit (429, shared through Redis) -> FastMCP's
streamable HTTP app (stateless, JSON responses, tool-call metrics) with the public routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from fastmcp import FastMCP
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from cache.jwks import HttpJwksFetch, JwksCache, JwksFetch
from cache.jwks_store import SharedJwks
from cache.redis import SharedRedis
from cache.redisline import RedisAddress
from cache.revocations import Revocation, RevocationListener, RevocationSet, RevocationStore
from cache.tokens import LocalTokenCache, SharedTokenStore
from cache.windows import RedisWindows, parse_limits
from mcp_service.auth import Authenticator, BearerAuth, Challenge, Identity
from mcp_service.bodylimit import BodyLimit
from mcp_service.clientip import TrustedProxies
from mcp_service.heap import freeze_startup_heap
from mcp_service.issuer import LocalIssuer, load_or_create_key
from mcp_service.metadata import ResourceMetadata
from mcp_service.overload import InFlightLimit
from mcp_service.ratelimit import IpRateLimit, Policies, SubjectLimiter, SubjectRateLimit
from mcp_service.rejections import Reason
from mcp_service.scopes import ToolScopes
from mcp_service.settings import Settings
from mcp_service.shared import sealer_for, shared_redis
from mcp_service.tools import TOOL_NAMES, register_tools
from mcp_service.verifier import CognitoVerifier, VerifierConfig
from observability.health import CheckResult, Readiness, healthz
from observability.http import ObserveRequests
from observability.metrics import Metrics
from observability.tools import ToolCallMetrics

log = logging.getLogger("mcp_service")

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


@dataclass
class Service:
    """The ASGI app and the parts tests and the CLI reach into."""

    app: ASGIApp
    settings: Settings
    jwks: JwksCache
    authenticator: Authenticator
    issuer: LocalIssuer | None
    shared: SharedRedis
    revocations: RevocationListener | None
    metrics: Metrics | None = None  # None: METRICS_ENABLED=false
    readiness: Readiness = field(default_factory=Readiness)
    limiter: SubjectLimiter | None = None
    ip_limit: IpRateLimit | None = None
    in_flight: InFlightLimit | None = None


def build_service(settings: Settings, *, jwks_fetch: JwksFetch | None = None) -> Service:
    """Wire the service. `jwks_fetch` replaces the JWKS download (tests, emulators)."""
    issuer = _local_issuer(settings) if settings.embedded_issuer else None
    metrics = None
    if settings.metrics_enabled:
        outcomes = ["ok", *(reason.value for reason in Reason)]
        metrics = Metrics(tools=TOOL_NAMES, auth_outcomes=outcomes)
    readiness = Readiness(
        timeout=settings.readiness_timeout_seconds,
        on_report=metrics.readiness if metrics else None,
    )
    shared = shared_redis(settings)
    if metrics is not None:
        shared.on_operation = metrics.shared_redis_operation
    sealer = sealer_for(settings) if shared.enabled else None
    if shared.enabled and sealer is None:
        log.warning(
            "REDIS_URL without TOKEN_CACHE_SECRET: revocations and rate limits are shared, "
            "the JWKS and verified tokens are not (nothing unsealed is trusted from Redis)"
        )
    http = httpx.AsyncClient()
    fetch: JwksFetch
    if jwks_fetch is not None:
        fetch = jwks_fetch
    elif issuer is not None:
        fetch = issuer.fetch_jwks
    else:
        fetch = HttpJwksFetch(settings.jwks_url, timeout=settings.jwks_timeout_seconds, client=http)
    shared_jwks = None
    if sealer is not None and issuer is None:
        shared_jwks = SharedJwks(
            shared, sealer, settings.jwks_url, on_event=_hook(metrics, "shared_cache_event", "jwks")
        )
    jwks = JwksCache(
        fetch,
        max_age=settings.jwks_max_age_seconds,
        kid_miss_cooldown=settings.jwks_kid_miss_cooldown_seconds,
        failure_backoff=settings.jwks_failure_backoff_seconds,
        stale_max=settings.jwks_stale_max_seconds,
        shared=shared_jwks,
        shared_wait=settings.jwks_shared_wait_seconds,
        on_fetch=metrics.jwks_fetch if metrics else None,
    )
    verifier = CognitoVerifier(
        VerifierConfig(
            issuer=settings.issuer,
            client_ids=settings.accepted_client_ids,
            token_use=settings.token_use,
            leeway=settings.jwt_leeway_seconds,
            max_token_bytes=settings.max_token_bytes,
        ),
        jwks,
    )
    revoked = RevocationSet()
    authenticator = Authenticator(
        verifier,
        LocalTokenCache[Identity](settings.token_cache_max_entries),
        required_scopes=settings.required_scopes,
        shared=(
            SharedTokenStore(shared, sealer, on_event=_hook(metrics, "shared_cache_event", "token"))
            if sealer is not None and settings.token_cache_l2
            else None
        ),
        revoked=revoked,
        on_cache=metrics.token_cache_lookup if metrics else None,
    )
    listener = None
    if shared.enabled:
        store = RevocationStore(shared, ttl=settings.revocation_ttl_seconds)

        def on_revoked(revocation: Revocation) -> None:
            authenticator.forget(revocation)
            if metrics is not None:
                metrics.revocations_in_force(len(revoked))

        listener = RevocationListener(store, revoked, on_revoked=on_revoked)
    limiter = _subject_limiter(settings)
    if limiter is not None:
        limiter.on_decision = _hook(metrics, "rate_limit_decision", "subject")
    _readiness_checks(readiness, jwks, shared, listener, limiter)

    @asynccontextmanager
    async def lifespan(_server: FastMCP[Any]) -> AsyncIterator[dict[str, Any]]:
        tasks = [asyncio.create_task(_warm(jwks, readiness, settings.readiness_interval_seconds))]
        if listener is not None:
            tasks.append(asyncio.create_task(listener.run()))
        if limiter is not None:
            await limiter.start()
        try:
            yield {}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=5)  # bounded: shut-down never hangs on Redis
            if limiter is not None:
                await limiter.close()
            await http.aclose()
            await shared.close()
            if metrics is not None:
                metrics.process_exiting()

    mcp: FastMCP[Any] = FastMCP("mcp-service", lifespan=lifespan)
    register_tools(mcp, settings.tool_scopes, timeout=settings.tool_timeout_seconds or None)
    challenge = Challenge(settings.public_base_url, MCP_PATH, settings.required_scopes)
    scopes = {*settings.required_scopes, *(s for v in settings.tool_scopes.values() for s in v)}
    if issuer is not None:
        scopes.update(issuer.scopes)
    metadata = ResourceMetadata(challenge, settings.issuer, scopes)
    public = _public_routes(mcp, metadata, issuer, settings, readiness, metrics)
    if metrics is not None:
        mcp.add_middleware(ToolCallMetrics(metrics))

    app: ASGIApp = mcp.http_app(path=MCP_PATH, stateless_http=True, json_response=True)
    if limiter is not None:
        app = SubjectRateLimit(app, limiter)
    app = BearerAuth(
        app,
        authenticator,
        challenge,
        public_paths=public,
        tool_scopes=ToolScopes(settings.tool_scopes),
        on_outcome=metrics.auth_outcome if metrics else None,
    )
    in_flight = ip_limit = None
    if settings.max_in_flight:
        app = in_flight = InFlightLimit(
            app, settings.max_in_flight, on_shed=metrics.request_shed if metrics else None
        )
    if settings.ip_rate_limit != "off":
        app = ip_limit = IpRateLimit(
            app,
            parse_limits(settings.ip_rate_limit),
            proxies=TrustedProxies(settings.trusted_proxies),
            on_decision=_hook(metrics, "rate_limit_decision", "ip"),
        )
    app = BodyLimit(app, settings.max_body_bytes)
    if settings.cors_allow_origins:
        app = CORSMiddleware(
            app,
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=list(CORS_HEADERS),
            expose_headers=list(CORS_EXPOSED),
            max_age=600,
        )
    app = ObserveRequests(
        app, metrics=metrics, routes=[MCP_PATH, *sorted(public)], access_log=settings.access_log
    )
    return Service(
        app,
        settings,
        jwks,
        authenticator,
        issuer,
        shared,
        listener,
        metrics,
        readiness,
        limiter,
        ip_limit,
        in_flight,
    )


def _hook(metrics: Metrics | None, name: str, first: str) -> Any:
    """`metrics.<name>` with its first argument bound, or None when metrics are off."""
    return partial(getattr(metrics, name), first) if metrics is not None else None


def _subject_limiter(settings: Settings) -> SubjectLimiter | None:
    """The per-subject limiter: on Redis when REDIS_URL is set, else counted per replica."""
    if settings.rate_limit == "off":
        return None
    policies = Policies(
        parse_limits(settings.rate_limit),
        groups={g: parse_limits(v) for g, v in settings.rate_limit_groups.items()},
        fallback=parse_limits(settings.rate_limit_fallback) if settings.rate_limit_fallback else (),
        tool_costs=settings.rate_limit_tool_costs,
    )
    redis = None
    if settings.redis_url:
        timeout = settings.rate_limit_redis_timeout_seconds
        redis = RedisWindows(
            RedisAddress.from_url(settings.redis_url),
            prefix=settings.rate_limit_prefix,
            reply_timeout=timeout,
            connect_timeout=max(1.0, timeout),
        )
    return SubjectLimiter(
        policies,
        redis,
        fail_open=settings.rate_limit_failure_mode == "open",
        cooldown=settings.rate_limit_redis_cooldown_seconds,
    )


def build_app(settings: Settings) -> ASGIApp:
    return build_service(settings).app


def create_app() -> ASGIApp:
    """Factory for uvicorn workers: settings come from the environment the CLI checked."""
    from mcp_service.settings import load_settings
    from observability.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    app = build_app(settings)
    freeze_startup_heap()
    return app


def _local_issuer(settings: Settings) -> LocalIssuer:
    scopes = [*settings.local_issuer_scopes, *settings.required_scopes]
    scopes += [s for values in settings.tool_scopes.values() for s in values]
    return LocalIssuer(
        load_or_create_key(settings.local_issuer_key_file),
        issuer=settings.issuer,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        scopes=scopes,
        lifetime=settings.local_token_lifetime_seconds,
    )


def _public_routes(
    mcp: FastMCP[Any],
    metadata: ResourceMetadata,
    issuer: LocalIssuer | None,
    settings: Settings,
    readiness: Readiness,
    metrics: Metrics | None,
) -> set[str]:
    """Register the routes that need no token and return their paths (BearerAuth's allow-list)."""
    public: set[str] = set()

    def route(path: str, methods: list[str], endpoint: Any) -> None:
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
    return public


async def _warm(jwks: JwksCache, readiness: Readiness, interval: float) -> None:
    """Load the keys at start-up so the first caller does not wait (failures are retried
    lazily), then keep the readiness gauges current."""
    try:
        await jwks.refresh()
    except Exception as exc:
        log.warning("JWKS not loaded at start-up: %s", exc)
    await readiness.watch(interval)


def _readiness_checks(
    readiness: Readiness,
    jwks: JwksCache,
    shared: SharedRedis,
    listener: RevocationListener | None,
    limiter: SubjectLimiter | None,
) -> None:
    """What /readyz asks. Missing signing keys, or a fail-closed limiter without Redis, make a
    replica unavailable; Redis down under fail-open leaves it serving, degraded."""
    readiness.add("jwks", partial(_jwks_ready, jwks), critical=True)
    if shared.enabled:
        readiness.add("redis", partial(_redis_ready, shared), critical=False)
    if listener is not None:
        readiness.add("revocations", partial(_revocations_ready, listener), critical=False)
    if limiter is not None and limiter.redis is not None:
        readiness.add(
            "rate_limit", partial(_rate_limit_ready, limiter), critical=not limiter.fail_open
        )


async def _jwks_ready(jwks: JwksCache) -> CheckResult:
    """Ready when signing keys are loaded or can be loaded now (a bounded attempt)."""
    if not jwks.loaded:
        try:
            await jwks.refresh()
        except Exception as exc:
            return CheckResult.down(f"no signing keys: {exc}")
    return CheckResult.ok(f"{len(jwks.kids)} signing keys loaded")


async def _redis_ping(client: Any) -> bool:
    return bool(await client.ping())


async def _redis_ready(shared: SharedRedis) -> CheckResult:
    """A PING through the shared gate, so the breaker hears the answer. Redis down is degraded:
    tokens are verified locally and a 503 here would empty the load balancer at once."""
    if await shared.run("ping", _redis_ping, False):
        return CheckResult.ok("reachable")
    return CheckResult.degraded(f"unreachable (breaker {shared.breaker.state.value}); fail-open")


async def _rate_limit_ready(limiter: SubjectLimiter) -> CheckResult:
    if limiter.redis is not None and limiter.redis.ready:
        return CheckResult.ok("shared budget on Redis")
    if limiter.fail_open:
        return CheckResult.degraded("Redis unreachable: counting per replica (fail-open)")
    return CheckResult.down("Redis unreachable and RATE_LIMIT_FAILURE_MODE=closed")


async def _revocations_ready(listener: RevocationListener) -> CheckResult:
    if listener.synced.is_set():
        return CheckResult.ok("in sync")
    return CheckResult.degraded("not in sync with Redis; applying the revocations known here")
