"""UPSTREAMS: other MCP servers mounted onto the served server, each under its namespace.

Each upstream is FastMCP's own proxy (`create_proxy` over a `ProxyClient`) mounted with
`FastMCP.mount(proxy, namespace=...)`, so its tool `search` is `docs_search` and scopes,
groups, costs, metrics and the audit log see the namespaced names. The proxy client is built
with `forward_incoming_headers=False`: the caller's token (and cookies) never go upstream, as
MCP forbids token passthrough; the upstream gets its own credential or none.

Two middlewares bound what an upstream may cost a request: `UpstreamCalls`, on the served
server, makes a call past the upstream's `timeout_seconds` a tool error (the lookup included,
which FastMCP runs outside a mounted server's middleware); `UpstreamLists`, on each proxy, lets
a list (`tools/list`, ...) wait at most the smallest upstream timeout, after which that upstream
is left out with a log line, so one silent upstream never holds up the others. Every request
to an upstream is measured in `mcp_upstream_call_duration_seconds{upstream,outcome}`; `/readyz`
pings each one as the non-critical check `upstream:<namespace>`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable, Container, Iterable, Mapping
from typing import Any
from weakref import WeakKeyDictionary

import httpx2
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError
from fastmcp.server import create_proxy
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.providers import Provider
from fastmcp.server.providers.proxy import ProxyClient

from mcp_service.upstreamconfig import BearerEnv, ClientCredentials, Upstream
from observability.health import CheckResult, Readiness

log = logging.getLogger("mcp_service.upstreams")

LISTS = frozenset({"tools/list", "resources/list", "resources/templates/list", "prompts/list"})
CALLS = frozenset({"tools/call", "resources/read", "prompts/get"})
REFRESH_MARGIN = 60.0  # seconds before a client-credentials token expires that it is renewed

CallHook = Callable[[str, str, float], None]  # (upstream, outcome, seconds)
ListedHook = Callable[[Iterable[str]], None]  # an upstream's tool names, namespaced

# The providers a build mounted on a server, so a later build of the same server replaces
# them instead of mounting every upstream twice.
_MOUNTED: WeakKeyDictionary[FastMCP[Any], list[Provider]] = WeakKeyDictionary()


class ClientCredentialsAuth(httpx2.Auth):
    """An upstream's own token from an OAuth client-credentials grant, cached until
    REFRESH_MARGIN (at most a tenth of its life) before it expires, and fetched again once
    if the upstream answers 401."""

    def __init__(
        self,
        grant: ClientCredentials,
        secret: str,
        timeout: float,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.grant = grant
        self._secret = secret
        self.timeout = timeout
        self.transport = transport  # tests: the token endpoint in process
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock: asyncio.Lock | None = None

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        request.headers["Authorization"] = f"Bearer {await self.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self.token(renew=True)}"
            yield request

    async def token(self, *, renew: bool = False) -> str:
        if renew:
            self._renew_at = 0.0
        if self._token is not None and time.monotonic() < self._renew_at:
            return self._token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                await self._fetch()
        assert self._token is not None
        return self._token

    async def _fetch(self) -> None:
        data = {"grant_type": "client_credentials", "client_id": self.grant.client_id}
        if self.grant.scopes:
            data["scope"] = " ".join(self.grant.scopes)
        async with httpx2.AsyncClient(timeout=self.timeout, transport=self.transport) as http:
            response = await http.post(
                self.grant.token_url, data=data, auth=(self.grant.client_id, self._secret)
            )
        if response.status_code != 200:
            raise ToolError(f"the upstream's token endpoint answered {response.status_code}")
        body = response.json()
        token, lifetime = body.get("access_token"), body.get("expires_in", 3600)
        if not isinstance(token, str) or not token:
            raise ToolError("the upstream's token endpoint sent no access_token")
        lifetime = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
        self._token = token
        self._renew_at = time.monotonic() + lifetime - min(REFRESH_MARGIN, lifetime / 10)


def upstream_client(
    upstream: Upstream, environ: Mapping[str, str] = os.environ
) -> ProxyClient[Any]:
    """The proxy client of one upstream: its own credential, never the caller's headers."""
    headers: dict[str, str] = {}
    auth: httpx2.Auth | None = None
    if isinstance(upstream.auth, BearerEnv):
        headers["Authorization"] = f"Bearer {environ[upstream.auth.variable]}"
    elif isinstance(upstream.auth, ClientCredentials):
        secret = environ[upstream.auth.secret_variable]
        auth = ClientCredentialsAuth(upstream.auth, secret, upstream.timeout_seconds)
    transport = StreamableHttpTransport(upstream.url, headers=headers, auth=auth)
    return ProxyClient(
        transport,
        forward_incoming_headers=False,
        timeout=upstream.timeout_seconds,
        init_timeout=upstream.timeout_seconds,
    )


