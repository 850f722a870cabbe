"""Interactive login end to end: real MCP clients log a person in through the facade, over
two replicas sharing a real Redis behind a round-robin balancer, so consecutive steps of
every flow land on different replicas; the embedded issuer plays Cognito managed login."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
import webbrowser
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import httpx2
import jwt
import pytest
import redis
from fastmcp import Client
from fastmcp.client.auth import OAuth
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import (
    OAuthMetadata,
)

from tests.support.balancer import RoundRobin
from tests.support.browser import Person, read_form
from tests.support.login import REDIRECT, MemoryTokens, call_tools, headless_provider
from tests.support.processes import ServiceProcess, cli
from tests.support.tls import DocumentServer, make_ca

pytestmark = pytest.mark.redis

PASSWORD = "correct horse battery staple"
BOB_PASSWORD = "another one entirely"
CIMD_PATH = "/clients/sdk.json"


class Fleet:
    def __init__(
        self, balancer: RoundRobin, replicas: list[ServiceProcess], docs: DocumentServer
    ) -> None:
        self.balancer = balancer
        self.replicas = replicas
        self.docs = docs
        self.docs_dir = replicas[0].cwd

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
        "LOCAL_USERS": json.dumps(
            {
                "ada": {"password": PASSWORD, "groups": ["admins"]},
                "bob": {"password": BOB_PASSWORD},
            }
        ),
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


def sdk_provider(
    fleet: Fleet, person: Person, storage: MemoryTokens, metadata_url: str | None = None
) -> OAuthClientProvider:
    return headless_provider(f"{fleet.url}/mcp", person, storage, metadata_url)


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


async def test_the_mcp_sdk_refreshes_an_expired_token_on_another_replica(fleet: Fleet) -> None:
    person, storage = Person("ada", PASSWORD), MemoryTokens()
    provider = sdk_provider(fleet, person, storage)
    await call_tools(f"{fleet.url}/mcp", httpx2.AsyncClient(auth=provider))
    await person.aclose()  # a second sign-in would fail: only a refresh can succeed
    assert storage.tokens is not None
    first = storage.tokens
    provider.context.token_expiry_time = time.time() - 1  # as if the token's time had passed
    authorizations = len(fleet.balancer.replicas_of("GET", "/oauth/authorize"))
    issued_by = fleet.balancer.replicas_of("POST", "/oauth/token")[-1]
    fleet.balancer.steer["/oauth/token"] = 1 - issued_by  # the refresh: the other replica
    added, _ = await call_tools(f"{fleet.url}/mcp", httpx2.AsyncClient(auth=provider))
    assert added == {"result": 8}
    assert storage.tokens.refresh_token != first.refresh_token
    assert storage.tokens.access_token != first.access_token
    assert len(fleet.balancer.replicas_of("GET", "/oauth/authorize")) == authorizations
    assert fleet.balancer.replicas_of("POST", "/oauth/token")[-1] != issued_by


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


def headless_browser(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """`webbrowser.open` replaced by a person who signs in and lands on the client's callback
    server (FastMCP's own, on localhost); returns where their failures are kept."""
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
    return errors


@pytest.mark.filterwarnings("ignore:Using in-memory token storage")
async def test_fastmcp_client_with_auth_oauth_logs_a_person_in(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = headless_browser(monkeypatch)
    async with Client(f"{fleet.url}/mcp", auth="oauth") as client:
        result = await client.call_tool("add", {"a": 2, "b": 3})
        who = await client.call_tool("get_user_info", {})
    assert not errors
    assert result.data == 5
    assert who.structured_content is not None and who.structured_content["username"] == "ada"
    assert_steps_crossed_replicas(fleet)


@pytest.mark.filterwarnings("ignore:Using in-memory token storage")
async def test_fastmcp_client_logs_a_person_in_with_a_metadata_document(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fleet.docs.url("/clients/fastmcp.json")
    fleet.docs.documents["/clients/fastmcp.json"] = {
        "client_id": url,
        "client_name": "FastMCP CIMD client",
        "redirect_uris": ["http://localhost:1/callback"],  # any port: RFC 8252 7.3
        "token_endpoint_auth_method": "none",
    }
    errors = headless_browser(monkeypatch)
    async with Client(f"{fleet.url}/mcp", auth=OAuth(client_metadata_url=url)) as client:
        who = await client.call_tool("get_user_info", {})
    assert not errors
    assert who.structured_content is not None and who.structured_content["client_id"] == url
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


# The hostile inputs: each refused with the right error, and nothing issued. ----------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def register(fleet: Fleet, **metadata: Any) -> httpx.Response:
    body = {"client_name": "hostile test", "redirect_uris": [REDIRECT], **metadata}
    return httpx.post(f"{fleet.url}/oauth/register", json=body)


def authorize_url(fleet: Fleet, client_id: str, challenge: str, **params: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": f"{fleet.url}/mcp",
        **params,
    }
    return f"{fleet.url}/oauth/authorize?{urlencode(query)}"


async def code_for(fleet: Fleet) -> tuple[str, str, str]:
    """(client_id, verifier, code) of a completed sign-in."""
    client_id = register(fleet).json()["client_id"]
    verifier, challenge = pkce()
    person = Person("ada", PASSWORD)
    landed = await person.authorize(authorize_url(fleet, client_id, challenge), REDIRECT)
    await person.aclose()
    return client_id, verifier, parse_qs(urlsplit(landed).query)["code"][0]


def redeem(fleet: Fleet, client_id: str, verifier: str | None, code: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": code,
        "redirect_uri": REDIRECT,
        **({"code_verifier": verifier} if verifier is not None else {}),
    }
    return httpx.post(f"{fleet.url}/oauth/token", data=form)


def refresh(fleet: Fleet, client_id: str, token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "client_id": client_id, "refresh_token": token}
    return httpx.post(f"{fleet.url}/oauth/token", data=form)


def who(fleet: Fleet, access_token: str, replica: int) -> int:
    response = httpx.post(
        f"{fleet.replicas[replica].url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/json, text/event-stream",
        },
    )
    return response.status_code


def refused_everywhere(fleet: Fleet, access_token: str) -> bool:
    """Every replica refuses the token within two seconds (revocations travel by pub/sub)."""
    for _ in range(40):
        if all(who(fleet, access_token, i) == 401 for i in range(len(fleet.replicas))):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:33418/other",  # another path
        "http://localhost:33418/callback",  # another loopback host
        "https://127.0.0.1:33418/callback",  # another scheme
        "http://127.0.0.1:33418/callback?x=1",  # another query
        "https://evil.example/callback",  # an open redirect
        "http://127.0.0.1:33418@evil.example/callback",
    ],
)
def test_a_redirect_uri_not_registered_gets_a_page_never_a_redirect(
    fleet: Fleet, redirect_uri: str
) -> None:
    client_id = register(fleet).json()["client_id"]
    _, challenge = pkce()
    response = httpx.get(authorize_url(fleet, client_id, challenge, redirect_uri=redirect_uri))
    assert response.status_code == 400
    assert "location" not in response.headers


