"""A server of the tests' own, served through the whole stack with MCP_APP: an async tool using
`Context`, a sync tool with annotations and an output schema, a resource, a template, a prompt,
tools for TOOL_SCOPES and TOOL_GROUPS to guard, one with FastMCP's own `auth=` check, a lifespan,
a FastMCP middleware and a custom route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastmcp import Context, FastMCP
from fastmcp.server.auth import require_roles
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from mcp.types import ToolAnnotations
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

SHOUT_ANNOTATIONS = ToolAnnotations(
    title="Shout", read_only_hint=False, destructive_hint=True, open_world_hint=False
)
ADMINS = require_roles("admins", extract=lambda claims: claims["cognito:groups"])


class Shouted(BaseModel):
    text: str
    length: int


@asynccontextmanager
async def lifespan(_server: FastMCP[Any]) -> AsyncIterator[dict[str, Any]]:
    yield {"catalogue": "spring"}


class Stamp(Middleware):
    """The server's own FastMCP middleware: marks every tool result it passes."""

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        result = await call_next(context)
        result.meta = {**(result.meta or {}), "stamped-by": "own-server"}
        return result


def create_server() -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("own-server", lifespan=lifespan)
    mcp.add_middleware(Stamp())

    @mcp.tool
    async def lookup(term: str, ctx: Context) -> str:
        """Look a term up in the catalogue the lifespan opened."""
        await ctx.info(f"looking up {term}")
        return f"{term} in {ctx.lifespan_context['catalogue']}"

    @mcp.tool
    async def wait(seconds: float) -> str:
        """Take `seconds` (past TOOL_TIMEOUT_SECONDS it is cancelled)."""
        await asyncio.sleep(seconds)
        return "waited"

    @mcp.tool(annotations=SHOUT_ANNOTATIONS)
    def shout(text: str) -> Shouted:
        """Upper-case a text."""
        return Shouted(text=text.upper(), length=len(text))

    @mcp.tool
    def quarterly_report() -> str:
        """A report TOOL_SCOPES guards."""
        return "report"

    @mcp.tool
    def deploy() -> str:
        """A deployment TOOL_GROUPS guards."""
        return "deployed"

    @mcp.tool(auth=ADMINS)
    def whoami() -> str:
        """The caller's subject, for admins only (FastMCP's own auth= check)."""
        token = get_access_token()
        return str(token.claims.get("sub")) if token is not None else "nobody"

    @mcp.resource("config://settings")
    def settings() -> str:
        """The server's settings."""
        return "colour=blue"

    @mcp.resource("items://{item_id}")
    def item(item_id: str) -> str:
        """One item by id."""
        return f"item {item_id}"

    @mcp.prompt
    def review(topic: str) -> str:
        """Ask for a review of a topic."""
        return f"Please review {topic}."

    @mcp.custom_route("/own/status", methods=["GET"])
    async def status(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "fine"})

    return mcp


mcp = create_server()
