"""The fast path answers every request it takes exactly as FastMCP's SDK path does.

The same corpus goes to two instances of the same app, one with FAST_PATH on and one with it
off; status, content type, protocol version, rate-limit fields and the JSON body must be
equal. Each request also states which path it must take on the fast instance, observed as
whether the SDK's session manager was entered. The generated part runs FAST_PATH_EXAMPLES
examples (60 by default; a longer run: FAST_PATH_EXAMPLES=2000).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastmcp import Context, FastMCP
from fastmcp.dependencies import Shared
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import require_scopes
from fastmcp.server.middleware import Middleware
from fastmcp.utilities.types import Image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.server.connection import Connection
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.types import EmbeddedResource, TextResourceContents
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import BaseModel
from starlette.types import ASGIApp

from mcp_service.app import MCP_PATH
from mcp_service.fastpath import (
    FastPath,
    _stateless_connection,
    fast_path_layers,
    fast_path_supported,
)
from tests.support.asgi import running
from tests.support.service import make_service
from tests.support.tokens import TokenFactory

# ---------------------------------------------------------------------------------------------
# The tests' own server: every kind of answer the fast path must reproduce.


class Point(BaseModel):
    x: int
    y: int


class Failing(Middleware):
    """FastMCP middleware that fails a call of `text` with `s="boom"` with a plain exception."""

    async def on_call_tool(self, context: Any, call_next: Any) -> Any:
        if (context.message.arguments or {}).get("s") == "boom":
            raise RuntimeError("middleware failed")
        return await call_next(context)


# An app-scoped dependency (FastMCP's `Shared`): resolved once per server lifespan.
SHARED_HITS: list[int] = Shared(list)


def own_server(page_size: int | None = None) -> FastMCP[Any]:
    mcp: FastMCP[Any] = FastMCP("differential", list_page_size=page_size)
    mcp.add_middleware(Failing())

    @mcp.tool
    def point(x: int, y: int = 0) -> Point:
        """A structured result."""
        return Point(x=x, y=y)

    @mcp.tool
    def numbers(n: int) -> list[int]:
        """A non-object result, wrapped as `result` on the handshake-era wire."""
        return list(range(n))

    @mcp.tool(output_schema=None)
    def text(s: str) -> str:
        """An unstructured result."""
        return s[::-1]

    @mcp.tool
    def nothing() -> None:
        """No result at all."""

    @mcp.tool
    def picture() -> Image:
        return Image(data=b"\x89PNG\r\n\x1a\n-not-really", format="png")

    @mcp.tool
    def embedded() -> EmbeddedResource:
        return EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="data://inline", text="ünïcode ✓", mimeType="text/plain"
            ),
        )

    @mcp.tool
    def refuses(reason: str) -> str:
        raise ToolError(reason)

    @mcp.tool
    def crashes() -> str:
        raise ValueError("internal detail")

    @mcp.tool
    def large(n: int) -> str:
        return "x" * n

    @mcp.tool
    def hits(seen: list[int] = SHARED_HITS) -> int:
        """An app-scoped dependency: one list for the server's lifespan, on both paths."""
        seen.append(1)
        return len(seen)

    @mcp.tool
    async def slow() -> str:
        await asyncio.sleep(0)
        return "done"

    @mcp.tool(timeout=0.01)
    async def times_out() -> str:
        await asyncio.sleep(1)
        return "late"

    @mcp.tool
    async def talks(ctx: Context) -> str:
        await ctx.info("a log line the JSON wire cannot carry")
        await ctx.report_progress(1, 2)
        return "talked"

    @mcp.tool(auth=require_scopes("admin"))
    def guarded() -> str:
        return "secret"

    @mcp.tool
    def hidden() -> str:
        return "hidden"

    mcp.disable(names={"hidden"})

    @mcp.tool(output_schema={"type": "object", "properties": {"n": {"type": "integer"}}})
    def mismatched() -> Any:
        """Declares an object with an integer `n`, returns something else."""
        return {"n": "not a number"}

    sub: FastMCP[Any] = FastMCP("sub")

    @sub.tool
    def inner(word: str) -> str:
        return word.upper()

    @sub.resource("data://sub")
    def sub_resource() -> str:
        return "from the mounted server"

    mcp.mount(sub, namespace="sub")

    @mcp.resource("data://greeting")
    def greeting() -> str:
        return "héllo"

    @mcp.resource("data://blob", mime_type="application/octet-stream")
    def blob() -> bytes:
        return bytes(range(16))

    @mcp.resource("data://item/{item}")
    def item(item: str) -> dict[str, str]:
        return {"item": item}

    @mcp.resource("data://broken")
    def broken() -> str:
        raise RuntimeError("resource failed")

    @mcp.prompt
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    @mcp.prompt
    def failing() -> str:
        raise ValueError("prompt failed")

    return mcp


