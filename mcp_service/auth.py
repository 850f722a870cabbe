"""Bearer authentication in front of FastMCP: a lean ASGI layer of our own.

FastMCP's own bearer plumbing costs about 2.4 % of a tool call (DESIGN.md), more than the whole
budget for authentication, so this layer does what it does with less: it finds the bearer
token, asks the `Authenticator` (in-process cache, then the Cognito verifier), and sets
`scope["user"]` to the `AuthenticatedUser` FastMCP's `get_access_token()` reads. Everything
else that reaches the app is public only if its path is on the explicit public list: an
unknown path is authenticated like `/mcp`, so a route added later cannot be left open by
mistake.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastmcp.server.auth.auth import AccessToken
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from cache.revocations import Revocation, RevocationSet
from cache.tokens import LocalTokenCache, SharedTokenStore, token_key
from mcp_service.bodylimit import read_body, replay
from mcp_service.rejections import (
    InsufficientScope,
    InvalidToken,
    KeysUnavailable,
    Reason,
    Rejection,
)
from mcp_service.scopes import TOOL_CALLS, ToolScopes
from mcp_service.verifier import Claims, CognitoVerifier
from observability.asgi import direct
from observability.logs import annotate

log = logging.getLogger("mcp_service.auth")

OutcomeHook = Callable[[str], None]
CacheHook = Callable[[str], None]  # "l1", "l2" or "miss"


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller, built once per token and shared by every request that carries it."""

    claims: Claims
    access_token: AccessToken
    user: AuthenticatedUser
    credentials: AuthCredentials
    scopes: frozenset[str]
    expires_at: float
    subject: str | None
    jti: str | None
    origin_jti: str | None
    issued_at: float | None
    raw: bytes  # the token's bytes as a header carries them, for the hot path's comparison

    @classmethod
    def from_claims(cls, token: str, claims: Claims) -> Identity:
        iat = claims.get("iat")
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else []
        if claims.get("token_use") == "id":
            aud = claims.get("aud")
            client_id = aud if isinstance(aud, str) else str(aud[0] if aud else "")
        else:
            client_id = str(claims.get("client_id", ""))
        access_token = AccessToken(
            token=token,
            client_id=client_id,
            scopes=scopes,
            expires_at=int(claims["exp"]),
            subject=claims.get("sub"),
            claims=claims,
        )
        return cls(
            claims=claims,
            access_token=access_token,
            user=AuthenticatedUser(access_token),
            credentials=AuthCredentials(scopes),
            scopes=frozenset(scopes),
            expires_at=float(claims["exp"]),
            subject=_text(claims.get("sub")),
            jti=_text(claims.get("jti")),
            origin_jti=_text(claims.get("origin_jti")),
            issued_at=float(iat) if isinstance(iat, int | float) else None,
            raw=_raw(token),
        )

    def revoked_by(self, revocation: Revocation) -> bool:
        """Whether `revocation` covers this token (used to evict cached identities)."""
        if revocation.kind == "jti":
            return revocation.value in (self.jti, self.origin_jti)
        return revocation.value == self.subject and (
            self.issued_at is None or self.issued_at < revocation.revoked_at
        )


# The in-process cache's key: the token's last 64 bytes, all of them signature (a Cognito
# RS256 signature is 342 characters). Hashing a 1 KB token for a dict lookup costs ~3 k
# instructions a request (bench/callgrind.py), its signature's tail a tenth of that. The key
# only finds a candidate: an entry counts only if its whole token equals the one presented, so
# two tokens that share a tail merely take each other's place, and a forged token carrying a
# cached token's tail finds an entry it does not match, is verified, and is refused.
L1_KEY_BYTES = 64
BEARER_PREFIX = b"Bearer "


def local_key(token: str) -> bytes:
    """The in-process cache key of `token` (see L1_KEY_BYTES): for an ASCII token, as every
    token a header can carry, the last 64 bytes of the header too."""
    return _raw(token[-L1_KEY_BYTES:])


def _raw(token: str) -> bytes:
    return token.encode("utf-8", "surrogateescape")


