"""Bearer authentication in front of FastMCP: a lean ASGI layer of our own.

FastMCP's own bearer plumbing costs about 2.4 % of a tool call (docs/performance.md), more
than the whole budget for authentication, so this layer does what it does with less: it finds
the bearer token, asks the `Authenticator` (in-process cache, then the Cognito verifier), and
sets `scope["user"]` to the `AuthenticatedUser` FastMCP's `get_access_token()` reads. Anything
that reaches the app is public only if its path is on the explicit public list: an unknown path
is authenticated like `/mcp`, so a route added later cannot be left open by mistake.

Two twins, one behaviour (the test suite runs through both): the general path parses the
Authorization header with `bearer_token()` and asks `Authenticator.authenticate()`; the hot
path (`hot_path=True`, the default) first tries `single_bearer()` and
`Authenticator.cached()`, which recognise the usual request -- one `Bearer <token>` header
whose token was verified earlier -- without a coroutine, a decode or a copy of the token.
Per-tool scopes are checked later, by `scopes.ToolScopeCheck`, once the body limit has run.
Anything else the hot path does not recognise falls through to the general path, which
decides.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_service.authenticator import BEARER_PREFIX, Authenticator
from mcp_service.challenge import Challenge
from mcp_service.errors import InvalidToken, Reason, Rejection
from mcp_service.identity import Identity
from observability.asgi import direct
from observability.logs import annotate

log = logging.getLogger("mcp_service.auth")

OutcomeHook = Callable[[str], None]  # "ok" or a reason code


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


def single_bearer(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The hot twin of `bearer_token()`: the value of the one Authorization header when it
    starts with exactly `Bearer `, else None (no header, two, another spelling: the general
    parser decides those). Whitespace around the token is left in place: no cached token
    matches it, so such a header goes to the general path too."""
    value = second = None
    for name, found in headers:
        if name == b"authorization":
            second = value
            value = found
    if second is None and value is not None and value.startswith(BEARER_PREFIX):
        return value
    return None


class BearerAuth:
    """ASGI middleware: every non-public HTTP request needs a verified bearer token."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        challenge: Challenge,
        *,
        public_paths: Iterable[str],
        on_outcome: OutcomeHook | None = None,
        hot_path: bool = True,
    ) -> None:
        self.app = direct(app)  # a bound __call__: cheaper to call per request
        self.authenticator = authenticator
        self.challenge = challenge
        self.public_paths = frozenset(public_paths)
        self.on_outcome = on_outcome
        self.hot_path = hot_path

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Not a coroutine itself: on the hot path it checks the cache synchronously and hands
        back the app's own coroutine, so this layer adds no frame to the request. Never the
        outermost app (uvicorn tells ASGI 3 apps by an `async def __call__`)."""
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            if scope["type"] == "websocket":
                return send({"type": "websocket.close", "code": 1008})
            return self.app(scope, receive, send)
        if self.hot_path:
            authorization = single_bearer(scope["headers"])
            if authorization is not None:
                try:
                    identity = self.authenticator.cached(authorization)
                except Rejection as rejection:
                    return self._rejected(scope, send, rejection)
                if identity is not None:
                    return self._admit(scope, receive, send, identity)
        return self._authenticate(scope, receive, send)

    async def _authenticate(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The general path: parse the header, authenticate (verifying if need be)."""
        token, problem = bearer_token(scope["headers"])
        try:
            if token is None:
                if problem is not None:
                    raise InvalidToken(Reason.MALFORMED, problem)
                self._outcome(Reason.MISSING_TOKEN.value)
                await self._refuse(scope, send, None)
                return
            identity = await self.authenticator.authenticate(token)
        except Rejection as rejection:
            await self._rejected(scope, send, rejection)
            return
        await self._admit(scope, receive, send, identity)

    def _admit(
        self, scope: Scope, receive: Receive, send: Send, identity: Identity
    ) -> Awaitable[None]:
        """Let an authenticated request in, as the `scope["user"]` FastMCP reads."""
        if self.on_outcome is not None:
            self.on_outcome("ok")
        scope["user"] = identity.user
        scope["auth"] = identity.credentials
        return self.app(scope, receive, send)

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
        await self.challenge.refusal(scope, rejection).send(send)
