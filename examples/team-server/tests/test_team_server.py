"""The team server behind mcp-service: every component reachable with a verified token, the
ops-only tool hidden from and refused to everyone else, and nothing without a token."""

from __future__ import annotations

import httpx
import pytest
from conftest import Stack
from fastmcp import Client


async def test_every_component_is_listed(stack: Stack) -> None:
    async with Client(f"{stack.url}/mcp", auth=stack.token("ops")) as client:
        tools = {tool.name for tool in await client.list_tools()}
        resources = [str(resource.uri) for resource in await client.list_resources()]
        templates = [t.uri_template for t in await client.list_resource_templates()]
        prompts = [prompt.name for prompt in await client.list_prompts()]
    assert tools == {"find_runbook", "whoami", "deploy"}
    assert (resources, templates, prompts) == (
        ["runbooks://index"],
        ["runbooks://{name}"],
        ["incident_review"],
    )


async def test_the_async_tool_answers_through_the_stack(stack: Stack) -> None:
    async with Client(f"{stack.url}/mcp", auth=stack.token()) as client:
        result = await client.call_tool("find_runbook", {"topic": "DB"})
    assert result.data == ["db-failover"]


async def test_a_tool_sees_the_verified_caller(stack: Stack) -> None:
    async with Client(f"{stack.url}/mcp", auth=stack.token("ops", sub="bob")) as client:
        result = await client.call_tool("whoami", {})
    assert result.structured_content == {"subject": "bob", "groups": ["ops"]}


async def test_the_template_and_the_prompt_answer(stack: Stack) -> None:
    async with Client(f"{stack.url}/mcp", auth=stack.token()) as client:
        [runbook] = await client.read_resource("runbooks://cache-flush")
        prompt = await client.get_prompt("incident_review", {"summary": "disk full"})
    assert getattr(runbook, "text", None) == "Drain, flush, refill."
    assert "disk full" in str(getattr(prompt.messages[0].content, "text", ""))


async def test_the_ops_tool_is_served_to_ops(stack: Stack) -> None:
    async with Client(f"{stack.url}/mcp", auth=stack.token("ops")) as client:
        result = await client.call_tool("deploy", {"service": "api", "version": "1.2"})
    assert result.data == "deploying api 1.2"


async def test_the_ops_tool_is_hidden_from_everyone_else(stack: Stack) -> None:
    async with Client(f"{stack.url}/mcp", auth=stack.token("developers")) as client:
        tools = {tool.name for tool in await client.list_tools()}
    assert "deploy" not in tools


def test_the_ops_tool_is_refused_to_everyone_else_with_forbidden_group(stack: Stack) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "deploy", "arguments": {"service": "api", "version": "1"}},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {stack.token('developers')}",
    }
    response = httpx.post(f"{stack.url}/mcp", json=call, headers=headers, timeout=10)
    assert response.status_code == 403
    assert response.json()["reason"] == "forbidden_group"


@pytest.mark.parametrize("path", ["/mcp", "/team/anything"])
def test_nothing_is_served_without_a_token(stack: Stack, path: str) -> None:
    response = httpx.post(f"{stack.url}{path}", json={}, timeout=10)
    assert response.status_code == 401
