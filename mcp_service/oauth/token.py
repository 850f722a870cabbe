"""`/oauth/token`: the authorization_code grant (a code redeemed once fleet-wide, PKCE S256
checked, a second redemption ending the session the first began) and the refresh_token grant
(rotation; a rotated-away token presented again ends its session)."""

from __future__ import annotations

import hmac
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cache.errors import SharedUnavailable
from mcp_service.body import read_form
from mcp_service.errors import BodyTooLarge
from mcp_service.oauth.sessions import GrantRefused, Sessions
from mcp_service.oauth.state import LoginState
from mcp_service.oauth.upstream import s256
from mcp_service.refusals import oauth_error

CODE_SECONDS = 300  # a code lives 5 minutes; its replay is recognised as long after
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenEndpoint:
    def __init__(self, state: LoginState, sessions: Sessions, resource: str) -> None:
        self.state = state
        self.sessions = sessions
        self.resource = resource

    async def endpoint(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except BodyTooLarge:
            return _error(GrantRefused("invalid_request", "the request is too large", 413))
        except ValueError as exc:
            return _error(GrantRefused("invalid_request", str(exc)))
        if request.headers.get("authorization"):
            return _error(
                GrantRefused("invalid_client", "clients are public: send client_id, no secret", 401)
            )
        try:
            answer = await self._grant(form)
        except GrantRefused as exc:
            return _error(exc)
        except SharedUnavailable:
            return _error(GrantRefused("temporarily_unavailable", "try again shortly", 503))
        return JSONResponse(answer, headers=NO_STORE)

    async def _grant(self, form: dict[str, str]) -> dict[str, object]:
        grant_type = form.get("grant_type")
        client_id = form.get("client_id", "")
        if not client_id:
            raise GrantRefused("invalid_client", "client_id is required", 401)
        resource = form.get("resource")
        if resource is not None and resource != self.resource:
            raise GrantRefused("invalid_target", "the resource is not this server")
        if grant_type == "refresh_token":
            return await self.sessions.refresh(form.get("refresh_token", ""), client_id)
        if grant_type != "authorization_code":
            raise GrantRefused("unsupported_grant_type", "authorization_code or refresh_token")
        code = form.get("code", "")
        if not code or len(code) > 200:
            raise GrantRefused("invalid_grant", "the code is not valid")
        outcome, record = await self.state.redeem(code, CODE_SECONDS)
        if outcome == "replayed" and record is not None:
            await self.sessions.end(record["family"], "authorization code redeemed twice")
            raise GrantRefused("invalid_grant", "the code was already used")
        if outcome != "redeemed" or record is None:
            raise GrantRefused("invalid_grant", "the code is not valid")
        if record["client_id"] != client_id or record["redirect_uri"] != form.get("redirect_uri"):
            raise GrantRefused("invalid_grant", "the code was issued to another client or URI")
        verifier = form.get("code_verifier", "")
        if not _VERIFIER.match(verifier):
            raise GrantRefused("invalid_grant", "a code_verifier of RFC 7636 is required (PKCE)")
        if not hmac.compare_digest(s256(verifier), record["code_challenge"]):
            raise GrantRefused("invalid_grant", "the code_verifier does not match (PKCE)")
        return await self.sessions.start(record)


def _error(refused: GrantRefused) -> Response:
    headers = dict(NO_STORE)
    if refused.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="mcp-service"'
    return oauth_error(refused.status, refused.error, str(refused), headers=headers).response()
