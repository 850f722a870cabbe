"""The embedded issuer: a Cognito-shaped token endpoint and JWKS for a laptop.

It exists so that local runs use real signatures: tokens it issues carry Cognito's claim shape
and issuer form and go through exactly the same verifier as Cognito's. It signs with an RSA key
persisted (0600) on first use, answers the client_credentials grant and, with the login facade,
plays Cognito managed login (mcp_service.managed_login), and is refused in production and off
loopback (settings.py and cli.py enforce both).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_service.body import read_form
from mcp_service.errors import BodyTooLarge, IssuerKeyError
from mcp_service.managed_login import ManagedLogin, User
from mcp_service.refusals import oauth_error


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """Load the dev signing key, creating it (0600, atomically) on first use."""
    if not path.exists():
        _create_key(path)
    mode = path.stat().st_mode
    if mode & 0o077:
        raise IssuerKeyError(
            f"{path} is readable by other users (mode {mode & 0o777:o}); chmod 600 it"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise IssuerKeyError(f"{path} does not hold a PEM RSA private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise IssuerKeyError(f"{path} does not hold an RSA key of 2048 bits or more")
    return key


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    create_private_file(path, pem)


def create_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` (mode 0600) atomically, unless the file exists: a process that
    loses the race to another uses the winner's file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        with suppress(FileExistsError):  # another worker won the race: use its file
            os.link(temp, path)  # atomic, and never replaces an existing file
    finally:
        temp.unlink(missing_ok=True)


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The public half as a JWK whose `kid` is its RFC 7638 thumbprint."""
    numbers = key.public_key().public_numbers()
    jwk = {"e": _b64_uint(numbers.e), "kty": "RSA", "n": _b64_uint(numbers.n)}
    thumbprint = hashlib.sha256(json.dumps(jwk, separators=(",", ":")).encode()).digest()
    kid = base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode()
    return {"alg": "RS256", "e": jwk["e"], "kid": kid, "kty": "RSA", "n": jwk["n"], "use": "sig"}


def _b64_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class LocalIssuer:
    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        scopes: Iterable[str],
        lifetime: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.issuer = issuer
        self.client_id = client_id
        self._secret = client_secret.encode()
        self.scopes = tuple(dict.fromkeys(scopes))
        self.lifetime = lifetime
        self._clock = clock
        self.jwk = public_jwk(key)
        self.jwks_document = json.dumps({"keys": [self.jwk]}).encode()
        self.login: ManagedLogin | None = None  # the managed-login leg, with the facade

    def enable_login(
        self, *, base_url: str, callbacks: Iterable[str], users: Iterable[User]
    ) -> ManagedLogin:
        """Play Cognito managed login too: /oauth2/authorize, a login page, person tokens."""
        self.login = ManagedLogin(
            self._key,
            self.jwk["kid"],
            issuer=self.issuer,
            base_url=base_url,
            client_id=self.client_id,
            callbacks=callbacks,
            users=users,
            scopes=self.scopes,
            lifetime=self.lifetime,
            clock=self._clock,
        )
        return self.login

    async def fetch_jwks(self) -> bytes:
        """The key source's fetch, without a round trip to ourselves."""
        return self.jwks_document

    def issue(self, scopes: Iterable[str] | None = None, **extra: Any) -> str:
        """An access token with the claims Cognito puts in a client_credentials token."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": self.client_id,
            "token_use": "access",
            "scope": " ".join(self.scopes if scopes is None else scopes),
            "auth_time": now,
            "iss": self.issuer,
            "exp": now + self.lifetime,
            "iat": now,
            "version": 2,
            "jti": str(uuid.uuid4()),
            "client_id": self.client_id,
        }
        claims.update(extra)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.jwk["kid"]})

    def authenticate_client(self, client_id: str, secret: str) -> bool:
        id_ok = hmac.compare_digest(client_id.encode(), self.client_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self._secret)
        return id_ok and secret_ok

    async def token_endpoint(self, request: Request) -> Response:
        """POST /oauth2/token: the client_credentials grant, as Cognito answers it."""
        try:
            form = await self._form(request)
        except BodyTooLarge:
            return _oauth_error("invalid_request", "request body too large", 413)
        except ValueError as exc:
            return _oauth_error("invalid_request", str(exc))
        credentials = _client_credentials(request, form)
        if credentials is None:
            return _oauth_error(
                "invalid_request", "client authentication is ambiguous or malformed"
            )
        if not self.authenticate_client(*credentials):
            return _oauth_error(
                "invalid_client",
                "client authentication failed",
                401,
                {"WWW-Authenticate": 'Basic realm="mcp-service"'},
            )
        grant_type = form.get("grant_type", "")
        if self.login is not None and grant_type in ("authorization_code", "refresh_token"):
            return await self.login.grant(grant_type, form)
        if grant_type != "client_credentials":
            return _oauth_error("unsupported_grant_type", "only client_credentials is supported")
        requested = form.get("scope", "").split()
        if any(scope not in self.scopes for scope in requested):
            return _oauth_error("invalid_scope", "a requested scope is not allowed for this client")
        token = self.issue(requested or None)
        return JSONResponse(
            {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"},
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def jwks_endpoint(self, request: Request) -> Response:
        return Response(
            self.jwks_document,
            media_type="application/json",
            headers={"Cache-Control": "public, max-age=300"},
        )

    async def _form(self, request: Request) -> dict[str, str]:
        return await read_form(request)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    """(client_id, secret) from HTTP Basic or the form, never from both."""
    header = request.headers.get("authorization", "")
    in_form = "client_secret" in form
    if header:
        if in_form or header[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (client_id, secret) if sep else None
    if in_form and "client_id" in form:
        return form["client_id"], form["client_secret"]
    return ("", "") if not in_form else None


def _oauth_error(
    error: str, description: str, status: int = 400, headers: dict[str, str] | None = None
) -> Response:
    return oauth_error(status, error, description, headers=headers).response()
