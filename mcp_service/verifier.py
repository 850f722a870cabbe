"""The Cognito token rules, and nothing else: no HTTP, no FastMCP, no Redis.

Given a key source and a clock, `CognitoVerifier.verify()` returns the claims of a token that
passes every rule, or raises a `Rejection` naming the first rule it broke. The order matters:
cheap structural checks first, then the header (read, never trusted to choose a key type), then
the signature, and only after the signature verifies is the payload read at all. A second
issuer, this service's own (`OwnIssuer`), is a second configuration of the same rules: its
keys are known by `kid`, and the token is held to the rules of the issuer whose key signed it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from jwt.exceptions import InvalidSignatureError, InvalidTokenError

from cache.errors import JwksUnavailableError, UnknownKeyError
from cache.jwks import KeySource
from mcp_service.errors import InvalidToken, KeysUnavailable, Reason

ALGORITHMS = ("RS256",)
# Header parameters that would let a token name its own key, or demand semantics we do not
# implement. A token carrying any of them is refused outright, whatever the rest says.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "b64"})
MAX_KID_LENGTH = 256
# The claims the service reads, each type- and range-checked before anything uses it: a signed
# token is not a trusted one until its claims are of the shape the code expects.
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z: a NumericDate past it is not a time
TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")
MAX_IDENTIFIER_CHARS = 1024  # Cognito's subjects, clients, usernames and jtis are < 200
# client_id is checked where it is compared (an odd one is `wrong_client`, like a foreign one).
IDENTIFIER_CLAIMS = ("sub", "username", "cognito:username", "jti", "origin_jti")
MAX_SCOPE_CHARS = 8192
MAX_GROUPS = 1000
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")

# Signature checks come from PyJWT; the time and identity rules are checked below with the
# injected clock, so they can be tested and each gets its own reason code.
_DECODE_OPTIONS: Any = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}

Claims = dict[str, Any]
TokenUse = Literal["access", "id", "any"]


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    issuer: str
    client_ids: frozenset[str]
    token_use: TokenUse = "access"
    leeway: float = 5.0
    max_token_bytes: int = 16_384
    # Set for this service's own issuer (the login facade): its access tokens name the MCP
    # resource in `aud`, and any client it registered may hold one.
    audience: str | None = None

    def __post_init__(self) -> None:
        if self.audience is not None:
            if not self.issuer.startswith(("https://", "http://")) or self.token_use != "access":
                raise ValueError("an own issuer is an http(s) URL issuing access tokens")
            return
        if not self.issuer.startswith("https://cognito-idp."):
            raise ValueError("issuer must be a Cognito user pool issuer URL")
        if not self.client_ids:
            raise ValueError("at least one app client id is required")


@dataclass(frozen=True, slots=True)
class OwnIssuer:
    """This service's own issuer beside Cognito: its rules and its public keys by `kid`.
    A token is checked against the issuer whose key signed it, never the one it names."""

    config: VerifierConfig
    keys: Mapping[str, Any]


class CognitoVerifier:
    def __init__(
        self,
        config: VerifierConfig,
        keys: KeySource,
        *,
        clock: Callable[[], float] = time.time,
        own: OwnIssuer | None = None,
    ) -> None:
        self.config = config
        self._keys = keys
        self._clock = clock
        self._own = own
        # The rules for claims verified earlier (the L2), chosen by `iss` with one lookup.
        self._by_issuer = {config.issuer: config}
        if own is not None:
            self._by_issuer[own.config.issuer] = own.config
        self._uses: frozenset[str] = (
            frozenset({"access", "id"})
            if config.token_use == "any"
            else frozenset({config.token_use})
        )

    @property
    def keys(self) -> KeySource:
        return self._keys

    async def verify(self, token: str) -> Claims:
        """Claims of a token that passes every rule; otherwise a `Rejection` is raised."""
        kid = _check_header(_decode_json_segment(self._header_segment(token)))
        own = self._own
        if own is not None and kid in own.keys:
            claims = _verified_payload(token, own.keys[kid])
            self._check(claims, own.config)
            return claims
        try:
            key = await self._keys.get_key(kid)
        except UnknownKeyError:
            raise InvalidToken(Reason.UNKNOWN_KID) from None
        except JwksUnavailableError as exc:
            raise KeysUnavailable(str(exc), retry_after=exc.retry_after) from None
        claims = _verified_payload(token, key)
        self._check(claims, self.config)
        return claims

    def _header_segment(self, token: str) -> str:
        if not isinstance(token, str) or not token:
            raise InvalidToken(Reason.MALFORMED, "empty token")
        if len(token) > self.config.max_token_bytes:
            raise InvalidToken(Reason.OVERSIZED)
        parts = token.split(".")
        if len(parts) != 3 or not all(_SEGMENT.match(part) for part in parts):
            raise InvalidToken(Reason.MALFORMED, "not three base64url segments")
        return parts[0]

    def check_claims(self, claims: Claims) -> None:
        """Every rule but the signature, for claims another replica verified: those of the
        issuer they name (a sealed L2 entry was verified with that issuer's keys)."""
        iss = claims.get("iss")
        config = self._by_issuer.get(iss, self.config) if isinstance(iss, str) else self.config
        self._check(claims, config)

    def _check(self, claims: Claims, config: VerifierConfig) -> None:
        _check_shapes(claims)
        now = self._clock()
        exp = claims.get("exp")
        if exp is None:
            raise InvalidToken(Reason.MISSING_CLAIM, "exp")
        if exp <= now - config.leeway:
            raise InvalidToken(Reason.EXPIRED)
        nbf = claims.get("nbf")
        if nbf is not None and nbf > now + config.leeway:
            raise InvalidToken(Reason.NOT_YET_VALID, "nbf")
        iat = claims.get("iat")
        if iat is not None and iat > now + config.leeway:
            raise InvalidToken(Reason.NOT_YET_VALID, "iat")
        if claims.get("iss") != config.issuer:
            raise InvalidToken(Reason.WRONG_ISSUER)
        use = claims.get("token_use")
        if not isinstance(use, str) or use not in self._uses:
            raise InvalidToken(Reason.WRONG_TOKEN_USE)
        if config.audience is not None:
            if not _audience_matches(claims.get("aud"), (config.audience,)):
                raise InvalidToken(Reason.WRONG_AUDIENCE)
        elif use == "access":
            client_id = claims.get("client_id")
            if not isinstance(client_id, str) or client_id not in config.client_ids:
                raise InvalidToken(Reason.WRONG_CLIENT)
        elif not _audience_matches(claims.get("aud"), config.client_ids):
            raise InvalidToken(Reason.WRONG_AUDIENCE)


def _check_shapes(claims: Claims) -> None:
    """The claims the service reads have the types and ranges its code expects, or the token is
    `malformed`: times finite NumericDates of this era, identifiers short valid strings, the
    scope a string, groups a list of such strings."""
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if value is not None and not _is_time(value):
            raise InvalidToken(Reason.MALFORMED, f"{name} is not a time")
    for name in IDENTIFIER_CLAIMS:
        value = claims.get(name)
        if value is not None and not _is_text(value, MAX_IDENTIFIER_CHARS):
            raise InvalidToken(Reason.MALFORMED, f"{name} is not a short string")
    scope = claims.get("scope")
    if scope is not None and not _is_text(scope, MAX_SCOPE_CHARS):
        raise InvalidToken(Reason.MALFORMED, "scope is not a string")
    groups = claims.get("cognito:groups")
    if groups is not None and not (
        isinstance(groups, list)
        and len(groups) <= MAX_GROUPS
        and all(_is_text(group, MAX_IDENTIFIER_CHARS) for group in groups)
    ):
        raise InvalidToken(Reason.MALFORMED, "cognito:groups is not a list of strings")


def _is_time(value: Any) -> bool:
    """A NumericDate: a number (not a bool) in [0, MAX_TIME]; NaN and infinities fail."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 <= value <= MAX_TIME


def _is_text(value: Any, limit: int) -> bool:
    """A string of at most `limit` characters that UTF-8 can carry (no lone surrogate, which
    JSON's \\u escapes can smuggle in and which breaks every encoder downstream)."""
    if not isinstance(value, str) or len(value) > limit:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_header(header: Any) -> str:
    if not isinstance(header, dict):
        raise InvalidToken(Reason.MALFORMED, "header is not a JSON object")
    if FORBIDDEN_HEADERS.intersection(header):
        raise InvalidToken(Reason.FORBIDDEN_HEADER)
    if header.get("alg") not in ALGORITHMS:
        raise InvalidToken(Reason.UNSUPPORTED_ALG)
    kid = header.get("kid")
    if kid is None or kid == "":
        raise InvalidToken(Reason.MISSING_KID)
    if not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH:
        raise InvalidToken(Reason.MALFORMED, "kid is not a short string")
    return kid


def _verified_payload(token: str, key: Any) -> Claims:
    """PyJWT checks the signature with our key and our algorithm list, then parses the payload."""
    try:
        claims = jwt.decode(token, key=key, algorithms=list(ALGORITHMS), options=_DECODE_OPTIONS)
    except InvalidSignatureError:
        raise InvalidToken(Reason.BAD_SIGNATURE) from None
    except InvalidTokenError:
        raise InvalidToken(Reason.MALFORMED, "payload") from None
    except (ValueError, TypeError, RecursionError):
        raise InvalidToken(Reason.MALFORMED, "payload") from None
    if not isinstance(claims, dict):
        raise InvalidToken(Reason.MALFORMED, "payload is not a JSON object")
    return claims


def _decode_json_segment(segment: str) -> Any:
    """Decode the header segment; it is read before verification only to pick the key."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise InvalidToken(Reason.MALFORMED, "header is not base64url JSON") from None


def _audience_matches(aud: Any, client_ids: Iterable[str]) -> bool:
    allowed = set(client_ids)
    if isinstance(aud, str):
        return aud in allowed
    if isinstance(aud, list):
        return any(isinstance(item, str) and item in allowed for item in aud)
    return False
