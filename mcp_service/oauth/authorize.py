"""The front channel: `/oauth/authorize`, the consent page and its `/oauth/consent` answer,
and `/oauth/callback`, where Cognito sends the person back.

1. `/oauth/authorize` checks the client (registered, or its metadata document), the redirect
   URI (exactly as registered, but for a loopback port) and the request (PKCE S256 only,
   `resource` this server). Until the redirect URI is known good, errors are pages, never
   redirects; after, they go back to the client with `error` and RFC 9207 `iss`.
2. Unless this browser's person approved this client within OAUTH_PROXY_CONSENT_TTL_SECONDS,
   a consent page names the client, the scopes and the exact redirect URI. Nothing is stored
   yet: the request rides in the page, sealed, bound to a CSRF cookie.
3. On approval the pending authorization is stored (single use) and the person goes to
   Cognito; the callback takes it, exchanges Cognito's code, and hands the client a code of
   this server's (single use, fleet-wide: mcp_service.oauth.token).
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from fastmcp.server.auth.redirect_validation import build_client_redirect
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cache.errors import SharedUnavailable
from mcp_service.body import read_form
from mcp_service.errors import BodyTooLarge
from mcp_service.oauth.cimd import MetadataDocumentError, MetadataDocuments, is_metadata_url
from mcp_service.oauth.clients import Client
from mcp_service.oauth.metadata import CONSENT_PATH
from mcp_service.oauth.pages import cookie_name, hidden, page, set_cookie
from mcp_service.oauth.redirects import matches
from mcp_service.oauth.state import Box, LoginState, digest
from mcp_service.oauth.upstream import Upstream, UpstreamError

PENDING_SECONDS = 600  # from consent to coming back from Cognito
CODE_SECONDS = 300
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256 digest
CSRF_COOKIE = "mcp_csrf"
CONSENT_COOKIE = "mcp_consent"
MAX_STATE = 2048


@dataclass(frozen=True, slots=True)
class FrontChannel:
    issuer: str
    resource: str
    consent_seconds: int
    secure_cookies: bool


class Refused(Exception):
    """Back to the client's redirect URI with an OAuth error."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


