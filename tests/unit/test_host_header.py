"""The Host header, when PUBLIC_BASE_URL is unset, is what the challenge and the metadata
reflect: one that is not a valid `host[:port]` is refused with 400, a valid one is reflected
as it parsed, and the metadata says it varies with it."""

from __future__ import annotations

import re

import pytest

from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.service import TWINS, make_service

pytestmark = TWINS
METADATA = "/.well-known/oauth-protected-resource/mcp"
ADD = rpc("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
HOSTILE = [
    'evil.example", error="pwned',
    "evil.example, error=x",
    "evil.example/path",
    "evil.example\\",
    "a b",
    "host:port",
    "host:99999",
    "[::1",
    "@evil.example",
    "user@evil.example",
    "",
    "x" * 300,
]


@pytest.mark.parametrize("host", HOSTILE)
@pytest.mark.parametrize("path", ["/mcp", METADATA])
async def test_an_invalid_host_is_refused_with_400(host: str, path: str) -> None:
    async with running(make_service().app) as client:
        if path == "/mcp":
            response = await client.post("/mcp", json=ADD, headers={**MCP_HEADERS, "Host": host})
        else:
            response = await client.get(path, headers={"Host": host})
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_host"
    assert "pwned" not in str(response.headers)


@pytest.mark.parametrize(
    "host", ["mcp.example.com", "MCP.Example.com:8443", "127.0.0.1:8000", "[::1]:8000", "mcp_1"]
)
async def test_a_valid_host_is_reflected_in_the_challenge_and_the_metadata(host: str) -> None:
    async with running(make_service().app) as client:
        refused = await client.post("/mcp", json=ADD, headers={**MCP_HEADERS, "Host": host})
        metadata = await client.get(METADATA, headers={"Host": host})
    assert refused.status_code == 401
    params = dict(re.findall(r'(\w+)="([^"]*)"', refused.headers["www-authenticate"]))
    assert params["resource_metadata"] == f"http://{host}{METADATA}"
    assert metadata.json()["resource"] == f"http://{host}/mcp"
    assert metadata.headers["vary"] == "Host"


async def test_with_a_public_base_url_the_host_is_not_read() -> None:
    service = make_service(public_base_url="https://mcp.example.com")
    async with running(service.app) as client:
        refused = await client.post("/mcp", json=ADD, headers={**MCP_HEADERS, "Host": "a b"})
        metadata = await client.get(METADATA, headers={"Host": "a b"})
    assert refused.status_code == 401
    assert metadata.json()["resource"] == "https://mcp.example.com/mcp"
    assert "vary" not in metadata.headers