def own_app(fast: bool, page_size: int | None = None, guarded: bool = False) -> ASGIApp:
    mcp = own_server(page_size)
    layers = fast_path_layers(mcp, MCP_PATH) if fast else []
    return mcp.http_app(
        path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        middleware=layers,
        host_origin_protection=True if guarded else None,
        allowed_origins=["https://app.example"] if guarded else None,
    )


def service_app(fast: bool, **settings: Any) -> ASGIApp:
    """The whole stack with FAST_PATH as given; no per-IP limit and a per-subject limit the
    corpus never reaches, so the rate-limit fields are compared, not a refusal."""
    return make_service(
        fast_path=fast, ip_rate_limit="off", rate_limit="10000/minute", **settings
    ).app


def demo_app(fast: bool) -> ASGIApp:
    return service_app(fast)


# ---------------------------------------------------------------------------------------------
# The corpus.

ACCEPT = "application/json, text/event-stream"
VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, None)


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    headers: dict[str, str]
    # Whether the fast instance answers it without entering the SDK transport (the fast path
    # answered, or a layer in front of both paths refused it).
    fast: bool


def rpc(method: str, params: Any = None, id: Any = 1, **extra: Any) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method, **extra}
    if params is not None:
        message["params"] = params
    return json.dumps(message, ensure_ascii=False).encode()


def headers(version: str | None = "2025-06-18", accept: str | None = ACCEPT) -> dict[str, str]:
    result = {"content-type": "application/json"}
    if accept is not None:
        result["accept"] = accept
    if version is not None:
        result["mcp-protocol-version"] = version
    return result


def call(name: str, arguments: Any = None) -> dict[str, Any]:
    return {"name": name} if arguments is None else {"name": name, "arguments": arguments}


