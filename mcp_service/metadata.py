"""RFC 9728 protected-resource metadata: where MCP clients learn which issuer to ask."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_service.challenge import INVALID_HOST, WELL_KNOWN, Challenge


class ResourceMetadata:
    def __init__(self, challenge: Challenge, issuer: str, scopes: Iterable[str]) -> None:
        self.challenge = challenge
        self.issuer = issuer
        self.scopes = sorted(set(scopes))

    @property
    def paths(self) -> tuple[str, str]:
        """The root form and the path-suffixed form (RFC 9728 section 3.1) MCP clients try."""
        return WELL_KNOWN, f"{WELL_KNOWN}{self.challenge.mcp_path}"

    def document(self, base_url: str) -> dict[str, object]:
        document: dict[str, object] = {
            "resource": f"{base_url}{self.challenge.mcp_path}",
            "authorization_servers": [self.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-service",
        }
        if self.scopes:
            document["scopes_supported"] = self.scopes
        return document

    async def endpoint(self, request: Request) -> Response:
        base_url = self.challenge.base_url(request.scope)
        if base_url is None:
            return INVALID_HOST.response()
        headers = {"Cache-Control": "public, max-age=300"}
        if not self.challenge.public_base_url:
            headers["Vary"] = "Host"  # the document names the Host it was asked on
        return JSONResponse(self.document(base_url), headers=headers)
