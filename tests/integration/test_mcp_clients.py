"""Real MCP clients over real HTTP against `mcp-service serve` with the embedded issuer."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import httpx2
import pytest
from fastmcp import Client

from tests.support.processes import ServiceProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with ServiceProcess({"APP_ENV": "local"}, tmp_path_factory.mktemp("serve")) as service:
        yield service


@pytest.fixture(scope="module")
def token(server: ServiceProcess) -> str:
    response = httpx.post(
        f"{server.url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("mcp-local-client", "mcp-local-secret"),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_fastmcp_client_calls_add(server: ServiceProcess, token: str, mode: str) -> None:
    async with Client(f"{server.url}/mcp", auth=token, mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("add", {"a": 5, "b": 3})
    assert result.data == 8


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_fastmcp_client_calls_get_user_info(
    server: ServiceProcess, token: str, mode: str
) -> None:
    async with Client(f"{server.url}/mcp", auth=token, mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("get_user_info", {})
    assert result.structured_content is not None
    assert result.structured_content["user"] == "mcp-local-client"
    assert result.structured_content["client_id"] == "mcp-local-client"
    assert result.structured_content["token_use"] == "access"
    assert result.structured_content["scope"] == "mcp/tools"


async def test_fastmcp_client_lists_the_tools_the_served_server_declares(
    server: ServiceProcess, token: str
) -> None:
    from mcp_service.components import components_of
    from mcp_service.demo import create_server

    async with Client(f"{server.url}/mcp", auth=token) as client:
        tools = await client.list_tools()
    assert {tool.name for tool in tools} == components_of(create_server()).tool_names


async def test_the_mcp_sdk_client_calls_both_tools(server: ServiceProcess, token: str) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http, streamable_http_client(f"{server.url}/mcp", http_client=http) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await session.initialize()
            added = await session.call_tool("add", {"a": 5, "b": 3})
            who = await session.call_tool("get_user_info", {})
    assert added.structured_content == {"result": 8}
    assert who.structured_content is not None
    assert who.structured_content["user"] == "mcp-local-client"


async def test_fastmcp_client_with_a_bad_token_is_refused(server: ServiceProcess) -> None:
    with pytest.raises(Exception):  # noqa: B017,PT011 - the client reports a 401 in several ways
        async with Client(f"{server.url}/mcp", auth="not.a.token") as client:
            await client.call_tool("add", {"a": 1, "b": 2})


def test_no_token_gets_401_with_a_challenge(server: ServiceProcess) -> None:
    response = httpx.post(
        f"{server.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert "error=" not in challenge
    assert re.search(r'resource_metadata="http://127\.0\.0\.1:\d+/\.well-known/', challenge)


def test_a_bad_token_gets_401_invalid_token(server: ServiceProcess) -> None:
    response = httpx.post(
        f"{server.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream", "Authorization": "Bearer x.y.z"},
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "resource_metadata=" in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]
)
def test_the_metadata_document_is_served(server: ServiceProcess, path: str) -> None:
    document = httpx.get(f"{server.url}{path}").json()
    assert document["resource"] == f"{server.url}/mcp"
    assert document["authorization_servers"] == [server.url]  # the login facade, locally


def test_the_server_log_holds_no_token(server: ServiceProcess, token: str) -> None:
    assert token not in server.log()
    assert token.split(".")[2] not in server.log()