OWN_REQUESTS: dict[str, bytes] = {
    "point": rpc("tools/call", call("point", {"x": 1, "y": 2})),
    "point default": rpc("tools/call", call("point", {"x": -7})),
    "point missing argument": rpc("tools/call", call("point", {})),
    "point no arguments": rpc("tools/call", call("point")),
    "point wrong type": rpc("tools/call", call("point", {"x": "one"})),
    "point extra argument": rpc("tools/call", call("point", {"x": 1, "z": 3})),
    "arguments not an object": rpc("tools/call", call("point", [1, 2])),
    "name not a string": rpc("tools/call", {"name": 5}),
    "no name": rpc("tools/call", {}),
    "numbers": rpc("tools/call", call("numbers", {"n": 4})),
    "text unicode": rpc("tools/call", call("text", {"s": "naïve 日本語 🎉 \u0000"})),
    "nothing": rpc("tools/call", call("nothing", {})),
    "picture": rpc("tools/call", call("picture", {})),
    "embedded": rpc("tools/call", call("embedded", {})),
    "tool error": rpc("tools/call", call("refuses", {"reason": "no ✗"})),
    "exception": rpc("tools/call", call("crashes", {})),
    "large output": rpc("tools/call", call("large", {"n": 300_000})),
    "async": rpc("tools/call", call("slow", {})),
    "shared dependency": rpc("tools/call", call("hits", {})),
    "shared dependency again": rpc("tools/call", call("hits", {})),
    "timeout": rpc("tools/call", call("times_out", {})),
    "middleware exception": rpc("tools/call", call("text", {"s": "boom"})),
    "output schema mismatch": rpc("tools/call", call("mismatched", {})),
    "hidden tool": rpc("tools/call", call("hidden", {})),
    "guarded tool": rpc("tools/call", call("guarded", {})),
    "string id": rpc("tools/call", call("numbers", {"n": 1}), id="req-é"),
    "zero id": rpc("tools/call", call("numbers", {"n": 1}), id=0),
    "negative id": rpc("tools/call", call("numbers", {"n": 1}), id=-3),
    "meta": rpc("tools/call", {**call("numbers", {"n": 2}), "_meta": {"trace": "x"}}),
    "modern envelope in the body": rpc(
        "tools/call",
        {
            **call("numbers", {"n": 2}),
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"},
        },
    ),
    "progress token": rpc(
        "tools/call", {**call("numbers", {"n": 2}), "_meta": {"progressToken": "p1"}}
    ),
    "tools/list": rpc("tools/list"),
    "tools/list empty params": rpc("tools/list", {}),
    "tools/list bad cursor": rpc("tools/list", {"cursor": "not-a-cursor"}),
    "resources/list": rpc("resources/list"),
    "resources/templates/list": rpc("resources/templates/list"),
    "resources/read": rpc("resources/read", {"uri": "data://greeting"}),
    "resources/read binary": rpc("resources/read", {"uri": "data://blob"}),
    "resources/read template": rpc("resources/read", {"uri": "data://item/42"}),
    "resources/read mounted": rpc("resources/read", {"uri": "data://sub"}),
    "resources/read unknown": rpc("resources/read", {"uri": "data://nope"}),
    "resources/read failing": rpc("resources/read", {"uri": "data://broken"}),
    "resources/read no uri": rpc("resources/read", {}),
    "prompts/list": rpc("prompts/list"),
    "prompts/get": rpc("prompts/get", {"name": "greet", "arguments": {"name": "Zoë"}}),
    "prompts/get missing argument": rpc("prompts/get", {"name": "greet"}),
    "prompts/get unknown": rpc("prompts/get", {"name": "nope"}),
    "prompts/get failing": rpc("prompts/get", {"name": "failing"}),
    "ping": rpc("ping"),
    "ping params": rpc("ping", {}),
}
# Requests the fast path must leave to the SDK path, all of them still answered identically.
SDK_BODIES: dict[str, bytes] = {
    "initialize": rpc(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    ),
    "other method": rpc("completion/complete", {}),
    "unknown method": rpc("no/such"),
    "notification": json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(),
    "batch": b"[" + rpc("ping") + b"]",
    "invalid json": b'{"jsonrpc": "2.0", "id": 1, ',
    "not utf-8": b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "x": "\xff"}',
    "empty body": b"",
    "null id": rpc("ping", id=None),
    "float id": rpc("ping", id=1.0),
    "bool id": rpc("ping", id=True),
    "huge id": rpc("ping", id=2**70),
    "wrong jsonrpc": json.dumps({"jsonrpc": "1.0", "id": 1, "method": "ping"}).encode(),
    "extra key": rpc("ping", extra="x"),
    "params a list": rpc("ping", [1]),
    "params null": json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": None}
    ).encode(),
}
ODD_HEADERS: dict[str, tuple[dict[str, str], bool]] = {
    "accept json only": (headers(accept="application/json"), True),
    "accept wildcard": (headers(accept="*/*"), True),
    "accept application/*": (headers(accept="application/*;q=0.5"), True),
    "accept sse only": (headers(accept="text/event-stream"), False),
    "empty accept": (headers(accept=""), False),
    "no content type": ({"accept": ACCEPT, "mcp-protocol-version": "2025-06-18"}, False),
    "content type with charset": (
        {**headers(), "content-type": "application/json; charset=utf-8"},
        True,
    ),
    "content type in capitals": ({**headers(), "content-type": "Application/JSON"}, False),
    "content type listed": (
        {**headers(), "content-type": "application/jsonx, application/json"},
        True,
    ),
    "content type text": ({**headers(), "content-type": "text/plain"}, False),
    "modern version": (headers(version="2026-07-28"), False),
    "unknown version": (headers(version="1999-01-01"), False),
    "session id": ({**headers(), "mcp-session-id": "abc"}, False),
}


