"""UPSTREAMS over real HTTP: plain FastMCP upstreams on loopback mounted under namespaces with
each auth kind, what credentials they receive, and what a silent or stopped upstream does to
the callers of the others."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastmcp import Client

from tests.support import upstream_server
from tests.support.pool import JWKS_PATH, bearer_headers, pool_env
from tests.support.processes import JwksServer, ServiceProcess, free_port
from tests.support.tokens import TokenFactory, jwks_of, rsa_key
from tests.support.upstreams import ROOT, SilentServer, UpstreamServer

SILENT_TIMEOUT = 1.5  # the smallest upstream timeout: what a list may wait
GONE_TIMEOUT = 3.0
CALLER = TokenFactory().token(scope="openid mcp/tools mcp/search")


@dataclass
class Stack:
    service: ServiceProcess
    upstream: UpstreamServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    with UpstreamServer() as upstream, SilentServer() as silent, jwks.running():
        grant = {
            "token_url": f"{upstream.url}/token",
            "client_id": upstream_server.CLIENT_ID,
            "client_secret_env": "GRANTED_SECRET",
            "scopes": ["docs/read"],
        }
        upstreams = {
            "open": {"url": f"{upstream.url}/open/mcp", "auth": "none"},
            "static": {"url": f"{upstream.url}/static/mcp", "auth": {"bearer_env": "STATIC_TOKEN"}},
            "granted": {
                "url": f"{upstream.url}/granted/mcp",
                "auth": {"client_credentials": grant},
            },
            "silent": {"url": f"{silent.url}/mcp", "timeout_seconds": SILENT_TIMEOUT},
            "gone": {"url": f"http://127.0.0.1:{free_port()}/mcp", "timeout_seconds": GONE_TIMEOUT},
        }
        env = pool_env(
            jwks.url,
            PYTHONPATH=str(ROOT),
            UPSTREAMS=json.dumps(upstreams),
            TOOL_SCOPES=json.dumps({"static_search": ["mcp/search"], "open_serach": ["x"]}),
            STATIC_TOKEN=upstream_server.STATIC_TOKEN,
            GRANTED_SECRET=upstream_server.CLIENT_SECRET,
            READINESS_TIMEOUT_SECONDS="5",
            AUDIT_LOG="true",
        )
        with ServiceProcess(env, tmp_path_factory.mktemp("upstreams")) as service:
            yield Stack(service, upstream)


def rpc(url: str, method: str, params: dict[str, Any], bearer: str = CALLER) -> httpx.Response:
    headers = {**bearer_headers(bearer), "Cookie": "session=caller-cookie"}
    message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx.post(f"{url}/mcp", json=message, headers=headers, timeout=30)


def call(url: str, tool: str, bearer: str = CALLER) -> httpx.Response:
    return rpc(url, "tools/call", {"name": tool, "arguments": {"query": "q"}}, bearer)


@pytest.mark.parametrize("namespace", ["open", "static", "granted"])
async def test_an_upstreams_tool_is_served_under_its_namespace(
    stack: Stack, namespace: str
) -> None:
    async with Client(f"{stack.service.url}/mcp", auth=CALLER) as client:
        result = await client.call_tool(f"{namespace}_search", {"query": "llamas"})
    assert result.data == "found llamas"


@pytest.mark.parametrize(
    ("namespace", "authorization"),
    [
        ("open", None),
        ("static", f"Bearer {upstream_server.STATIC_TOKEN}"),
        ("granted", "Bearer upstream-cc-token-1"),
    ],
)
def test_an_upstream_receives_its_own_credential_and_never_the_callers(
    stack: Stack, namespace: str, authorization: str | None
) -> None:
    assert call(stack.service.url, f"{namespace}_search").status_code == 200
    requests = [r for r in stack.upstream.seen()["requests"] if r["via"] == namespace]
    assert requests
    assert {r["authorization"] for r in requests} == {authorization}
    assert {r["cookie"] for r in requests} == {None}


def test_a_client_credentials_token_is_fetched_once_and_reused(stack: Stack) -> None:
    for _ in range(3):
        assert call(stack.service.url, "granted_search").status_code == 200
    assert stack.upstream.seen()["tokens_issued"] == 1


def test_tools_list_leaves_out_a_silent_upstream_within_the_smallest_timeout(
    stack: Stack,
) -> None:
    started = time.monotonic()
    response = rpc(stack.service.url, "tools/list", {})
    elapsed = time.monotonic() - started
    names = {tool["name"] for tool in response.json()["result"]["tools"]}
    assert {"open_search", "static_search", "granted_search", "add"} <= names
    assert not any(name.startswith(("silent_", "gone_")) for name in names)
    assert elapsed < SILENT_TIMEOUT + 2.5
    assert re.search(r"upstream silent did not answer tools/list", stack.service.log())


@pytest.mark.parametrize(
    ("namespace", "timeout"), [("silent", SILENT_TIMEOUT), ("gone", GONE_TIMEOUT)]
)
def test_a_silent_or_stopped_upstream_gives_a_tool_error_within_its_timeout(
    stack: Stack, namespace: str, timeout: float
) -> None:
    started = time.monotonic()
    response = call(stack.service.url, f"{namespace}_search")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    answer = response.json()
    assert answer.get("error") or answer["result"]["isError"]
    assert elapsed < timeout + 2.5
    assert call(stack.service.url, "open_search").json()["result"]["isError"] is False


def test_readyz_reports_each_upstream_as_a_non_critical_check(stack: Stack) -> None:
    response = httpx.get(f"{stack.service.url}/readyz", timeout=30)
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "degraded"
    checks = report["checks"]
    assert {name: checks[f"upstream:{name}"]["status"] for name in ("open", "gone")} == {
        "open": "ok",
        "gone": "down",
    }


def test_tool_scopes_apply_to_an_upstreams_namespaced_tool(stack: Stack) -> None:
    lacking = TokenFactory().token(scope="openid mcp/tools")
    response = call(stack.service.url, "static_search", lacking)
    assert response.status_code == 403
    assert 'scope="mcp/search"' in response.headers["www-authenticate"]


def test_upstream_calls_are_measured_by_namespace_and_outcome(stack: Stack) -> None:
    assert call(stack.service.url, "open_search").status_code == 200
    call(stack.service.url, "silent_search")
    text = httpx.get(f"{stack.service.url}/metrics", timeout=10).text
    count = "mcp_upstream_call_duration_seconds_count"
    assert re.search(rf'{count}{{outcome="ok",upstream="open"}} [1-9]', text)
    assert re.search(rf'{count}{{outcome="timeout",upstream="silent"}} [1-9]', text)
    assert re.search(
        r'mcp_tool_call_duration_seconds_count{outcome="ok",tool="open_search"} [1-9]', text
    )


def test_a_setting_naming_a_tool_an_upstream_does_not_list_is_a_warning_at_first_listing(
    stack: Stack,
) -> None:
    assert rpc(stack.service.url, "tools/list", {}).status_code == 200
    warning = "a per-tool setting names open_serach, which upstream open does not list"
    assert stack.service.log().count(warning) == 1


@pytest.mark.parametrize("tool", ["add", "open_search"])
def test_a_silent_upstream_does_not_slow_the_calls_of_other_tools(stack: Stack, tool: str) -> None:
    arguments = {"a": 1, "b": 2} if tool == "add" else {"query": "q"}
    started = time.monotonic()
    response = rpc(stack.service.url, "tools/call", {"name": tool, "arguments": arguments})
    elapsed = time.monotonic() - started
    assert response.json()["result"]["isError"] is False
    assert elapsed < SILENT_TIMEOUT


def test_an_audit_line_names_the_upstream_a_call_went_to(stack: Stack) -> None:
    assert call(stack.service.url, "granted_search").status_code == 200
    lines = [json.loads(line) for line in stack.service.log().splitlines() if '"audit"' in line]
    audited = {(line["component"], line["upstream"], line["outcome"]) for line in lines}
    assert ("granted_search", "granted", "ok") in audited
