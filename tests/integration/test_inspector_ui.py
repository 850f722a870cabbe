"""The MCP Inspector's web UI (2.12.0) as a person uses it against `serve` in local mode, in
headless chromium: add the service as a Streamable HTTP server, connect, approve on the consent
page, sign in on the embedded issuer's page, land back on the Inspector connected, list the
tools and call them as that person. The Inspector's backend makes every HTTP request to the
service (discovery, registration, token, /mcp); the page itself only navigates there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inspector import InspectorWeb, inspector_tools
from tests.support.processes import ServiceProcess

PASSWORD = "correct horse battery"
USERS = {"ada": {"password": PASSWORD, "groups": ["admins"]}}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServiceProcess]:
    inspector_tools()
    env = {"APP_ENV": "local", "LOCAL_USERS": json.dumps(USERS)}
    with ServiceProcess(env, tmp_path) as service:
        yield service


@pytest.fixture
def inspector(tmp_path: Path) -> Iterator[InspectorWeb]:
    with InspectorWeb(tmp_path / "inspector") as web:
        yield web


async def test_the_inspector_web_ui_logs_in_through_the_facade_and_calls_a_tool(
    server: ServiceProcess, inspector: InspectorWeb, tmp_path: Path
) -> None:
    artifacts = tmp_path / "browser"
    try:
        seen = await inspector.person(f"{server.url}/mcp", "ada", PASSWORD, artifacts)
    except AssertionError as error:
        raise AssertionError(
            f"{error}\nscreenshot, page text, console and requests in {artifacts}\n"
            f"Inspector log:\n{inspector.log()[-2000:]}"
        ) from None
    assert seen["status"] == "Connected"
    assert sorted(seen["tools"]) == ["add", "get_user_info"]
    assert seen["added"] == {"result": 8}
    assert seen["who"]["username"] == "ada"
    assert seen["who"]["groups"] == ["admins"]
    # The tab went to the facade's authorize, the embedded issuer's sign-in and back to the
    # Inspector's own callback, the redirect URI it registered.
    assert seen["seen"][:4] == [
        "inspector:/",
        "service:/oauth/authorize",
        "service:/oauth2/authorize",
        "inspector:/oauth/callback",
    ]
    # The page never called the service with fetch: no CORS is involved, only navigations.
    assert {request["type"] for request in seen["requests"]} == {"document"}
