"""Where clients learn to authenticate: the `WWW-Authenticate` challenge and the resource URL.

Every 401 and 403 of bearer authentication carries a challenge whose `resource_metadata`
parameter points at the RFC 9728 metadata (the MCP authorization spec's discovery), and, when
scopes are needed, the `scope` to ask for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from starlette.types import Scope

from mcp_service.errors import InsufficientScope, KeysUnavailable, Reason, Rejection
from mcp_service.refusals import Refusal, bearer_challenge, oauth_error, problem

WELL_KNOWN = "/.well-known/oauth-protected-resource"
# What a Host header may be before it is reflected (RFC 9110 7.2: uri-host [":" port]): a DNS
# name (letters, digits, "-", "_" for container names, dots), an IPv4 address or a bracketed
# IPv6 one, and a port of up to five digits. Nothing else is ever written into a challenge.
_HOST = re.compile(
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}"
    r"[A-Za-z0-9_])?)*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)
INVALID_HOST = problem(400, "invalid_host", "The Host header is not a valid host[:port].")


class Challenge:
    """The `WWW-Authenticate` values that point clients at the RFC 9728 metadata."""

    def __init__(self, public_base_url: str, mcp_path: str, scopes: Iterable[str] = ()) -> None:
        self.public_base_url = public_base_url.rstrip("/")
        self.mcp_path = mcp_path
        self.scopes = tuple(scopes)

    def base_url(self, scope: Scope) -> str | None:
        """PUBLIC_BASE_URL, else the request's scheme and Host; None for a Host that is not a
        valid host[:port] (such a request gets INVALID_HOST)."""
        if self.public_base_url:
            return self.public_base_url
        host = _header(scope, b"host")
        if host is None or len(host) > 261 or not _HOST.fullmatch(host):
            return None
        port = host.rpartition(":")[2] if not host.endswith("]") and ":" in host else ""
        if port and int(port) > 65_535:
            return None
        scheme = "https" if scope.get("scheme") == "https" else "http"
        return f"{scheme}://{host}"

    def metadata_url(self, base_url: str) -> str:
        return f"{base_url}{WELL_KNOWN}{self.mcp_path}"

    def header(self, base_url: str, rejection: Rejection | None) -> str:
        params: list[tuple[str, str]] = []
        if isinstance(rejection, InsufficientScope):
            params += [("error", "insufficient_scope"), ("scope", " ".join(rejection.scopes))]
        elif rejection is not None:
            params.append(("error", "invalid_token"))
        elif self.scopes:
            params.append(("scope", " ".join(self.scopes)))
        if rejection is not None:
            params.append(("error_description", rejection.description))
        params.append(("resource_metadata", self.metadata_url(base_url)))
        return bearer_challenge(params)

    def refusal(self, scope: Scope, rejection: Rejection | None) -> Refusal:
        """The answer to a request authentication refused (None: no token at all): 401 or 403
        with the challenge, or 503 with `Retry-After` when no signing key can be had."""
        if isinstance(rejection, KeysUnavailable):
            return oauth_error(
                503,
                "temporarily_unavailable",
                rejection.description,
                reason=rejection.reason.value,
                headers={"retry-after": str(max(1, math.ceil(rejection.retry_after)))},
            )
        base_url = self.base_url(scope)
        if base_url is None:
            return INVALID_HOST
        challenge = {"www-authenticate": self.header(base_url, rejection)}
        if rejection is None:
            return oauth_error(
                401,
                "unauthorized",
                "A bearer token is required.",
                reason=Reason.MISSING_TOKEN.value,
                headers=challenge,
            )
        error = "insufficient_scope" if rejection.status == 403 else "invalid_token"
        return oauth_error(
            rejection.status,
            error,
            rejection.description,
            reason=rejection.reason.value,
            headers=challenge,
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