def test_a_repeated_parameter_gets_a_page_never_a_redirect(fleet: Fleet) -> None:
    client_id = register(fleet).json()["client_id"]
    _, challenge = pkce()
    url = authorize_url(fleet, client_id, challenge) + "&redirect_uri=https%3A%2F%2Fevil.example"
    response = httpx.get(url)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_a_loopback_redirect_uri_may_differ_by_its_port(fleet: Fleet) -> None:
    client_id = register(fleet).json()["client_id"]
    _, challenge = pkce()
    url = authorize_url(fleet, client_id, challenge, redirect_uri="http://127.0.0.1:5/callback")
    response = httpx.get(url)
    assert response.status_code == 200
    assert "http://127.0.0.1:5/callback" in response.text  # the consent page names it exactly


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"resource": "https://elsewhere.example/mcp"}, "invalid_target"),
    ],
)
def test_a_bad_authorization_request_goes_back_with_its_error_and_iss(
    fleet: Fleet, params: dict[str, str], error: str
) -> None:
    client_id = register(fleet).json()["client_id"]
    _, challenge = pkce()
    response = httpx.get(authorize_url(fleet, client_id, challenge, **params))
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert response.headers["location"].startswith(REDIRECT)
    assert query["error"] == [error]
    assert query["iss"] == [fleet.url]
    assert query["state"] == ["s1"]
    assert "code" not in query


