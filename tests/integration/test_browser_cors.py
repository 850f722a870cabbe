"""The CORS contract of a browser-side OAuth client (the MCP Inspector's page at
http://localhost:6274), enforced by a real browser: against `serve` in local mode a page of a
loopback origin reads the discovery documents, registers and reaches the token endpoint;
a page of another origin (127.0.0.2, an address that is loopback but no loopback origin the
service allows) reads none of it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.chromium import chromium_tools, fetch_from_page
from tests.support.processes import ServiceProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    chromium_tools()
    with ServiceProcess({"APP_ENV": "local"}, tmp_path_factory.mktemp("cors")) as service:
        yield service


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("bind", "name"), [("127.0.0.1", "localhost"), ("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")]
)
async def test_a_loopback_page_completes_the_browser_side_oauth_calls(
    server: ServiceProcess, bind: str, name: str
) -> None:
    if bind == "::1" and not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    seen = await fetch_from_page(bind, name, server.url)
    assert seen["resource"]["status"] == 200
    assert seen["resource"]["body"]["authorization_servers"] == [server.url]
    assert seen["server"]["body"]["registration_endpoint"] == f"{server.url}/oauth/register"
    assert seen["register"]["status"] == 201
    assert seen["register"]["body"]["redirect_uris"] == [f"{seen['origin']}/oauth/callback"]
    assert seen["token"]["status"] == 400
    assert "error" in seen["token"]["body"]


async def test_a_page_of_another_origin_reads_nothing(server: ServiceProcess) -> None:
    seen = await fetch_from_page("127.0.0.2", "127.0.0.2", server.url)
    steps = ("resource", "server", "register", "token")
    assert {step: seen[step] for step in steps} == dict.fromkeys(steps, "blocked")