class Authenticator:
    """Token -> Identity: the in-process cache (L1), then optionally the fleet's (L2), then full
    verification; every request, cached or not, is checked against the revocations in memory."""

    def __init__(
        self,
        verifier: CognitoVerifier,
        cache: LocalTokenCache[Identity],
        *,
        required_scopes: Iterable[str] = (),
        shared: SharedTokenStore | None = None,
        revoked: RevocationSet | None = None,
        on_cache: CacheHook | None = None,
    ) -> None:
        self.verifier = verifier
        self.cache = cache
        self.required_scopes = tuple(required_scopes)
        self._required = frozenset(self.required_scopes)
        self.shared = shared if shared is not None and shared.enabled else None
        self.revoked = revoked if revoked is not None else RevocationSet()
        self.on_cache = on_cache

    def cached(self, authorization: bytes) -> Identity | None:
        """The hot path, without a coroutine: the identity of a token verified earlier (L1),
        checked against the revocations and the required scopes; None when not cached.
        `authorization` is an Authorization header value that starts with BEARER_PREFIX: the
        token is compared where it lies, not copied out and decoded (1 KB, every request)."""
        identity = self.cache.get(authorization[-L1_KEY_BYTES:])  # local_key(), on the bytes
        if identity is None:
            return None
        raw = identity.raw
        if len(authorization) != len(BEARER_PREFIX) + len(raw) or not authorization.endswith(raw):
            return None
        if self.on_cache is not None:
            self.on_cache("l1")
        return self._checked(identity)

    async def authenticate(self, token: str) -> Identity:
        key = local_key(token)
        identity = self.cache.get(key)
        if identity is None or identity.access_token.token != token:  # see L1_KEY_BYTES
            identity = await self._resolve(token, token_key(token))
            self.cache.put(key, identity, identity.expires_at)
        elif self.on_cache is not None:
            self.on_cache("l1")
        return self._checked(identity)

    def _checked(self, identity: Identity) -> Identity:
        revoked = self.revoked
        if revoked.active and revoked.is_revoked(
            jti=identity.jti,
            origin_jti=identity.origin_jti,
            sub=identity.subject,
            iat=identity.issued_at,
        ):
            raise InvalidToken(Reason.REVOKED)
        if not self._required <= identity.scopes:
            raise InsufficientScope(self.required_scopes)
        return identity

    def forget(self, revocation: Revocation) -> int:
        """Drop cached identities a new revocation covers."""
        return self.cache.discard_where(lambda identity: identity.revoked_by(revocation))

    async def _resolve(self, token: str, key: bytes) -> Identity:
        if self.shared is not None:
            claims = await self.shared.get(key)
            if claims is not None:
                try:
                    self.verifier.check_claims(claims)
                    if self.on_cache is not None:
                        self.on_cache("l2")
                    return Identity.from_claims(token, claims)
                except Rejection:
                    pass  # e.g. expired, or the rules changed since: verify afresh
        if self.on_cache is not None:
            self.on_cache("miss")
        identity = await self._verify(token)
        if self.shared is not None:
            await self.shared.put(key, identity.claims, identity.expires_at)
        return identity

    async def _verify(self, token: str) -> Identity:
        try:
            claims = await self.verifier.verify(token)
            return Identity.from_claims(token, claims)
        except Rejection:
            raise
        except Exception:
            # A bug or an input nobody foresaw: refuse, and leave a trace without the token.
            log.exception("token verification failed unexpectedly")
            raise InvalidToken(Reason.MALFORMED, "unverifiable") from None


class Challenge:
    """The `WWW-Authenticate` values that point clients at the RFC 9728 metadata."""

    def __init__(self, public_base_url: str, mcp_path: str, scopes: Iterable[str] = ()) -> None:
        self.public_base_url = public_base_url.rstrip("/")
        self.mcp_path = mcp_path
        self.scopes = tuple(scopes)

    def base_url(self, scope: Scope) -> str:
        if self.public_base_url:
            return self.public_base_url
        host = _header(scope, b"host") or "localhost"
        return f"{scope.get('scheme', 'http')}://{host}"

    def metadata_url(self, scope: Scope) -> str:
        return f"{self.base_url(scope)}/.well-known/oauth-protected-resource{self.mcp_path}"

    def header(self, scope: Scope, rejection: Rejection | None) -> str:
        parts: list[str] = []
        if isinstance(rejection, InsufficientScope):
            parts += ['error="insufficient_scope"', f'scope="{" ".join(rejection.scopes)}"']
        elif rejection is not None:
            parts.append('error="invalid_token"')
        elif self.scopes:
            parts.append(f'scope="{" ".join(self.scopes)}"')
        if rejection is not None:
            parts.append(f'error_description="{rejection.description}"')
        parts.append(f'resource_metadata="{self.metadata_url(scope)}"')
        return "Bearer " + ", ".join(parts)


