"""The leg to Cognito managed login: where the person is sent (`/oauth2/authorize` on
COGNITO_DOMAIN, with the facade's own PKCE and the client's RFC 8707 `resource`), and the
code exchange at `/oauth2/token` whose access token, verified by the Cognito rules for
OAUTH_PROXY_CLIENT_ID, says who signed in. Cognito's tokens never leave the server."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from mcp_service.errors import Rejection
from mcp_service.verifier import CognitoVerifier

EXCHANGE_SECONDS = 10.0
MAX_TOKEN_RESPONSE_BYTES = 65_536


class UpstreamError(Exception):
    """Cognito refused or could not be reached; the message is safe to show the person."""


@dataclass(frozen=True, slots=True)
class Person:
    subject: str
    username: str
    groups: tuple[str, ...]
    scopes: tuple[str, ...]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("utf-8", "surrogateescape")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Upstream:
    def __init__(
        self,
        *,
        domain: str,
        client_id: str,
        client_secret: str,
        scopes: Iterable[str],
        callback_url: str,
        verifier: CognitoVerifier,
        http: httpx.AsyncClient,
    ) -> None:
        self.domain = domain.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.scopes = tuple(dict.fromkeys(scopes))
        self.callback_url = callback_url
        self._verifier = verifier
        self._http = http

    def authorize_url(self, state: str, verifier: str, resource: str | None) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.callback_url,
            "scope": " ".join(self.scopes),
            "state": state,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        if resource:
            query["resource"] = resource
        return f"{self.domain}/oauth2/authorize?{urlencode(query)}"

    async def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        """Cognito's tokens for the code (sealed into the session, never sent on)."""
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": self.callback_url,
            "code_verifier": verifier,
        }
        try:
            url = f"{self.domain}/oauth2/token"
            if self._secret:
                auth = (self.client_id, self._secret)
                response = await self._http.post(
                    url, data=form, auth=auth, timeout=EXCHANGE_SECONDS
                )
            else:
                response = await self._http.post(url, data=form, timeout=EXCHANGE_SECONDS)
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"the sign-in service is unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code != 200 or len(response.content) > MAX_TOKEN_RESPONSE_BYTES:
            raise UpstreamError(f"the sign-in service refused the code ({response.status_code})")
        try:
            tokens = response.json()
        except ValueError:
            raise UpstreamError("the sign-in service answered something else than JSON") from None
        if not isinstance(tokens, dict) or not isinstance(tokens.get("access_token"), str):
            raise UpstreamError("the sign-in service answered no access token")
        return tokens

    async def person(self, tokens: dict[str, Any]) -> Person:
        """Who signed in, from Cognito's access token, verified like any Cognito token."""
        try:
            claims = await self._verifier.verify(tokens["access_token"])
        except Rejection as exc:
            raise UpstreamError(f"the sign-in service's token was refused ({exc.reason})") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise UpstreamError("the sign-in service's token names nobody")
        username = claims.get("username") or claims.get("cognito:username") or subject
        scope = claims.get("scope")
        return Person(
            subject=subject,
            username=str(username),
            groups=tuple(claims.get("cognito:groups") or ()),
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
        )
