"""The fast path: a stateless JSON request FastMCP answers without the SDK's per-request transport.

FastMCP's stateless streamable HTTP app builds a transport, memory streams, a task group and a
server session for every request and tears them down after it, about 60 % of a tool call's
CPU. For what stateless JSON traffic is made of (one JSON-RPC request, not a batch or a
notification, POSTed to the MCP path with an `Accept` that admits `application/json` at a
handshake-era protocol version, for the methods in FAST_METHODS), `FastPath` hands the request
to the same kernel the transport feeds: the SDK's `ServerRunner` (its server middleware, with
FastMCP's root dispatch, params validation, the handler FastMCP registered, the per-version
result sieve), with the request context the transport would have given it, and writes the
JSON-RPC answer the transport would have written. The loaded app's FastMCP middleware,
argument validation, `auth=` checks, visibility, timeouts and result conversion therefore run
as they do on the SDK path.

A tools/call of the plain shape (a name and arguments, nothing else in its params) has a hot
twin of the runner (`FastPath._call_tool`): the same root dispatch, handler and result sieve,
without the checks its shape has already settled and without FastMCP's spans when they would
record nothing (docs/performance.md, "the hot tool call").

It sits innermost in `http_app(middleware=...)`, inside FastMCP's `RequestContextMiddleware`
(what `get_access_token()` reads) and its Host/Origin guard. Everything else goes to the SDK
path untouched, the body it read replayed: other methods and HTTP verbs, batches,
notifications, a session id, the per-request protocol generation, a body the classifier cannot
read cheaply, a tool that takes FastMCP's `Context` (it may talk back to the client) or is not a
function tool of the server itself (mounted, an upstream's, unknown: never looked up), an app
with its own FastMCP auth provider, and any FastMCP or MCP SDK release it was not proven
against (`fast_path_supported()`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, ClassVar, Final

import anyio
import fastmcp
from fastmcp import FastMCP
from fastmcp.server.context import Context
from fastmcp.server.dependencies import bind_request_context
from fastmcp.server.low_level import FastMCPServerMiddleware
from fastmcp.server.middleware.middleware import _interior_dispatched
from fastmcp.telemetry import _SUPPRESS_KEY
from fastmcp.tools.function_tool import FunctionTool
from fastmcp.utilities.types import find_kwarg_by_type
from mcp.server.connection import _NO_CHANNEL, Connection
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.request_state import RequestStateBoundary
from mcp.server.runner import ServerRunner, _dump_result, aclose_shielded
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp.types import DEFAULT_NEGOTIATED_VERSION, ErrorData, JSONRPCError
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from opentelemetry import context as otel_context
from opentelemetry.trace import ProxyTracerProvider, get_tracer_provider
from pydantic import TypeAdapter, ValidationError
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_service.body import read_body, replay

logger = logging.getLogger(__name__)

FAST_METHODS: Final = frozenset(
    {
        "tools/call",
        "tools/list",
        "resources/read",
        "resources/list",
        "resources/templates/list",
        "prompts/get",
        "prompts/list",
        "ping",
    }
)
# The releases the fast path was proven identical against (the differential tests); any other
# release of either goes to the SDK path.
PROVEN: Final = {"fastmcp": ((4, 2, 3), (4, 3)), "mcp": ((2, 3, 0), (2, 4))}
_REQUEST_KEYS: Final = frozenset({"jsonrpc", "id", "method", "params"})
# The tools/call params the hot twin takes: a name and arguments, nothing the request-state
# boundary, the task extension or the per-request `_meta` would act on.
_PLAIN_CALL_KEYS: Final = frozenset({"name", "arguments"})
_ID_BOUND: Final = 2**63
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
# pydantic-core's JSON reader and writer, the SDK transport's own.
_JSON: Final = TypeAdapter[Any](Any)


def _release(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in text.split(".")[:3])
    except ValueError:
        return None


def fast_path_supported() -> bool:
    """Whether the installed FastMCP and MCP SDK are releases the fast path was proven on."""
    for package, (lowest, below) in PROVEN.items():
        release = _release(version(package))
        if release is None or not lowest <= release < below:
            return False
    return True


def fast_path_layers(server: FastMCP[Any], path: str) -> list[Middleware]:
    """The `http_app(middleware=...)` entry serving `server`'s fast path at `path`; none when
    the installed releases are not the proven ones or the app brings its own FastMCP auth."""
    if not fast_path_supported() or server.auth is not None:
        return []
    return [Middleware(FastPath, server=server, path=path)]


def _admits_json(accept: bytes) -> bool:
    """`Accept` admits application/json, with the SDK's wildcard rules."""
    for media in accept.decode("latin-1").split(","):
        kind = media.split(";", 1)[0].strip().lower()
        if kind in ("application/json", "application/*", "*/*"):
            return True
    return False


def _is_json(content_type: bytes) -> bool:
    """`Content-Type` passes both of the SDK's checks: the transport guard's prefix (any case)
    and the transport's media type (exact, in the part before any parameter)."""
    text = content_type.decode("latin-1")
    return text.lower().startswith("application/json") and any(
        part.strip() == "application/json" for part in text.split(";", 1)[0].split(",")
    )


