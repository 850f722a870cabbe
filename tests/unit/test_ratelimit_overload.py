"""Overload protection: the cap on requests in flight and the tool timeout."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.service import TWINS, make_service
from tests.support.tokens import TokenFactory

pytestmark = TWINS  # every behaviour here, through both twins of each hot path

ADD = rpc("tools/call", {"name": "add", "arguments": {"a": 5, "b": 3}})


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()


def bearer(token: str) -> dict[str, str]:
    return {**MCP_HEADERS, "Authorization": f"Bearer {token}"}


async def test_past_the_in_flight_cap_a_request_gets_503_at_once(tokens: TokenFactory) -> None:
    release = asyncio.Event()
    body = json.dumps(ADD).encode()

    async def slow_body() -> Any:
        await release.wait()
        yield body

    headers = {**bearer(tokens.token()), "Content-Length": str(len(body))}
    async with running(make_service(max_in_flight=1).app) as client:
        held = asyncio.create_task(client.post("/mcp", content=slow_body(), headers=headers))
        await asyncio.sleep(0.1)
        shed = await asyncio.wait_for(client.post("/mcp", json=ADD, headers=bearer("x")), 5)
        health = await client.get("/healthz")
        release.set()
        admitted = await asyncio.wait_for(held, 5)
        after = await client.post("/mcp", json=ADD, headers=bearer(tokens.token()))
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    assert shed.json()["reason"] == "overloaded"
    assert health.status_code == 200
    assert admitted.status_code == 200
    assert after.status_code == 200


async def slow_lookup(seconds: float) -> str:
    """An async tool that takes its time."""
    await asyncio.sleep(seconds)
    return "done"


def slow_sum(a: int, b: int) -> int:
    """A sync tool: FastMCP runs it in a worker thread."""
    return a + b


def served(seconds: float, *tools: Any) -> Any:
    """A server of the test's own with `tools`, after the service was built around it."""
    from fastmcp import FastMCP

    mcp: FastMCP[Any] = FastMCP("t")
    for tool in tools:
        mcp.tool(tool)
    make_service(server=mcp, tool_timeout_seconds=seconds)
    return mcp


async def test_an_async_tool_past_the_tool_timeout_is_cancelled_with_an_error() -> None:
    from fastmcp import Client
    from fastmcp.exceptions import ToolError

    mcp = served(0.2, slow_lookup)
    async with Client(mcp) as client:
        assert (await client.call_tool("slow_lookup", {"seconds": 0})).data == "done"
        started = asyncio.get_running_loop().time()
        with pytest.raises(ToolError, match="timed out"):
            await client.call_tool("slow_lookup", {"seconds": 5})
        assert asyncio.get_running_loop().time() - started < 2


async def test_only_async_tools_get_the_timeout() -> None:
    mcp = served(12.5, slow_lookup, slow_sum)
    timeouts = {name: (await mcp.get_tool(name)).timeout for name in ("slow_lookup", "slow_sum")}
    assert timeouts == {"slow_lookup": 12.5, "slow_sum": None}


async def test_a_timeout_the_server_set_itself_is_kept() -> None:
    from fastmcp import FastMCP

    mcp: FastMCP[Any] = FastMCP("t")
    mcp.tool(slow_lookup, timeout=3.0)
    make_service(server=mcp, tool_timeout_seconds=12.5)
    assert (await mcp.get_tool("slow_lookup")).timeout == 3.0  # type: ignore[union-attr]
