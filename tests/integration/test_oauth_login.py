"""Interactive login end to end: real MCP clients log a person in through the facade, over
two replicas sharing a real Redis behind a round-robin balancer, so consecutive steps of
every flow land on different replicas; the embedded issuer plays Cognito managed login."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
import webbrowser
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
import redis
from fastmcp import Client
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from tests.support.balancer import RoundRobin
from tests.support.browser import Person
from tests.support.processes import ServiceProcess
from tests.support.tls import DocumentServer, make_ca

pytestmark = pytest.mark.redis

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:33418/callback"
CIMD_PATH = "/clients/sdk.json"


class Fleet:
    def __init__(self, balancer: RoundRobin, replicas: list[ServiceProcess], docs: DocumentServer):
        self.balancer = balancer
        self.replicas = replicas
        self.docs = docs

    @property
    def url(self) -> str:
        return self.balancer.url


@pytest.fixture(scope="module")
def fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("login")
    ca, cert, key = make_ca(directory)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        "APP_ENV": "local",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "TOKEN_CACHE_SECRET": "t" * 32,
        "LOCAL_USERS": json.dumps({"ada": {"password": PASSWORD, "groups": ["admins"]}}),
        "CIMD_ALLOW_LOOPBACK": "true",
        "CIMD_CA_FILE": str(ca),
        "OAUTH_REGISTRATION_RATE_LIMIT": "40/minute",
    }
    replicas = [ServiceProcess(env, directory), ServiceProcess(env, directory)]
    balancer = RoundRobin([replica.url for replica in replicas])
    for replica in replicas:
        replica.env["PUBLIC_BASE_URL"] = balancer.url
    docs = DocumentServer(cert, key)
    try:
        with balancer.running(), docs.running():
            for replica in replicas:
                replica.launch()
            for replica in replicas:
                replica.wait_ready()
            yield Fleet(balancer, replicas, docs)
    finally:
        for replica in replicas:
            replica.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


class MemoryTokens:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def sdk_provider(
    fleet: Fleet, person: Person, storage: MemoryTokens, metadata_url: str | None = None
) -> OAuthClientProvider:
    landed: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        landed["url"] = await person.authorize(url, REDIRECT)

    async def callback_handler() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(landed["url"]).query)
        return AuthorizationCodeResult(
            code=query["code"][0], state=query["state"][0], iss=query["iss"][0]
        )

    return OAuthClientProvider(
        server_url=f"{fleet.url}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="SDK test client",
            redirect_uris=[AnyUrl(REDIRECT)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=metadata_url,
    )


async def call_tools(url: str, http: httpx2.AsyncClient) -> tuple[Any, Any]:
    async with (
        http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        added = await session.call_tool("add", {"a": 5, "b": 3})
        who = await session.call_tool("get_user_info", {})
    return added.structured_content, who.structured_content


def assert_steps_crossed_replicas(fleet: Fleet) -> None:
    served = fleet.balancer.served
    consent = [i for i, (m, p, _) in enumerate(served) if (m, p) == ("POST", "/oauth/consent")][-1]
    callback = [i for i, (m, p, _) in enumerate(served) if p == "/oauth/callback"][-1]
    token = next(i for i, (_, p, _) in enumerate(served) if p == "/oauth/token" and i > callback)
    assert served[consent][2] != served[callback][2]  # pending stored on one, taken on the other
    assert served[callback][2] != served[token][2]  # code issued on one, redeemed on the other


async def test_the_mcp_sdk_logs_a_person_in_with_dcr_and_calls_tools(fleet: Fleet) -> None:
    person, storage = Person("ada", PASSWORD), MemoryTokens()
    provider = sdk_provider(fleet, person, storage)
    added, who = await call_tools(f"{fleet.url}/mcp", httpx2.AsyncClient(auth=provider, timeout=30))
    await person.aclose()
    assert added == {"result": 8}
    assert who["username"] == "ada"
    assert who["groups"] == ["admins"]
    assert who["scope"] == "mcp/tools"
    assert storage.client is not None and who["client_id"] == storage.client.client_id
    assert storage.tokens is not None and storage.tokens.refresh_token
    assert any("SDK test client" in page for page in person.pages)  # the consent page
    assert any(REDIRECT in page for page in person.pages)
    assert_steps_crossed_replicas(fleet)


async def test_the_mcp_sdk_logs_a_person_in_with_a_metadata_document(fleet: Fleet) -> None:
    url = fleet.docs.url(CIMD_PATH)
    fleet.docs.documents[CIMD_PATH] = {
        "client_id": url,
        "client_name": "CIMD test client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    person, storage = Person("ada", PASSWORD), MemoryTokens()
    provider = sdk_provider(fleet, person, storage, metadata_url=url)
    added, who = await call_tools(f"{fleet.url}/mcp", httpx2.AsyncClient(auth=provider, timeout=30))
    await person.aclose()
    assert added == {"result": 8}
    assert who["client_id"] == url
    assert any("CIMD test client" in page for page in person.pages)
    assert CIMD_PATH in fleet.docs.requests
    assert_steps_crossed_replicas(fleet)


async def test_fastmcp_client_with_auth_oauth_logs_a_person_in(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors: list[BaseException] = []

    def open_browser(url: str, *args: Any, **kwargs: Any) -> bool:
        async def sign_in() -> None:
            person = Person("ada", PASSWORD)
            try:
                landed = await person.authorize(url, "http://localhost:")
                async with httpx.AsyncClient() as http:  # the client's own callback server
                    for _ in range(100):
                        try:
                            await http.get(landed)
                            return
                        except httpx.ConnectError:
                            await asyncio.sleep(0.05)
            finally:
                await person.aclose()

        def run() -> None:
            try:
                asyncio.run(sign_in())
            except BaseException as exc:
                errors.append(exc)

        threading.Thread(target=run, daemon=True).start()
        return True

    monkeypatch.setattr(webbrowser, "open", open_browser)
    async with Client(f"{fleet.url}/mcp", auth="oauth") as client:
        result = await client.call_tool("add", {"a": 2, "b": 3})
        who = await client.call_tool("get_user_info", {})
    assert not errors
    assert result.data == 5
    assert who.structured_content is not None and who.structured_content["username"] == "ada"
    assert_steps_crossed_replicas(fleet)


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
def test_the_discovery_documents_validate_as_the_sdk_reads_them(fleet: Fleet, path: str) -> None:
    document = httpx.get(f"{fleet.url}{path}").json()
    metadata = OAuthMetadata.model_validate(document)
    assert str(metadata.issuer).rstrip("/") == fleet.url
    assert metadata.code_challenge_methods_supported == ["S256"]
    assert document["client_id_metadata_document_supported"] is True
    assert str(metadata.registration_endpoint) == f"{fleet.url}/oauth/register"


def test_the_resource_metadata_names_the_facade(fleet: Fleet) -> None:
    document = httpx.get(f"{fleet.url}/.well-known/oauth-protected-resource/mcp").json()
    assert document["authorization_servers"] == [fleet.url]
    assert document["resource"] == f"{fleet.url}/mcp"


def test_the_embedded_issuer_discovery_keeps_cognitos_omissions(fleet: Fleet) -> None:
    pool = "us-east-1_mcpLocal01"
    document = httpx.get(f"{fleet.url}/{pool}/.well-known/openid-configuration").json()
    assert document["authorization_endpoint"] == f"{fleet.url}/oauth2/authorize"
    assert "code_challenge_methods_supported" not in document
    assert "registration_endpoint" not in document
