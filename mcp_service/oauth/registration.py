"""Dynamic Client Registration (RFC 7591) at `/oauth/register`.

Clients are public (`token_endpoint_auth_method: none`; PKCE proves the code's holder), so
whatever method a client asks for, the answer registers `none`, as RFC 7591 3.2.1 lets a
server do. Bodies are bounded, registrations are rate-limited per client address
(OAUTH_REGISTRATION_RATE_LIMIT, counted per replica), and every redirect URI is checked
against the client's `application_type` (mcp_service.oauth.redirects).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cache.errors import SharedUnavailable
from cache.windows import Limit, MemoryWindows
from mcp_service.body import read_body
from mcp_service.errors import BodyTooLarge
from mcp_service.oauth.clients import CLIENT_TTL, Client
from mcp_service.oauth.redirects import registration_problem
from mcp_service.oauth.state import LoginState
from mcp_service.refusals import oauth_error

MAX_REGISTRATION_BYTES = 16_384
MAX_REDIRECT_URIS = 10
MAX_NAME_CHARS = 200
GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class RegistrationRefused(ValueError):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


def parse_registration(document: Any) -> dict[str, Any]:
    """The client metadata to register, or `RegistrationRefused`."""
    if not isinstance(document, dict):
        raise RegistrationRefused("invalid_client_metadata", "the body is not a JSON object")
    uris = document.get("redirect_uris")
    if (
        not isinstance(uris, list)
        or not uris
        or len(uris) > MAX_REDIRECT_URIS
        or not all(isinstance(uri, str) for uri in uris)
    ):
        raise RegistrationRefused(
            "invalid_redirect_uri", f"redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs"
        )
    application_type = document.get("application_type", "native")
    if application_type not in ("web", "native"):
        raise RegistrationRefused(
            "invalid_client_metadata", "application_type must be web or native"
        )
    for uri in uris:
        problem = registration_problem(uri, application_type)
        if problem is not None:
            raise RegistrationRefused("invalid_redirect_uri", problem)
    grant_types = document.get("grant_types", ["authorization_code"])
    if not isinstance(grant_types, list) or not set(grant_types) <= GRANT_TYPES:
        raise RegistrationRefused(
            "invalid_client_metadata", "grant_types may be authorization_code and refresh_token"
        )
    response_types = document.get("response_types", ["code"])
    if not isinstance(response_types, list) or set(response_types) - {"code"}:
        raise RegistrationRefused("invalid_client_metadata", "response_types may only be code")
    name = document.get("client_name", "")
    scope = document.get("scope")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise RegistrationRefused("invalid_client_metadata", "client_name is too long")
    if scope is not None and (not isinstance(scope, str) or len(scope) > 1000):
        raise RegistrationRefused("invalid_client_metadata", "scope is not a short string")
    return {
        "redirect_uris": uris,
        "application_type": application_type,
        "grant_types": grant_types,
        "response_types": ["code"],
        "client_name": name,
        "scope": scope or None,
    }


class Registration:
    def __init__(
        self, state: LoginState, limits: tuple[Limit, ...], windows: MemoryWindows | None = None
    ) -> None:
        self.state = state
        self.limits = limits
        self.windows = windows or MemoryWindows(max_keys=10_000)

    async def endpoint(self, request: Request) -> Response:
        address = request.client.host if request.client else "unknown"
        if self.limits and not self.windows.hit(address, self.limits)[0]:
            return oauth_error(
                429, "slow_down", "too many registrations from this address"
            ).response()
        try:
            body = await read_body(request.receive, MAX_REGISTRATION_BYTES)
        except BodyTooLarge:
            return _refuse("invalid_client_metadata", "the registration is too large", 413)
        try:
            metadata = parse_registration(json.loads(body))
        except RegistrationRefused as exc:
            return _refuse(exc.error, str(exc))
        except (ValueError, RecursionError):
            return _refuse("invalid_client_metadata", "the body is not JSON")
        client_id = secrets.token_urlsafe(24)
        client = Client(
            client_id=client_id,
            name=metadata["client_name"],
            redirect_uris=tuple(metadata["redirect_uris"]),
            application_type=metadata["application_type"],
            scope=metadata["scope"],
        )
        try:
            await self.state.put("client", client_id, client.record(), CLIENT_TTL)
        except SharedUnavailable:
            return _refuse("temporarily_unavailable", "registration is unavailable", 503)
        answer = {
            "client_id": client_id,
            "client_id_issued_at": int(time.time()),
            "token_endpoint_auth_method": "none",
            **{k: v for k, v in metadata.items() if v is not None},
        }
        return JSONResponse(answer, 201, headers=NO_STORE)


def _refuse(error: str, description: str, status: int = 400) -> Response:
    return oauth_error(status, error, description).response()
