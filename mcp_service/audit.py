"""AUDIT_LOG: one JSON line per `tools/call`, `resources/read` and `prompts/get`.

A FastMCP middleware, outermost in the served server's chain, so it sees the parsed request
and the outcome of everything inside it; `refused()` records the calls the HTTP layer refused
first (TOOL_SCOPES, TOOL_GROUPS). A line names who (subject, client_id), what (`component`:
the tool or prompt name; for a resource, its URI or, for a template's resource, the URI
template, never the concrete URI, which carries the template's arguments), through which
upstream, the outcome and the duration; the formatter adds the timestamp and request id. Never
arguments, results or tokens. Off by default: a line costs about as much as the access log's
(docs/performance.md#the-audit-log), and without AUDIT_LOG this middleware is not installed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from fastmcp.server.auth import AccessToken
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.utilities.exceptions import is_timeout_error
from mcp.shared.exceptions import MCPError

from mcp_service.components import OTHER, Components
from mcp_service.upstreams import upstream_of
from observability.tools import outcome_of

log = logging.getLogger("mcp_service.audit")

AUDITED = frozenset({"tools/call", "resources/read", "prompts/get"})
MAX_NAME = 128  # characters of a tool or prompt name as sent


class AuditLog(Middleware):
    def __init__(self, components: Components, upstreams: Iterable[str] = ()) -> None:
        self.components = components
        self.upstreams = frozenset(upstreams)

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        method = context.method
        if method not in AUDITED:
            return await call_next(context)
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await call_next(context)
            outcome = "error" if getattr(result, "is_error", False) else "ok"
            return result
        except Exception as exc:
            outcome = audit_outcome(exc)
            raise
        finally:
            self.write(
                method,
                component_of(self.components, method, context.message),
                outcome,
                time.perf_counter() - started,
                upstream=upstream_of(method, context.message, self.upstreams),
            )

    def refused(self, tool: str, token: AccessToken) -> None:
        """A `tools/call` the HTTP layer refused before FastMCP saw it."""
        upstream = upstream_of("tools/call", _Named(tool), self.upstreams)
        self.write("tools/call", tool[:MAX_NAME], "forbidden", 0.0, token, upstream=upstream)

    def write(
        self,
        method: str,
        component: str,
        outcome: str,
        seconds: float,
        token: AccessToken | None = None,
        *,
        upstream: str | None = None,
    ) -> None:
        token = token or get_access_token()
        log.info(
            "audit",
            extra={
                "method": method,
                "subject": token.subject if token is not None else None,
                "client_id": token.client_id if token is not None else None,
                "component": component,
                "upstream": upstream,
                "outcome": outcome,
                "duration_ms": round(seconds * 1000, 3),
            },
        )


class _Named:
    """A message with just a name, for a call refused before FastMCP parsed it."""

    def __init__(self, name: str) -> None:
        self.name = name


def component_of(components: Components, method: str, message: Any) -> str:
    if method == "resources/read":
        uri = getattr(message, "uri", None)
        return components.resource_label(str(uri)) if uri is not None else OTHER
    name = getattr(message, "name", None)
    return name[:MAX_NAME] if isinstance(name, str) else OTHER


def audit_outcome(exc: BaseException) -> str:
    """`timeout` for FastMCP's tool timeout (TOOL_TIMEOUT_SECONDS) or an upstream's, which
    FastMCP wraps in a `ToolError` (hence the walk down the causes), else the metrics' outcome
    of the exception."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError) or is_timeout_error(cause):
            return "timeout"
        if isinstance(cause, MCPError) and "timed out" in str(cause):
            return "timeout"
        cause = cause.__cause__
    return outcome_of(exc)
