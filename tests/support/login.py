"""What the login tests' MCP clients share: token storage in memory, and a session that calls
both tools."""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

REDIRECT = "http://127.0.0.1:33418/callback"


class Browser(Protocol):
    """Whoever answers the authorization URL: a headless person (tests.support.browser) or a
    real browser (tests.support.chromium). Returns the redirect back to the client."""

    async def authorize(self, url: str, redirect_prefix: str) -> str: ...


class LoginRefused(Exception):
    """The authorization server sent the client back with an error (`access_denied`...)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class MemoryTokens:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def call_tools(url: str, http: httpx2.AsyncClient) -> tuple[Any, Any]:
    async with (
        http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        added = await session.call_tool("add", {"a": 5, "b": 3})
        who = await session.call_tool("get_user_info", {})
    return added.structured_content, who.structured_content


def headless_provider(
    mcp_url: str, person: Browser, storage: MemoryTokens, metadata_url: str | None = None
) -> OAuthClientProvider:
    """The SDK's OAuth provider whose "browser" is `person`: it follows the authorization URL
    and hands the SDK the code it landed with."""
    landed: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        landed["url"] = await person.authorize(url, REDIRECT)

    async def callback_handler() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(landed["url"]).query)
        if "error" in query:
            raise LoginRefused(query["error"][0])
        return AuthorizationCodeResult(
            code=query["code"][0], state=query["state"][0], iss=query["iss"][0]
        )

    return OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="SDK test client",
            redirect_uris=[AnyUrl(REDIRECT)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=metadata_url,
    )