def _classify(body: bytes) -> tuple[str | int, str, dict[str, Any] | None] | None:
    """(id, method, params) of a single JSON-RPC request for FAST_METHODS, else None."""
    if len(body) > DEFAULT_MAX_REQUEST_BODY_SIZE:
        return None
    try:
        message = _JSON.validate_json(body)
    except ValueError:
        return None
    if type(message) is not dict or not message.keys() <= _REQUEST_KEYS:
        return None
    request_id = message.get("id")
    method = message.get("method")
    params = message.get("params", None)
    if message.get("jsonrpc") != "2.0" or method not in FAST_METHODS:
        return None
    if type(request_id) is int:
        if not -_ID_BOUND <= request_id < _ID_BOUND:
            return None
    elif type(request_id) is not str:
        return None
    if "params" in message and type(params) is not dict:
        return None
    return request_id, method, params


def _plain_call(params: dict[str, Any] | None) -> bool:
    """tools/call params of the plain shape: a string name, arguments absent or an object."""
    if (
        params is None
        or not params.keys() <= _PLAIN_CALL_KEYS
        or type(params.get("name")) is not str
    ):
        return False
    arguments = params.get("arguments")
    return arguments is None or type(arguments) is dict


def _untraced() -> bool:
    """FastMCP's spans record nothing: its telemetry is not in `native` mode, or no
    OpenTelemetry tracer provider is configured (the API's proxy, whose spans are
    non-recording). Then suppressing them leaves nothing to observe."""
    return fastmcp.settings.telemetry_mode != "native" or isinstance(
        get_tracer_provider(), ProxyTracerProvider
    )


def _root_dispatch(server: FastMCP[Any]) -> FastMCPServerMiddleware | None:
    """FastMCP's root dispatch when the SDK server's middleware chain is the one FastMCP
    installs (its root dispatch, then the SDK's request-state boundary), else None."""
    chain = server._mcp_server.middleware
    if (
        len(chain) == 2
        and type(chain[0]) is FastMCPServerMiddleware
        and type(chain[1]) is RequestStateBoundary
    ):
        return chain[0]
    return None


@dataclass
class _ExchangeContext:
    """The dispatch context the SDK's stateless JSON transport gives a request: no back
    channel (a server request raises `NoBackChannelError`), and notifications, progress
    included, have no wire in a JSON response, so they are dropped as there."""

    transport: TransportContext
    request_id: str | int
    message_metadata: ServerMessageMetadata
    _cancel: anyio.Event | None = field(default=None, init=False)

    @property
    def can_send_request(self) -> bool:
        return False

    @property
    def cancel_requested(self) -> anyio.Event:
        if self._cancel is None:
            self._cancel = anyio.Event()
        return self._cancel

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> None:
        return None

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        return None


_TRANSPORT: Final = TransportContext(kind="streamable-http", can_send_request=False)


def _stateless_connection(protocol: str) -> Connection:
    """The connection `Connection.from_envelope(protocol, None, None)` builds for a stateless
    request, whose envelope has no client info or capabilities (both typed as None there):
    born initialized, no back channel. Built directly, without the two ValidationErrors
    raised and caught to find them missing (about 40 k instructions a call,
    docs/performance.md)."""
    connection = Connection(_NO_CHANNEL, protocol_version=protocol)
    connection.initialized.set()
    return connection


