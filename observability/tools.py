"""MCP tool calls by tool and outcome, timed inside FastMCP's dispatch.

A FastMCP middleware sees the parsed `tools/call` (the tool name without re-reading the body)
and the exception a failing tool raises. It overrides `__call__` rather than `on_call_tool`:
the base class builds a chain of three wrappers for every message, which this layer does not
need. A name that is not a registered tool is recorded as "other", never as sent.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from fastmcp.exceptions import AuthorizationError, DisabledError, NotFoundError, ValidationError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from pydantic import ValidationError as PydanticValidationError

TOOLS_CALL = "tools/call"


class ToolRecorder(Protocol):
    def tool_call(self, tool: str, outcome: str, seconds: float) -> None: ...


def outcome_of(exc: BaseException) -> str:
    if isinstance(exc, ValidationError | PydanticValidationError):
        return "invalid_arguments"
    if isinstance(exc, NotFoundError | DisabledError):
        return "not_found"
    if isinstance(exc, AuthorizationError):
        return "forbidden"
    return "error"


class ToolCallMetrics(Middleware):
    def __init__(self, recorder: ToolRecorder) -> None:
        self.recorder = recorder

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if context.method != TOOLS_CALL:
            return await call_next(context)
        name = getattr(context.message, "name", None)
        tool = name if isinstance(name, str) else "other"
        started = time.perf_counter()
        try:
            result = await call_next(context)
        except Exception as exc:
            self.recorder.tool_call(tool, outcome_of(exc), time.perf_counter() - started)
            raise
        outcome = "error" if getattr(result, "is_error", False) else "ok"
        self.recorder.tool_call(tool, outcome, time.perf_counter() - started)
        return result
