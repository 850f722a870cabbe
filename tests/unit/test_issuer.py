"""The embedded issuer: a persisted dev key, a Cognito-shaped token endpoint and JWKS, and
tokens that pass through exactly the verifier Cognito's tokens do."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcp_service.app import build_service
from mcp_service.errors import IssuerKeyError
from mcp_service.issuer import load_or_create_key
from mcp_service.settings import LOCAL_CLIENT_ID, LOCAL_CLIENT_SECRET, Settings
from tests.support.asgi import MCP_HEADERS, rpc, running

ADD = rpc("tools/call", {"name": "add", "arguments": {"a": 5, "b": 3}})
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def local_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "local",
        "user_pool_id": "",
        "local_issuer_key_file": tmp_path / "state" / "issuer-key.pem",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def basic(client_id: str = LOCAL_CLIENT_ID, secret: str = LOCAL_CLIENT_SECRET) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {**FORM, "Authorization": f"Basic {encoded}"}


async def get_token(client: httpx.AsyncClient, data: str = "grant_type=client_credentials") -> str:
    response = await client.post("/oauth2/token", content=data, headers=basic())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert response.headers["cache-control"] == "no-store"
    return str(body["access_token"])


def test_the_dev_key_is_created_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "new" / "key.pem"
    load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_dev_key_persists_across_starts(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    first = load_or_create_key(path)
    again = load_or_create_key(path)
    assert first.public_key().public_numbers() == again.public_key().public_numbers()


def test_a_dev_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(IssuerKeyError, match="readable by other users"):
        load_or_create_key(path)


def test_a_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("hello")
    path.chmod(0o600)
    with pytest.raises(IssuerKeyError):
        load_or_create_key(path)


async def test_a_token_from_the_issuer_calls_a_tool(tmp_path: Path) -> None:
    async with running(build_service(local_settings(tmp_path)).app) as client:
        token = await get_token(client)
        response = await client.post(
            "/mcp", json=ADD, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )
    assert response.json()["result"]["structuredContent"] == {"result": 8}


async def test_issued_tokens_have_cognitos_client_credentials_shape(tmp_path: Path) -> None:
    service = build_service(local_settings(tmp_path))
    async with running(service.app) as client:
        token = await get_token(client)
        claims = await service.authenticator.verifier.verify(token)
    assert claims["iss"] == "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_mcpLocal01"
    assert claims["token_use"] == "access"
    assert claims["client_id"] == claims["sub"] == LOCAL_CLIENT_ID
    assert claims["scope"] == "mcp/tools"
    assert claims["exp"] - claims["iat"] == 3600
    assert {"jti", "auth_time", "version"} <= set(claims)


async def test_the_issuer_publishes_its_jwks_at_cognitos_paths(tmp_path: Path) -> None:
    async with running(build_service(local_settings(tmp_path)).app) as client:
        root = await client.get("/.well-known/jwks.json")
        pooled = await client.get("/us-east-1_mcpLocal01/.well-known/jwks.json")
    assert root.json() == pooled.json()
    (key,) = root.json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key


@pytest.mark.parametrize(
    ("headers", "data", "status", "error"),
    [
        (basic(secret="wrong"), "grant_type=client_credentials", 401, "invalid_client"),
        (basic(client_id="other"), "grant_type=client_credentials", 401, "invalid_client"),
        (FORM, "grant_type=client_credentials", 401, "invalid_client"),
        (basic(), "grant_type=password&username=a&password=b", 400, "unsupported_grant_type"),
        (basic(), "grant_type=client_credentials&scope=mcp/admin", 400, "invalid_scope"),
        (
            basic(),
            f"grant_type=client_credentials&client_id={LOCAL_CLIENT_ID}"
            f"&client_secret={LOCAL_CLIENT_SECRET}",
            400,
            "invalid_request",
        ),
        (
            {**FORM, "Authorization": "Basic !!!"},
            "grant_type=client_credentials",
            400,
            "invalid_request",
        ),
        (
            {**basic(), "Content-Type": "application/json"},
            '{"grant_type": "client_credentials"}',
            400,
            "invalid_request",
        ),
        (basic(), "grant_type=client_credentials&grant_type=x", 400, "invalid_request"),
    ],
    ids=[
        "wrong-secret",
        "wrong-client",
        "no-credentials",
        "password-grant",
        "scope-not-allowed",
        "credentials-twice",
        "bad-basic",
        "json-body",
        "repeated-parameter",
    ],
)
async def test_a_bad_token_request_is_refused(
    tmp_path: Path, headers: dict[str, str], data: str, status: int, error: str
) -> None:
    async with running(build_service(local_settings(tmp_path)).app) as client:
        response = await client.post("/oauth2/token", content=data, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == error


async def test_client_credentials_in_the_form_are_accepted(tmp_path: Path) -> None:
    data = (
        f"grant_type=client_credentials&client_id={LOCAL_CLIENT_ID}"
        f"&client_secret={LOCAL_CLIENT_SECRET}"
    )
    async with running(build_service(local_settings(tmp_path)).app) as client:
        response = await client.post("/oauth2/token", content=data, headers=FORM)
    assert response.status_code == 200


async def test_a_narrower_scope_can_be_requested(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, local_issuer_scopes="mcp/tools mcp/profile")
    service = build_service(settings)
    async with running(service.app) as client:
        token = await get_token(client, "grant_type=client_credentials&scope=mcp/profile")
        claims = await service.authenticator.verifier.verify(token)
    assert claims["scope"] == "mcp/profile"


async def test_a_token_from_another_dev_key_is_refused(tmp_path: Path) -> None:
    other = build_service(local_settings(tmp_path / "other"))
    async with running(other.app) as client:
        foreign = await get_token(client)
    async with running(build_service(local_settings(tmp_path)).app) as client:
        response = await client.post(
            "/mcp", json=ADD, headers={**MCP_HEADERS, "Authorization": f"Bearer {foreign}"}
        )
    assert response.status_code == 401
    assert response.json()["reason"] == "unknown_kid"


async def test_a_real_pool_turns_the_issuer_off(tmp_path: Path) -> None:
    settings = local_settings(
        tmp_path, user_pool_id="us-east-1_RealPool", app_client_id="c", cognito_region="us-east-1"
    )
    async with running(build_service(settings).app) as client:
        response = await client.post(
            "/oauth2/token", content="grant_type=client_credentials", headers=basic()
        )
    assert response.status_code == 401  # not a route any more: authenticated like any path
