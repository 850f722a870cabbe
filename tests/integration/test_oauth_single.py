"""The login facade on one replica without Redis (state in memory), with the generated local
user whose credentials `serve` wrote beside the dev key."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator

import httpx2
import pytest

from tests.support.browser import Person
from tests.support.login import MemoryTokens, call_tools, headless_provider
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
    person, storage = Person(user["username"], user["password"]), MemoryTokens()
    provider = headless_provider(f"{server.url}/mcp", person, storage)
    added, who = await call_tools(f"{server.url}/mcp", httpx2.AsyncClient(auth=provider))
    await person.aclose()
    assert added == {"result": 8}
    assert who["username"] == user["username"]
