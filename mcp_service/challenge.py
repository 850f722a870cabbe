"""Where clients learn to authenticate: the `WWW-Authenticate` challenge and the resource URL.

Every 401 and 403 of bearer authentication carries a challenge whose `resource_metadata`
parameter points at the RFC 9728 metadata (the MCP authorization spec's discovery), and, when
scopes are needed, the `scope` to ask for.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Scope

from mcp_service.errors import InsufficientScope, Rejection
from mcp_service.refusals import bearer_challenge

WELL_KNOWN = "/.well-known/oauth-protected-resource"


class Challenge:
    """The `WWW-Authenticate` values that point clients at the RFC 9728 metadata."""

    def __init__(self, public_base_url: str, mcp_path: str, scopes: Iterable[str] = ()) -> None:
        self.public_base_url = public_base_url.rstrip("/")
        self.mcp_path = mcp_path
        self.scopes = tuple(scopes)

    def base_url(self, scope: Scope) -> str:
        if self.public_base_url:
            return self.public_base_url
        host = _header(scope, b"host") or "localhost"
        return f"{scope.get('scheme', 'http')}://{host}"

    def metadata_url(self, scope: Scope) -> str:
        return f"{self.base_url(scope)}{WELL_KNOWN}{self.mcp_path}"

    def header(self, scope: Scope, rejection: Rejection | None) -> str:
        params: list[tuple[str, str]] = []
        if isinstance(rejection, InsufficientScope):
            params += [("error", "insufficient_scope"), ("scope", " ".join(rejection.scopes))]
        elif rejection is not None:
            params.append(("error", "invalid_token"))
        elif self.scopes:
            params.append(("scope", " ".join(self.scopes)))
        if rejection is not None:
            params.append(("error_description", rejection.description))
        params.append(("resource_metadata", self.metadata_url(scope)))
        return bearer_challenge(params)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