# The tests' own server's tool calls the SDK path takes: a tool taking FastMCP's Context, one
# of a mounted server (it runs in that server's dispatch), a name no local tool has.
CONTEXT_TOOL = {
    "context tool": rpc("tools/call", call("talks", {})),
    "mounted tool": rpc("tools/call", call("sub_inner", {"word": "ünï"})),
    "unknown tool": rpc("tools/call", call("no_such_tool", {})),
}


def corpus(requests: dict[str, bytes], sdk_bodies: dict[str, bytes] = SDK_BODIES) -> Iterator[Case]:
    for version in VERSIONS:
        for name, body in requests.items():
            yield Case(f"{name} @ {version}", body, headers(version), True)
    for name, body in sdk_bodies.items():
        yield Case(name, body, headers(), False)
    for name, (odd, fast) in ODD_HEADERS.items():
        yield Case(f"ping, {name}", rpc("ping"), odd, fast)
        yield Case(
            f"call, {name}", next(b for b in requests.values() if b"tools/call" in b), odd, fast
        )


# ---------------------------------------------------------------------------------------------
# Driving both paths.


class SdkEntries:
    """Counts the requests that entered the SDK's session manager."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = StreamableHTTPSessionManager._handle_request

        async def counted(manager: Any, scope: Any, receive: Any, send: Any) -> None:
            self.count += 1
            await original(manager, scope, receive, send)

        monkeypatch.setattr(StreamableHTTPSessionManager, "_handle_request", counted)


@pytest.fixture
def sdk_entries(monkeypatch: pytest.MonkeyPatch) -> SdkEntries:
    return SdkEntries(monkeypatch)


@pytest.fixture(params=["hot", "general"], autouse=True)
def twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs through both twins of a plain tool call: the hot one and the runner."""
    monkeypatch.setattr(FastPath, "hot_tool_calls", request.param == "hot")
    return str(request.param)


