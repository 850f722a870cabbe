"""The built-in demo server, served when MCP_APP is not set: `add` and `get_user_info`.

A team's own server replaces it with `mcp-service serve --app MODULE:ATTR` (docs/own-server.md);
nothing else in the service names these tools. `create_server` builds a fresh instance on every
call, so each `build_service` gets a server of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, TypeAlias

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_access_token
from mcp.types import ToolAnnotations
from pydantic import Field

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


Number: TypeAlias = int | Annotated[float, Field(allow_inf_nan=False)]


def add(a: Number, b: Number) -> int | float:
    """Add two numbers and return the sum."""
    total = a + b
    if isinstance(total, float) and not math.isfinite(total):
        raise ToolError("the sum is too large to represent")
    return total


def get_user_info() -> dict[str, Any]:
    """Who is calling: subject, username, scopes, app client, token use and groups."""
    token = get_access_token()
    if token is None:  # unreachable behind BearerAuth; refuse rather than answer anonymously
        raise PermissionError("no authenticated caller")
    claims: Mapping[str, Any] = token.claims or {}
    groups = claims.get("cognito:groups")
    return {
        "user": claims.get("sub"),
        "username": claims.get("username", claims.get("cognito:username")),
        "scope": claims.get("scope", ""),
        "client_id": token.client_id,
        "token_use": claims.get("token_use"),
        "groups": list(groups) if isinstance(groups, list) else [],
    }


def create_server() -> FastMCP[Any]:
    """The demo server: two read-only tools."""
    mcp: FastMCP[Any] = FastMCP("mcp-service")
    mcp.tool(add, annotations=READ_ONLY)
    mcp.tool(get_user_info, annotations=READ_ONLY)
    return mcp
