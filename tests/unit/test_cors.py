"""The CORS contract a browser-side OAuth client (the MCP Inspector) relies on: locally the
facade's discovery documents, registration, token endpoint and JWKS answer loopback origins,
preflight included, and nothing else unless CORS_ALLOW_ORIGINS names it; elsewhere only
CORS_ALLOW_ORIGINS counts."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from mcp_service.app import Service
from tests.support.asgi import running
from tests.support.service import make_service

BASE = "http://127.0.0.1:9000"
INSPECTOR = "http://localhost:6274"
FETCHED = [
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/oauth-protected-resource"),
    ("GET", "/.well-known/oauth-protected-resource/mcp"),
    ("GET", "/oauth/jwks.json"),
    ("POST", "/oauth/register"),
    ("POST", "/oauth/token"),
]
LOOPBACK = [
    "http://localhost:6274",
    "http://127.0.0.1:6274",
    "http://[::1]:6274",
    "http://localhost",
]
REFUSED = [
    "https://evil.example",
    "null",
    "https://localhost:6274",
    "http://localhost.evil.example:6274",
    "http://127.0.0.1.evil.example",
    "http://10.0.0.1:6274",
    "http://localhost:6274/path",
]
# What the Inspector's OAuth client sends on a discovery fetch and a token request.
REQUESTED_HEADERS = "authorization, content-type, mcp-protocol-version"


def local(tmp_path: Path, **overrides: Any) -> Service:
    """The embedded issuer and the facade, as `uv run mcp-service serve` runs them."""
    return make_service(
        app_env="local",
        user_pool_id="",
        public_base_url=BASE,
        local_issuer_key_file=str(tmp_path / "issuer.pem"),
        **overrides,
    )


def preflight(origin: str, method: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": REQUESTED_HEADERS,
    }


@pytest.mark.parametrize("origin", LOOPBACK)
@pytest.mark.parametrize(("method", "path"), FETCHED)
async def test_locally_a_loopback_origin_s_preflight_is_answered(
    tmp_path: Path, origin: str, method: str, path: str
) -> None:
    async with running(local(tmp_path).app) as client:
        response = await client.options(path, headers=preflight(origin, method))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert method in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "mcp-protocol-version"} <= set(allowed.split(", "))


@pytest.mark.parametrize("origin", REFUSED)
@pytest.mark.parametrize(("method", "path"), FETCHED)
async def test_locally_any_other_origin_s_preflight_is_refused(
    tmp_path: Path, origin: str, method: str, path: str
) -> None:
    async with running(local(tmp_path).app) as client:
        response = await client.options(path, headers=preflight(origin, method))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/mcp"]
)
async def test_locally_a_discovery_document_is_readable_by_a_loopback_origin(
    tmp_path: Path, path: str
) -> None:
    async with running(local(tmp_path).app) as client:
        response = await client.get(path, headers={"Origin": INSPECTOR})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == INSPECTOR
    assert "origin" in response.headers["vary"].lower()


@pytest.mark.parametrize("origin", REFUSED)
async def test_locally_a_discovery_document_is_not_readable_by_another_origin(
    tmp_path: Path, origin: str
) -> None:
    async with running(local(tmp_path).app) as client:
        response = await client.get(
            "/.well-known/oauth-authorization-server", headers={"Origin": origin}
        )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_locally_a_registration_answer_is_readable_by_a_loopback_origin(
    tmp_path: Path,
) -> None:
    body = {"client_name": "Inspector", "redirect_uris": [f"{INSPECTOR}/oauth/callback"]}
    async with running(local(tmp_path).app) as client:
        response = await client.post("/oauth/register", json=body, headers={"Origin": INSPECTOR})
    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == INSPECTOR


async def test_locally_a_token_error_is_readable_by_a_loopback_origin(tmp_path: Path) -> None:
    form = {"grant_type": "authorization_code", "code": "nope", "client_id": "nope"}
    async with running(local(tmp_path).app) as client:
        response = await client.post("/oauth/token", data=form, headers={"Origin": INSPECTOR})
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == INSPECTOR


@pytest.mark.parametrize("path", ["/oauth/authorize", "/mcp", "/healthz"])
async def test_locally_what_a_browser_navigates_to_or_mcp_gets_no_cors_by_default(
    tmp_path: Path, path: str
) -> None:
    async with running(local(tmp_path).app) as client:
        response = await client.options(path, headers=preflight(INSPECTOR, "GET"))
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origin", [INSPECTOR, "https://inspector.example"])
@pytest.mark.parametrize("path", ["/.well-known/oauth-authorization-server", "/mcp"])
async def test_locally_cors_allow_origins_adds_to_the_loopback_origins(
    tmp_path: Path, origin: str, path: str
) -> None:
    service = local(tmp_path, cors_allow_origins="https://inspector.example")
    async with running(service.app) as client:
        response = await client.options(path, headers=preflight(origin, "POST"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize("origin", ["http://localhost:6274", "http://127.0.0.1:6274"])
@pytest.mark.parametrize("cors", ["", "https://inspector.example"])
async def test_outside_local_mode_loopback_origins_are_refused(origin: str, cors: str) -> None:
    service = make_service(public_base_url="https://mcp.example.com", cors_allow_origins=cors)
    async with running(service.app) as client:
        response = await client.options(
            "/.well-known/oauth-protected-resource/mcp", headers=preflight(origin, "GET")
        )
    assert "access-control-allow-origin" not in response.headers


async def test_outside_local_mode_cors_allow_origins_is_answered() -> None:
    service = make_service(
        public_base_url="https://mcp.example.com", cors_allow_origins="https://inspector.example"
    )
    async with running(service.app) as client:
        response = await client.get(
            "/.well-known/oauth-protected-resource/mcp",
            headers={"Origin": "https://inspector.example"},
        )
    assert response.headers["access-control-allow-origin"] == "https://inspector.example"


@pytest.mark.parametrize(
    ("redirect", "source"),
    [
        ("http://127.0.0.1:33418/callback", "http://127.0.0.1:33418"),
        ("cursor://anysphere.cursor-retrieval/oauth/callback", "cursor:"),
    ],
)
async def test_the_consent_form_may_lead_only_to_sign_in_and_the_client(
    tmp_path: Path, redirect: str, source: str
) -> None:
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    body = {"client_name": "Client", "redirect_uris": [redirect], "application_type": "native"}
    async with running(local(tmp_path).app) as client:
        registered = (await client.post("/oauth/register", json=body)).json()
        query = {
            "response_type": "code",
            "client_id": registered["client_id"],
            "redirect_uri": redirect,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            "state": "s",
        }
        response = await client.get(f"/oauth/authorize?{urlencode(query)}")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    directive = next(d.strip() for d in policy.split(";") if d.strip().startswith("form-action"))
    assert directive.split() == ["form-action", "'self'", BASE, source]


@pytest.mark.parametrize(("method", "path"), FETCHED)
async def test_locally_an_options_request_that_is_no_preflight_reaches_no_endpoint(
    tmp_path: Path, method: str, path: str
) -> None:
    body = {"client_name": "x", "redirect_uris": ["http://127.0.0.1:1/cb"]}
    async with running(local(tmp_path).app) as client:
        response = await client.request("OPTIONS", path, json=body, headers={"Origin": INSPECTOR})
    assert response.status_code == 405
