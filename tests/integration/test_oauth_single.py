"""The login facade on one replica without Redis (state in memory), with the generated local
user whose credentials `serve` wrote beside the dev key."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from pydantic import AnyUrl

from tests.support.browser import Person
from tests.support.login import REDIRECT, MemoryTokens, call_tools
from tests.support.processes import ServiceProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with ServiceProcess({"APP_ENV": "local"}, tmp_path_factory.mktemp("single")) as service:
        yield service


async def test_a_person_logs_in_with_the_generated_user_and_no_redis(
    server: ServiceProcess,
) -> None:
    path = server.cwd / "local-user.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in server.log()
    user = json.loads(path.read_text())
    assert user["password"] not in server.log()
    person, storage, landed = Person(user["username"], user["password"]), MemoryTokens(), {}

    async def redirect_handler(url: str) -> None:
        landed["url"] = await person.authorize(url, REDIRECT)

    async def callback_handler() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(landed["url"]).query)
        return AuthorizationCodeResult(
            code=query["code"][0], state=query["state"][0], iss=query["iss"][0]
        )

    provider = OAuthClientProvider(
        server_url=f"{server.url}/mcp",
        client_metadata=OAuthClientMetadata(
            redirect_uris=[AnyUrl(REDIRECT)], token_endpoint_auth_method="none"
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    added, who = await call_tools(f"{server.url}/mcp", httpx2.AsyncClient(auth=provider))
    await person.aclose()
    assert added == {"result": 8}
    assert who["username"] == user["username"]