def test_the_consent_page_cannot_be_framed_or_cached(fleet: Fleet) -> None:
    client_id = register(fleet).json()["client_id"]
    _, challenge = pkce()
    response = httpx.get(authorize_url(fleet, client_id, challenge))
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "mcp_csrf=" in response.headers["set-cookie"]  # loopback http: no __Host- prefix
    assert "HttpOnly" in response.headers["set-cookie"]


@pytest.mark.parametrize("csrf", ["", "forged"])
def test_consent_without_its_csrf_token_is_refused(fleet: Fleet, csrf: str) -> None:
    client_id = register(fleet).json()["client_id"]
    _, challenge = pkce()
    with httpx.Client() as browser:
        page = browser.get(authorize_url(fleet, client_id, challenge))
        form = read_form(page.text).fields
        answer = browser.post(
            f"{fleet.url}/oauth/consent",
            data={"request": form["request"], "csrf": csrf, "decision": "approve"},
        )
    assert answer.status_code == 403
    assert "location" not in answer.headers


def test_consent_from_another_browser_is_refused(fleet: Fleet) -> None:
    client_id = register(fleet).json()["client_id"]
    _, challenge = pkce()
    page = httpx.get(authorize_url(fleet, client_id, challenge))
    form = read_form(page.text).fields  # a forged cross-site post carries no CSRF cookie
    answer = httpx.post(f"{fleet.url}/oauth/consent", data={**form, "decision": "approve"})
    assert answer.status_code == 403


async def test_a_denied_consent_goes_back_with_access_denied(fleet: Fleet) -> None:
    client_id = register(fleet).json()["client_id"]
    _, challenge = pkce()
    person = Person("ada", PASSWORD, decision="deny")
    landed = await person.authorize(authorize_url(fleet, client_id, challenge), REDIRECT)
    await person.aclose()
    query = parse_qs(urlsplit(landed).query)
    assert query["error"] == ["access_denied"]
    assert "code" not in query


async def test_a_code_replayed_on_another_replica_is_refused_and_revokes_the_first_tokens(
    fleet: Fleet,
) -> None:
    client_id, verifier, code = await code_for(fleet)
    first = redeem(fleet, client_id, verifier, code)
    second = redeem(fleet, client_id, verifier, code)  # the balancer: the other replica
    assert first.status_code == 200
    assert fleet.balancer.served[-1][2] != fleet.balancer.served[-2][2]
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert "access_token" not in second.json()
    assert refused_everywhere(fleet, first.json()["access_token"])
    assert refresh(fleet, client_id, first.json()["refresh_token"]).status_code == 400


async def test_an_approval_is_remembered_for_the_person_and_the_client(fleet: Fleet) -> None:
    client_id = register(fleet).json()["client_id"]
    person = Person("ada", PASSWORD)
    for _ in range(2):
        _, challenge = pkce()
        landed = await person.authorize(authorize_url(fleet, client_id, challenge), REDIRECT)
        assert "code" in parse_qs(urlsplit(landed).query)
    await person.aclose()
    consents = [page for page in person.pages if 'name="decision"' in page]
    assert len(consents) == 1
    assert sum('name="password"' in page for page in person.pages) == 2  # signs in each time


