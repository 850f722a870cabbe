"""Per-tool required scopes, checked at the HTTP layer so a caller gets a real 403.

FastMCP's `require_scopes` alone hides a tool (HTTP 200, "Unknown tool"); the MCP
authorization spec asks for 403 `insufficient_scope` naming the scope, so the client can step
up. This reads the JSON-RPC body (already size-limited) for `tools/call` names; the tools are
registered with FastMCP's check as well, which also hides them from `tools/list`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp_service.errors import InsufficientScope

# Where BearerAuth leaves the names of the tools a request calls, once it has parsed the body,
# so that the rate limiter does not parse it again.
TOOL_CALLS = "mcp_service.tool_calls"


class ToolScopes:
    def __init__(self, required: Mapping[str, tuple[str, ...]]) -> None:
        self.required = {name: tuple(scopes) for name, scopes in required.items() if scopes}

    def __bool__(self) -> bool:
        return bool(self.required)

    def check(self, body: bytes, granted: frozenset[str]) -> list[str]:
        """Raise `InsufficientScope` if the body calls a tool whose scopes are not granted;
        return the names of the tools it calls."""
        names = called_tools(body)
        for name in names:
            needed = self.required.get(name, ())
            missing = tuple(scope for scope in needed if scope not in granted)
            if missing:
                raise InsufficientScope(needed)
        return names


def called_tools(body: bytes) -> list[str]:
    """Names of the tools a JSON-RPC message (or batch) calls; [] if it is not JSON."""
    try:
        message: Any = json.loads(body)
    except (ValueError, RecursionError):
        return []  # FastMCP answers the parse error; nothing here is executed
    messages = message if isinstance(message, list) else [message]
    names: list[str] = []
    for item in messages:
        if isinstance(item, dict) and item.get("method") == "tools/call":
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if isinstance(name, str):
                names.append(name)
    return names
