"""The stages `build_service` composes: each a typed function from the settings (and the stages
before it) to the parts it owns, each part registering its own readiness checks and saying,
through `running()`, what it starts and stops with the app.

    observe -> share -> authenticate -> limit -> (the MCP app and its layers: mcp_service.app)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx

from cache.cluster import ClusterWindows
from cache.jwks import HttpJwksFetch, JwksCache, JwksFetch
from cache.jwks_store import SharedJwks
from cache.redis import SharedRedis
from cache.redisline import RedisAddress
from cache.revocations import Revocation, RevocationListener, RevocationSet, RevocationStore
from cache.seal import Sealer
from cache.tokens import LocalTokenCache, SharedTokenStore
from cache.windows import RedisWindows, SharedWindows, parse_limits
from mcp_service.authenticator import Authenticator
from mcp_service.errors import Reason
from mcp_service.hooks import Hooks
from mcp_service.identity import Identity
from mcp_service.issuer import LocalIssuer, load_or_create_key
from mcp_service.limiter import SubjectLimiter
from mcp_service.policies import Policies
from mcp_service.settings import Settings
from mcp_service.shared import sealer_for, shared_redis
from mcp_service.verifier import CognitoVerifier, OwnIssuer, VerifierConfig
from observability.health import Readiness
from observability.metrics import Metrics

log = logging.getLogger("mcp_service")

BOUNDED_STOP = 5.0  # seconds: shut-down never hangs on Redis or the IdP


@dataclass(frozen=True, slots=True)
class Observed:
    """Metrics (None with METRICS_ENABLED=false), the hooks bound to them, readiness."""

    metrics: Metrics | None
    hooks: Hooks
    readiness: Readiness

    @asynccontextmanager
    async def running(self, interval: float) -> AsyncIterator[None]:
        """Keep the readiness gauges current while the app runs."""
        task = asyncio.create_task(self.readiness.watch(interval))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task], timeout=BOUNDED_STOP)
            if self.metrics is not None:
                self.metrics.process_exiting()


def observe(settings: Settings, tools: Iterable[str]) -> Observed:
    metrics = None
    if settings.metrics_enabled:
        outcomes = ["ok", *(reason.value for reason in Reason)]
        metrics = Metrics(tools=tools, upstreams=settings.upstreams, auth_outcomes=outcomes)
    hooks = Hooks.of(metrics)
    readiness = Readiness(timeout=settings.readiness_timeout_seconds, on_report=hooks.readiness)
    return Observed(metrics, hooks, readiness)


@dataclass(frozen=True, slots=True)
class Shared:
    """The Redis gate (always present; closed without REDIS_URL) and the seal on what the
    fleet shares (None without TOKEN_CACHE_SECRET: nothing unsealed is trusted from Redis)."""

    redis: SharedRedis
    sealer: Sealer | None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.redis.close()


def share(settings: Settings, observed: Observed) -> Shared:
    redis = shared_redis(settings, on_operation=observed.hooks.redis_operation)
    sealer = sealer_for(settings) if redis.enabled else None
    if redis.enabled and sealer is None:
        log.warning(
            "REDIS_URL without TOKEN_CACHE_SECRET: revocations and rate limits are shared, "
            "the JWKS and verified tokens are not (nothing unsealed is trusted from Redis)"
        )
    if redis.enabled:
        observed.readiness.add("redis", redis.readiness, critical=False)
    return Shared(redis, sealer)


@dataclass(frozen=True, slots=True)
class Authentication:
    """Who may call: the key source, the authenticator, the revocations it enforces and, in
    local mode, the embedded issuer."""

    issuer: LocalIssuer | None
    jwks: JwksCache
    authenticator: Authenticator
    listener: RevocationListener | None
    http: httpx.AsyncClient

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Load the keys at start-up so the first caller does not wait (a failure is retried
        on demand), and follow the revocations."""
        tasks = [asyncio.create_task(self._warm())]
        if self.listener is not None:
            tasks.append(asyncio.create_task(self.listener.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=BOUNDED_STOP)
            await self.http.aclose()

    async def _warm(self) -> None:
        try:
            await self.jwks.refresh()
        except Exception as exc:
            log.warning("JWKS not loaded at start-up: %s", exc)


def authenticate(
    settings: Settings,
    observed: Observed,
    shared: Shared,
    *,
    scopes: Iterable[str],
    jwks_fetch: JwksFetch | None = None,
    own: OwnIssuer | None = None,
) -> Authentication:
    """`scopes`: every scope a tool may need (the embedded issuer grants them all).
    `jwks_fetch` replaces the JWKS download (tests, emulators); `own` is the login facade's
    issuer, accepted beside Cognito."""
    hooks = observed.hooks
    issuer = local_issuer(settings, scopes) if settings.embedded_issuer else None
    http = httpx.AsyncClient()
    fetch: JwksFetch
    if jwks_fetch is not None:
        fetch = jwks_fetch
    elif issuer is not None:
        fetch = issuer.fetch_jwks
    else:
        fetch = HttpJwksFetch(settings.jwks_url, timeout=settings.jwks_timeout_seconds, client=http)
    shared_jwks = None
    if shared.sealer is not None and issuer is None:
        shared_jwks = SharedJwks(
            shared.redis, shared.sealer, settings.jwks_url, on_event=hooks.jwks_event
        )
    jwks = JwksCache(
        fetch,
        max_age=settings.jwks_max_age_seconds,
        kid_miss_cooldown=settings.jwks_kid_miss_cooldown_seconds,
        failure_backoff=settings.jwks_failure_backoff_seconds,
        stale_max=settings.jwks_stale_max_seconds,
        shared=shared_jwks,
        shared_wait=settings.jwks_shared_wait_seconds,
        on_fetch=hooks.jwks_fetch,
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
        own=own,
    )
    token_store = None
    if shared.sealer is not None and settings.token_cache_l2:
        token_store = SharedTokenStore(shared.redis, shared.sealer, on_event=hooks.token_event)
    revoked = RevocationSet()
    authenticator = Authenticator(
        verifier,
        LocalTokenCache[Identity](
            settings.token_cache_max_entries,
            max_bytes=settings.token_cache_max_bytes,
            weigh=lambda identity: identity.weight,
        ),
        required_scopes=settings.required_scopes,
        shared=token_store,
        revoked=revoked,
        on_cache=hooks.token_cache,
    )
    listener = None
    if shared.redis.enabled:
        store = RevocationStore(shared.redis, ttl=settings.revocation_ttl_seconds)
        in_force = hooks.revocations_in_force

        def on_revoked(revocation: Revocation) -> None:
            authenticator.forget(revocation)
            if in_force is not None:
                in_force(len(revoked))

        listener = RevocationListener(store, revoked, on_revoked=on_revoked)
    readiness = observed.readiness
    readiness.add("jwks", jwks.readiness, critical=True)
    if listener is not None:
        readiness.add("revocations", listener.readiness, critical=False)
    return Authentication(issuer, jwks, authenticator, listener, http)


def local_issuer(settings: Settings, scopes: Iterable[str]) -> LocalIssuer:
    return LocalIssuer(
        load_or_create_key(settings.local_issuer_key_file),
        issuer=settings.issuer,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        scopes=[*settings.local_issuer_scopes, *settings.required_scopes, *scopes],
        lifetime=settings.local_token_lifetime_seconds,
    )


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-subject limiter (None with RATE_LIMIT=off); the per-IP limit and the in-flight
    cap are layers that hold their own state (mcp_service.app)."""

    subject: SubjectLimiter | None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        limiter = self.subject
        if limiter is not None:
            await limiter.start()
        try:
            yield
        finally:
            if limiter is not None:
                await limiter.close()


def limit(settings: Settings, observed: Observed) -> Limits:
    """The per-subject limiter: on Redis when REDIS_URL is set, else counted per replica."""
    if settings.rate_limit == "off":
        return Limits(None)
    policies = Policies(
        parse_limits(settings.rate_limit),
        groups={g: parse_limits(v) for g, v in settings.rate_limit_groups.items()},
        fallback=parse_limits(settings.rate_limit_fallback) if settings.rate_limit_fallback else (),
        tool_costs=settings.rate_limit_tool_costs,
    )
    redis: SharedWindows | None = None
    if settings.redis_url:
        timeout = settings.rate_limit_redis_timeout_seconds
        address = RedisAddress.from_url(settings.redis_url)
        tls = settings.redis_tls
        if tls is not None:
            address = dataclasses.replace(address, context=tls.context())
        counters = ClusterWindows if settings.redis_cluster else RedisWindows
        redis = counters(
            address,
            prefix=settings.rate_limit_prefix,
            reply_timeout=timeout,
            connect_timeout=max(1.0, timeout),
        )
    limiter = SubjectLimiter(
        policies,
        redis,
        fail_open=settings.rate_limit_failure_mode == "open",
        cooldown=settings.rate_limit_redis_cooldown_seconds,
        on_decision=observed.hooks.subject_decision,
    )
    if redis is not None:
        observed.readiness.add("rate_limit", limiter.readiness, critical=not limiter.fail_open)
    return Limits(limiter)


@asynccontextmanager
async def running_all(*parts: AbstractAsyncContextManager[None]) -> AsyncIterator[None]:
    """Enter each part's `running()` in order and leave them in reverse (an exit stack)."""
    async with AsyncExitStack() as stack:
        for part in parts:
            await stack.enter_async_context(part)
        yield