async def test_a_remembered_approval_does_not_cover_another_person(fleet: Fleet) -> None:
    client_id = register(fleet).json()["client_id"]
    person = Person("ada", PASSWORD)
    _, challenge = pkce()
    await person.authorize(authorize_url(fleet, client_id, challenge), REDIRECT)
    person.username, person.password = "bob", BOB_PASSWORD  # someone else at that browser
    _, challenge = pkce()
    landed = await person.authorize(authorize_url(fleet, client_id, challenge), REDIRECT)
    await person.aclose()
    query = parse_qs(urlsplit(landed).query)
    assert query["error"] == ["access_denied"]
    assert "code" not in query


def test_the_person_goes_to_cognito_with_pkce_and_the_resource(fleet: Fleet) -> None:
    client_id = register(fleet).json()["client_id"]
    _, challenge = pkce()
    with httpx.Client() as browser:
        page = browser.get(authorize_url(fleet, client_id, challenge))
        form = read_form(page.text).fields
        answer = browser.post(f"{fleet.url}/oauth/consent", data={**form, "decision": "approve"})
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    query = parse_qs(location.query)
    assert location.path == "/oauth2/authorize"
    assert query["redirect_uri"] == [f"{fleet.url}/oauth/callback"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] != [challenge]  # the facade's own PKCE, not the client's
    assert query["resource"] == [f"{fleet.url}/mcp"]  # RFC 8707, forwarded
    assert query["state"] != ["s1"]  # the client's state never leaves for Cognito


async def test_the_logs_hold_no_token_code_or_password(fleet: Fleet) -> None:
    client_id, verifier, code = await code_for(fleet)
    tokens = redeem(fleet, client_id, verifier, code).json()
    refresh(fleet, client_id, tokens["refresh_token"])
    logs = "".join(replica.log() for replica in fleet.replicas)
    assert code not in logs and tokens["refresh_token"].split(".")[1] not in logs
    assert tokens["access_token"].split(".")[2] not in logs
    assert PASSWORD not in logs and BOB_PASSWORD not in logs
    assert "login session started" in logs
    for line in logs.splitlines():
        assert "refresh_token" not in line and "access_token" not in line


@pytest.mark.parametrize("verifier", [None, "", "x" * 43, secrets.token_urlsafe(48)])
async def test_a_code_with_a_wrong_or_missing_pkce_verifier_issues_nothing(
    fleet: Fleet, verifier: str | None
) -> None:
    client_id, _, code = await code_for(fleet)
    response = redeem(fleet, client_id, verifier, code)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


async def test_a_code_redeemed_by_another_client_issues_nothing(fleet: Fleet) -> None:
    _, verifier, code = await code_for(fleet)
    other = register(fleet).json()["client_id"]
    response = redeem(fleet, other, verifier, code)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_refresh_rotates_across_replicas_and_a_replayed_refresh_token_ends_the_session(
    fleet: Fleet,
) -> None:
    client_id, verifier, code = await code_for(fleet)
    tokens = redeem(fleet, client_id, verifier, code).json()
    renewed = refresh(fleet, client_id, tokens["refresh_token"])
    assert renewed.status_code == 200
    new = renewed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert who(fleet, new["access_token"], 0) == 200
    assert who(fleet, new["access_token"], 1) == 200
    again = refresh(fleet, client_id, new["refresh_token"])  # rotation on the other replica
    assert again.status_code == 200
    replay = refresh(fleet, client_id, tokens["refresh_token"])  # rotated away: reuse
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert refresh(fleet, client_id, again.json()["refresh_token"]).status_code == 400
    assert refused_everywhere(fleet, again.json()["access_token"])


