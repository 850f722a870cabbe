"""The embedded issuer playing Cognito managed login: `/oauth2/authorize` with a login page
(inputs `username` and `password`), the authorization_code and refresh_token grants of
`/oauth2/token`, and OIDC discovery under the pool, with Cognito's quirks kept: discovery
advertises no PKCE method and no registration endpoint, access tokens carry `client_id` and
no `aud`, refresh tokens are not rotated.

Codes and refresh tokens are JWTs signed by the issuer's key (replicas sharing the key file
redeem each other's); a code is refused a second time in the process that saw it. A stand-in
for laptops and CI, refused in production like the rest of the embedded issuer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from mcp_service.body import read_form
from mcp_service.errors import BodyTooLarge, IssuerKeyError
from mcp_service.oauth.pages import hidden, page
from mcp_service.refusals import oauth_error
from mcp_service.settings import Settings

log = logging.getLogger("mcp_service")

CODE_SECONDS = 300
REFRESH_SECONDS = 30 * 86_400  # Cognito's default refresh-token lifetime
AUTHORIZE_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "nonce",
)


@dataclass(frozen=True, slots=True)
class User:
    username: str
    password: str
    groups: tuple[str, ...] = ()


def generated_user(path: Path) -> User:
    """The one user of a laptop without LOCAL_USERS: read from `path`, or created there (0600,
    atomically, so replicas sharing the directory share the user). Its path is logged, its
    password never."""
    if not path.exists():
        user = {"username": "local-user", "password": secrets.token_urlsafe(18)}
        from mcp_service.issuer import create_private_file

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_private_file(path, json.dumps(user).encode())
    mode = path.stat().st_mode
    if mode & 0o077:
        raise IssuerKeyError(
            f"{path} is readable by other users (mode {mode & 0o777:o}); chmod 600 it"
        )
    try:
        data = json.loads(path.read_text())
        username, password = str(data["username"]), str(data["password"])
    except (ValueError, KeyError, TypeError, OSError):
        raise IssuerKeyError(f"{path} does not hold a generated user; delete it") from None
    log.info("embedded issuer login: the user's credentials are in %s", path)
    return User(username, password)


def local_users(settings: Settings) -> list[User]:
    """LOCAL_USERS, or the one generated user beside the key file."""
    if settings.local_users:
        return [
            User(name, user.password.get_secret_value(), user.groups)
            for name, user in settings.local_users.items()
        ]
    return [generated_user(settings.local_issuer_key_file.with_name("local-user.json"))]


class ManagedLogin:
    """The login leg of the embedded issuer for one app client and its callback URLs."""

    def __init__(
        self,
        key: Any,
        kid: str,
        *,
        issuer: str,
        base_url: str,
        client_id: str,
        callbacks: Iterable[str],
        users: Iterable[User],
        scopes: Iterable[str],
        lifetime: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._public = key.public_key()
        self._kid = kid
        self.issuer = issuer
        self.base_url = base_url
        self.client_id = client_id
        self.callbacks = frozenset(callbacks)
        self._users = {user.username: user for user in users}
        self.scopes = ("openid", "email", "profile", *dict.fromkeys(scopes))
        self.lifetime = lifetime
        self._clock = clock
        self._redeemed: dict[str, float] = {}  # code jti -> exp, this process's memory

    def discovery(self) -> dict[str, Any]:
        """Cognito's OIDC discovery, its omissions included."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base_url}/oauth2/authorize",
            "token_endpoint": f"{self.base_url}/oauth2/token",
            "userinfo_endpoint": f"{self.base_url}/oauth2/userInfo",
            "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
            "response_types_supported": ["code", "token"],
            "scopes_supported": list(self.scopes),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    async def discovery_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.discovery(), headers={"Cache-Control": "public, max-age=300"})

    async def authorize_endpoint(self, request: Request) -> Response:
        """GET: the login page; POST: the credentials, then back to the callback with a code."""
        if request.method == "GET":
            params = {k: v for k, v in request.query_params.items() if k in AUTHORIZE_FIELDS}
            problem = self._check_request(params)
            return problem or self._login_page(params)
        try:
            form = await read_form(request)
        except (ValueError, BodyTooLarge):
            return page("Sign in", "<p>That request could not be read.</p>", 400)
        params = {k: v for k, v in form.items() if k in AUTHORIZE_FIELDS}
        problem = self._check_request(params)
        if problem is not None:
            return problem
        user = self._users.get(form.get("username", ""))
        password = form.get("password", "").encode()
        if user is None or not hmac.compare_digest(password, user.password.encode()):
            return self._login_page(params, "Incorrect username or password.", 401)
        code = self._sign(
            {
                "token_use": "code",
                "aud": self.client_id,
                "sub": self.subject(user.username),
                "username": user.username,
                "groups": list(user.groups),
                "scope": self._granted(params.get("scope", "")),
                "redirect_uri": params["redirect_uri"],
                "code_challenge": params.get("code_challenge", ""),
                "exp": int(self._clock()) + CODE_SECONDS,
                "jti": str(uuid.uuid4()),
            }
        )
        query = {"code": code, **({"state": params["state"]} if "state" in params else {})}
        return RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", 302)

    def _check_request(self, params: Mapping[str, str]) -> Response | None:
        if params.get("client_id") != self.client_id or params.get("redirect_uri") not in (
            self.callbacks
        ):
            return page("Sign in", "<p>Unknown client or callback URL.</p>", 400)
        if params.get("response_type") != "code":
            return page("Sign in", "<p>Only the code response type is supported.</p>", 400)
        method = params.get("code_challenge_method")
        if "code_challenge" in params and method not in (None, "S256"):
            return page("Sign in", "<p>Unsupported code challenge method.</p>", 400)
        return None

    def _login_page(
        self, params: Mapping[str, str], error: str = "", status: int = 200
    ) -> Response:
        message = f'<p role="alert">{escape(error)}</p>' if error else ""
        body = (
            f'{message}<form method="post" action="/oauth2/authorize">{hidden(params)}'
            '<label>Username <input name="username" autocomplete="username" required></label>'
            '<br><label>Password <input name="password" type="password" '
            'autocomplete="current-password" required></label><br>'
            '<button type="submit">Sign in</button></form>'
        )
        return page("Sign in", body, status)

    def subject(self, username: str) -> str:
        """A stable `sub` per username, as a pool gives each user one."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.issuer}/{username}"))

    def _granted(self, requested: str) -> str:
        asked = requested.split()
        return " ".join(s for s in self.scopes if not asked or s in asked)

    async def grant(self, grant_type: str, form: Mapping[str, str]) -> Response:
        """The authorization_code and refresh_token grants, for an authenticated client."""
        if grant_type == "authorization_code":
            claims = self._read(form.get("code", ""), "code")
            if claims is None or claims.get("redirect_uri") != form.get("redirect_uri"):
                return _error("invalid_grant", "the code is invalid, expired or used")
            challenge = claims.get("code_challenge") or ""
            verifier = form.get("code_verifier", "")
            if challenge and not hmac.compare_digest(_s256(verifier), challenge):
                return _error("invalid_grant", "PKCE verification failed")
            if not self._redeem(claims):
                return _error("invalid_grant", "the code is invalid, expired or used")
            refresh = self._sign(
                {
                    "token_use": "refresh",
                    "aud": self.client_id,
                    **{k: claims[k] for k in ("sub", "username", "groups", "scope")},
                    "exp": int(self._clock()) + REFRESH_SECONDS,
                    "jti": str(uuid.uuid4()),
                }
            )
            return self._tokens(claims, refresh)
        if grant_type == "refresh_token":
            claims = self._read(form.get("refresh_token", ""), "refresh")
            if claims is None:
                return _error("invalid_grant", "the refresh token is invalid or expired")
            return self._tokens(claims, None)
        return _error("unsupported_grant_type", "the grant type is not supported")

    def _tokens(self, person: Mapping[str, Any], refresh: str | None) -> Response:
        now = int(self._clock())
        common = {
            "sub": person["sub"],
            "iss": self.issuer,
            "auth_time": now,
            "iat": now,
            "exp": now + self.lifetime,
            **({"cognito:groups": person["groups"]} if person.get("groups") else {}),
        }
        access = {
            **common,
            "token_use": "access",
            "scope": person["scope"],
            "version": 2,
            "jti": str(uuid.uuid4()),
            "origin_jti": str(uuid.uuid4()),
            "client_id": self.client_id,
            "username": person["username"],
        }
        identity = {
            **common,
            "token_use": "id",
            "aud": self.client_id,
            "cognito:username": person["username"],
            "jti": str(uuid.uuid4()),
        }
        body = {
            "access_token": self._sign(access),
            "id_token": self._sign(identity),
            "expires_in": self.lifetime,
            "token_type": "Bearer",
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _sign(self, claims: Mapping[str, Any]) -> str:
        claims = {"iss": self.issuer, **claims}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    def _read(self, token: str, use: str) -> dict[str, Any] | None:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                audience=self.client_id,
                issuer=self.issuer,
                options={"require": ["exp", "jti", "sub"]},
            )
        except jwt.InvalidTokenError:
            return None
        return claims if claims.get("token_use") == use else None

    def _redeem(self, claims: Mapping[str, Any]) -> bool:
        now = self._clock()
        self._redeemed = {k: exp for k, exp in self._redeemed.items() if exp > now}
        if claims["jti"] in self._redeemed:
            return False
        self._redeemed[claims["jti"]] = float(claims["exp"])
        return True


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _error(error: str, description: str) -> Response:
    return oauth_error(400, error, description).response()
