"""A server of the tests' own (tests/support/own_server.py) served with MCP_APP through the
whole stack, over real HTTP, with fastmcp.Client (both protocol generations) and the mcp SDK's
client: every kind of component listed and used, per-tool scopes and groups, and what the
server declared itself (annotations, output schema, lifespan, `auth=` checks, custom routes)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from tests.support.pool import JWKS_PATH, bearer_headers, pool_env
from tests.support.processes import JwksServer, ServiceProcess
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.support.own_server:create_server"
MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])
TOOLS = {"lookup", "wait", "shout", "quarterly_report", "deploy", "whoami"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = pool_env(
        jwks.url,
        MCP_APP=APP,
        PYTHONPATH=str(ROOT),
        TOOL_SCOPES=json.dumps({"quarterly_report": ["mcp/reports"]}),
        TOOL_GROUPS=json.dumps({"deploy": ["ops", "release"]}),
    )
    with jwks.running(), ServiceProcess(env, tmp_path_factory.mktemp("own")) as service:
        yield service


def token(scope: str = "openid mcp/tools", groups: list[str] | None = None) -> str:
    return TokenFactory().token(scope=scope, **{"cognito:groups": groups or []})


PLAIN = token()
EVERYTHING = token("openid mcp/tools mcp/reports", ["release", "admins"])


@asynccontextmanager
async def sdk_session(url: str, bearer: str) -> AsyncIterator[Any]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
    async with (
        http,
        streamable_http_client(f"{url}/mcp", http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


def call(url: str, bearer: str, tool: str) -> httpx.Response:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool}}
    return httpx.post(f"{url}/mcp", json=message, headers=bearer_headers(bearer), timeout=30)


@MODES
async def test_fastmcp_client_lists_every_kind_of_component(
    server: ServiceProcess, mode: str
) -> None:
    async with Client(f"{server.url}/mcp", auth=EVERYTHING, mode=mode) as client:  # type: ignore[arg-type]
        tools = {tool.name for tool in await client.list_tools()}
        resources = [str(r.uri) for r in await client.list_resources()]
        templates = [t.uri_template for t in await client.list_resource_templates()]
        prompts = [p.name for p in await client.list_prompts()]
    assert (tools, resources, templates, prompts) == (
        TOOLS,
        ["config://settings"],
        ["items://{item_id}"],
        ["review"],
    )


@MODES
async def test_fastmcp_client_uses_every_kind_of_component(
    server: ServiceProcess, mode: str
) -> None:
    async with Client(f"{server.url}/mcp", auth=PLAIN, mode=mode) as client:  # type: ignore[arg-type]
        looked_up = await client.call_tool("lookup", {"term": "tulip"})
        shouted = await client.call_tool("shout", {"text": "hey"})
        setting = await client.read_resource("config://settings")
        item = await client.read_resource("items://42")
        prompt = await client.get_prompt("review", {"topic": "the stack"})
    assert looked_up.data == "tulip in spring"  # the server's own lifespan ran
    assert shouted.structured_content == {"text": "HEY", "length": 3}
    assert [getattr(c, "text", None) for c in (*setting, *item)] == ["colour=blue", "item 42"]
    assert getattr(prompt.messages[0].content, "text", None) == "Please review the stack."


async def test_the_mcp_sdk_client_lists_and_uses_every_kind_of_component(
    server: ServiceProcess,
) -> None:
    async with sdk_session(server.url, PLAIN) as session:
        tools = {tool.name for tool in (await session.list_tools()).tools}
        looked_up = await session.call_tool("lookup", {"term": "rose"})
        shouted = await session.call_tool("shout", {"text": "ok"})
        templates = (await session.list_resource_templates()).resource_templates
        item = await session.read_resource("items://7")
        prompts = (await session.list_prompts()).prompts
        prompt = await session.get_prompt("review", {"topic": "x"})
    assert tools == TOOLS - {"quarterly_report", "deploy", "whoami"}
    assert looked_up.structured_content == {"result": "rose in spring"}
    assert shouted.structured_content == {"text": "OK", "length": 2}
    assert [t.uri_template for t in templates] == ["items://{item_id}"]
    assert getattr(item.contents[0], "text", None) == "item 7"
    assert [p.name for p in prompts] == ["review"]
    assert getattr(prompt.messages[0].content, "text", None) == "Please review x."


async def test_the_servers_own_annotations_descriptions_and_output_schema_are_kept(
    server: ServiceProcess,
) -> None:
    async with Client(f"{server.url}/mcp", auth=PLAIN) as client:
        tools = {tool.name: tool for tool in await client.list_tools()}
    shout = tools["shout"]
    assert shout.annotations is not None
    assert (shout.annotations.title, shout.annotations.destructive_hint) == ("Shout", True)
    assert shout.annotations.read_only_hint is False
    assert shout.description == "Upper-case a text."
    assert shout.output_schema is not None
    assert set(shout.output_schema["properties"]) == {"text", "length"}
    assert tools["lookup"].annotations is None  # nothing stamped on a tool that declared none


async def test_the_servers_own_middleware_runs(server: ServiceProcess) -> None:
    async with Client(f"{server.url}/mcp", auth=PLAIN) as client:
        result = await client.call_tool("shout", {"text": "a"})
    assert (result.meta or {}).get("stamped-by") == "own-server"


@pytest.mark.parametrize(
    ("tool", "bearer"),
    [
        ("quarterly_report", token("openid mcp/tools", ["ops"])),
        ("deploy", token("openid mcp/tools mcp/reports", ["premium"])),
    ],
    ids=["without-the-scope", "in-none-of-the-groups"],
)
async def test_a_guarded_tool_is_hidden_from_a_caller_without_its_scope_or_group(
    server: ServiceProcess, tool: str, bearer: str
) -> None:
    async with Client(f"{server.url}/mcp", auth=bearer) as client:
        listed = {t.name for t in await client.list_tools()}
    assert tool not in listed
    assert "lookup" in listed


def test_a_tool_whose_scope_is_missing_is_refused_with_a_step_up_challenge(
    server: ServiceProcess,
) -> None:
    response = call(server.url, token("openid mcp/tools", ["ops"]), "quarterly_report")
    assert response.status_code == 403
    assert response.json()["reason"] == "insufficient_scope"
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="mcp/reports"' in challenge


def test_a_tool_for_groups_the_caller_is_in_none_of_is_refused_without_a_challenge(
    server: ServiceProcess,
) -> None:
    response = call(server.url, token("openid mcp/tools mcp/reports", ["premium"]), "deploy")
    assert response.status_code == 403
    assert response.json()["reason"] == "forbidden_group"
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    ("tool", "bearer", "expected"),
    [
        ("quarterly_report", token("openid mcp/tools mcp/reports"), "report"),
        ("deploy", token("openid mcp/tools", ["ops"]), "deployed"),
        ("deploy", token("openid mcp/tools", ["release"]), "deployed"),
    ],
    ids=["with-the-scope", "in-one-group", "in-another-group"],
)
async def test_a_guarded_tool_is_served_to_a_caller_with_its_scope_or_one_of_its_groups(
    server: ServiceProcess, tool: str, bearer: str, expected: str
) -> None:
    async with Client(f"{server.url}/mcp", auth=bearer) as client:
        assert tool in {t.name for t in await client.list_tools()}
        assert (await client.call_tool(tool, {})).data == expected


async def test_the_servers_own_auth_check_sees_the_verified_token(server: ServiceProcess) -> None:
    admin = TokenFactory().token(sub="admin-1", **{"cognito:groups": ["admins"]})
    async with Client(f"{server.url}/mcp", auth=admin) as client:
        assert "whoami" in {t.name for t in await client.list_tools()}
        assert (await client.call_tool("whoami", {})).data == "admin-1"
    async with Client(f"{server.url}/mcp", auth=PLAIN) as client:
        assert "whoami" not in {t.name for t in await client.list_tools()}
        with pytest.raises(ToolError):
            await client.call_tool("whoami", {})


@pytest.mark.parametrize(("bearer", "status"), [(None, 401), (PLAIN, 200)])
def test_the_servers_custom_route_is_served_behind_authentication(
    server: ServiceProcess, bearer: str | None, status: int
) -> None:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    response = httpx.get(f"{server.url}/own/status", headers=headers, timeout=10)
    assert response.status_code == status
    if status == 200:
        assert response.json() == {"status": "fine"}
