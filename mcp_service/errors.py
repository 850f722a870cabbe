"""Every exception of the service, and the reason codes a refusal carries.

The exceptions of the three packages, as a reader meets them (`cache.errors` holds the shared
state's own, which may not import this module):

* `Rejection` -- a request refused by authentication; `reason` is a `Reason` code,
  `status` the HTTP status the transport answers with. Never carries the token.
    * `InvalidToken` -- 401 `invalid_token`: the token must not be honoured.
    * `InsufficientScope` -- 403 `insufficient_scope`: a valid token lacks a scope.
    * `ForbiddenGroup` -- 403 `forbidden_group`: the caller is in none of a tool's groups
      (no step-up challenge: a client cannot ask for a group).
    * `KeysUnavailable` -- 503 with `Retry-After`: no signing key can be had right now.
* `BodyTooLarge` -- a request body read past its limit (413).
* `SettingsError` -- settings that cannot be used; `problems` holds one (VARIABLE, message)
  per line; the CLI prints them and exits 2.
* `IssuerKeyError` -- the embedded issuer's key file is unusable (exit 2 at start).
* `CommandError` -- a CLI operation failed (exit 1), with one line to print:
    * `TokenRequestError` -- `token`/`call`: the token endpoint refused or was unreachable.
    * `CallError` -- `call`: the MCP server refused or the tool failed.
    * `RevokeError` -- `revoke`: Redis could not record or list revocations.
* `cache.errors.CacheError` -- the shared state's failures (JWKS, Redis connection,
  revocation store); request-path code turns them into a `Rejection` or a degraded answer.

A reason code is a bounded label: safe for metrics, logs and the `error_description` a client
sees. It never carries the token or anything read from it.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    MISSING_TOKEN = "missing_token"
    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    UNSUPPORTED_ALG = "unsupported_alg"
    FORBIDDEN_HEADER = "forbidden_header"
    MISSING_KID = "missing_kid"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_TOKEN_USE = "wrong_token_use"
    WRONG_CLIENT = "wrong_client"
    WRONG_AUDIENCE = "wrong_audience"
    REVOKED = "revoked"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    FORBIDDEN_GROUP = "forbidden_group"
    JWKS_UNAVAILABLE = "jwks_unavailable"


DESCRIPTIONS: dict[Reason, str] = {
    Reason.MISSING_TOKEN: "No bearer token was sent.",
    Reason.MALFORMED: "The token is not a well-formed JWT.",
    Reason.OVERSIZED: "The token is larger than this server accepts.",
    Reason.UNSUPPORTED_ALG: "The token is not signed with an accepted algorithm (RS256).",
    Reason.FORBIDDEN_HEADER: "The token header names a key source or critical extension this "
    "server does not accept.",
    Reason.MISSING_KID: "The token header has no key id (kid).",
    Reason.UNKNOWN_KID: "The token is signed with a key the user pool does not publish.",
    Reason.BAD_SIGNATURE: "The token signature does not verify.",
    Reason.MISSING_CLAIM: "The token lacks a required claim.",
    Reason.EXPIRED: "The token has expired.",
    Reason.NOT_YET_VALID: "The token is not valid yet (nbf or iat in the future).",
    Reason.WRONG_ISSUER: "The token was issued by another issuer.",
    Reason.WRONG_TOKEN_USE: "The token is not of an accepted kind (token_use).",
    Reason.WRONG_CLIENT: "The token was issued to an app client this server does not accept.",
    Reason.WRONG_AUDIENCE: "The ID token was issued for another audience.",
    Reason.REVOKED: "The token has been revoked.",
    Reason.INSUFFICIENT_SCOPE: "The token lacks a scope this request needs.",
    Reason.FORBIDDEN_GROUP: "The caller is in none of the groups this tool is for.",
    Reason.JWKS_UNAVAILABLE: "The signing keys of the user pool cannot be fetched right now.",
}


class Rejection(Exception):
    """A refused request; `status` is the HTTP status the transport layer answers with."""

    status = 401

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.reason]


class InvalidToken(Rejection):
    """The token must not be honoured: 401 with `error="invalid_token"`."""


class InsufficientScope(Rejection):
    """A valid token without a needed scope: 403 with `error="insufficient_scope"`."""

    status = 403

    def __init__(self, scopes: tuple[str, ...]) -> None:
        super().__init__(Reason.INSUFFICIENT_SCOPE, " ".join(scopes))
        self.scopes = scopes


class ForbiddenGroup(Rejection):
    """A valid token whose `cognito:groups` has none of a tool's TOOL_GROUPS: 403, and no
    challenge (no token the client could ask for would carry a group)."""

    status = 403

    def __init__(self, tool: str) -> None:
        super().__init__(Reason.FORBIDDEN_GROUP, tool)


class KeysUnavailable(Rejection):
    """No usable signing key can be had: 503, and the client should retry later."""

    status = 503

    def __init__(self, detail: str = "", retry_after: float = 1.0) -> None:
        super().__init__(Reason.JWKS_UNAVAILABLE, detail)
        self.retry_after = retry_after


class BodyTooLarge(Exception):
    """A request body went past the limit it was read with."""


Problem = tuple[str, str]  # (VARIABLE, message): one line of a settings report


class SettingsError(Exception):
    """Settings that cannot be used; `problems` holds one (VARIABLE, message) per line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems))
        self.problems = problems


class IssuerKeyError(Exception):
    """The dev key file cannot be used (unreadable, not a key, or open to other users)."""


class CommandError(Exception):
    """A CLI operation that failed: reported as one line, exit status 1."""


class TokenRequestError(CommandError):
    """The token endpoint refused the request or could not be reached."""


class CallError(CommandError):
    """The MCP server refused the call, could not be reached, or the tool failed."""


class RevokeError(CommandError):
    """A revocation could not be written to or read from Redis."""
