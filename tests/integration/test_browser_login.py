"""The login as a person meets it: headless chromium opens the authorization URL the `mcp`
SDK's client produced, approves (or denies) on the consent page, signs in on the embedded
issuer's managed-login page, and the client calls tools as that person (or is refused)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from tests.support.chromium import ChromiumPerson, chromium_tools
from tests.support.login import LoginRefused, MemoryTokens, call_tools, headless_provider
from tests.support.processes import ServiceProcess

USERS = {"ada": {"password": "correct horse battery", "groups": ["admins"]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    chromium_tools()
    env = {"APP_ENV": "local", "LOCAL_USERS": json.dumps(USERS)}
    with ServiceProcess(env, tmp_path_factory.mktemp("browser")) as service:
        yield service


def refusals(error: BaseException) -> list[LoginRefused]:
    """The LoginRefused inside what the client raised (task groups wrap it)."""
    if isinstance(error, LoginRefused):
        return [error]
    if isinstance(error, BaseExceptionGroup):
        return [found for inner in error.exceptions for found in refusals(inner)]
    cause = error.__cause__ or error.__context__
    return refusals(cause) if cause is not None else []


async def test_a_person_approves_in_chromium_and_the_client_calls_a_tool(
    server: ServiceProcess,
) -> None:
    person = ChromiumPerson("ada", USERS["ada"]["password"])
    provider = headless_provider(f"{server.url}/mcp", person, MemoryTokens())
    added, who = await call_tools(f"{server.url}/mcp", httpx2.AsyncClient(auth=provider))
    assert added == {"result": 8}
    assert who["username"] == "ada"
    assert "/oauth/authorize" in person.paths and "/oauth2/authorize" in person.paths
    (landed,) = person.landed
    assert parse_qs(urlsplit(landed).query)["iss"] == [server.url]


async def test_a_person_denies_in_chromium_and_the_client_gets_access_denied(
    server: ServiceProcess,
) -> None:
    person = ChromiumPerson("ada", USERS["ada"]["password"], decision="deny")
    provider = headless_provider(f"{server.url}/mcp", person, MemoryTokens())
    try:
        await call_tools(f"{server.url}/mcp", httpx2.AsyncClient(auth=provider))
    except BaseException as error:  # the SDK's task groups wrap what the provider raised
        refused = [refusal.error for refusal in refusals(error)]
    else:
        pytest.fail("the client called tools after the person denied access")
    assert refused == ["access_denied"]
    (landed,) = person.landed
    assert parse_qs(urlsplit(landed).query)["error"] == ["access_denied"]
    assert "/oauth2/authorize" not in person.paths