class BearerAuth:
    """ASGI middleware: every non-public HTTP request needs a verified bearer token."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        challenge: Challenge,
        *,
        public_paths: Iterable[str],
        tool_scopes: ToolScopes | None = None,
        on_outcome: OutcomeHook | None = None,
    ) -> None:
        self.app = direct(app)  # a bound __call__: cheaper to call per request
        self.authenticator = authenticator
        self.challenge = challenge
        self.public_paths = frozenset(public_paths)
        self.tool_scopes = tool_scopes if tool_scopes else None
        self.on_outcome = on_outcome

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Not a coroutine itself: for a token verified earlier (the hot path) it checks the
        cache synchronously and hands back the app's own coroutine, so this layer adds no
        frame to the request; anything else goes through `_authenticate`. Never the
        outermost app (uvicorn tells ASGI 3 apps by an `async def __call__`)."""
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            if scope["type"] == "websocket":
                return send({"type": "websocket.close", "code": 1008})
            return self.app(scope, receive, send)
        if self.tool_scopes is None:
            # The usual request, without a call to bearer_token(): one "Bearer <token>" header
            # whose token was verified earlier. Anything else (no header, two, another
            # spelling, a token not cached, whitespace a cached token cannot have) falls
            # through to the full parse below, which decides.
            value = second = None
            for name, found in scope["headers"]:
                if name == b"authorization":
                    second = value
                    value = found
            if second is None and value is not None and value.startswith(BEARER_PREFIX):
                try:
                    identity = self.authenticator.cached(value)
                except Rejection as rejection:
                    return self._rejected(scope, send, rejection)
                if identity is not None:
                    if self.on_outcome is not None:
                        self.on_outcome("ok")
                    scope["user"] = identity.user
                    scope["auth"] = identity.credentials
                    return self.app(scope, receive, send)
        token, problem = bearer_token(scope["headers"])
        return self._authenticate(scope, receive, send, token, problem)

    async def _authenticate(
        self, scope: Scope, receive: Receive, send: Send, token: str | None, problem: str | None
    ) -> None:
        try:
            if token is None:
                if problem is None:
                    self._outcome(Reason.MISSING_TOKEN.value)
                    await self._refuse(scope, send, None)
                    return
                raise InvalidToken(Reason.MALFORMED, problem)
            identity = await self.authenticator.authenticate(token)
            if self.tool_scopes is not None and scope["method"] == "POST":
                body = await read_body(receive)
                scope[TOOL_CALLS] = self.tool_scopes.check(body, identity.scopes)
                receive = replay(body, receive)
        except Rejection as rejection:
            await self._rejected(scope, send, rejection)
            return
        if self.on_outcome is not None:
            self.on_outcome("ok")
        scope["user"] = identity.user
        scope["auth"] = identity.credentials
        await self.app(scope, receive, send)

    async def _rejected(self, scope: Scope, send: Send, rejection: Rejection) -> None:
        self._outcome(rejection.reason.value)
        log.info(
            "request refused",
            extra={"reason": rejection.reason.value, "status": rejection.status},
        )
        await self._refuse(scope, send, rejection)

    def _outcome(self, outcome: str) -> None:
        """A refusal: its reason goes to the request's log lines, and to the hook."""
        annotate("reason", outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    async def _refuse(self, scope: Scope, send: Send, rejection: Rejection | None) -> None:
        if isinstance(rejection, KeysUnavailable):
            retry = str(max(1, math.ceil(rejection.retry_after)))
            await send_json(
                send,
                503,
                {
                    "error": "temporarily_unavailable",
                    "error_description": rejection.description,
                    "reason": rejection.reason.value,
                },
                {"retry-after": retry},
            )
            return
        status = 401 if rejection is None else rejection.status
        body: dict[str, str] = {}
        if rejection is not None:
            error = "insufficient_scope" if status == 403 else "invalid_token"
            body = {
                "error": error,
                "error_description": rejection.description,
                "reason": rejection.reason.value,
            }
        else:
            body = {
                "error": "unauthorized",
                "error_description": "A bearer token is required.",
                "reason": Reason.MISSING_TOKEN.value,
            }
        await send_json(
            send, status, body, {"www-authenticate": self.challenge.header(scope, rejection)}
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """(token, None), or (None, None) when no bearer credentials were sent (RFC 6750 3.1), or
    (None, problem) when the Authorization header is there but unusable."""
    value = None
    for name, found in headers:  # a loop, not a comprehension: this runs on every request
        if name == b"authorization":  # ASGI lowercases names
            if value is not None:
                return None, "more than one Authorization header"
            value = found
    if value is None:
        return None, None
    if value[:7].lower() != b"bearer ":
        return None, None  # another scheme is not a bearer credential
    token = value[7:].strip()
    if not token:
        return None, "empty bearer token"
    try:
        return token.decode("ascii"), None
    except UnicodeDecodeError:
        return None, "bearer token is not ASCII"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def send_json(
    send: Send, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    raw_headers += [(k.encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})
