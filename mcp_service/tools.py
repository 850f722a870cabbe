"""The MCP tools. Each reads its caller through FastMCP's `get_access_token()`."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, TypeAlias

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import require_scopes
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


TOOLS: tuple[Callable[..., Any], ...] = (add, get_user_info)
TOOL_NAMES = tuple(fn.__name__ for fn in TOOLS)


def register_tools(
    mcp: FastMCP[Any],
    tool_scopes: Mapping[str, tuple[str, ...]],
    *,
    timeout: float | None = None,
    tools: Iterable[Callable[..., Any]] = TOOLS,
) -> None:
    """Add the tools to `mcp`, each guarded by the scopes configured for it (if any). An async
    tool is bounded by FastMCP's `timeout` (TOOL_TIMEOUT_SECONDS), which cancels it; a sync tool
    runs in a worker thread that cannot be interrupted, where the timeout would only throw away
    a late result (at ~2 % of a call's CPU), so it gets none."""
    for fn in tools:
        scopes = tool_scopes.get(fn.__name__, ())
        auth = require_scopes(*scopes) if scopes else None
        bound = timeout if inspect.iscoroutinefunction(fn) else None
        mcp.tool(fn, annotations=READ_ONLY, auth=auth, timeout=bound)
