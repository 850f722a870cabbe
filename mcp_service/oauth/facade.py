"""The facade wired from the settings: its parts, its routes, and what it adds to the
verifier (its own issuer). Nothing here is on the request path of `/mcp`."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response

from cache.redis import SharedRedis
from cache.revocations import Revocation, RevocationSet, RevocationStore
from cache.seal import Sealer
from cache.windows import parse_limits
from mcp_service.issuer import load_or_create_key
from mcp_service.netutil import is_loopback
from mcp_service.oauth.authorize import Authorization, FrontChannel
from mcp_service.oauth.cimd import MetadataDocuments
from mcp_service.oauth.keys import SigningKeys, parse_signing_keys
from mcp_service.oauth.metadata import (
    AUTHORIZE_PATH,
    CALLBACK_PATH,
    CONSENT_PATH,
    JWKS_PATH,
    OIDC_PATH,
    REGISTER_PATH,
    RFC8414_PATH,
    TOKEN_PATH,
    authorization_server_metadata,
    openid_configuration,
)
from mcp_service.oauth.registration import Registration
from mcp_service.oauth.sessions import Lifetimes, Sessions
from mcp_service.oauth.state import Box, LoginState, MemoryState, RedisState
from mcp_service.oauth.token import TokenEndpoint
from mcp_service.oauth.upstream import Upstream
from mcp_service.settings import Settings
from mcp_service.verifier import CognitoVerifier, OwnIssuer, VerifierConfig

Endpoint = Callable[[Request], Awaitable[Response]]
Route = tuple[str, list[str], Endpoint]


def signing_keys(settings: Settings) -> SigningKeys:
    """OAUTH_PROXY_SIGNING_KEYS, or locally a key created beside the embedded issuer's."""
    text = settings.oauth_proxy_signing_keys.get_secret_value()
    if text:
        return SigningKeys.of(parse_signing_keys(text))
    if not settings.embedded_issuer:
        raise ValueError("OAUTH_PROXY_SIGNING_KEYS is required outside local mode")
    path = settings.local_issuer_key_file.with_name("oauth-proxy-key.pem")
    return SigningKeys.of([load_or_create_key(path)])


def own_issuer(settings: Settings, keys: SigningKeys, mcp_path: str) -> OwnIssuer:
    """The verifier's second configuration: this facade's tokens for this MCP resource."""
    config = VerifierConfig(
        issuer=settings.public_base_url,
        client_ids=frozenset(),
        audience=f"{settings.public_base_url}{mcp_path}",
        leeway=settings.jwt_leeway_seconds,
        max_token_bytes=settings.max_token_bytes,
    )
    return OwnIssuer(config, keys.public)


def secure_cookies(base_url: str) -> bool:
    """`__Host-` cookies need https; only loopback http goes without them."""
    parts = urlsplit(base_url)
    return not (parts.scheme == "http" and is_loopback(parts.hostname or ""))


@dataclass(frozen=True)
class Facade:
    routes: tuple[Route, ...]
    sessions: Sessions
    state: LoginState


def build_facade(
    settings: Settings,
    *,
    keys: SigningKeys,
    mcp_path: str,
    scopes: list[str],
    cognito: CognitoVerifier,
    redis: SharedRedis,
    sealer: Sealer | None,
    revoked: RevocationSet,
    forget: Callable[[Revocation], object],
    http: httpx.AsyncClient,
) -> Facade:
    issuer = settings.public_base_url
    resource = f"{issuer}{mcp_path}"
    secrets = [secret.get_secret_value() for secret in settings.token_cache_secret]
    box = Box(secrets) if secrets else Box.ephemeral()
    state: LoginState = (
        RedisState(redis, box) if redis.enabled and sealer is not None else MemoryState(box)
    )
    upstream_rules = VerifierConfig(
        issuer=settings.issuer,
        client_ids=frozenset({settings.login_client_id}),
        leeway=settings.jwt_leeway_seconds,
        max_token_bytes=settings.max_token_bytes,
    )
    upstream = Upstream(
        domain=settings.login_domain,
        client_id=settings.login_client_id,
        client_secret=settings.login_client_secret,
        scopes=settings.oauth_proxy_scopes or ["openid", *scopes],
        callback_url=f"{issuer}{CALLBACK_PATH}",
        verifier=CognitoVerifier(upstream_rules, cognito.keys),
        http=http,
    )
    store = RevocationStore(redis, ttl=settings.revocation_ttl_seconds) if redis.enabled else None

    async def end_session(family: str, reason: str) -> None:
        if store is not None:
            await store.revoke("jti", family, reason=reason, by="oauth")
            return
        now = time.time()
        ttl = settings.revocation_ttl_seconds
        revocation = Revocation("jti", family, now, now + ttl, reason, "oauth")
        revoked.add(revocation)
        forget(revocation)

    sessions = Sessions(
        issuer=issuer,
        resource=resource,
        keys=keys,
        state=state,
        lifetimes=Lifetimes(
            settings.oauth_proxy_access_token_seconds, settings.oauth_proxy_refresh_token_seconds
        ),
        revoked=revoked,
        end_session=end_session,
    )
    authorization = Authorization(
        FrontChannel(
            issuer=issuer,
            resource=resource,
            consent_seconds=settings.oauth_proxy_consent_ttl_seconds,
            secure_cookies=secure_cookies(issuer),
        ),
        state,
        upstream,
        MetadataDocuments(
            allow_loopback=settings.cimd_allow_loopback, ca_file=settings.cimd_ca_file
        ),
    )
    limit = settings.oauth_registration_rate_limit
    registration = Registration(state, () if limit == "off" else parse_limits(limit))
    token = TokenEndpoint(state, sessions, resource)
    server_metadata = json.dumps(authorization_server_metadata(issuer, scopes)).encode()
    oidc = json.dumps(openid_configuration(issuer, scopes)).encode()

    def document(body: bytes, cache: str = "public, max-age=300") -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return Response(body, media_type="application/json", headers={"Cache-Control": cache})

        return endpoint

    routes: tuple[Route, ...] = (
        (RFC8414_PATH, ["GET"], document(server_metadata)),
        (OIDC_PATH, ["GET"], document(oidc)),
        (JWKS_PATH, ["GET"], document(keys.jwks_document)),
        (REGISTER_PATH, ["POST"], registration.endpoint),
        (AUTHORIZE_PATH, ["GET"], authorization.authorize_endpoint),
        (CONSENT_PATH, ["POST"], authorization.consent_endpoint),
        (CALLBACK_PATH, ["GET"], authorization.callback_endpoint),
        (TOKEN_PATH, ["POST"], token.endpoint),
    )
    return Facade(routes, sessions, state)