@pytest.mark.parametrize("kind", ["jti", "sub"])
async def test_revoke_ends_a_session_everywhere(fleet: Fleet, kind: str) -> None:
    client_id, verifier, code = await code_for(fleet)
    tokens = redeem(fleet, client_id, verifier, code).json()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    value = claims["origin_jti"] if kind == "jti" else claims["sub"]
    env = {k: v for k, v in fleet.replicas[0].env.items() if k in ("REDIS_URL", "REDIS_KEY_PREFIX")}
    done = cli("revoke", f"--{kind}", value, env={"APP_ENV": "local", **env}, cwd=fleet.docs_dir)
    assert done.returncode == 0, done.stderr
    assert refused_everywhere(fleet, tokens["access_token"])
    assert refresh(fleet, client_id, tokens["refresh_token"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "client_id",
    [
        "https://169.254.169.254/latest/meta-data",  # link-local, even with loopback allowed
        "https://10.0.0.1/client.json",  # private
        "http://localhost/client.json",  # not https
    ],
)
def test_a_metadata_document_url_at_a_forbidden_address_is_refused(
    fleet: Fleet, client_id: str
) -> None:
    _, challenge = pkce()
    response = httpx.get(authorize_url(fleet, client_id, challenge))
    assert response.status_code == 400
    assert "location" not in response.headers


def test_a_metadata_document_behind_a_redirect_is_refused(fleet: Fleet) -> None:
    fleet.docs.redirects["/moved.json"] = fleet.docs.url(CIMD_PATH)
    _, challenge = pkce()
    response = httpx.get(authorize_url(fleet, fleet.docs.url("/moved.json"), challenge))
    assert response.status_code == 400
    assert "302" in response.text


def test_an_oversized_metadata_document_is_refused(fleet: Fleet) -> None:
    url = fleet.docs.url("/big.json")
    document = {"client_id": url, "redirect_uris": [REDIRECT], "client_name": "x" * 6000}
    fleet.docs.raw["/big.json"] = json.dumps(document).encode()
    _, challenge = pkce()
    response = httpx.get(authorize_url(fleet, url, challenge))
    assert response.status_code == 400
    assert "too large" in response.text


def test_a_metadata_document_naming_another_client_id_is_refused(fleet: Fleet) -> None:
    url = fleet.docs.url("/liar.json")
    fleet.docs.documents["/liar.json"] = {
        "client_id": "https://a.example/c",
        "redirect_uris": [REDIRECT],
    }
    _, challenge = pkce()
    assert httpx.get(authorize_url(fleet, url, challenge)).status_code == 400


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        (
            {"application_type": "web", "redirect_uris": ["http://127.0.0.1/cb"]},
            "invalid_redirect_uri",
        ),
        ({"application_type": "web", "redirect_uris": ["cursor://cb"]}, "invalid_redirect_uri"),
        ({"application_type": "desktop"}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
    ],
)
def test_a_bad_registration_is_refused(fleet: Fleet, metadata: dict[str, Any], error: str) -> None:
    response = register(fleet, **metadata)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert "client_id" not in response.json()


@pytest.mark.parametrize(
    ("application_type", "uri"),
    [
        ("native", "cursor://anysphere.cursor-retrieval/oauth/callback"),
        ("web", "https://app.example/cb"),
    ],
)
def test_a_registration_honours_the_application_type(
    fleet: Fleet, application_type: str, uri: str
) -> None:
    response = register(fleet, application_type=application_type, redirect_uris=[uri])
    assert response.status_code == 201
    assert response.json()["application_type"] == application_type
    assert response.json()["token_endpoint_auth_method"] == "none"


def test_an_oversized_registration_is_refused(fleet: Fleet) -> None:
    response = register(fleet, client_name="x" * 20_000)
    assert response.status_code == 413


def test_a_registration_flood_is_refused(fleet: Fleet) -> None:
    """Last in this module: it spends a replica's registration budget for the address."""
    body = {"client_name": "flood", "redirect_uris": [REDIRECT]}
    with httpx.Client(base_url=fleet.replicas[0].url) as http:
        statuses = [http.post("/oauth/register", json=body).status_code for _ in range(45)]
    assert 429 in statuses
    assert set(statuses) <= {201, 429}
