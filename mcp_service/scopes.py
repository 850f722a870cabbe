"""Per-tool scopes and groups (mcp_service.access), checked at the HTTP layer so a caller gets
a real 403.

FastMCP's own `auth=` checks answer HTTP 200 with "Unknown tool"; the MCP authorization spec
asks for 403 `insufficient_scope` naming the scope, so the client can step up. `ToolScopeCheck`,
a layer inside the body limit, reads the JSON-RPC body for `tools/call` names; a missing group
is 403 `forbidden_group` without a challenge. `access.HideForbiddenTools` leaves the same tools
out of `tools/list`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastmcp.server.auth import AccessToken
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_service.access import ToolAccess
from mcp_service.body import read_body, replay
from mcp_service.challenge import Challenge
from mcp_service.errors import ForbiddenGroup, Reason, Rejection
from mcp_service.refusals import problem
from observability.asgi import direct
from observability.logs import annotate

log = logging.getLogger("mcp_service.auth")

# Where ToolScopeCheck leaves the names of the tools a request calls, once it has parsed the
# body, so that the rate limiter does not parse it again.
TOOL_CALLS = "mcp_service.tool_calls"

FORBIDDEN_GROUP = problem(
    403,
    Reason.FORBIDDEN_GROUP.value,
    "The caller is in none of the groups this tool is for.",
    title="Forbidden",
)


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


class ToolScopeCheck:
    """ASGI middleware inside the body limit: a `tools/call` of a tool whose TOOL_SCOPES the
    caller's token lacks gets 403 `insufficient_scope` with the step-up challenge; one whose
    TOOL_GROUPS the caller is in none of gets 403 `forbidden_group`."""

    def __init__(
        self,
        app: ASGIApp,
        access: ToolAccess,
        challenge: Challenge,
        *,
        on_outcome: Callable[[str], None] | None = None,
        on_refused: Callable[[str, AccessToken], None] | None = None,
    ) -> None:
        self.app = direct(app)  # a bound __call__: cheaper to call per request
        self.access = access
        self.challenge = challenge
        self.on_outcome = on_outcome
        self.on_refused = on_refused  # the audit log's, with AUDIT_LOG

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if user is None or scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        names = called_tools(body)
        token = user.access_token
        for name in names:
            rejection = self.access.refusal(name, token)
            if rejection is not None:
                await self._refuse(scope, send, rejection, name, token)
                return
        scope[TOOL_CALLS] = names
        await self.app(scope, replay(body, receive), send)

    async def _refuse(
        self, scope: Scope, send: Send, rejection: Rejection, tool: str, token: AccessToken
    ) -> None:
        annotate("reason", rejection.reason.value)
        if self.on_outcome is not None:
            self.on_outcome(rejection.reason.value)
        if self.on_refused is not None:
            self.on_refused(tool, token)
        log.info("request refused", extra={"reason": rejection.reason.value, "status": 403})
        if isinstance(rejection, ForbiddenGroup):
            await FORBIDDEN_GROUP.send(send)
        else:
            await self.challenge.refusal(scope, rejection).send(send)