class HotCalls:
    """Counts the tool calls the hot twin answered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = FastPath._call_tool

        async def counted(path: FastPath, *args: Any) -> Any:
            self.count += 1
            return await original(path, *args)

        monkeypatch.setattr(FastPath, "_call_tool", counted)


def rate_fields(response: httpx.Response) -> dict[str, str]:
    """The rate-limit fields, the seconds to the window's reset left out (time passes between
    the two requests)."""
    fields = {k: v for k, v in response.headers.items() if k.startswith("ratelimit")}
    fields.pop("ratelimit-reset", None)
    if "ratelimit" in fields:
        fields["ratelimit"] = ";".join(
            part for part in fields["ratelimit"].split(";") if not part.strip().startswith("t=")
        )
    return fields


def observed(response: httpx.Response) -> dict[str, Any]:
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return {
        "status": response.status_code,
        "content-type": response.headers.get("content-type"),
        "mcp-protocol-version": response.headers.get("mcp-protocol-version"),
        "rate": rate_fields(response),
        "body": body,
    }


@dataclass
class Pair:
    fast: httpx.AsyncClient
    sdk: httpx.AsyncClient
    entries: SdkEntries
    auth: dict[str, str]

    async def differences(self, case: Case) -> list[str]:
        found: list[str] = []
        sent = {**case.headers, **self.auth}
        before = self.entries.count
        fast = await self.fast.post(MCP_PATH, content=case.body, headers=sent)
        took_fast = self.entries.count == before
        sdk = await self.sdk.post(MCP_PATH, content=case.body, headers=sent)
        if took_fast != case.fast:
            taken = f"fast path taken {took_fast}, expected {case.fast}"
            found.append(f"{case.name}: {taken} ({fast.status_code})")
        if observed(fast) != observed(sdk):
            found.append(f"{case.name}:\n  fast {observed(fast)}\n  sdk  {observed(sdk)}")
        return found


@asynccontextmanager
async def pair(
    factory: Callable[[bool], ASGIApp], entries: SdkEntries, auth: dict[str, str] | None = None
) -> AsyncIterator[Pair]:
    async with running(factory(True)) as fast, running(factory(False)) as sdk:
        yield Pair(fast, sdk, entries, auth or {})


pytestmark = pytest.mark.skipif(
    not fast_path_supported(), reason="the installed FastMCP is not the release proven here"
)


async def assert_identical(p: Pair, cases: Iterator[Case]) -> None:
    found: list[str] = []
    for case in cases:
        found.extend(await p.differences(case))
    assert not found, "\n".join(found)


@pytest.mark.anyio
async def test_the_tests_own_server_answers_identically_on_both_paths(
    sdk_entries: SdkEntries,
) -> None:
    async with pair(own_app, sdk_entries) as p:
        await assert_identical(p, corpus(OWN_REQUESTS, SDK_BODIES | CONTEXT_TOOL))


@pytest.mark.anyio
async def test_paginated_lists_answer_identically_on_both_paths(sdk_entries: SdkEntries) -> None:
    async with pair(lambda fast: own_app(fast, page_size=3), sdk_entries) as p:
        first = await p.fast.post(MCP_PATH, content=rpc("tools/list"), headers=headers())
        cursor = first.json()["result"]["nextCursor"]
        pages = {
            "second page": rpc("tools/list", {"cursor": cursor}),
            "resources page": rpc("resources/list"),
            "prompts page": rpc("prompts/list"),
            "first page": rpc("tools/list"),
        }
        pages["call"] = rpc("tools/call", call("numbers", {"n": 1}))
        await assert_identical(p, corpus(pages))


DEMO_REQUESTS: dict[str, bytes] = {
    "ping": rpc("ping"),
    "add": rpc("tools/call", call("add", {"a": 5, "b": 3})),
    "add floats": rpc("tools/call", call("add", {"a": 0.1, "b": 0.2})),
    "add overflow": rpc("tools/call", call("add", {"a": 1e308, "b": 1e308})),
    "add missing": rpc("tools/call", call("add", {"a": 1})),
    "add string": rpc("tools/call", call("add", {"a": "1", "b": 2})),
    "get_user_info": rpc("tools/call", call("get_user_info", {})),
    "tools/list": rpc("tools/list"),
    "resources/list": rpc("resources/list"),
    "prompts/list": rpc("prompts/list"),
}


# A name no tool of the demo has: the SDK path's.
DEMO_SDK = {"unknown tool": rpc("tools/call", call("nope", {}))}


@pytest.mark.anyio
async def test_the_demo_service_answers_identically_on_both_paths(
    sdk_entries: SdkEntries,
) -> None:
    bearer = {"authorization": f"Bearer {TokenFactory().token()}"}
    async with pair(demo_app, sdk_entries, bearer) as p:
        await assert_identical(p, corpus(DEMO_REQUESTS, SDK_BODIES | DEMO_SDK))


@pytest.mark.anyio
async def test_the_demo_service_with_tool_scopes_refuses_identically_on_both_paths(
    sdk_entries: SdkEntries,
) -> None:
    def scoped(fast: bool) -> ASGIApp:
        return service_app(fast, tool_scopes={"add": ["mcp/admin"], "get_user_info": ["mcp/tools"]})

    bearer = {"authorization": f"Bearer {TokenFactory().token()}"}
    async with pair(scoped, sdk_entries, bearer) as p:
        await assert_identical(p, corpus({"user": DEMO_REQUESTS["get_user_info"], **DEMO_REQUESTS}))


# Headers and the status FastMCP's Host/Origin guard (strict, one allowed origin) answers with.
GUARD_HEADERS: dict[str, tuple[dict[str, str], int]] = {
    "allowed origin": ({**headers(), "origin": "https://app.example"}, 200),
    "foreign origin": ({**headers(), "origin": "https://evil.example"}, 403),
    "loopback host": ({**headers(), "host": "127.0.0.1:8000"}, 200),
    "foreign host": ({**headers(), "host": "evil.example"}, 421),
    "loopback origin": ({**headers(), "host": "localhost", "origin": "http://localhost:1"}, 200),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", GUARD_HEADERS)
async def test_the_host_origin_guard_stands_in_front_of_the_fast_path(
    sdk_entries: SdkEntries, name: str
) -> None:
    sent, status = GUARD_HEADERS[name]
    async with pair(lambda fast: own_app(fast, guarded=True), sdk_entries) as p:
        for request, body in (("ping", rpc("ping")), ("call", OWN_REQUESTS["point"])):
            response = await p.fast.post(MCP_PATH, content=body, headers=sent)
            assert response.status_code == status
            await assert_identical(p, iter([Case(f"{request}, {name}", body, sent, True)]))


TEAM_REQUESTS: dict[str, bytes] = {
    "whoami": rpc("tools/call", call("whoami", {})),
    "deploy, a tool for another group": rpc(
        "tools/call", call("deploy", {"service": "api", "version": "1"})
    ),
    "tools/list": rpc("tools/list"),
    "resources/list": rpc("resources/list"),
    "resources/templates/list": rpc("resources/templates/list"),
    "runbook index": rpc("resources/read", {"uri": "runbooks://index"}),
    "runbook": rpc("resources/read", {"uri": "runbooks://db-failover"}),
    "prompts/list": rpc("prompts/list"),
    "prompt": rpc("prompts/get", {"name": "incident_review", "arguments": {"summary": "ö"}}),
    "ping": rpc("ping"),
}
# find_runbook takes FastMCP's Context: the SDK path's.
TEAM_SDK = SDK_BODIES | {
    "context tool": rpc("tools/call", call("find_runbook", {"topic": "db"})),
    "unknown tool": rpc("tools/call", call("nope", {})),
}


@pytest.mark.anyio
async def test_the_example_team_server_answers_identically_on_both_paths(
    sdk_entries: SdkEntries,
) -> None:
    from team_server.server import create_server

    def team(fast: bool) -> ASGIApp:
        return service_app(fast, server=create_server(), tool_groups={"deploy": ["ops"]})

    bearer = {"authorization": f"Bearer {TokenFactory().token()}"}
    async with pair(team, sdk_entries, bearer) as p:
        await assert_identical(p, corpus(TEAM_REQUESTS, TEAM_SDK))


@pytest.mark.parametrize("version", HANDSHAKE_PROTOCOL_VERSIONS)
def test_the_connection_of_a_fast_request_is_the_one_the_sdk_builds_from_its_envelope(
    version: str,
) -> None:
    def seen(connection: Connection) -> dict[str, Any]:
        return {
            "outbound": connection.outbound,
            "protocol_version": connection.protocol_version,
            "session_id": connection.session_id,
            "client_params": connection.client_params,
            "client_capabilities": connection.client_capabilities,
            "initialized": connection.initialized.is_set(),
            "state": connection.state,
            "exit_stack": type(connection.exit_stack),
            "attributes": sorted(vars(connection)),
        }

    sdk = Connection.from_envelope(version, None, None)
    assert seen(_stateless_connection(version)) == seen(sdk)


@pytest.mark.anyio
async def test_a_plain_tool_call_takes_the_hot_twin_when_spans_record_nothing(
    monkeypatch: pytest.MonkeyPatch, twin: str
) -> None:
    hot = HotCalls(monkeypatch)
    async with running(own_app(True)) as client:
        response = await client.post(
            MCP_PATH, content=rpc("tools/call", call("text", {"s": "ab"})), headers=headers()
        )
    assert response.json()["result"]["content"][0]["text"] == "ba"
    assert hot.count == (1 if twin == "hot" else 0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "params",
    [
        {"name": "text", "arguments": {"s": "ab"}, "_meta": {"progressToken": 1}},
        {"name": "text", "arguments": {"s": "ab"}, "requestState": "x"},
        {"name": "text", "arguments": ["ab"]},
        {"name": 3, "arguments": {"s": "ab"}},
    ],
    ids=["meta", "request-state", "list-arguments", "number-name"],
)
async def test_a_tool_call_of_another_shape_takes_the_general_twin(
    monkeypatch: pytest.MonkeyPatch, params: dict[str, Any]
) -> None:
    hot = HotCalls(monkeypatch)
    monkeypatch.setattr(FastPath, "hot_tool_calls", True)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    async with running(own_app(True)) as client:
        await client.post(MCP_PATH, content=body, headers=headers())
    assert hot.count == 0


@pytest.mark.anyio
async def test_a_configured_tracer_provider_sends_tool_calls_to_the_general_twin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.trace import NoOpTracerProvider

    import mcp_service.fastpath as fastpath

    hot = HotCalls(monkeypatch)
    monkeypatch.setattr(FastPath, "hot_tool_calls", True)
    monkeypatch.setattr(fastpath, "get_tracer_provider", NoOpTracerProvider)
    async with running(own_app(True)) as client:
        response = await client.post(
            MCP_PATH, content=rpc("tools/call", call("text", {"s": "ab"})), headers=headers()
        )
    assert response.json()["result"]["content"][0]["text"] == "ba"
    assert hot.count == 0


@pytest.mark.anyio
@pytest.mark.parametrize(("fast_path", "entered"), [(True, 0), (False, 1)])
async def test_fast_path_false_sends_a_tool_call_through_the_sdk_transport(
    sdk_entries: SdkEntries, fast_path: bool, entered: int
) -> None:
    bearer = {"authorization": f"Bearer {TokenFactory().token()}"}
    async with running(make_service(fast_path=fast_path).app) as client:
        response = await client.post(
            MCP_PATH, content=DEMO_REQUESTS["add"], headers={**headers(), **bearer}
        )
    assert response.json()["result"]["structuredContent"] == {"result": 8}
    assert sdk_entries.count == entered


@pytest.mark.anyio
async def test_concurrent_calls_each_get_their_own_answer(sdk_entries: SdkEntries) -> None:
    async with running(own_app(True)) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    MCP_PATH,
                    content=rpc("tools/call", call("numbers", {"n": n}), id=n),
                    headers=headers(),
                )
                for n in range(40)
            )
        )
    assert [r.json()["id"] for r in responses] == list(range(40))
    assert [r.json()["result"]["structuredContent"]["result"] for r in responses] == [
        list(range(n)) for n in range(40)
    ]
    assert sdk_entries.count == 0


# ---------------------------------------------------------------------------------------------
# Generated requests.

EXAMPLES = int(os.environ.get("FAST_PATH_EXAMPLES", "60"))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
NAMES = st.sampled_from(
    ["point", "numbers", "text", "refuses", "large", "nope", "hidden", "nothing"]
)
ARGUMENTS = st.dictionaries(st.sampled_from(["x", "y", "n", "s", "reason", "z"]), JSON, max_size=4)
GENERATED = st.one_of(
    st.builds(
        lambda n, a, i: rpc("tools/call", call(n, a), id=i),
        NAMES,
        ARGUMENTS | JSON,
        st.integers(0, 99) | st.text(max_size=4),
    ),
    st.builds(
        lambda p: rpc("resources/read", {"uri": p}),
        st.text(max_size=12).map(lambda s: "data://" + s),
    ),
    st.builds(lambda a: rpc("prompts/get", {"name": "greet", "arguments": a}), ARGUMENTS),
    st.builds(
        lambda m, p: rpc(m, p), st.sampled_from(["tools/list", "ping", "prompts/list"]), JSON
    ),
)


@pytest.mark.anyio
async def test_generated_requests_answer_identically_on_both_paths(
    sdk_entries: SdkEntries,
) -> None:
    async with pair(own_app, sdk_entries) as p:
        loop_found: list[str] = []

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(body=GENERATED, version=st.sampled_from(VERSIONS))
        def check(body: bytes, version: str | None) -> None:
            case = Case("generated", body, headers(version), True)
            found = asyncio.run_coroutine_threadsafe(p.differences(case), loop).result()
            loop_found.extend(
                f"{body!r}: {line}" for line in found if "fast path taken" not in line
            )
            assert not loop_found, "\n".join(loop_found)

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(check)