class UpstreamCalls(Middleware):
    """On the served server: a call of an upstream's component (`tools/call`,
    `resources/read`, `prompts/get`), its lookup on the upstream included, within that
    upstream's `timeout_seconds`, else a tool error; each measured."""

    def __init__(self, timeouts: Mapping[str, float], *, on_call: CallHook | None = None) -> None:
        self.timeouts = dict(timeouts)
        self.on_call = on_call

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if context.method not in CALLS:
            return await call_next(context)
        namespace = self.upstream_of(context.method, context.message)
        if namespace is None:
            return await call_next(context)
        deadline = self.timeouts[namespace]
        started = time.perf_counter()
        outcome = "error"
        try:
            async with asyncio.timeout(deadline):
                result = await call_next(context)
            outcome = "error" if getattr(result, "is_error", False) else "ok"
            return result
        except TimeoutError as exc:
            outcome = "timeout"
            raise ToolError(f"upstream {namespace!r} did not answer within {deadline:g} s") from exc
        finally:
            if self.on_call is not None:
                self.on_call(namespace, outcome, time.perf_counter() - started)

    def upstream_of(self, method: str, message: Any) -> str | None:
        return upstream_of(method, message, self.timeouts)


def upstream_of(method: str, message: Any, namespaces: Container[str]) -> str | None:
    """The namespace of the upstream a `tools/call`, `prompts/get` (`ns_name`) or
    `resources/read` (`scheme://ns/path`, FastMCP's convention) goes to, or None."""
    if method == "resources/read":
        _, _, rest = str(getattr(message, "uri", "")).partition("://")
        first = rest.split("/", 1)[0]
        return first if first in namespaces else None
    name = getattr(message, "name", None)
    if isinstance(name, str) and "_" in name:
        namespace = name.partition("_")[0]
        if namespace in namespaces:
            return namespace
    return None


class UpstreamLists(Middleware):
    """On an upstream's proxy: a list within the smallest upstream timeout, else that
    upstream left out with a log line; measured; the first listing's names checked."""

    def __init__(
        self,
        namespace: str,
        list_timeout: float,
        *,
        expected: Iterable[str] = (),
        on_call: CallHook | None = None,
        on_listed: ListedHook | None = None,
    ) -> None:
        self.namespace = namespace
        self.list_timeout = list_timeout
        self.expected = frozenset(expected)  # namespaced names the settings give
        self.on_call = on_call
        self.on_listed = on_listed
        self.listed = False

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if context.method not in LISTS:
            return await call_next(context)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.list_timeout):
                result = await call_next(context)
        except Exception as exc:
            timed_out = isinstance(exc, TimeoutError)
            self._record("timeout" if timed_out else "error", started)
            log.warning(
                "upstream %s did not answer %s within %g s: left out"
                if timed_out
                else "upstream %s failed %s (%s): left out",
                self.namespace,
                context.method,
                self.list_timeout if timed_out else type(exc).__name__,
                extra={"upstream": self.namespace},
            )
            return []
        self._record("ok", started)
        if context.method == "tools/list" and not self.listed:
            self._first_listing([getattr(tool, "name", "") for tool in result])
        return result

    def _record(self, outcome: str, started: float) -> None:
        if self.on_call is not None:
            self.on_call(self.namespace, outcome, time.perf_counter() - started)

    def _first_listing(self, names: list[str]) -> None:
        self.listed = True
        namespaced = {f"{self.namespace}_{name}" for name in names}
        if self.on_listed is not None:
            self.on_listed(sorted(namespaced))
        for missing in sorted(self.expected - namespaced):
            log.warning(
                "a per-tool setting names %s, which upstream %s does not list",
                missing,
                self.namespace,
                extra={"upstream": self.namespace},
            )


def mount_upstreams(
    mcp: FastMCP[Any],
    upstreams: Mapping[str, Upstream],
    *,
    named: Iterable[str] = (),
    readiness: Readiness | None = None,
    on_call: CallHook | None = None,
    on_listed: ListedHook | None = None,
) -> None:
    """Mount each upstream's proxy on `mcp` under its namespace (replacing what an earlier
    build mounted). `named`: the tool names the per-tool settings give."""
    previous = _MOUNTED.pop(mcp, [])
    mcp.providers[:] = [p for p in mcp.providers if p not in previous]
    if not upstreams:
        return
    list_timeout = min(upstream.timeout_seconds for upstream in upstreams.values())
    mounted: list[Provider] = []
    for namespace, upstream in upstreams.items():
        client = upstream_client(upstream)
        proxy = create_proxy(client, name=f"upstream {namespace}")
        proxy.add_middleware(
            UpstreamLists(
                namespace,
                list_timeout,
                expected=[name for name in named if name.startswith(f"{namespace}_")],
                on_call=on_call,
                on_listed=on_listed,
            )
        )
        mcp.mount(proxy, namespace=namespace)
        mounted.append(mcp.providers[-1])
        if readiness is not None:
            readiness.add(f"upstream:{namespace}", _pinger(client), critical=False)
    _MOUNTED[mcp] = mounted


def _pinger(client: Client[Any]) -> Callable[[], Any]:
    async def ping() -> CheckResult:
        try:
            async with client.new() as session:
                await session.ping()
        except Exception as exc:
            return CheckResult.down(f"unreachable ({type(exc).__name__})")
        return CheckResult.ok()

    return ping