class Authorization:
    def __init__(
        self,
        config: FrontChannel,
        state: LoginState,
        upstream: Upstream,
        documents: MetadataDocuments,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.state = state
        self.box: Box = state.box
        self.upstream = upstream
        self.documents = documents
        self._clock = clock

    # 1. /oauth/authorize ---------------------------------------------------------------------

    async def authorize_endpoint(self, request: Request) -> Response:
        params = dict(request.query_params)
        if len(params) != len(request.query_params.multi_items()):
            return _problem("A parameter of this request is repeated.")
        try:
            client = await self._client(params.get("client_id", ""))
        except MetadataDocumentError as exc:
            return _problem(f"The client's metadata document cannot be used: {exc}.")
        except SharedUnavailable:
            return _problem("The sign-in service is unavailable; try again shortly.", 503)
        if client is None:
            return _problem("This client is not registered.")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None and len(client.redirect_uris) == 1:
            redirect_uri = client.redirect_uris[0]
        if redirect_uri is None or not matches(redirect_uri, client.redirect_uris):
            return _problem("The redirect URI is not one this client registered.")
        state = params.get("state")
        try:
            request_record = self._checked(params, client, redirect_uri)
        except Refused as exc:
            return self._back(redirect_uri, state, error=exc.error, error_description=str(exc))
        remembered = self._remembered(request, client.client_id)
        try:
            approved = remembered is not None and bool(
                await self.state.get("consent", f"{remembered}:{client.client_id}")
            )
        except SharedUnavailable:
            approved = False  # ask again rather than fail
        if approved:
            return await self._to_upstream(request_record, expected_subject=remembered)
        return self._consent_page(request_record, client)

    async def _client(self, client_id: str) -> Client | None:
        if not client_id or len(client_id) > 2000:
            return None
        if is_metadata_url(client_id):
            return await self.documents.client(client_id)
        record = await self.state.get("client", client_id)
        return Client.from_record(record) if record else None

    def _checked(
        self, params: Mapping[str, str], client: Client, redirect_uri: str
    ) -> dict[str, Any]:
        if params.get("response_type") != "code":
            raise Refused("unsupported_response_type", "only the code response type")
        method = params.get("code_challenge_method")
        challenge = params.get("code_challenge", "")
        if not challenge:
            raise Refused("invalid_request", "PKCE is required: send code_challenge (S256)")
        if method != "S256":
            raise Refused("invalid_request", "code_challenge_method must be S256")
        if not _CHALLENGE.match(challenge):
            raise Refused("invalid_request", "code_challenge is not an S256 challenge")
        resource = params.get("resource")
        if resource is not None and resource.rstrip("/") != self.config.resource:
            raise Refused("invalid_target", "the resource is not this server")
        state = params.get("state")
        if state is not None and len(state) > MAX_STATE:
            raise Refused("invalid_request", "state is too long")
        scope = params.get("scope", "")
        if len(scope) > 1000:
            raise Refused("invalid_scope", "scope is too long")
        return {
            "client_id": client.client_id,
            "client_name": client.name,
            "redirect_uri": redirect_uri,
            "state": state,
            "scope": scope,
            "code_challenge": challenge,
            "resource": resource,
        }

    # 2. consent ------------------------------------------------------------------------------

    def _consent_page(self, pending: dict[str, Any], client: Client) -> Response:
        csrf = secrets.token_urlsafe(32)
        sealed = self.box.seal(
            {**pending, "csrf": csrf, "until": self._clock() + PENDING_SECONDS}, "consent"
        )
        scopes = pending["scope"].split() or ["(the scopes you are granted at sign-in)"]
        listed = "".join(f"<li><code>{escape(scope)}</code></li>" for scope in scopes)
        origin = " (its metadata document)" if client.metadata_document else ""
        body = (
            f"<p><strong>{escape(client.name or 'An unnamed client')}</strong>{origin} asks "
            f"to use this MCP server as you.</p>"
            f"<p>Client id: <code>{escape(client.client_id)}</code></p>"
            f"<p>Scopes:</p><ul>{listed}</ul>"
            f"<p>After you sign in you will be sent to "
            f"<code>{escape(pending['redirect_uri'])}</code>.</p>"
            f'<form method="post" action="{CONSENT_PATH}">'
            f"{hidden({'request': sealed, 'csrf': csrf})}"
            '<button type="submit" name="decision" value="approve">Approve</button> '
            '<button type="submit" name="decision" value="deny">Deny</button></form>'
        )
        # Approving leads to the managed login (and, with a Cognito session, on to the
        # client); denying straight back to the client.
        targets = (self.upstream.domain, pending["redirect_uri"])
        response = page("Allow access?", body, form_targets=targets)
        secure = self.config.secure_cookies
        set_cookie(response, CSRF_COOKIE, csrf, secure=secure, max_age=PENDING_SECONDS)
        return response

    async def consent_endpoint(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except (ValueError, BodyTooLarge):
            return _problem("That request could not be read.")
        cookie = request.cookies.get(cookie_name(CSRF_COOKIE, self.config.secure_cookies), "")
        pending = self.box.open(form.get("request", ""), "consent")
        csrf = form.get("csrf", "")
        if (
            pending is None
            or not cookie
            or not hmac.compare_digest(csrf.encode(), cookie.encode())
            or not hmac.compare_digest(csrf.encode(), str(pending.get("csrf", "")).encode())
        ):
            return _problem("This consent form is not valid (its CSRF check failed).", 403)
        if pending["until"] <= self._clock():
            return _problem("This consent form has expired; start again from the client.")
        decision = form.get("decision")
        if decision == "deny":
            return self._back(
                pending["redirect_uri"],
                pending["state"],
                error="access_denied",
                error_description="the person declined",
            )
        if decision != "approve":
            return _problem("Choose approve or deny.")
        return await self._to_upstream(pending, expected_subject=None)

    def _remembered(self, request: Request, client_id: str) -> str | None:
        """The subject whose approval of `client_id` this browser carries, if still valid."""
        name = cookie_name(CONSENT_COOKIE, self.config.secure_cookies)
        value = self.box.open(request.cookies.get(name, ""), "consent-cookie")
        if value is None or value.get("until", 0) <= self._clock():
            return None
        return str(value["sub"]) if client_id in value.get("clients", ()) else None

    async def _to_upstream(
        self, pending: dict[str, Any], *, expected_subject: str | None
    ) -> Response:
        transaction = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        record = {
            **{k: v for k, v in pending.items() if k not in ("csrf", "until")},
            "upstream_verifier": verifier,
            "expected_subject": expected_subject,
        }
        try:
            await self.state.put("pending", transaction, record, PENDING_SECONDS)
        except SharedUnavailable:
            return _problem("The sign-in service is unavailable; try again shortly.", 503)
        url = self.upstream.authorize_url(transaction, verifier, pending.get("resource"))
        response = RedirectResponse(url, 302)
        response.headers["Cache-Control"] = "no-store"
        return response

    # 3. /oauth/callback ----------------------------------------------------------------------

    async def callback_endpoint(self, request: Request) -> Response:
        params = request.query_params
        transaction = params.get("state", "")
        try:
            pending = await self.state.take("pending", transaction) if transaction else None
        except SharedUnavailable:
            return _problem("The sign-in service is unavailable; try again shortly.", 503)
        if pending is None:
            return _problem("This sign-in has expired or was already completed.")
        redirect_uri, state = pending["redirect_uri"], pending["state"]
        if "error" in params or not params.get("code"):
            return self._back(
                redirect_uri, state, error="access_denied", error_description="sign-in failed"
            )
        try:
            tokens = await self.upstream.exchange(params["code"], pending["upstream_verifier"])
            person = await self.upstream.person(tokens)
        except UpstreamError as exc:
            return self._back(redirect_uri, state, error="server_error", error_description=str(exc))
        expected = pending.get("expected_subject")
        if expected is not None and expected != person.subject:
            return self._back(
                redirect_uri,
                state,
                error="access_denied",
                error_description="another person signed in; approve the client again",
            )
        asked = pending["scope"].split()
        granted = [s for s in person.scopes if not asked or s in asked] or list(person.scopes)
        code = secrets.token_urlsafe(32)
        record = {
            "client_id": pending["client_id"],
            "redirect_uri": redirect_uri,
            "code_challenge": pending["code_challenge"],
            "resource": pending["resource"],
            "sub": person.subject,
            "username": person.username,
            "groups": list(person.groups),
            "scope": " ".join(granted),
            "upstream": {
                k: tokens[k] for k in ("access_token", "id_token", "refresh_token") if k in tokens
            },
            "family": None,
        }
        record["family"] = digest(code)[:32]  # the session this code begins (sessions.py)
        try:
            await self.state.put("code", digest(code), record, CODE_SECONDS)
            if self.config.consent_seconds:
                await self.state.put(
                    "consent",
                    f"{person.subject}:{pending['client_id']}",
                    {"at": self._clock()},
                    self.config.consent_seconds,
                )
        except SharedUnavailable:
            return _problem("The sign-in service is unavailable; try again shortly.", 503)
        response = self._back(redirect_uri, state, code=code)
        if self.config.consent_seconds:
            self._remember(request, response, person.subject, pending["client_id"])
        return response

    def _remember(self, request: Request, response: Response, subject: str, client_id: str) -> None:
        name = cookie_name(CONSENT_COOKIE, self.config.secure_cookies)
        value = self.box.open(request.cookies.get(name, ""), "consent-cookie")
        clients: list[str] = []
        if value is not None and value.get("sub") == subject:
            clients = [c for c in value.get("clients", []) if c != client_id][-19:]
        sealed = self.box.seal(
            {
                "sub": subject,
                "clients": [*clients, client_id],
                "until": self._clock() + self.config.consent_seconds,
            },
            "consent-cookie",
        )
        secure = self.config.secure_cookies
        set_cookie(
            response, CONSENT_COOKIE, sealed, secure=secure, max_age=self.config.consent_seconds
        )

    def _back(self, redirect_uri: str, state: str | None, **params: str) -> Response:
        if state is not None:
            params["state"] = state
        url = build_client_redirect(redirect_uri, params, iss=self.config.issuer)
        response = RedirectResponse(url, 302)
        response.headers["Cache-Control"] = "no-store"
        return response


def _problem(message: str, status: int = 400) -> Response:
    return page("Sign-in problem", f"<p>{escape(message)}</p>", status)
