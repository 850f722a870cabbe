"""One JSON object per line on stdout: what CloudWatch Logs ingests from ECS.

Fields passed through `extra=` (route, status, reason, ...) become top-level keys. Every line
written while a request is being served also carries that request's id, route, and the
subject and client_id of its verified token once authentication has run, read from the
request's ASGI scope, which the outermost layer makes the current request (`RequestContext` is
the formatter's view of it); so a warning logged deep in a tool can be matched to its request
without threading the id through every call.

Callers never pass a token or a secret; `redact()` is the last line of defence for values that
look like a bearer token or a JWT.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, MutableMapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
# A JWT, or what is left of one cut short: a base64url JSON header ("eyJ") and a payload.
_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}(?:\.[\w-]*)?")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")


def redact(text: str) -> str:
    # Substring checks first: most values (methods, routes, ids) hold neither, and a regex
    # substitution per field is the largest cost of a log line.
    if "eyJ" in text:
        text = _JWT.sub("[redacted-jwt]", text)
    if "bearer" in text.lower():
        text = _BEARER.sub(r"\1[redacted]", text)
    return text


# What a request's log lines share lives in its ASGI scope, under these keys: the outermost
# layer stores two items there and makes the scope the current request (no object to build
# per request); `RequestContext` is the view the log formatter and tests read it through.
REQUEST_ID = "mcp_service.request_id"
ROUTE = "mcp_service.route"
FIELDS = "mcp_service.log_fields"


class RequestContext:
    """What the log lines of one request share. `fields` collects what the layers below learn
    (e.g. the rejection reason) for the request's access-log line."""

    __slots__ = ("scope",)

    def __init__(self, scope: MutableMapping[str, Any]) -> None:
        self.scope = scope

    @property
    def request_id(self) -> str | None:
        return self.scope.get(REQUEST_ID)

    @property
    def route(self) -> str | None:
        return self.scope.get(ROUTE)

    @property
    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = self.scope.setdefault(FIELDS, {})
        return fields

    def caller(self) -> dict[str, str]:
        """subject and client_id of the verified token, once authentication has set
        `scope["user"]` (Starlette's convention, which FastMCP's `AuthenticatedUser` follows)."""
        token = getattr(self.scope.get("user"), "access_token", None)
        found: dict[str, str] = {}
        subject = getattr(token, "subject", None)
        if isinstance(subject, str) and subject:
            found["subject"] = subject
        client_id = getattr(token, "client_id", None)
        if isinstance(client_id, str) and client_id:
            found["client_id"] = client_id
        return found


Scope = MutableMapping[str, Any]
_current: ContextVar[Scope | None] = ContextVar("mcp_request_scope", default=None)


def current_request() -> RequestContext | None:
    scope = _current.get()
    return RequestContext(scope) if scope is not None else None


# The ContextVar's own methods, not wrappers: the outermost layer calls them on every request,
# with the request's scope once it holds REQUEST_ID and ROUTE.
enter_request: Callable[[Scope | None], Token[Scope | None]] = _current.set
leave_request: Callable[[Token[Scope | None]], None] = _current.reset


def annotate(name: str, value: Any) -> None:
    """Attach a field to the current request's log lines (no-op outside a request)."""
    context = current_request()
    if context is not None:
        context.fields[name] = value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = current_request()
        if context is not None:
            entry["request_id"] = context.request_id
            entry["route"] = context.route
            entry.update(context.caller())
            _merge(entry, context.fields.items())
        _merge(
            entry,
            ((k, v) for k, v in record.__dict__.items() if k not in _STANDARD and k[:1] != "_"),
        )
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, separators=(",", ":"))


def _merge(entry: dict[str, Any], fields: Iterable[tuple[str, Any]]) -> None:
    for key, value in fields:
        entry[key] = redact(value) if isinstance(value, str) else value


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger (ours, uvicorn's, FastMCP's) through one JSON handler."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastmcp", "mcp"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # The MCP SDK logs "Terminating session: None" at INFO after every stateless request: a
    # line per call that says nothing and costs as much as an access-log line.
    chatty = logging.getLogger("mcp.server.streamable_http")
    chatty.setLevel(logging.NOTSET if logging.getLevelName(level) == logging.DEBUG else "WARNING")