class FastPath:
    """ASGI layer answering the requests the fast path takes; the rest go to `app`.

    A plain tools/call takes the hot twin (`_call_tool`) when `hot_tool_calls` is set, every
    other request the general one (the SDK's `ServerRunner`); the differential tests run their
    whole corpus through each."""

    hot_tool_calls: ClassVar[bool] = True

    def __init__(self, app: ASGIApp, *, server: FastMCP[Any], path: str) -> None:
        self.app = app
        self.server = server
        self.path = path
        self._endpoint: Any = None
        self._plain_tools: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != self.path
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        # The first of each header, as the SDK reads them.
        accept: bytes | None = None
        content_type: bytes | None = None
        protocol: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"accept":
                if accept is None:
                    accept = value
            elif name == b"content-type":
                if content_type is None:
                    content_type = value
            elif name == b"mcp-protocol-version":
                if protocol is None:
                    protocol = value
            elif name == b"mcp-session-id":
                await self.app(scope, receive, send)
                return
        version_ = DEFAULT_NEGOTIATED_VERSION if protocol is None else protocol.decode("latin-1")
        lifespan = self._lifespan_state(scope)
        if (
            version_ not in HANDSHAKE_PROTOCOL_VERSIONS
            or lifespan is None
            or content_type is None
            or not _is_json(content_type)
            or accept is None
            or not _admits_json(accept)
        ):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        request = _classify(body)
        if request is None or (
            request[1] == "tools/call" and not await self._plain_tool(request[2])
        ):
            await self.app(scope, replay(body, receive), send)
            return
        await self._answer(scope, receive, send, request, version_, lifespan[0])

    def _lifespan_state(self, scope: Scope) -> tuple[Any] | None:
        """The running session manager's lifespan state (in a 1-tuple), or None when the app
        is not running (the SDK path then answers as it does)."""
        endpoint = self._endpoint
        if endpoint is None:
            for route in getattr(scope.get("app"), "routes", ()):
                if isinstance(route, Route) and route.path == self.path:
                    endpoint = self._endpoint = route.endpoint
                    break
        manager = getattr(endpoint, "session_manager", None)
        if manager is None or getattr(manager, "_task_group", None) is None:
            return None
        return (manager._lifespan_state,)

    async def _plain_tool(self, params: dict[str, Any] | None) -> bool:
        """Whether the tool called is one of the server's own function tools without a FastMCP
        `Context` parameter, so it cannot talk back to the client. Only the server's local
        components are looked at (a mounted or upstream server is never asked); any other name
        takes the SDK path. A name once found plain is remembered."""
        name = None if params is None else params.get("name")
        if type(name) is not str or name in self._plain_tools:
            return True
        try:
            tool = await self.server.local_provider.get_tool(name)
        except Exception:
            return False
        if not isinstance(tool, FunctionTool) or find_kwarg_by_type(tool.fn, Context):
            return False
        self._plain_tools.add(name)
        return True

    async def _call_tool(
        self,
        root: FastMCPServerMiddleware,
        runner: ServerRunner[Any],
        dctx: _ExchangeContext,
        params: dict[str, Any] | None,
        protocol: str,
    ) -> dict[str, Any]:
        """The hot twin of `runner.on_request` for a plain tools/call (`_plain_call`) when
        FastMCP's spans record nothing (`_untraced`): the same server middleware chain (FastMCP's
        root dispatch, the request-state boundary), the handler FastMCP registered and the
        per-version result sieve, without what is settled before it starts: the surface
        validation (the params' shape is), the handler lookup and the initialization gate (a
        stateless connection is born initialized), and FastMCP's non-recording spans (about
        0.17 M instructions a call, docs/performance.md). Params the typed model refuses go to
        the general twin, which answers with the SDK's error."""
        entry = self.server._mcp_server.get_request_handler("tools/call")
        if entry is None:
            return await runner.on_request(dctx, "tools/call", params)
        try:
            typed = entry.params_type.model_validate(params, by_name=False)
        except ValidationError:
            return await runner.on_request(dctx, "tools/call", params)

        async def inner(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
            result = await entry.handler(ctx, typed)
            if isinstance(result, ErrorData):
                raise MCPError.from_error_data(result)
            return runner._serialize("tools/call", protocol, result)

        ctx = runner._make_context(dctx, "tools/call", params, None, protocol)
        server = self.server
        # FastMCP's root dispatch for a component request (`_dispatch_component`), its
        # request-context binding kept for the only pass that reads it: the outer middleware
        # pass observing a failure before the handler's own binding. The lifespan's shared
        # context (`_apply_shared_context`) and the span suppression
        # (`suppress_fastmcp_telemetry`) are applied as those context managers apply them,
        # without their generator frames (about 15 k instructions a call).
        shared = [
            (var, var.set(value)) for var, value in (server._shared_context_snapshot or {}).items()
        ]
        suppressed = otel_context.attach(otel_context.set_value(_SUPPRESS_KEY, True))
        token = _interior_dispatched.set(False)
        try:
            return _dump_result(await inner(ctx))
        except (MCPError, ValidationError) as exc:
            if _interior_dispatched.get():
                raise
            with bind_request_context(ctx):
                return _dump_result(await root._run_outer_mw(server, ctx, inner, _raise=exc))
        finally:
            _interior_dispatched.reset(token)
            otel_context.detach(suppressed)
            for var, reset in reversed(shared):
                var.reset(reset)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: tuple[str | int, str, dict[str, Any] | None],
        protocol: str,
        lifespan_state: Any,
    ) -> None:
        request_id, method, params = request
        connection = _stateless_connection(protocol)
        runner = ServerRunner(self.server._mcp_server, connection, lifespan_state)
        dctx = _ExchangeContext(
            _TRANSPORT,
            request_id,
            ServerMessageMetadata(request_context=Request(scope, receive), can_send_request=False),
        )
        try:
            root = _root_dispatch(self.server) if method == "tools/call" else None
            if root is not None and self.hot_tool_calls and _plain_call(params) and _untraced():
                result = await self._call_tool(root, runner, dctx, params, protocol)
            else:
                result = await runner.on_request(dctx, method, params)
        except Exception as exc:
            error = handler_exception_to_error_data(exc)
            if error is None:
                logger.exception("handler for %r raised", method)
                error = ErrorData(code=0, message=str(exc))
            answer = JSONRPCError(jsonrpc="2.0", id=request_id, error=error).model_dump_json(
                by_alias=True, exclude_unset=True
            )
            payload = answer.encode()
        else:
            payload = _JSON.dump_json({"jsonrpc": "2.0", "id": request_id, "result": result})
        finally:
            # Nothing registered on the connection: nothing to unwind (about 45 k
            # instructions a call for the shielded, bounded scope otherwise).
            if getattr(connection.exit_stack, "_exit_callbacks", True):
                await aclose_shielded(connection)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(payload)).encode()), *_JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": payload})
