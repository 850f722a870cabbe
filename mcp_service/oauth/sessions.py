"""Login sessions: the tokens MCP clients hold, minted from a redeemed code and renewed by
rotating refresh tokens.

An access token is this service's own (RS256, `iss` PUBLIC_BASE_URL, `aud` the MCP resource,
`origin_jti` the session family), carrying the Cognito subject, username, groups and scopes.
A refresh token is `<family>.<secret>`: the family names the session in the shared state,
only the secret's digest is stored, and each use replaces it. A session lives
OAUTH_PROXY_REFRESH_TOKEN_SECONDS from sign-in, whatever the rotations; `mcp-service revoke
--jti <family>` or `--sub <subject>` ends it (refreshes check the revocations in force, the
verifier refuses its access tokens).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cache.revocations import RevocationSet
from mcp_service.oauth.keys import SigningKeys
from mcp_service.oauth.state import LoginState, Record

log = logging.getLogger("mcp_service.oauth")

_FAMILY = re.compile(r"^[0-9a-f]{32}$")
EndSession = Callable[[str, str], Awaitable[None]]  # (family, reason): revoke fleet-wide


class GrantRefused(Exception):
    """An OAuth token-endpoint refusal: `error` and a description safe to show."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.status = status


@dataclass(frozen=True, slots=True)
class Lifetimes:
    access: int
    refresh: int


class Sessions:
    def __init__(
        self,
        *,
        issuer: str,
        resource: str,
        keys: SigningKeys,
        state: LoginState,
        lifetimes: Lifetimes,
        revoked: RevocationSet,
        end_session: EndSession,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.resource = resource
        self.keys = keys
        self.state = state
        self.lifetimes = lifetimes
        self.revoked = revoked
        self._end_session = end_session
        self._clock = clock

    async def start(self, code: Record) -> dict[str, Any]:
        """A new session for a redeemed code: its first access and refresh tokens."""
        family = str(code["family"])  # named by the code: its replay ends this session
        now = int(self._clock())
        record = {
            key: code[key]
            for key in ("client_id", "sub", "username", "groups", "scope", "upstream")
        }
        record.update(created=now, expires=now + self.lifetimes.refresh)
        refresh = f"{family}.{secrets.token_urlsafe(32)}"
        await self.state.start_family(family, refresh, record, self.lifetimes.refresh)
        log.info(
            "login session started",
            extra={"family": family, "sub": record["sub"], "client_id": record["client_id"]},
        )
        return self._answer(record, family, refresh)

    async def refresh(self, token: str, client_id: str) -> dict[str, Any]:
        family, _, secret = token.partition(".")
        if not _FAMILY.match(family) or not secret or len(token) > 200:
            raise GrantRefused("invalid_grant", "the refresh token is not valid")
        renewed = f"{family}.{secrets.token_urlsafe(32)}"
        outcome, record = await self.state.rotate(family, token, renewed)
        if outcome == "reused":
            await self.end(family, "refresh token reused after rotation")
            raise GrantRefused("invalid_grant", "the refresh token was already used")
        if outcome != "rotated" or record is None:
            raise GrantRefused("invalid_grant", "the refresh token is not valid")
        if record["client_id"] != client_id:
            await self.end(family, "refresh token presented by another client")
            raise GrantRefused("invalid_grant", "the refresh token is not valid")
        revoked = self.revoked.is_revoked(
            jti=family, origin_jti=family, sub=record["sub"], iat=record["created"]
        )
        if revoked or record["expires"] <= self._clock():
            await self.state.end_family(family)
            raise GrantRefused("invalid_grant", "the session has ended")
        return self._answer(record, family, renewed)

    async def end(self, family: str, reason: str) -> None:
        """End a session everywhere: its state, and (a revocation) its access tokens."""
        log.warning("login session ended", extra={"family": family, "reason": reason})
        await self.state.end_family(family)
        await self._end_session(family, reason)

    def _answer(self, record: Record, family: str, refresh: str) -> dict[str, Any]:
        now = int(self._clock())
        lifetime = min(self.lifetimes.access, max(1, int(record["expires"]) - now))
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.resource,
            "sub": record["sub"],
            "username": record["username"],
            "client_id": record["client_id"],
            "token_use": "access",
            "scope": record["scope"],
            "jti": uuid.uuid4().hex,
            "origin_jti": family,
            "auth_time": record["created"],
            "iat": now,
            "exp": now + lifetime,
        }
        if record["groups"]:
            claims["cognito:groups"] = list(record["groups"])
        return {
            "access_token": self.keys.sign(claims),
            "token_type": "Bearer",
            "expires_in": lifetime,
            "refresh_token": refresh,
            "scope": record["scope"],
        }
