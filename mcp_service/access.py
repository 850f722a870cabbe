"""Who may see and call which tool: TOOL_SCOPES (every scope listed) and TOOL_GROUPS (any one
of the Cognito groups listed, from `cognito:groups`).

One rule set, read in two places: `scopes.ToolScopeCheck` refuses a `tools/call` at the HTTP
layer with a real 403, and `HideForbiddenTools`, a FastMCP middleware, leaves the tools a
caller may not call out of its `tools/list`. Both exist only when one of the settings is set,
so a server without them pays nothing per request. The rules name tools by the names the
served server lists, upstream tools by their namespaced names (`ns_tool`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastmcp.server.auth import AccessToken
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import Tool

from mcp_service.errors import ForbiddenGroup, InsufficientScope, Rejection

GROUPS_CLAIM = "cognito:groups"


class ToolAccess:
    def __init__(
        self,
        scopes: Mapping[str, Iterable[str]],
        groups: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.scopes = {name: tuple(needed) for name, needed in scopes.items() if needed}
        self.groups = {name: frozenset(any_of) for name, any_of in (groups or {}).items()}

    def __bool__(self) -> bool:
        return bool(self.scopes or self.groups)

    def refusal(self, tool: str, token: AccessToken | None) -> Rejection | None:
        """Why `token` may not call `tool`, or None. A missing group is reported before a
        missing scope: a caller who could never be let in is not asked to step up."""
        granted = token.scopes if token is not None else ()
        any_of = self.groups.get(tool)
        if any_of is not None and any_of.isdisjoint(groups_of(token)):
            return ForbiddenGroup(tool)
        needed = self.scopes.get(tool, ())
        if any(scope not in granted for scope in needed):
            return InsufficientScope(needed)
        return None


def groups_of(token: AccessToken | None) -> tuple[str, ...]:
    """The caller's Cognito groups (the verifier has checked the claim is a list of strings)."""
    groups = (token.claims or {}).get(GROUPS_CLAIM) if token is not None else None
    return tuple(groups) if isinstance(groups, list) else ()


class HideForbiddenTools(Middleware):
    """`tools/list` without the tools the caller may not call. It overrides `__call__`, as
    `observability.tools.ToolCallMetrics` does, so that every other message passes straight
    through instead of through the base class's chain of typed hooks."""

    def __init__(self, access: ToolAccess) -> None:
        self.access = access

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if context.method != "tools/list":
            return await call_next(context)
        tools: Sequence[Tool] = await call_next(context)
        token = get_access_token()
        return [tool for tool in tools if self.access.refusal(tool.name, token) is None]
